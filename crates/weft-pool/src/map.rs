//! The ordered parallel map: moves each item out of the input buffer and
//! writes each result straight into its slot of the output buffer, splitting
//! the index range with `join` down to the chunk size.
//!
//! Both buffers are allocated and freed on the calling thread, and only the
//! splitting runs inside the pool. That matters for big maps: with glibc, a
//! worker thread allocates from its own malloc arena, which cannot hold a
//! buffer of tens of megabytes and maps fresh pages for it (a page fault
//! per 4 KiB on first write, and an `munmap` on free), while the caller's
//! heap usually has warm memory to reuse.

use std::mem::{ManuallyDrop, MaybeUninit};

use crate::ThreadPool;

/// Maps `items` through `f` in parallel on `pool`, keeping the order. A
/// panic in `f` propagates; the items and results not yet dropped are then
/// leaked, never dropped twice.
pub(crate) fn par_map<T, R, F>(pool: &ThreadPool, items: Vec<T>, chunk: usize, f: &F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = items.len();
    let mut items = ManuallyDrop::new(items);
    let (ptr, cap) = (items.as_mut_ptr(), items.capacity());
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the buffer, length
    // and capacity come from a `Vec<T>` we no longer use. From here on each
    // item is owned by its slot and moved out at most once (`split`); the
    // buffer is freed without dropping the items when `input` drops.
    let mut input: Vec<MaybeUninit<T>> = unsafe { Vec::from_raw_parts(ptr.cast(), n, cap) };
    let mut out: Vec<R> = Vec::with_capacity(n);
    let (input_slots, out_slots) = (&mut input[..], &mut out.spare_capacity_mut()[..n]);
    pool.install(|| split(input_slots, out_slots, chunk.max(1), f));
    // SAFETY: `split` returned normally, so it wrote all `n` slots.
    unsafe { out.set_len(n) };
    out
}

fn split<T, R, F>(input: &mut [MaybeUninit<T>], out: &mut [MaybeUninit<R>], chunk: usize, f: &F)
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    if input.len() <= chunk {
        for (i, o) in input.iter_mut().zip(out.iter_mut()) {
            // SAFETY: every slot of `input` was initialised by the original
            // `Vec<T>`, and each slot is visited by exactly one leaf, once.
            o.write(f(unsafe { i.assume_init_read() }));
        }
        return;
    }
    let chunks = input.len().div_ceil(chunk);
    let mid = (chunks / 2) * chunk;
    let (il, ir) = input.split_at_mut(mid);
    let (ol, or) = out.split_at_mut(mid);
    crate::join(|| split(il, ol, chunk, f), || split(ir, or, chunk, f));
}

/// Maps a borrowed slice through `f` in parallel on `pool`, keeping the
/// order; no copy of the input is made.
pub(crate) fn par_map_slice<T, R, F>(pool: &ThreadPool, items: &[T], chunk: usize, f: &F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let n = items.len();
    let mut out: Vec<R> = Vec::with_capacity(n);
    let out_slots = &mut out.spare_capacity_mut()[..n];
    pool.install(|| split_ref(items, out_slots, chunk.max(1), f));
    // SAFETY: `split_ref` returned normally, so it wrote all `n` slots.
    unsafe { out.set_len(n) };
    out
}

fn split_ref<T, R, F>(input: &[T], out: &mut [MaybeUninit<R>], chunk: usize, f: &F)
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    if input.len() <= chunk {
        for (i, o) in input.iter().zip(out.iter_mut()) {
            o.write(f(i));
        }
        return;
    }
    let chunks = input.len().div_ceil(chunk);
    let mid = (chunks / 2) * chunk;
    let (il, ir) = input.split_at(mid);
    let (ol, or) = out.split_at_mut(mid);
    crate::join(
        || split_ref(il, ol, chunk, f),
        || split_ref(ir, or, chunk, f),
    );
}
