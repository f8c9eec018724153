//! `collect` into a `Vec`: straight into place when the length is known,
//! else one `Vec` per piece appended in order.
//!
//! The in-place path writes each piece's items into its own part of the
//! new `Vec`'s spare capacity; the parts are disjoint because the consumer
//! splits that capacity at the same indices as the producer splits the
//! input. Covered by Miri (`cargo xtask miri weft-pool`, tests
//! `collect_*` in `tests/par_iter.rs`), including pieces that panic.

use std::collections::LinkedList;
use std::marker::PhantomData;
use std::ptr;

use super::ParallelIterator;
use super::plumbing::{Consumer, Folder, Reducer};

/// Collects an iterator that yields exactly `len` items.
pub(super) fn collect_exact<I, T>(pi: I, len: usize) -> Vec<T>
where
    I: ParallelIterator<Item = T>,
    T: Send,
{
    let mut vec: Vec<T> = Vec::new();
    collect_exact_into(pi, len, &mut vec);
    vec
}

/// Collects an iterator that yields exactly `len` items into `vec`,
/// replacing its items and reusing its buffer when it is large enough.
pub(super) fn collect_exact_into<I, T>(pi: I, len: usize, vec: &mut Vec<T>)
where
    I: ParallelIterator<Item = T>,
    T: Send,
{
    vec.clear();
    vec.reserve(len);
    let target = vec.spare_capacity_mut();
    debug_assert!(target.len() >= len);
    let consumer = CollectConsumer {
        start: target.as_mut_ptr().cast::<T>(),
        len,
        marker: PhantomData,
    };
    let result = pi.drive(consumer);
    let written = result.initialized;
    assert!(
        written == len,
        "weft-pool: a parallel iterator announced {len} items but produced {written}"
    );
    // The items now belong to the `Vec`: the result must not drop them.
    std::mem::forget(result);
    // SAFETY: the assertion above says the pieces' results merged into one
    // run of `len` initialized items starting at the spare capacity's start,
    // which is index 0 of `vec` (cleared above): every slot `0..len` holds
    // an item written exactly once, and `len <= capacity` (reserved above).
    unsafe { vec.set_len(len) };
}

/// The uninitialized slots `[start, start + len)` of a `Vec` being
/// collected, owned by one piece.
struct CollectConsumer<'c, T> {
    start: *mut T,
    len: usize,
    marker: PhantomData<&'c mut [T]>,
}

// SAFETY: a consumer only writes `T`s into the slots it owns exclusively
// (split disjointly), so sending it to another thread is sending `T`s.
unsafe impl<T: Send> Send for CollectConsumer<'_, T> {}

impl<'c, T: Send> Consumer<T> for CollectConsumer<'c, T> {
    type Folder = CollectResult<'c, T>;
    type Reducer = CollectReducer;
    type Result = CollectResult<'c, T>;

    fn split_at(self, index: usize) -> (Self, Self, CollectReducer) {
        assert!(index <= self.len, "split past the end of the target");
        let right = CollectConsumer {
            // SAFETY: `index <= len`, so the pointer stays inside (or one
            // past the end of) the slots this consumer owns.
            start: unsafe { self.start.add(index) },
            len: self.len - index,
            marker: PhantomData,
        };
        let left = CollectConsumer {
            start: self.start,
            len: index,
            marker: PhantomData,
        };
        (left, right, CollectReducer)
    }

    fn into_folder(self) -> CollectResult<'c, T> {
        CollectResult {
            start: self.start,
            total: self.len,
            initialized: 0,
            marker: PhantomData,
        }
    }
}

/// The slots `[start, start + total)`, of which the first `initialized`
/// hold items this result owns (and drops, unless merged or released).
pub(super) struct CollectResult<'c, T> {
    start: *mut T,
    total: usize,
    initialized: usize,
    marker: PhantomData<&'c mut [T]>,
}

// SAFETY: as for `CollectConsumer`: it owns the `T`s in its slots.
unsafe impl<T: Send> Send for CollectResult<'_, T> {}

impl<T> Drop for CollectResult<'_, T> {
    fn drop(&mut self) {
        // SAFETY: the first `initialized` slots hold items written by this
        // folder (or merged into it) that nobody else owns: a merged-away
        // result is forgotten, and a released one was forgotten by
        // `collect_exact`.
        unsafe {
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.start, self.initialized));
        }
    }
}

impl<T> Folder<T> for CollectResult<'_, T> {
    type Result = Self;

    fn consume(mut self, item: T) -> Self {
        assert!(
            self.initialized < self.total,
            "weft-pool: a parallel iterator produced more items than it announced"
        );
        // SAFETY: `initialized < total`, so the slot is inside this
        // result's slots, and it is uninitialized (slots are written in
        // order, once).
        unsafe { self.start.add(self.initialized).write(item) };
        self.initialized += 1;
        self
    }

    fn complete(self) -> Self {
        self
    }
}

pub(super) struct CollectReducer;

impl<'c, T> Reducer<CollectResult<'c, T>> for CollectReducer {
    fn reduce(
        self,
        mut left: CollectResult<'c, T>,
        right: CollectResult<'c, T>,
    ) -> CollectResult<'c, T> {
        // Merge only if `right`'s items follow `left`'s with no gap (`left`
        // filled all its slots). Otherwise (a piece yielded too few items:
        // `collect_exact` will fail) `right` is dropped with its items.
        // SAFETY: `initialized <= total`, so the pointer stays inside or one
        // past `left`'s slots.
        if unsafe { left.start.add(left.initialized) } == right.start {
            left.total += right.total;
            left.initialized += right.initialized;
            // Its items now belong to `left`.
            std::mem::forget(right);
        }
        left
    }
}

/// Collects an iterator of unknown length: a `Vec` per piece, the pieces
/// linked in order, then moved into one `Vec`, the pieces in parallel
/// (rayon appends them one after the other on the calling thread).
pub(super) fn collect_pieces<I, T>(pi: I) -> Vec<T>
where
    I: ParallelIterator<Item = T>,
    T: Send,
{
    let mut list = pi.drive(ListVecConsumer(PhantomData));
    if list.len() <= 1 {
        // One piece (or none) is already the answer: no copy.
        return list.pop_front().unwrap_or_default();
    }
    let mut pieces: Vec<Vec<T>> = list.into_iter().collect();
    let total = pieces.iter().map(Vec::len).sum();
    let mut out: Vec<T> = Vec::with_capacity(total);
    let dest = &mut out.spare_capacity_mut()[..total];
    super::plumbing::in_worker(|| move_pieces(&mut pieces, dest));
    // SAFETY: `move_pieces` moved every item of every piece (`total` in
    // all) into `dest`, the first `total` slots of `out`, each slot once,
    // and emptied the pieces (so they do not drop those items again).
    unsafe { out.set_len(total) };
    out
}

/// Moves the items of `pieces`, in order, into `dest` (exactly as long as
/// all of them together), splitting the pieces in halves with `join`; leaves
/// every piece empty.
fn move_pieces<T: Send>(pieces: &mut [Vec<T>], dest: &mut [std::mem::MaybeUninit<T>]) {
    if let [piece] = pieces {
        debug_assert_eq!(piece.len(), dest.len());
        // SAFETY: `dest` has room for exactly `piece.len()` items and does
        // not overlap the piece's buffer; after the bitwise copy the items
        // belong to `dest`, so the piece forgets them (length 0) and only
        // frees its buffer when dropped. Moving runs no user code, so
        // nothing can panic between the copy and `set_len`.
        unsafe {
            ptr::copy_nonoverlapping(piece.as_ptr(), dest.as_mut_ptr().cast::<T>(), piece.len());
            piece.set_len(0);
        }
        return;
    }
    if pieces.is_empty() {
        return;
    }
    let mid = pieces.len() / 2;
    let (left, right) = pieces.split_at_mut(mid);
    let at = left.iter().map(Vec::len).sum();
    let (dl, dr) = dest.split_at_mut(at);
    crate::join(|| move_pieces(left, dl), || move_pieces(right, dr));
}

struct ListVecConsumer<T>(PhantomData<fn() -> T>);

impl<T: Send> Consumer<T> for ListVecConsumer<T> {
    type Folder = ListVecFolder<T>;
    type Reducer = ListReducer;
    type Result = LinkedList<Vec<T>>;
    fn split_at(self, _index: usize) -> (Self, Self, ListReducer) {
        (ListVecConsumer(PhantomData), self, ListReducer)
    }
    fn into_folder(self) -> ListVecFolder<T> {
        ListVecFolder(Vec::new())
    }
}

struct ListVecFolder<T>(Vec<T>);

impl<T> Folder<T> for ListVecFolder<T> {
    type Result = LinkedList<Vec<T>>;
    fn consume(mut self, item: T) -> Self {
        self.0.push(item);
        self
    }
    fn consume_iter<I: IntoIterator<Item = T>>(mut self, iter: I) -> Self {
        self.0.extend(iter);
        self
    }
    fn complete(self) -> LinkedList<Vec<T>> {
        let mut list = LinkedList::new();
        if !self.0.is_empty() {
            list.push_back(self.0);
        }
        list
    }
}

struct ListReducer;

impl<T> Reducer<LinkedList<Vec<T>>> for ListReducer {
    fn reduce(
        self,
        mut left: LinkedList<Vec<T>>,
        mut right: LinkedList<Vec<T>>,
    ) -> LinkedList<Vec<T>> {
        left.append(&mut right);
        left
    }
}
