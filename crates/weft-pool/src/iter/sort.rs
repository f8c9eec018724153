//! `par_sort` (a stable merge sort) and `par_sort_unstable` (an in-place
//! quicksort), both splitting adaptively as the iterators do and leaving
//! their pieces to the standard library's sorts.
//!
//! The merge sort is the one `unsafe` part: it copies the two sorted halves
//! bitwise into a buffer and merges them back. Panic safety rests on one
//! guard: until a merge has written every slot, the buffer holds the only
//! true copy of each item, and if the comparator panics the guard copies
//! the buffer back over the slice, so every item is in the slice exactly
//! once again (in the order before that merge). Covered by Miri
//! (`tests/par_sort.rs`, including a panicking comparator).

use std::cmp::Ordering;
use std::mem::MaybeUninit;
use std::ptr;

use super::plumbing::{Splitter, in_worker, join_stolen};

/// Pieces shorter than this are sorted by the standard library without
/// further splitting: a split of a smaller one costs more than it saves.
const MIN_SPLIT: usize = if cfg!(miri) { 8 } else { 4096 };

/// Merges shorter than this run sequentially.
const MIN_MERGE_SPLIT: usize = if cfg!(miri) { 8 } else { 8192 };

// --------------------------------------------------------- unstable

pub(super) fn par_quicksort<T, F>(v: &mut [T], compare: &F)
where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    if v.len() <= MIN_SPLIT {
        v.sort_unstable_by(compare);
        return;
    }
    // Past this depth the pivots were bad too often: the standard
    // library's sort (O(n log n) in the worst case) takes the piece.
    let limit = 2 * (usize::BITS - v.len().leading_zeros());
    in_worker(|| quicksort(v, compare, Splitter::new(), false, limit));
}

fn quicksort<T, F>(v: &mut [T], compare: &F, mut splitter: Splitter, stolen: bool, limit: u32)
where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    if v.len() <= MIN_SPLIT || limit == 0 || !splitter.try_split(stolen) {
        v.sort_unstable_by(compare);
        return;
    }
    let is_less = |a: &T, b: &T| compare(a, b) == Ordering::Less;
    let p = choose_pivot(v, &is_less);
    v.swap(0, p);
    let (head, rest) = v.split_at_mut(1);
    let pivot = &head[0];
    let lt = partition(rest, |x| is_less(x, pivot));
    if lt == 0 {
        // Nothing is below the pivot, which may then be a value repeated
        // many times: put the items equal to it next to it (they are in
        // place) and go on with the greater ones only.
        let eq = partition(rest, |x| !is_less(pivot, x));
        let greater = &mut rest[eq..];
        return quicksort(greater, compare, splitter, false, limit - 1);
    }
    // `v[1..=lt]` are below the pivot, `v[lt + 1..]` not: move the pivot
    // between them.
    v.swap(0, lt);
    let (left, right) = v.split_at_mut(lt);
    let right = &mut right[1..];
    join_stolen(
        || quicksort(left, compare, splitter, false, limit - 1),
        |stolen| quicksort(right, compare, splitter, stolen, limit - 1),
    );
}

/// Moves the items for which `pred` holds to the front (in no particular
/// order) and returns their count. Branch-free: every step swaps, and the
/// boundary moves by the predicate's value.
fn partition<T>(v: &mut [T], pred: impl Fn(&T) -> bool) -> usize {
    let mut lt = 0;
    for i in 0..v.len() {
        let below = pred(&v[i]);
        v.swap(lt, i);
        lt += usize::from(below);
    }
    lt
}

/// The median of three medians of three, spread over the slice (sorted and
/// reversed inputs get their true median).
fn choose_pivot<T>(v: &[T], is_less: &impl Fn(&T, &T) -> bool) -> usize {
    let n = v.len();
    let median3 = |a: usize, b: usize, c: usize| {
        let (a, b) = if is_less(&v[b], &v[a]) {
            (b, a)
        } else {
            (a, b)
        };
        if is_less(&v[c], &v[a]) {
            a
        } else if is_less(&v[c], &v[b]) {
            c
        } else {
            b
        }
    };
    let (q1, q2, q3) = (n / 4, n / 2, 3 * n / 4);
    let s = n / 8;
    median3(
        median3(q1 - s, q1, q1 + s),
        median3(q2 - s, q2, q2 + s),
        median3(q3 - s, q3, q3 + s),
    )
}

// ----------------------------------------------------------- stable

/// A pointer that may cross to the worker running the other half of a
/// `join`: the halves use disjoint parts of what it points to.
struct SendPtr<T>(*mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

// SAFETY: used only to hand disjoint parts of a buffer of `T`s to the two
// halves of a `join`; sending it is sending those `T`s.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above; shared only to be copied.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so closures capture the whole `SendPtr`).
    fn get(self) -> *mut T {
        self.0
    }
}

pub(super) fn par_mergesort<T, F>(v: &mut [T], compare: &F)
where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    if v.len() <= MIN_SPLIT {
        v.sort_by(compare);
        return;
    }
    // Holds no items as far as `Vec` knows (its length stays 0), so
    // dropping it only frees the memory.
    let mut buf: Vec<T> = Vec::with_capacity(v.len());
    let buf = SendPtr(buf.as_mut_ptr());
    in_worker(|| mergesort(v, buf, compare, Splitter::new(), false));
}

/// Sorts `v`, using `buf` (room for `v.len()` items, nobody else's) as
/// scratch.
fn mergesort<T, F>(v: &mut [T], buf: SendPtr<T>, compare: &F, mut splitter: Splitter, stolen: bool)
where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    let n = v.len();
    if n <= MIN_SPLIT || !splitter.try_split(stolen) {
        v.sort_by(compare);
        return;
    }
    let mid = n / 2;
    // SAFETY: `mid < n`: inside the buffer, whose parts `[0, mid)` and
    // `[mid, n)` go to the two halves.
    let buf_right = SendPtr(unsafe { buf.get().add(mid) });
    {
        let (left, right) = v.split_at_mut(mid);
        join_stolen(
            || mergesort(left, buf, compare, splitter, false),
            |stolen| mergesort(right, buf_right, compare, splitter, stolen),
        );
    }
    if compare(&v[mid - 1], &v[mid]) != Ordering::Greater {
        // Already in order (a sorted input stops here at every level).
        return;
    }
    let vp = v.as_mut_ptr();
    // SAFETY: `buf` has room for `n` items and does not overlap `v`. After
    // the copy the buffer holds a bitwise copy of every item; the slice's
    // copies are overwritten by the merge below (or restored by the guard
    // on a panic), so each item stays owned exactly once.
    unsafe { ptr::copy_nonoverlapping(vp, buf.get(), n) };
    let guard = Restore {
        src: buf.get(),
        dst: vp,
        len: n,
    };
    // SAFETY: `vp` points at `n` slots that we hold exclusively (from `v`);
    // viewed as `MaybeUninit` they may be overwritten without dropping.
    let dest = unsafe { std::slice::from_raw_parts_mut(vp.cast::<MaybeUninit<T>>(), n) };
    // SAFETY: the buffer's `[0, mid)` and `[mid, n)` are the two sorted
    // halves, initialized by the copy above and left alone until the merge
    // is done; `dest` has room for both.
    unsafe {
        par_merge(
            Run { ptr: buf, len: mid },
            Run {
                ptr: buf_right,
                len: n - mid,
            },
            dest,
            compare,
        )
    };
    // Every slot of `v` now holds one item: the buffer's copies are dead.
    std::mem::forget(guard);
}

/// Copies `len` items from `src` back to `dst` when dropped: a merge that
/// panicked leaves its destination as it found it.
struct Restore<T> {
    src: *const T,
    dst: *mut T,
    len: usize,
}

impl<T> Drop for Restore<T> {
    fn drop(&mut self) {
        // SAFETY: `src` holds a bitwise copy of all `len` items that were in
        // `dst` before the merge; the merge's partial writes are overwritten
        // by that copy, so `dst` owns each item once again. The two do not
        // overlap.
        unsafe { ptr::copy_nonoverlapping(self.src, self.dst, self.len) };
    }
}

/// A sorted run of `len` initialized items in the buffer.
struct Run<T> {
    ptr: SendPtr<T>,
    len: usize,
}

impl<T> Clone for Run<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Run<T> {}

impl<T> Run<T> {
    /// The item at `i`.
    ///
    /// # Safety
    ///
    /// `i < self.len`.
    unsafe fn at<'a>(self, i: usize) -> &'a T {
        // SAFETY: by the caller, inside the run, whose items are initialized
        // and not written while it is read.
        unsafe { &*self.ptr.get().add(i) }
    }

    /// The run from `i` on.
    ///
    /// # Safety
    ///
    /// `i <= self.len`.
    unsafe fn from(self, i: usize) -> Run<T> {
        Run {
            // SAFETY: by the caller, inside or one past the run.
            ptr: SendPtr(unsafe { self.ptr.get().add(i) }),
            len: self.len - i,
        }
    }

    /// The first `i` items.
    fn take(self, i: usize) -> Run<T> {
        Run {
            ptr: self.ptr,
            len: i.min(self.len),
        }
    }

    /// The number of leading items for which `pred` holds (it holds for a
    /// prefix: the run is sorted).
    fn partition_point(self, pred: impl Fn(&T) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let m = lo + (hi - lo) / 2;
            // SAFETY: `m < hi <= len`.
            if pred(unsafe { self.at(m) }) {
                lo = m + 1;
            } else {
                hi = m;
            }
        }
        lo
    }
}

/// Merges the sorted runs `a` and `b` into `dest` (of length `a.len +
/// b.len`), stably (on ties `a`'s items first), splitting the work in
/// halves while it is long.
///
/// # Safety
///
/// The runs' items are initialized, not written during the merge, and
/// disjoint from `dest`. The items are copied bitwise: the caller decides
/// which copy owns them.
unsafe fn par_merge<T, F>(a: Run<T>, b: Run<T>, dest: &mut [MaybeUninit<T>], compare: &F)
where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    debug_assert_eq!(dest.len(), a.len + b.len);
    if dest.len() <= MIN_MERGE_SPLIT || a.len == 0 || b.len == 0 {
        // SAFETY: by this function's contract.
        unsafe { merge_seq(a, b, dest, compare) };
        return;
    }
    // Split the longer run at its middle and the other where that item
    // would go, keeping ties in order: `a`'s equal items before `b`'s.
    let (ia, ib) = if a.len >= b.len {
        let ia = a.len / 2;
        // SAFETY: `ia < a.len`.
        let pivot = unsafe { a.at(ia) };
        (
            ia,
            b.partition_point(|x| compare(x, pivot) == Ordering::Less),
        )
    } else {
        let ib = b.len / 2;
        // SAFETY: `ib < b.len`.
        let pivot = unsafe { b.at(ib) };
        (
            a.partition_point(|x| compare(x, pivot) != Ordering::Greater),
            ib,
        )
    };
    let (d1, d2) = dest.split_at_mut(ia + ib);
    // SAFETY: `ia <= a.len` and `ib <= b.len`; each half merges disjoint
    // parts of the runs into a disjoint part of `dest` of the right length.
    let (a2, b2) = unsafe { (a.from(ia), b.from(ib)) };
    let (a1, b1) = (a.take(ia), b.take(ib));
    crate::join(
        // SAFETY: as above.
        || unsafe { par_merge(a1, b1, d1, compare) },
        // SAFETY: as above.
        || unsafe { par_merge(a2, b2, d2, compare) },
    );
}

/// [`par_merge`] on one thread.
///
/// # Safety
///
/// As for [`par_merge`].
unsafe fn merge_seq<T, F>(a: Run<T>, b: Run<T>, dest: &mut [MaybeUninit<T>], compare: &F)
where
    F: Fn(&T, &T) -> Ordering,
{
    let (mut i, mut j, mut k) = (0, 0, 0);
    while i < a.len && j < b.len {
        // SAFETY: `i < a.len`, `j < b.len`.
        let (x, y) = unsafe { (a.at(i), b.at(j)) };
        let take_b = compare(y, x) == Ordering::Less;
        let src = if take_b { y } else { x };
        // SAFETY: `k = i + j < dest.len()`; a bitwise copy (see the
        // contract).
        dest[k].write(unsafe { ptr::read(src) });
        j += usize::from(take_b);
        i += usize::from(!take_b);
        k += 1;
    }
    // SAFETY: the rests (`a.len - i` and `b.len - j` items) fill exactly
    // the rest of `dest`, which does not overlap the runs.
    unsafe {
        let rest_a = a.from(i);
        ptr::copy_nonoverlapping(
            rest_a.ptr.get(),
            dest[k..].as_mut_ptr().cast::<T>(),
            rest_a.len,
        );
        k += rest_a.len;
        let rest_b = b.from(j);
        ptr::copy_nonoverlapping(
            rest_b.ptr.get(),
            dest[k..].as_mut_ptr().cast::<T>(),
            rest_b.len,
        );
    }
}
