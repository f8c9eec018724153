//! The ordered parallel map: moves each item out of the input buffer and
//! writes each result straight into its slot of the output buffer, splitting
//! the index range with `join` down to the chunk size.

use std::mem::{ManuallyDrop, MaybeUninit};

/// Maps `items` through `f` in parallel (on the current pool's workers, via
/// [`crate::join`]), keeping the order. A panic in `f` propagates; the items
/// and results not yet dropped are then leaked, never dropped twice.
pub(crate) fn par_map<T, R, F>(items: Vec<T>, chunk: usize, f: &F) -> Vec<R>
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
    split(
        &mut input[..],
        &mut out.spare_capacity_mut()[..n],
        chunk.max(1),
        f,
    );
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

/// Maps a borrowed slice through `f` in parallel, keeping the order; no
/// copy of the input is made.
pub(crate) fn par_map_slice<T, R, F>(items: &[T], chunk: usize, f: &F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let n = items.len();
    let mut out: Vec<R> = Vec::with_capacity(n);
    split_ref(items, &mut out.spare_capacity_mut()[..n], chunk.max(1), f);
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
