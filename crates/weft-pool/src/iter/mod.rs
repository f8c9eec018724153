//! Parallel iterators with rayon's names, on weft's own scheduler.
//!
//! Moving a rayon program is a search and replace: `use rayon::prelude::*`
//! becomes `use weft_pool::iter::prelude::*`, and `par_iter`,
//! `par_iter_mut`, `into_par_iter`, `map`, `filter`, `sum`, `collect`,
//! `par_sort`, ... keep their names and meaning.
//!
//! ```
//! use weft_pool::iter::prelude::*;
//!
//! let v: Vec<u64> = (0..1000).collect();
//! let sum: u64 = v.par_iter().map(|x| x * x).sum();
//! assert_eq!(sum, v.iter().map(|x| x * x).sum());
//!
//! let evens: Vec<u64> = (0..1000u64).into_par_iter().filter(|x| x % 2 == 0).collect();
//! assert_eq!(evens.len(), 500);
//! assert_eq!(evens[..3], [0, 2, 4]);
//!
//! let mut w = vec![3, 1, 2];
//! w.par_sort();
//! assert_eq!(w, [1, 2, 3]);
//! ```
//!
//! Work runs on the pool of the calling worker, or inside
//! [`ThreadPool::install`](crate::ThreadPool::install)'s pool, or on the
//! global pool when called from any other thread. It is split by `join`,
//! adaptively (see [`plumbing`]): a user never picks a chunk size to be
//! fast, though [`IndexedParallelIterator::with_min_len`] may set a floor.
//! A panic in a closure reaches the caller once the other pieces have
//! stopped, as with [`join`](crate::join).
//!
//! # What is here
//!
//! | Kind | Items |
//! |---|---|
//! | sources | `par_iter()`, `par_iter_mut()`, `into_par_iter()` on slices, `Vec` and integer ranges; [`ParallelSlice::par_chunks`], [`ParallelSlice::par_chunks_exact`], [`ParallelSlice::par_windows`], [`ParallelSliceMut::par_chunks_mut`]; [`ParallelBridge::par_bridge`] on any `Iterator + Send` |
//! | adapters | `map`, `map_init`, `map_with`, `filter`, `filter_map`, `flat_map`, `flat_map_iter`, `flatten`, `flatten_iter`, `chain`, `copied`, `cloned`, `inspect`, `fold`; indexed only: `enumerate`, `zip`, `chunks`, `rev`, `step_by`, `take`, `skip`, `with_min_len`, `with_max_len` |
//! | consumers | `for_each`, `for_each_init`, `for_each_with`, `sum`, `product`, `reduce`, `reduce_with`, `min`/`max` (`_by`, `_by_key`), `count`, `any`/`all`, `find_any`/`find_first`, `find_map_any`/`find_map_first`; indexed only: `position_any`/`position_first`, `collect_into_vec`; `try_for_each`, `try_reduce` (over `Result`/`Option`, see [`TryOutcome`]), `unzip`, `partition`, `collect`; [`ParallelExtend::par_extend`] |
//! | sorting | [`ParallelSliceMut::par_sort`], `par_sort_by`, `par_sort_by_key`, `par_sort_unstable`, `par_sort_unstable_by`, `par_sort_unstable_by_key` |

mod adapters;
mod collect;
mod consumers;
mod extra;
pub mod plumbing;
mod sort;
mod sources;

pub use adapters::{
    Chunks, Cloned, Copied, Enumerate, Filter, FilterMap, FlatMapIter, Fold, Inspect, Map, MapInit,
    MaxLen, MinLen, Range, Rev, StepBy, Zip,
};
pub use extra::{Chain, FlatMap, IterBridge, ParallelBridge, ParallelExtend, TryOutcome};
pub use sources::{
    Iter, IterMut, RangeInclusiveIter, RangeIter, SliceChunks, SliceChunksExact, SliceChunksMut,
    SliceWindows, VecIntoIter,
};

use plumbing::{Consumer, ProducerCallback};

/// The traits a rayon program imports with `rayon::prelude::*`.
pub mod prelude {
    pub use super::{
        FromParallelIterator, IndexedParallelIterator, IntoParallelIterator,
        IntoParallelRefIterator, IntoParallelRefMutIterator, ParallelBridge, ParallelExtend,
        ParallelIterator, ParallelSlice, ParallelSliceMut,
    };
}

/// An iterator whose items are processed in parallel. Its adapters build
/// new parallel iterators; its consumers run the work on the pool and
/// return when every item is done.
pub trait ParallelIterator: Sized + Send {
    /// The items.
    type Item: Send;

    /// Runs the iterator into `consumer` (the machinery of every consumer
    /// method; see [`plumbing`]).
    fn drive<C: Consumer<Self::Item>>(self, consumer: C) -> C::Result;

    /// The exact number of items, when known without running (indexed
    /// iterators and their `map`s).
    fn opt_len(&self) -> Option<usize> {
        None
    }

    /// Applies `f` to every item.
    fn map<F, R>(self, f: F) -> Map<Self, F>
    where
        F: Fn(Self::Item) -> R + Sync + Send,
        R: Send,
    {
        Map::new(self, f)
    }

    /// Applies `f` to every item with a mutable state that `init` makes once
    /// per piece of the split work (a buffer, a random number generator):
    /// rayon's `map_init`.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let lens: Vec<usize> = (0..100u32)
    ///     .into_par_iter()
    ///     .map_init(String::new, |buf, x| {
    ///         buf.clear();
    ///         buf.push_str(&x.to_string());
    ///         buf.len()
    ///     })
    ///     .collect();
    /// assert_eq!(lens[5], 1);
    /// assert_eq!(lens[50], 2);
    /// ```
    fn map_init<INIT, T, F, R>(self, init: INIT, f: F) -> MapInit<Self, INIT, F>
    where
        INIT: Fn() -> T + Sync + Send,
        F: Fn(&mut T, Self::Item) -> R + Sync + Send,
        R: Send,
    {
        MapInit::new(self, init, f)
    }

    /// [`map_init`](Self::map_init) with each piece's state a clone of
    /// `value` (rayon's `map_with`; here `value` must also be `Sync`).
    fn map_with<T, F, R>(self, value: T, f: F) -> MapInit<Self, impl Fn() -> T + Sync + Send, F>
    where
        T: Clone + Send + Sync,
        F: Fn(&mut T, Self::Item) -> R + Sync + Send,
        R: Send,
    {
        MapInit::new(self, move || value.clone(), f)
    }

    /// Calls `op` on every item with a mutable state that `init` makes
    /// once per piece (rayon's `for_each_init`).
    fn for_each_init<INIT, T, F>(self, init: INIT, op: F)
    where
        INIT: Fn() -> T + Sync + Send,
        F: Fn(&mut T, Self::Item) + Sync + Send,
    {
        self.map_init(init, op).for_each(|()| ())
    }

    /// [`for_each_init`](Self::for_each_init) with each piece's state a
    /// clone of `value` (rayon's `for_each_with`; `value` must be `Sync`).
    fn for_each_with<T, F>(self, value: T, op: F)
    where
        T: Clone + Send + Sync,
        F: Fn(&mut T, Self::Item) + Sync + Send,
    {
        self.map_with(value, op).for_each(|()| ())
    }

    /// Keeps the items for which `predicate` holds.
    fn filter<P>(self, predicate: P) -> Filter<Self, P>
    where
        P: Fn(&Self::Item) -> bool + Sync + Send,
    {
        Filter::new(self, predicate)
    }

    /// Applies `f` and keeps the `Some` results.
    fn filter_map<F, R>(self, f: F) -> FilterMap<Self, F>
    where
        F: Fn(Self::Item) -> Option<R> + Sync + Send,
        R: Send,
    {
        FilterMap::new(self, f)
    }

    /// Applies `f` and yields the items of each sequential iterator it
    /// returns, in order.
    fn flat_map_iter<F, I>(self, f: F) -> FlatMapIter<Self, F>
    where
        F: Fn(Self::Item) -> I + Sync + Send,
        I: IntoIterator,
        I::Item: Send,
    {
        FlatMapIter::new(self, f)
    }

    /// Applies `f` and yields the items of each parallel iterator it
    /// returns, in order; each of those runs in parallel too (rayon's
    /// `flat_map`; [`flat_map_iter`](Self::flat_map_iter) for sequential
    /// inner iterators, which is cheaper when they are short).
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u32> = (1..4u32).into_par_iter().flat_map(|n| (0..n).into_par_iter()).collect();
    /// assert_eq!(v, [0, 0, 1, 0, 1, 2]);
    /// ```
    fn flat_map<F, PI>(self, f: F) -> FlatMap<Self, F>
    where
        F: Fn(Self::Item) -> PI + Sync + Send,
        PI: IntoParallelIterator,
    {
        FlatMap::new(self, f)
    }

    /// Yields the items of each item, itself a parallel iterator (or
    /// `Vec`, range, ...), in order.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u8> = vec![vec![1, 2], vec![], vec![3]].into_par_iter().flatten().collect();
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    #[allow(clippy::type_complexity)]
    fn flatten(self) -> FlatMap<Self, fn(Self::Item) -> Self::Item>
    where
        Self::Item: IntoParallelIterator,
    {
        FlatMap::new(self, std::convert::identity)
    }

    /// Yields the items of each item, a sequential iterator, in order.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u8> = vec![vec![1, 2], vec![], vec![3]].into_par_iter().flatten_iter().collect();
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    #[allow(clippy::type_complexity)]
    fn flatten_iter(self) -> FlatMapIter<Self, fn(Self::Item) -> Self::Item>
    where
        Self::Item: IntoIterator,
        <Self::Item as IntoIterator>::Item: Send,
    {
        FlatMapIter::new(self, std::convert::identity)
    }

    /// This iterator's items, then those of `other`.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u32> = (0..3u32).into_par_iter().chain(vec![7, 8]).collect();
    /// assert_eq!(v, [0, 1, 2, 7, 8]);
    /// ```
    fn chain<C>(self, other: C) -> Chain<Self, C::Iter>
    where
        C: IntoParallelIterator<Item = Self::Item>,
    {
        Chain::new(self, other.into_par_iter())
    }

    /// Copies borrowed items.
    fn copied<'a, T>(self) -> Copied<Self>
    where
        T: 'a + Copy + Send + Sync,
        Self: ParallelIterator<Item = &'a T>,
    {
        Copied::new(self)
    }

    /// Clones borrowed items.
    fn cloned<'a, T>(self) -> Cloned<Self>
    where
        T: 'a + Clone + Send + Sync,
        Self: ParallelIterator<Item = &'a T>,
    {
        Cloned::new(self)
    }

    /// Calls `f` on a reference to every item as it passes.
    fn inspect<F>(self, f: F) -> Inspect<Self, F>
    where
        F: Fn(&Self::Item) + Sync + Send,
    {
        Inspect::new(self, f)
    }

    /// Some item's `f(item)` that is `Some`, not necessarily the first;
    /// the other pieces stop looking once one is found.
    fn find_map_any<F, R>(self, f: F) -> Option<R>
    where
        F: Fn(Self::Item) -> Option<R> + Sync + Send,
        R: Send,
    {
        self.filter_map(f).find_any(|_| true)
    }

    /// The first (in order) item's `f(item)` that is `Some`.
    fn find_map_first<F, R>(self, f: F) -> Option<R>
    where
        F: Fn(Self::Item) -> Option<R> + Sync + Send,
        R: Send,
    {
        self.filter_map(f).find_first(|_| true)
    }

    /// Folds the items of each piece into an accumulator started by
    /// `identity`, and yields the accumulators (one per piece: how many
    /// depends on the splitting). Follow it with `sum` or `reduce`.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let total: u64 = (1..=100u64)
    ///     .into_par_iter()
    ///     .fold(|| 0u64, |acc, x| acc + x)
    ///     .sum();
    /// assert_eq!(total, 5050);
    /// ```
    fn fold<T, ID, F>(self, identity: ID, fold_op: F) -> Fold<Self, ID, F>
    where
        F: Fn(T, Self::Item) -> T + Sync + Send,
        ID: Fn() -> T + Sync + Send,
        T: Send,
    {
        Fold::new(self, identity, fold_op)
    }

    /// Calls `op` on every item.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use weft_pool::iter::prelude::*;
    /// let n = AtomicUsize::new(0);
    /// (0..100).into_par_iter().for_each(|_| { n.fetch_add(1, Ordering::Relaxed); });
    /// assert_eq!(n.into_inner(), 100);
    /// ```
    fn for_each<F>(self, op: F)
    where
        F: Fn(Self::Item) + Sync + Send,
    {
        self.drive(consumers::ForEachConsumer { op: &op })
    }

    /// Sums the items (`S::sum` of each piece, then of the pieces).
    fn sum<S>(self) -> S
    where
        S: Send + std::iter::Sum<Self::Item> + std::iter::Sum<S>,
    {
        self.drive(consumers::SumConsumer::new())
    }

    /// Multiplies the items.
    fn product<P>(self) -> P
    where
        P: Send + std::iter::Product<Self::Item> + std::iter::Product<P>,
    {
        self.drive(consumers::ProductConsumer::new())
    }

    /// Reduces the items with `op`, each piece starting from `identity()`
    /// (so `identity` must be neutral for `op`, and `op` associative).
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let max = (0..1000u32).into_par_iter().reduce(|| 0, u32::max);
    /// assert_eq!(max, 999);
    /// ```
    fn reduce<ID, OP>(self, identity: ID, op: OP) -> Self::Item
    where
        OP: Fn(Self::Item, Self::Item) -> Self::Item + Sync + Send,
        ID: Fn() -> Self::Item + Sync + Send,
    {
        self.drive(consumers::ReduceConsumer {
            identity: &identity,
            op: &op,
        })
    }

    /// Calls `op` on every item until one call fails (returns `Err` or
    /// `None`); returns that failure (one of them, if several pieces fail)
    /// or success. The other pieces stop at their next item.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let r = (0..100u32).into_par_iter().try_for_each(|x| if x == 42 { Err(x) } else { Ok(()) });
    /// assert_eq!(r, Err(42));
    /// assert_eq!((0..10u32).into_par_iter().try_for_each(|_| Some(())), Some(()));
    /// ```
    fn try_for_each<OP, R>(self, op: OP) -> R
    where
        OP: Fn(Self::Item) -> R + Sync + Send,
        R: TryOutcome<Output = ()> + Send,
    {
        match self.map(op).find_map_any(|r| r.branch().err()) {
            Some(failure) => R::from_residual(failure),
            None => R::from_output(()),
        }
    }

    /// Reduces the values of items that are `Result`s or `Option`s with
    /// `op`, which may fail too; the first failure seen (an item's or
    /// `op`'s) is the result, and the other pieces stop at their next item.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let sum = (1..=10u32).into_par_iter().map(Some).try_reduce(|| 0, |a, b| a.checked_add(b));
    /// assert_eq!(sum, Some(55));
    /// let r: Result<u8, &str> = (0..100u8).into_par_iter().map(Ok)
    ///     .try_reduce(|| 0, |a, b| a.checked_add(b).ok_or("overflow"));
    /// assert_eq!(r, Err("overflow"));
    /// ```
    fn try_reduce<T, OP, ID>(self, identity: ID, op: OP) -> Self::Item
    where
        OP: Fn(T, T) -> Self::Item + Sync + Send,
        ID: Fn() -> T + Sync + Send,
        Self::Item: TryOutcome<Output = T>,
        T: Send,
    {
        let stop = std::sync::atomic::AtomicBool::new(false);
        let r = self.drive(extra::TryReduceConsumer {
            identity: &identity,
            op: &op,
            stop: &stop,
        });
        match r {
            Ok(t) => Self::Item::from_output(t),
            Err(failure) => Self::Item::from_residual(failure),
        }
    }

    /// Splits pairs into two collections, in order (for `Vec`s).
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let (a, b): (Vec<u32>, Vec<String>) =
    ///     (0..3u32).into_par_iter().map(|x| (x, x.to_string())).unzip();
    /// assert_eq!(a, [0, 1, 2]);
    /// assert_eq!(b, ["0", "1", "2"]);
    /// ```
    fn unzip<A, B, FromA, FromB>(self) -> (FromA, FromB)
    where
        Self: ParallelIterator<Item = (A, B)>,
        A: Send,
        B: Send,
        FromA: Default + Send + ParallelExtend<A>,
        FromB: Default + Send + ParallelExtend<B>,
    {
        let (va, vb) = extra::split_two(self, |a, b, (x, y)| {
            a.push(x);
            b.push(y);
        });
        let (mut fa, mut fb) = (FromA::default(), FromB::default());
        fa.par_extend(va);
        fb.par_extend(vb);
        (fa, fb)
    }

    /// Splits the items into those for which `predicate` holds and the
    /// others, each in order (for `Vec`s).
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let (even, odd): (Vec<u32>, Vec<u32>) = (0..6u32).into_par_iter().partition(|x| x % 2 == 0);
    /// assert_eq!(even, [0, 2, 4]);
    /// assert_eq!(odd, [1, 3, 5]);
    /// ```
    fn partition<A, B, P>(self, predicate: P) -> (A, B)
    where
        A: Default + Send + ParallelExtend<Self::Item>,
        B: Default + Send + ParallelExtend<Self::Item>,
        P: Fn(&Self::Item) -> bool + Sync + Send,
    {
        let (va, vb) = extra::split_two(self, |a, b, x| {
            if predicate(&x) {
                a.push(x);
            } else {
                b.push(x);
            }
        });
        let (mut fa, mut fb) = (A::default(), B::default());
        fa.par_extend(va);
        fb.par_extend(vb);
        (fa, fb)
    }

    /// Reduces the items with `op`; `None` when there are none.
    fn reduce_with<OP>(self, op: OP) -> Option<Self::Item>
    where
        OP: Fn(Self::Item, Self::Item) -> Self::Item + Sync + Send,
    {
        self.drive(consumers::ReduceWithConsumer { op: &op })
    }

    /// The number of items.
    fn count(self) -> usize {
        self.drive(consumers::CountConsumer)
    }

    /// The smallest item (the first of equal ones, as `Iterator::min`).
    fn min(self) -> Option<Self::Item>
    where
        Self::Item: Ord,
    {
        self.min_by(Ord::cmp)
    }

    /// The largest item (the last of equal ones, as `Iterator::max`).
    fn max(self) -> Option<Self::Item>
    where
        Self::Item: Ord,
    {
        self.max_by(Ord::cmp)
    }

    /// The smallest item by `compare` (the first of equal ones).
    fn min_by<F>(self, compare: F) -> Option<Self::Item>
    where
        F: Fn(&Self::Item, &Self::Item) -> std::cmp::Ordering + Sync + Send,
    {
        self.reduce_with(move |a, b| if compare(&b, &a).is_lt() { b } else { a })
    }

    /// The largest item by `compare` (the last of equal ones).
    fn max_by<F>(self, compare: F) -> Option<Self::Item>
    where
        F: Fn(&Self::Item, &Self::Item) -> std::cmp::Ordering + Sync + Send,
    {
        self.reduce_with(move |a, b| if compare(&b, &a).is_lt() { a } else { b })
    }

    /// The item with the smallest key (the first of equal ones).
    fn min_by_key<K, F>(self, f: F) -> Option<Self::Item>
    where
        K: Ord + Send,
        F: Fn(&Self::Item) -> K + Sync + Send,
    {
        self.map(|x| (f(&x), x))
            .min_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, x)| x)
    }

    /// The item with the largest key (the last of equal ones).
    fn max_by_key<K, F>(self, f: F) -> Option<Self::Item>
    where
        K: Ord + Send,
        F: Fn(&Self::Item) -> K + Sync + Send,
    {
        self.map(|x| (f(&x), x))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, x)| x)
    }

    /// Some item for which `predicate` holds, not necessarily the first;
    /// the other pieces stop looking once one is found.
    fn find_any<P>(self, predicate: P) -> Option<Self::Item>
    where
        P: Fn(&Self::Item) -> bool + Sync + Send,
    {
        let found = std::sync::atomic::AtomicBool::new(false);
        self.drive(consumers::FindAnyConsumer {
            found: &found,
            predicate: &predicate,
        })
    }

    /// The first item (in the iterator's order) for which `predicate`
    /// holds; pieces after one that found an item stop looking.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u32> = (0..10_000).collect();
    /// assert_eq!(v.par_iter().find_first(|&&x| x % 1000 == 999), Some(&999));
    /// ```
    fn find_first<P>(self, predicate: P) -> Option<Self::Item>
    where
        P: Fn(&Self::Item) -> bool + Sync + Send,
    {
        let best = std::sync::atomic::AtomicUsize::new(usize::MAX);
        self.drive(consumers::FindFirstConsumer {
            lower: 0,
            best: &best,
            predicate: &predicate,
        })
    }

    /// Whether `predicate` holds for some item (stops at the first found).
    fn any<P>(self, predicate: P) -> bool
    where
        P: Fn(Self::Item) -> bool + Sync + Send,
    {
        self.map(predicate).find_any(|&b| b).is_some()
    }

    /// Whether `predicate` holds for every item (stops at the first
    /// counterexample).
    fn all<P>(self, predicate: P) -> bool
    where
        P: Fn(Self::Item) -> bool + Sync + Send,
    {
        self.map(predicate).find_any(|&b| !b).is_none()
    }

    /// Collects the items, in order: into a `Vec` (written in place when the
    /// length is known), or a `HashMap`, `HashSet`, `BTreeMap`, `BTreeSet`
    /// or `String` (see [`FromParallelIterator`]).
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<String> = (0..3u8).into_par_iter().map(|i| i.to_string()).collect();
    /// assert_eq!(v, ["0", "1", "2"]);
    /// ```
    fn collect<C>(self) -> C
    where
        C: FromParallelIterator<Self::Item>,
    {
        C::from_par_iter(self)
    }
}

/// A parallel iterator whose length is known and whose items can be
/// addressed by index: its pieces can be split at any index, so it can be
/// `enumerate`d, `zip`ped and `collect`ed straight into place.
// rayon's trait has `len` and no `is_empty`; the same surface here.
#[allow(clippy::len_without_is_empty)]
pub trait IndexedParallelIterator: ParallelIterator {
    /// The number of items.
    fn len(&self) -> usize;

    /// Hands this iterator's producer to `callback` (see [`plumbing`]).
    fn with_producer<CB: ProducerCallback<Self::Item>>(self, callback: CB) -> CB::Output;

    /// Pairs every item with its index.
    fn enumerate(self) -> Enumerate<Self> {
        Enumerate::new(self)
    }

    /// Pairs items with those of `other`, as far as the shorter goes.
    fn zip<Z>(self, other: Z) -> Zip<Self, Z::Iter>
    where
        Z: IntoParallelIterator,
        Z::Iter: IndexedParallelIterator,
    {
        Zip::new(self, other.into_par_iter())
    }

    /// Groups the items in `Vec`s of `chunk_size` (the last one may be
    /// shorter).
    ///
    /// # Panics
    ///
    /// If `chunk_size` is 0.
    fn chunks(self, chunk_size: usize) -> Chunks<Self> {
        assert!(chunk_size != 0, "chunk_size must not be zero");
        Chunks::new(self, chunk_size)
    }

    /// Collects the items, in order, into `target`, replacing what it held
    /// and reusing its buffer when it is large enough (each item is written
    /// straight into its place).
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let mut out = Vec::with_capacity(100);
    /// (0..100u32).into_par_iter().map(|x| x * 2).collect_into_vec(&mut out);
    /// assert_eq!(out[99], 198);
    /// ```
    fn collect_into_vec(self, target: &mut Vec<Self::Item>) {
        let len = self.len();
        collect::collect_exact_into(self, len, target);
    }

    /// The first `n` items (all of them if there are fewer).
    fn take(self, n: usize) -> Range<Self> {
        Range::take(self, n)
    }

    /// All but the first `n` items (none if there are fewer).
    fn skip(self, n: usize) -> Range<Self> {
        Range::skip(self, n)
    }

    /// The index of some item for which `predicate` holds, not necessarily
    /// the first.
    fn position_any<P>(self, predicate: P) -> Option<usize>
    where
        P: Fn(Self::Item) -> bool + Sync + Send,
    {
        self.map(predicate)
            .enumerate()
            .find_any(|&(_, hit)| hit)
            .map(|(i, _)| i)
    }

    /// The index of the first item for which `predicate` holds.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v = [3, 8, 5, 8];
    /// assert_eq!(v.par_iter().position_first(|&x| x == 8), Some(1));
    /// ```
    fn position_first<P>(self, predicate: P) -> Option<usize>
    where
        P: Fn(Self::Item) -> bool + Sync + Send,
    {
        self.map(predicate)
            .enumerate()
            .find_first(|&(_, hit)| hit)
            .map(|(i, _)| i)
    }

    /// Never splits the work into pieces of fewer than `min` items (for
    /// work so small per item that even the few splits the pool makes do
    /// not pay). Not needed to be fast: splitting adapts by itself.
    fn with_min_len(self, min: usize) -> MinLen<Self> {
        MinLen::new(self, min)
    }

    /// Always splits the work into pieces of at most `max` items (unless
    /// that goes below a [`with_min_len`](Self::with_min_len)): for items
    /// so costly or uneven that each should be free to move to another
    /// worker. Not needed to be fast: splitting adapts by itself.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u32> = (0..100u32).into_par_iter().with_max_len(1).map(|x| x * 2).collect();
    /// assert_eq!(v, (0..100).map(|x| x * 2).collect::<Vec<_>>());
    /// ```
    fn with_max_len(self, max: usize) -> MaxLen<Self> {
        MaxLen::new(self, max)
    }

    /// The items in reverse order.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u32> = (0..5u32).into_par_iter().rev().map(|x| x * 10).collect();
    /// assert_eq!(v, [40, 30, 20, 10, 0]);
    /// ```
    fn rev(self) -> Rev<Self> {
        Rev::new(self)
    }

    /// Every `step`-th item, from the first (as `Iterator::step_by`).
    ///
    /// # Panics
    ///
    /// If `step` is 0.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v: Vec<u32> = (0..10u32).into_par_iter().step_by(3).collect();
    /// assert_eq!(v, [0, 3, 6, 9]);
    /// ```
    fn step_by(self, step: usize) -> StepBy<Self> {
        assert!(step != 0, "step must not be zero");
        StepBy::new(self, step)
    }
}

/// Something that can become a parallel iterator: `into_par_iter()`.
pub trait IntoParallelIterator {
    /// The parallel iterator.
    type Iter: ParallelIterator<Item = Self::Item>;
    /// Its items.
    type Item: Send;
    /// Makes the parallel iterator.
    fn into_par_iter(self) -> Self::Iter;
}

impl<I: ParallelIterator> IntoParallelIterator for I {
    type Iter = I;
    type Item = I::Item;
    fn into_par_iter(self) -> I {
        self
    }
}

/// `par_iter()`: a parallel iterator over references to the items of a
/// collection (for every `C` where `&C: IntoParallelIterator`).
pub trait IntoParallelRefIterator<'data> {
    /// The parallel iterator.
    type Iter: ParallelIterator<Item = Self::Item>;
    /// Its items (references).
    type Item: Send + 'data;
    /// Iterates over `&self`'s items in parallel.
    fn par_iter(&'data self) -> Self::Iter;
}

impl<'data, C: ?Sized + 'data> IntoParallelRefIterator<'data> for C
where
    &'data C: IntoParallelIterator,
{
    type Iter = <&'data C as IntoParallelIterator>::Iter;
    type Item = <&'data C as IntoParallelIterator>::Item;
    fn par_iter(&'data self) -> Self::Iter {
        self.into_par_iter()
    }
}

/// `par_iter_mut()`: a parallel iterator over mutable references.
pub trait IntoParallelRefMutIterator<'data> {
    /// The parallel iterator.
    type Iter: ParallelIterator<Item = Self::Item>;
    /// Its items (mutable references).
    type Item: Send + 'data;
    /// Iterates over `&mut self`'s items in parallel.
    fn par_iter_mut(&'data mut self) -> Self::Iter;
}

impl<'data, C: ?Sized + 'data> IntoParallelRefMutIterator<'data> for C
where
    &'data mut C: IntoParallelIterator,
{
    type Iter = <&'data mut C as IntoParallelIterator>::Iter;
    type Item = <&'data mut C as IntoParallelIterator>::Item;
    fn par_iter_mut(&'data mut self) -> Self::Iter {
        self.into_par_iter()
    }
}

/// What [`ParallelIterator::collect`] can build.
pub trait FromParallelIterator<T: Send> {
    /// Builds `Self` from the items of `par_iter`, in order.
    fn from_par_iter<I>(par_iter: I) -> Self
    where
        I: IntoParallelIterator<Item = T>;
}

impl<T: Send> FromParallelIterator<T> for Vec<T> {
    /// An iterator of known length (an indexed one, or its `map`) writes
    /// each item straight into its place in the new `Vec`; any other
    /// collects a `Vec` per piece and appends them in order.
    fn from_par_iter<I>(par_iter: I) -> Self
    where
        I: IntoParallelIterator<Item = T>,
    {
        let pi = par_iter.into_par_iter();
        match pi.opt_len() {
            Some(len) => collect::collect_exact(pi, len),
            None => collect::collect_pieces(pi),
        }
    }
}

/// Collects into a `Vec` in parallel, then builds the collection from it
/// in order (so duplicate keys keep the last value, as with `Iterator`).
macro_rules! from_par_iter_via_vec {
    ($([$($gen:tt)*] $ty:ty, $item:ty;)*) => {$(
        impl<$($gen)*> FromParallelIterator<$item> for $ty {
            fn from_par_iter<I>(par_iter: I) -> Self
            where
                I: IntoParallelIterator<Item = $item>,
            {
                Vec::from_par_iter(par_iter).into_iter().collect()
            }
        }
    )*};
}

from_par_iter_via_vec! {
    [K: Eq + std::hash::Hash + Send, V: Send, S: std::hash::BuildHasher + Default]
        std::collections::HashMap<K, V, S>, (K, V);
    [K: Ord + Send, V: Send] std::collections::BTreeMap<K, V>, (K, V);
    [T: Eq + std::hash::Hash + Send, S: std::hash::BuildHasher + Default]
        std::collections::HashSet<T, S>, T;
    [T: Ord + Send] std::collections::BTreeSet<T>, T;
    [] String, char;
    [] String, String;
    ['a] String, &'a str;
}

/// Parallel methods on shared slices (and so on `Vec`s and arrays).
pub trait ParallelSlice<T: Sync> {
    /// The slice.
    fn as_parallel_slice(&self) -> &[T];

    /// The slice's chunks of `chunk_size` items (the last may be
    /// shorter), in parallel.
    ///
    /// # Panics
    ///
    /// If `chunk_size` is 0.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let sums: Vec<i32> = [1, 2, 3, 4, 5].par_chunks(2).map(|c| c.iter().sum()).collect();
    /// assert_eq!(sums, [3, 7, 5]);
    /// ```
    fn par_chunks(&self, chunk_size: usize) -> SliceChunks<'_, T> {
        assert!(chunk_size != 0, "chunk_size must not be zero");
        SliceChunks::new(self.as_parallel_slice(), chunk_size)
    }

    /// The slice's chunks of exactly `chunk_size` items, in parallel; the
    /// `len % chunk_size` items left over are in the iterator's
    /// [`remainder`](SliceChunksExact::remainder).
    ///
    /// # Panics
    ///
    /// If `chunk_size` is 0.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let v = [1, 2, 3, 4, 5];
    /// let chunks = v.par_chunks_exact(2);
    /// assert_eq!(chunks.remainder(), [5]);
    /// let sums: Vec<i32> = chunks.map(|c| c.iter().sum()).collect();
    /// assert_eq!(sums, [3, 7]);
    /// ```
    fn par_chunks_exact(&self, chunk_size: usize) -> SliceChunksExact<'_, T> {
        assert!(chunk_size != 0, "chunk_size must not be zero");
        SliceChunksExact::new(self.as_parallel_slice(), chunk_size)
    }

    /// Every overlapping window of `window_size` items, in parallel (none
    /// if the slice is shorter).
    ///
    /// # Panics
    ///
    /// If `window_size` is 0.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let d: Vec<i32> = [1, 4, 9, 16].par_windows(2).map(|w| w[1] - w[0]).collect();
    /// assert_eq!(d, [3, 5, 7]);
    /// ```
    fn par_windows(&self, window_size: usize) -> SliceWindows<'_, T> {
        assert!(window_size != 0, "window_size must not be zero");
        SliceWindows::new(self.as_parallel_slice(), window_size)
    }
}

impl<T: Sync> ParallelSlice<T> for [T] {
    fn as_parallel_slice(&self) -> &[T] {
        self
    }
}

/// Parallel methods on mutable slices: chunks and sorting.
pub trait ParallelSliceMut<T: Send> {
    /// The slice.
    fn as_parallel_slice_mut(&mut self) -> &mut [T];

    /// The slice's mutable chunks of `chunk_size` items (the last may be
    /// shorter), in parallel.
    ///
    /// # Panics
    ///
    /// If `chunk_size` is 0.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let mut v = [0u8; 5];
    /// v.par_chunks_mut(2).enumerate().for_each(|(i, c)| c.fill(i as u8));
    /// assert_eq!(v, [0, 0, 1, 1, 2]);
    /// ```
    fn par_chunks_mut(&mut self, chunk_size: usize) -> SliceChunksMut<'_, T> {
        assert!(chunk_size != 0, "chunk_size must not be zero");
        SliceChunksMut::new(self.as_parallel_slice_mut(), chunk_size)
    }

    /// Sorts the slice in parallel, stably (equal items keep their order):
    /// a merge sort whose pieces are sorted by `slice::sort` and merged in
    /// parallel. Allocates a buffer as large as the slice.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let mut v = vec![(2, 'a'), (1, 'b'), (2, 'c'), (1, 'd')];
    /// v.par_sort_by_key(|p| p.0);
    /// assert_eq!(v, [(1, 'b'), (1, 'd'), (2, 'a'), (2, 'c')]);
    /// ```
    fn par_sort(&mut self)
    where
        T: Ord,
    {
        sort::par_mergesort(self.as_parallel_slice_mut(), &T::cmp);
    }

    /// [`par_sort`](Self::par_sort) with a comparator.
    fn par_sort_by<F>(&mut self, compare: F)
    where
        F: Fn(&T, &T) -> std::cmp::Ordering + Sync,
    {
        sort::par_mergesort(self.as_parallel_slice_mut(), &compare);
    }

    /// [`par_sort`](Self::par_sort) by a key.
    fn par_sort_by_key<K, F>(&mut self, f: F)
    where
        K: Ord,
        F: Fn(&T) -> K + Sync,
    {
        sort::par_mergesort(self.as_parallel_slice_mut(), &|a: &T, b: &T| {
            f(a).cmp(&f(b))
        });
    }

    /// Sorts the slice in parallel, not stably, in place: a quicksort that
    /// partitions in parallel and sorts its pieces with
    /// `slice::sort_unstable`.
    ///
    /// ```
    /// use weft_pool::iter::prelude::*;
    /// let mut v: Vec<u32> = (0..1000).rev().collect();
    /// v.par_sort_unstable();
    /// assert!(v.windows(2).all(|w| w[0] <= w[1]));
    /// ```
    fn par_sort_unstable(&mut self)
    where
        T: Ord,
    {
        sort::par_quicksort(self.as_parallel_slice_mut(), &T::cmp);
    }

    /// [`par_sort_unstable`](Self::par_sort_unstable) with a comparator.
    fn par_sort_unstable_by<F>(&mut self, compare: F)
    where
        F: Fn(&T, &T) -> std::cmp::Ordering + Sync,
    {
        sort::par_quicksort(self.as_parallel_slice_mut(), &compare);
    }

    /// [`par_sort_unstable`](Self::par_sort_unstable) by a key.
    fn par_sort_unstable_by_key<K, F>(&mut self, f: F)
    where
        K: Ord,
        F: Fn(&T) -> K + Sync,
    {
        sort::par_quicksort(self.as_parallel_slice_mut(), &|a: &T, b: &T| {
            f(a).cmp(&f(b))
        });
    }
}

impl<T: Send> ParallelSliceMut<T> for [T] {
    fn as_parallel_slice_mut(&mut self) -> &mut [T] {
        self
    }
}
