//! The sources: slices (shared, mutable, in chunks), `Vec`s by value and
//! integer ranges.

use std::ptr;

use super::plumbing::{Consumer, Folder, Producer, ProducerCallback, bridge};
use super::{IndexedParallelIterator, IntoParallelIterator, ParallelIterator};

/// Implements `ParallelIterator` for an indexed iterator by bridging.
macro_rules! indexed_parallel_iterator {
    ([$($gen:tt)*] $ty:ty, $item:ty) => {
        impl<$($gen)*> ParallelIterator for $ty {
            type Item = $item;
            fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result {
                bridge(self, consumer)
            }
            fn opt_len(&self) -> Option<usize> {
                Some(IndexedParallelIterator::len(self))
            }
        }
    };
}

// --------------------------------------------------------- &[T], &Vec

/// `par_iter()` over a slice or `Vec`: yields `&T`.
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct Iter<'a, T> {
    slice: &'a [T],
}

impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter { slice: self.slice }
    }
}

indexed_parallel_iterator!(['a, T: Sync + 'a] Iter<'a, T>, &'a T);

impl<'a, T: Sync + 'a> IndexedParallelIterator for Iter<'a, T> {
    fn len(&self) -> usize {
        self.slice.len()
    }
    fn with_producer<CB: ProducerCallback<&'a T>>(self, callback: CB) -> CB::Output {
        callback.callback(SliceProducer { slice: self.slice })
    }
}

impl<'a, T: Sync + 'a> IntoParallelIterator for &'a [T] {
    type Iter = Iter<'a, T>;
    type Item = &'a T;
    fn into_par_iter(self) -> Iter<'a, T> {
        Iter { slice: self }
    }
}

impl<'a, T: Sync + 'a> IntoParallelIterator for &'a Vec<T> {
    type Iter = Iter<'a, T>;
    type Item = &'a T;
    fn into_par_iter(self) -> Iter<'a, T> {
        Iter { slice: self }
    }
}

impl<'a, T: Sync + 'a, const N: usize> IntoParallelIterator for &'a [T; N] {
    type Iter = Iter<'a, T>;
    type Item = &'a T;
    fn into_par_iter(self) -> Iter<'a, T> {
        Iter { slice: self }
    }
}

struct SliceProducer<'a, T> {
    slice: &'a [T],
}

impl<'a, T: Sync> Producer for SliceProducer<'a, T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice.iter()
    }
    fn fold_rev<F: Folder<&'a T>>(self, folder: F) -> F {
        folder.consume_iter(self.slice.iter().rev())
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.slice.split_at(index);
        (SliceProducer { slice: l }, SliceProducer { slice: r })
    }
}

// ------------------------------------------------- &mut [T], &mut Vec

/// `par_iter_mut()` over a slice or `Vec`: yields `&mut T`.
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct IterMut<'a, T> {
    slice: &'a mut [T],
}

indexed_parallel_iterator!(['a, T: Send + 'a] IterMut<'a, T>, &'a mut T);

impl<'a, T: Send + 'a> IndexedParallelIterator for IterMut<'a, T> {
    fn len(&self) -> usize {
        self.slice.len()
    }
    fn with_producer<CB: ProducerCallback<&'a mut T>>(self, callback: CB) -> CB::Output {
        callback.callback(SliceMutProducer { slice: self.slice })
    }
}

impl<'a, T: Send + 'a> IntoParallelIterator for &'a mut [T] {
    type Iter = IterMut<'a, T>;
    type Item = &'a mut T;
    fn into_par_iter(self) -> IterMut<'a, T> {
        IterMut { slice: self }
    }
}

impl<'a, T: Send + 'a> IntoParallelIterator for &'a mut Vec<T> {
    type Iter = IterMut<'a, T>;
    type Item = &'a mut T;
    fn into_par_iter(self) -> IterMut<'a, T> {
        IterMut { slice: self }
    }
}

impl<'a, T: Send + 'a, const N: usize> IntoParallelIterator for &'a mut [T; N] {
    type Iter = IterMut<'a, T>;
    type Item = &'a mut T;
    fn into_par_iter(self) -> IterMut<'a, T> {
        IterMut { slice: self }
    }
}

struct SliceMutProducer<'a, T> {
    slice: &'a mut [T],
}

impl<'a, T: Send> Producer for SliceMutProducer<'a, T> {
    type Item = &'a mut T;
    type IntoIter = std::slice::IterMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice.iter_mut()
    }
    fn fold_rev<F: Folder<&'a mut T>>(self, folder: F) -> F {
        folder.consume_iter(self.slice.iter_mut().rev())
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.slice.split_at_mut(index);
        (SliceMutProducer { slice: l }, SliceMutProducer { slice: r })
    }
}

// ------------------------------------------------ par_chunks(_mut)

/// [`ParallelSlice::par_chunks`](super::ParallelSlice::par_chunks)'s
/// iterator: yields `&[T]`.
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct SliceChunks<'a, T> {
    slice: &'a [T],
    size: usize,
}

impl<'a, T> SliceChunks<'a, T> {
    pub(super) fn new(slice: &'a [T], size: usize) -> Self {
        SliceChunks { slice, size }
    }
}

indexed_parallel_iterator!(['a, T: Sync + 'a] SliceChunks<'a, T>, &'a [T]);

impl<'a, T: Sync + 'a> IndexedParallelIterator for SliceChunks<'a, T> {
    fn len(&self) -> usize {
        self.slice.len().div_ceil(self.size)
    }
    fn with_producer<CB: ProducerCallback<&'a [T]>>(self, callback: CB) -> CB::Output {
        callback.callback(SliceChunksProducer {
            slice: self.slice,
            size: self.size,
        })
    }
}

struct SliceChunksProducer<'a, T> {
    slice: &'a [T],
    size: usize,
}

impl<'a, T: Sync> Producer for SliceChunksProducer<'a, T> {
    type Item = &'a [T];
    type IntoIter = std::slice::Chunks<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice.chunks(self.size)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let at = index.saturating_mul(self.size).min(self.slice.len());
        let (l, r) = self.slice.split_at(at);
        (
            SliceChunksProducer {
                slice: l,
                size: self.size,
            },
            SliceChunksProducer {
                slice: r,
                size: self.size,
            },
        )
    }
}

/// [`ParallelSlice::par_chunks_exact`](super::ParallelSlice::par_chunks_exact)'s
/// iterator: yields `&[T]` of exactly the chunk size; the items left over
/// are in [`remainder`](Self::remainder).
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct SliceChunksExact<'a, T> {
    /// The whole chunks only.
    slice: &'a [T],
    rem: &'a [T],
    size: usize,
}

impl<'a, T> SliceChunksExact<'a, T> {
    pub(super) fn new(slice: &'a [T], size: usize) -> Self {
        let (slice, rem) = slice.split_at(slice.len() - slice.len() % size);
        SliceChunksExact { slice, rem, size }
    }

    /// The last `len % chunk_size` items, which no chunk holds.
    pub fn remainder(&self) -> &'a [T] {
        self.rem
    }
}

indexed_parallel_iterator!(['a, T: Sync + 'a] SliceChunksExact<'a, T>, &'a [T]);

impl<'a, T: Sync + 'a> IndexedParallelIterator for SliceChunksExact<'a, T> {
    fn len(&self) -> usize {
        self.slice.len() / self.size
    }
    fn with_producer<CB: ProducerCallback<&'a [T]>>(self, callback: CB) -> CB::Output {
        callback.callback(SliceChunksExactProducer {
            slice: self.slice,
            size: self.size,
        })
    }
}

struct SliceChunksExactProducer<'a, T> {
    slice: &'a [T],
    size: usize,
}

impl<'a, T: Sync> Producer for SliceChunksExactProducer<'a, T> {
    type Item = &'a [T];
    type IntoIter = std::slice::ChunksExact<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice.chunks_exact(self.size)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let (l, r) = self.slice.split_at(index * self.size);
        (
            SliceChunksExactProducer {
                slice: l,
                size: self.size,
            },
            SliceChunksExactProducer {
                slice: r,
                size: self.size,
            },
        )
    }
}

// ------------------------------------------------------- par_windows

/// [`ParallelSlice::par_windows`](super::ParallelSlice::par_windows)'s
/// iterator: yields every overlapping `&[T]` of the window size.
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct SliceWindows<'a, T> {
    slice: &'a [T],
    size: usize,
}

impl<'a, T> SliceWindows<'a, T> {
    pub(super) fn new(slice: &'a [T], size: usize) -> Self {
        SliceWindows { slice, size }
    }
}

indexed_parallel_iterator!(['a, T: Sync + 'a] SliceWindows<'a, T>, &'a [T]);

impl<'a, T: Sync + 'a> IndexedParallelIterator for SliceWindows<'a, T> {
    fn len(&self) -> usize {
        (self.slice.len() + 1).saturating_sub(self.size)
    }
    fn with_producer<CB: ProducerCallback<&'a [T]>>(self, callback: CB) -> CB::Output {
        callback.callback(SliceWindowsProducer {
            slice: self.slice,
            size: self.size,
        })
    }
}

/// Windows `[i, i + size)` of `slice`, for every `i` with a whole window.
struct SliceWindowsProducer<'a, T> {
    slice: &'a [T],
    size: usize,
}

impl<'a, T: Sync> Producer for SliceWindowsProducer<'a, T> {
    type Item = &'a [T];
    type IntoIter = std::slice::Windows<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice.windows(self.size)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        // The left piece's windows start before `index`: it keeps the
        // `size - 1` items after it; the right piece starts at `index`.
        let end = (index + self.size - 1).min(self.slice.len());
        let start = index.min(self.slice.len());
        (
            SliceWindowsProducer {
                slice: &self.slice[..end],
                size: self.size,
            },
            SliceWindowsProducer {
                slice: &self.slice[start..],
                size: self.size,
            },
        )
    }
}

/// [`ParallelSliceMut::par_chunks_mut`](super::ParallelSliceMut::par_chunks_mut)'s
/// iterator: yields `&mut [T]`.
#[derive(Debug)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct SliceChunksMut<'a, T> {
    slice: &'a mut [T],
    size: usize,
}

impl<'a, T> SliceChunksMut<'a, T> {
    pub(super) fn new(slice: &'a mut [T], size: usize) -> Self {
        SliceChunksMut { slice, size }
    }
}

indexed_parallel_iterator!(['a, T: Send + 'a] SliceChunksMut<'a, T>, &'a mut [T]);

impl<'a, T: Send + 'a> IndexedParallelIterator for SliceChunksMut<'a, T> {
    fn len(&self) -> usize {
        self.slice.len().div_ceil(self.size)
    }
    fn with_producer<CB: ProducerCallback<&'a mut [T]>>(self, callback: CB) -> CB::Output {
        callback.callback(SliceChunksMutProducer {
            slice: self.slice,
            size: self.size,
        })
    }
}

struct SliceChunksMutProducer<'a, T> {
    slice: &'a mut [T],
    size: usize,
}

impl<'a, T: Send> Producer for SliceChunksMutProducer<'a, T> {
    type Item = &'a mut [T];
    type IntoIter = std::slice::ChunksMut<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.slice.chunks_mut(self.size)
    }
    fn split_at(self, index: usize) -> (Self, Self) {
        let at = index.saturating_mul(self.size).min(self.slice.len());
        let (l, r) = self.slice.split_at_mut(at);
        (
            SliceChunksMutProducer {
                slice: l,
                size: self.size,
            },
            SliceChunksMutProducer {
                slice: r,
                size: self.size,
            },
        )
    }
}

// ------------------------------------------------------- Vec<T> by value

/// `into_par_iter()` on a `Vec`: yields the `T`s by value.
///
/// The `Vec` keeps its buffer (freed at the end) while its items move out
/// piece by piece; items a piece never yields (a search stopped early, a
/// panic) are dropped with it. Covered by Miri (`vec_into_par_iter_*` in
/// `tests/par_iter.rs`).
#[derive(Debug, Clone)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct VecIntoIter<T> {
    vec: Vec<T>,
}

indexed_parallel_iterator!([T: Send] VecIntoIter<T>, T);

impl<T: Send> IndexedParallelIterator for VecIntoIter<T> {
    fn len(&self) -> usize {
        self.vec.len()
    }
    fn with_producer<CB: ProducerCallback<T>>(mut self, callback: CB) -> CB::Output {
        let len = self.vec.len();
        // SAFETY: the items are handed over to the producer below, which
        // drops or yields each exactly once; with length 0 the `Vec` only
        // frees its buffer when dropped at the end of this function, after
        // the callback (and every piece) has finished with the items.
        unsafe { self.vec.set_len(0) };
        // SAFETY: the first `len` slots of the buffer hold initialized items
        // (the `Vec`'s length until just now), nothing else refers to them,
        // and the buffer outlives the slice (it lives in `self.vec`, dropped
        // only after the callback returns).
        let slice = unsafe { std::slice::from_raw_parts_mut(self.vec.as_mut_ptr(), len) };
        callback.callback(DrainProducer { slice })
    }
}

impl<T: Send> IntoParallelIterator for Vec<T> {
    type Iter = VecIntoIter<T>;
    type Item = T;
    fn into_par_iter(self) -> VecIntoIter<T> {
        VecIntoIter { vec: self }
    }
}

/// Owns the items in `slice` (moves them out or drops them).
struct DrainProducer<'a, T> {
    slice: &'a mut [T],
}

impl<'a, T: Send> Producer for DrainProducer<'a, T> {
    type Item = T;
    type IntoIter = SliceDrain<'a, T>;
    fn into_iter(mut self) -> SliceDrain<'a, T> {
        SliceDrain {
            iter: std::mem::take(&mut self.slice).iter_mut(),
        }
    }
    fn split_at(mut self, index: usize) -> (Self, Self) {
        let (l, r) = std::mem::take(&mut self.slice).split_at_mut(index);
        (DrainProducer { slice: l }, DrainProducer { slice: r })
    }
}

impl<T> Drop for DrainProducer<'_, T> {
    fn drop(&mut self) {
        let slice = std::mem::take(&mut self.slice);
        // SAFETY: this producer owns the items left in `slice` (none were
        // moved out: moving out takes the slice first), and forgets them
        // here by dropping them in place once.
        unsafe { ptr::drop_in_place(slice) };
    }
}

/// Moves items out of the slots it owns, one by one.
pub(super) struct SliceDrain<'a, T> {
    iter: std::slice::IterMut<'a, T>,
}

impl<T> Iterator for SliceDrain<'_, T> {
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        let slot = self.iter.next()?;
        // SAFETY: each slot is visited once, and this drain owns its item;
        // after the read the slot is never touched again (the iterator has
        // moved past it and `Drop` only drops the slots not yet visited).
        Some(unsafe { ptr::read(slot) })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

impl<T> ExactSizeIterator for SliceDrain<'_, T> {}

impl<T> Drop for SliceDrain<'_, T> {
    fn drop(&mut self) {
        let rest = std::mem::take(&mut self.iter).into_slice();
        // SAFETY: the slots not yet visited still own their items, which
        // nobody else will read or drop.
        unsafe { ptr::drop_in_place(rest) };
    }
}

// ------------------------------------------------------------- ranges

/// `into_par_iter()` on an integer range `a..b`.
#[derive(Debug, Clone)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct RangeIter<T> {
    range: std::ops::Range<T>,
}

/// `into_par_iter()` on an integer range `a..=b`.
#[derive(Debug, Clone)]
#[must_use = "parallel iterators do nothing until consumed"]
pub struct RangeInclusiveIter<T> {
    range: std::ops::RangeInclusive<T>,
}

// One generic impl each (not one per integer type), so that an untyped
// `(0..n).into_par_iter()` resolves and its integer type is inferred later,
// as with rayon.
impl<T> IntoParallelIterator for std::ops::Range<T>
where
    RangeIter<T>: ParallelIterator<Item = T>,
    T: Send,
{
    type Iter = RangeIter<T>;
    type Item = T;
    fn into_par_iter(self) -> RangeIter<T> {
        RangeIter { range: self }
    }
}

impl<T> IntoParallelIterator for std::ops::RangeInclusive<T>
where
    RangeInclusiveIter<T>: ParallelIterator<Item = T>,
    T: Send,
{
    type Iter = RangeInclusiveIter<T>;
    type Item = T;
    fn into_par_iter(self) -> RangeInclusiveIter<T> {
        RangeInclusiveIter { range: self }
    }
}

/// The length of `start..=end` (`end >= start`) as a `usize`.
fn closed_len(start: i128, end: i128) -> usize {
    usize::try_from(end - start + 1)
        .expect("weft-pool: a parallel range may hold at most usize::MAX items")
}

macro_rules! range_impls {
    ($($t:ty),*) => {$(
        indexed_parallel_iterator!([] RangeIter<$t>, $t);

        impl IndexedParallelIterator for RangeIter<$t> {
            /// # Panics
            ///
            /// If the range holds more than `usize::MAX` items.
            fn len(&self) -> usize {
                if self.range.start < self.range.end {
                    closed_len(self.range.start as i128, self.range.end as i128 - 1)
                } else {
                    0
                }
            }
            fn with_producer<CB: ProducerCallback<$t>>(self, callback: CB) -> CB::Output {
                let len = self.len();
                callback.callback(RangeProducer { start: self.range.start, len })
            }
        }

        indexed_parallel_iterator!([] RangeInclusiveIter<$t>, $t);

        impl IndexedParallelIterator for RangeInclusiveIter<$t> {
            /// # Panics
            ///
            /// If the range holds more than `usize::MAX` items.
            fn len(&self) -> usize {
                if self.range.is_empty() {
                    0
                } else {
                    closed_len(*self.range.start() as i128, *self.range.end() as i128)
                }
            }
            fn with_producer<CB: ProducerCallback<$t>>(self, callback: CB) -> CB::Output {
                let len = self.len();
                callback.callback(RangeProducer { start: *self.range.start(), len })
            }
        }

        impl Producer for RangeProducer<$t> {
            type Item = $t;
            type IntoIter = RangeSeq<$t>;
            fn into_iter(self) -> RangeSeq<$t> {
                if self.len == 0 {
                    return RangeSeq::Half(self.start..self.start);
                }
                // The last item, `start + (len - 1)`, always fits in `$t`.
                let last = self.start.wrapping_add((self.len - 1) as $t);
                match last.checked_add(1) {
                    Some(end) => RangeSeq::Half(self.start..end),
                    None => RangeSeq::Closed(self.start..=last),
                }
            }
            fn fold_rev<F: Folder<$t>>(self, folder: F) -> F {
                match self.into_iter() {
                    RangeSeq::Half(r) => folder.consume_iter(r.rev()),
                    RangeSeq::Closed(r) => folder.consume_iter(r.rev()),
                }
            }
            fn split_at(self, index: usize) -> (Self, Self) {
                debug_assert!(index <= self.len);
                // `index <= len`, so the true sum fits in `$t` (or is one
                // past its maximum only when `index == len`, never read);
                // wrapping arithmetic on the truncated index gives it.
                let mid = self.start.wrapping_add(index as $t);
                (
                    RangeProducer { start: self.start, len: index },
                    RangeProducer { start: mid, len: self.len - index },
                )
            }
        }
    )*};
}

/// The producer of a [`RangeIter`]: `len` integers from `start`.
struct RangeProducer<T> {
    start: T,
    len: usize,
}

/// The sequential side of a range piece: a half-open range (the fast,
/// vectorizable loop) unless the piece ends at the type's maximum.
pub(super) enum RangeSeq<T> {
    Half(std::ops::Range<T>),
    Closed(std::ops::RangeInclusive<T>),
}

impl<T> Iterator for RangeSeq<T>
where
    std::ops::Range<T>: Iterator<Item = T>,
    std::ops::RangeInclusive<T>: Iterator<Item = T>,
{
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        match self {
            RangeSeq::Half(r) => r.next(),
            RangeSeq::Closed(r) => r.next(),
        }
    }
    #[inline]
    fn fold<B, F: FnMut(B, T) -> B>(self, init: B, f: F) -> B {
        match self {
            RangeSeq::Half(r) => r.fold(init, f),
            RangeSeq::Closed(r) => r.fold(init, f),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            RangeSeq::Half(r) => r.size_hint(),
            RangeSeq::Closed(r) => r.size_hint(),
        }
    }
}

range_impls!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);
