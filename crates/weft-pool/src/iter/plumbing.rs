//! The machinery under the parallel iterators: producers that split a
//! piece of input at an index, consumers that split alongside them, and the
//! one bridge that joins them on the pool, splitting adaptively.
//!
//! Most users never touch this module; it is public (as rayon's `plumbing`
//! is) because its traits appear in the bounds of [`ParallelIterator`] and
//! [`IndexedParallelIterator`], and so that a new source (a tree, a custom
//! container) can be made parallel by writing one [`Producer`].
//!
//! # How a parallel iterator runs
//!
//! Every source (a slice, a `Vec`, a range) hands out a [`Producer`]: a
//! piece of input that can [`split_at`](Producer::split_at) an index and,
//! once small enough, be iterated sequentially. A consumer (`sum`,
//! `collect`, `for_each`, ...) is a [`Consumer`], split at the same index,
//! each part folding its items with a [`Folder`], the parts' results merged
//! by a [`Reducer`]. Adapters (`map`, `filter`, ...) wrap the producer (when
//! they keep the count of items exact) or the consumer (when they do not).
//!
//! [`bridge_producer_consumer`] splits with weft's [`join`](crate::join), the
//! way rayon's adaptive splitter does: a job starts with as many splits as
//! the pool has workers (each split halves the budget) and, when a half is
//! stolen by an idle worker, the thief's budget is reset to that number
//! again. Work that is balanced splits only a few times; work that is not
//! keeps splitting where workers go hungry. Where rayon then folds a leaf
//! in one go, weft folds it in eight chunks and, between two, looks at the
//! pool's share request (raised by idle workers, answered by `join`): if a
//! worker is hungry, the rest of the leaf is split again, so one heavy leaf
//! does not keep the others waiting. Nobody tunes a chunk size;
//! [`IndexedParallelIterator::with_min_len`] may still bound it from below.
//!
//! [`ParallelIterator`]: super::ParallelIterator
//! [`IndexedParallelIterator`]: super::IndexedParallelIterator
//! [`IndexedParallelIterator::with_min_len`]: super::IndexedParallelIterator::with_min_len

use crate::registry::WorkerThread;

/// A piece of input that can be split at an index and iterated
/// sequentially. Indices count the producer's positions (its items, for the
/// producers of indexed iterators).
pub trait Producer: Send + Sized {
    /// What the producer yields.
    type Item;
    /// The sequential iterator over this piece.
    type IntoIter: Iterator<Item = Self::Item>;

    /// The sequential iterator over this piece.
    fn into_iter(self) -> Self::IntoIter;

    /// The fewest positions a piece should hold: the bridge never splits
    /// below it. 1 unless [`with_min_len`](super::IndexedParallelIterator::with_min_len) says otherwise.
    fn min_len(&self) -> usize {
        1
    }

    /// The most positions a piece should hold: the bridge splits any piece
    /// longer than this (unless that would go below [`min_len`](Self::min_len)).
    /// `usize::MAX` unless [`with_max_len`](super::IndexedParallelIterator::with_max_len) says otherwise.
    fn max_len(&self) -> usize {
        usize::MAX
    }

    /// Splits into the positions `[0, index)` and `[index, len)`.
    fn split_at(self, index: usize) -> (Self, Self);

    /// Feeds every item of this piece to `folder` (stopping early when it is
    /// full) and returns it.
    fn fold_with<F: Folder<Self::Item>>(self, folder: F) -> F {
        folder.consume_iter(self.into_iter())
    }

    /// Feeds every item of this piece to `folder` last first (for
    /// [`rev`](super::IndexedParallelIterator::rev)). By default the
    /// piece's items are gathered in a `Vec` first; producers whose
    /// sequential iterator runs backwards (slices, ranges, `map` over them)
    /// override it.
    fn fold_rev<F: Folder<Self::Item>>(self, folder: F) -> F {
        let items: Vec<Self::Item> = self.into_iter().collect();
        folder.consume_iter(items.into_iter().rev())
    }
}

/// Where items go: split alongside a [`Producer`], folded piece by piece,
/// the pieces' results reduced in order.
pub trait Consumer<Item>: Send + Sized {
    /// Folds the items of one piece.
    type Folder: Folder<Item, Result = Self::Result>;
    /// Merges the results of two adjacent pieces.
    type Reducer: Reducer<Self::Result>;
    /// The result of a piece, and of the whole run.
    type Result: Send;

    /// Splits into consumers for the positions `[0, index)` and
    /// `[index, len)`, and the reducer that merges their results (left
    /// first).
    fn split_at(self, index: usize) -> (Self, Self, Self::Reducer);

    /// The folder for one piece.
    fn into_folder(self) -> Self::Folder;

    /// Whether no more items are wanted (a search found its item): the
    /// bridge then stops splitting and feeding.
    fn full(&self) -> bool {
        false
    }
}

/// Folds the items of one piece, sequentially.
pub trait Folder<Item>: Sized {
    /// What the folded piece gives.
    type Result;

    /// Takes one item.
    fn consume(self, item: Item) -> Self;

    /// Takes every item of `iter`, stopping early when [`full`](Folder::full).
    /// Folders that never fill override this with the iterator's own loop
    /// (`sum`, `for_each`, `fold`), which the compiler vectorizes.
    fn consume_iter<I>(mut self, iter: I) -> Self
    where
        I: IntoIterator<Item = Item>,
    {
        for item in iter {
            self = self.consume(item);
            if self.full() {
                break;
            }
        }
        self
    }

    /// Finishes the piece.
    fn complete(self) -> Self::Result;

    /// Whether no more items are wanted.
    fn full(&self) -> bool {
        false
    }
}

/// Merges the results of two adjacent pieces, `left` coming first.
pub trait Reducer<Result> {
    /// Merges `left` and `right`.
    fn reduce(self, left: Result, right: Result) -> Result;
}

/// Receives the producer of an indexed iterator. Producers may borrow the
/// iterator that made them (a `map`'s closure), so they are handed to a
/// callback rather than returned.
pub trait ProducerCallback<Item> {
    /// What the callback returns.
    type Output;
    /// Runs with the producer.
    fn callback<P>(self, producer: P) -> Self::Output
    where
        P: Producer<Item = Item>;
}

/// The reducer of consumers whose results are `()`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopReducer;

impl Reducer<()> for NoopReducer {
    #[inline]
    fn reduce(self, _left: (), _right: ()) {}
}

/// Runs `f` on a worker: here if this thread is one, else inside the
/// global pool (one `install` for the whole run, not one per split).
pub(crate) fn in_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match WorkerThread::current() {
        Some(_) => f(),
        None => crate::global().install(f),
    }
}

/// The address of the current worker, or 0: tells a stolen half from one
/// that runs where it was offered.
#[inline]
fn worker_id() -> usize {
    WorkerThread::current().map_or(0, |w| std::ptr::from_ref(w) as usize)
}

/// rayon's adaptive split budget: `splits` more halvings for this piece;
/// reset to the pool's size when the piece was stolen.
#[derive(Clone, Copy)]
pub(crate) struct Splitter {
    splits: usize,
    threads: usize,
}

impl Splitter {
    /// A budget for a job starting on the current worker's pool.
    pub(crate) fn new() -> Self {
        let threads = crate::current_num_threads();
        Splitter {
            splits: threads,
            threads,
        }
    }

    /// Whether to split once more; `stolen` says this piece moved to
    /// another worker since its parent split (so workers are idle).
    #[inline]
    pub(crate) fn try_split(&mut self, stolen: bool) -> bool {
        if stolen {
            self.splits = self.threads.max(self.splits / 2);
            true
        } else if self.splits > 0 {
            self.splits /= 2;
            true
        } else {
            false
        }
    }
}

/// Runs `left` here and offers `right`, telling `right` whether it was
/// stolen (runs on another worker than the one that offered it).
#[inline]
pub(crate) fn join_stolen<A, B, RA, RB>(left: A, right: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce(bool) -> RB + Send,
    RA: Send,
    RB: Send,
{
    let origin = worker_id();
    crate::join(left, move || right(worker_id() != origin))
}

/// Runs `producer`'s `len` positions into `consumer` on the pool: splits
/// in halves with [`join`](crate::join) while the adaptive budget allows
/// (see the module docs), folds the pieces sequentially, and reduces their
/// results in order. Runs inside the global pool when called from outside
/// any pool.
pub fn bridge_producer_consumer<P, C>(len: usize, producer: P, consumer: C) -> C::Result
where
    P: Producer,
    C: Consumer<P::Item>,
{
    in_worker(move || {
        let min = producer.min_len().max(1);
        let bounds = Bounds {
            min,
            max: producer.max_len().max(1),
        };
        helper(len, false, Splitter::new(), bounds, producer, consumer)
    })
}

/// The piece lengths a producer asks for: [`Producer::min_len`] and
/// [`Producer::max_len`].
#[derive(Clone, Copy)]
struct Bounds {
    min: usize,
    max: usize,
}

fn helper<P, C>(
    len: usize,
    stolen: bool,
    mut splitter: Splitter,
    bounds: Bounds,
    producer: P,
    consumer: C,
) -> C::Result
where
    P: Producer,
    C: Consumer<P::Item>,
{
    if consumer.full() {
        return consumer.into_folder().complete();
    }
    if len / 2 >= bounds.min && (len > bounds.max || splitter.try_split(stolen)) {
        let mid = len / 2;
        let (lp, rp) = producer.split_at(mid);
        let (lc, rc, reducer) = consumer.split_at(mid);
        let (l, r) = join_stolen(
            move || helper(mid, false, splitter, bounds, lp, lc),
            move |stolen| helper(len - mid, stolen, splitter, bounds, rp, rc),
        );
        reducer.reduce(l, r)
    } else {
        fold_lazily(len, splitter, bounds, producer, consumer)
    }
}

/// How many pieces a leaf is folded in: between two, the leaf looks
/// whether an idle worker is asking for work.
const LEAF_CHUNKS: usize = 8;

/// Folds a leaf (a piece the split budget does not split) in
/// [`LEAF_CHUNKS`] chunks, in order. After each chunk, if an idle worker
/// has asked this one for work (weft's share request), the rest of the leaf
/// is split again with a fresh budget, as if stolen: a leaf that turns out
/// to hold most of the work (a heavy stretch of Mandelbrot rows) is not
/// left to one worker while the others wait. Asked by nobody, a leaf costs
/// a few more consumer splits than one fold.
fn fold_lazily<P, C>(
    len: usize,
    splitter: Splitter,
    bounds: Bounds,
    producer: P,
    consumer: C,
) -> C::Result
where
    P: Producer,
    C: Consumer<P::Item>,
{
    let min = bounds.min;
    let chunk = (len / LEAF_CHUNKS).max(min);
    let (mut len, mut producer, mut consumer) = (len, producer, consumer);
    let mut done: Option<(C::Result, C::Reducer)> = None;
    let result = loop {
        // The rest after a chunk must hold `min` positions too.
        if len < chunk.saturating_add(min) || consumer.full() {
            break producer.fold_with(consumer.into_folder()).complete();
        }
        if len / 2 >= min && WorkerThread::current().is_some_and(WorkerThread::share_requested) {
            break helper(len, true, splitter, bounds, producer, consumer);
        }
        let (head, rest) = producer.split_at(chunk);
        let (head_c, rest_c, reducer) = consumer.split_at(chunk);
        let r = head.fold_with(head_c.into_folder()).complete();
        // Fold this chunk's result into those before it (in order).
        done = Some(match done {
            None => (r, reducer),
            Some((acc, prev)) => (prev.reduce(acc, r), reducer),
        });
        (len, producer, consumer) = (len - chunk, rest, rest_c);
    };
    match done {
        None => result,
        Some((acc, reducer)) => reducer.reduce(acc, result),
    }
}

/// Bridges an indexed iterator to a consumer: hands its producer to
/// [`bridge_producer_consumer`].
pub fn bridge<I, C>(par_iter: I, consumer: C) -> C::Result
where
    I: super::IndexedParallelIterator,
    C: Consumer<I::Item>,
{
    struct Callback<C> {
        len: usize,
        consumer: C,
    }
    impl<T, C: Consumer<T>> ProducerCallback<T> for Callback<C> {
        type Output = C::Result;
        fn callback<P: Producer<Item = T>>(self, producer: P) -> C::Result {
            bridge_producer_consumer(self.len, producer, self.consumer)
        }
    }
    let len = par_iter.len();
    par_iter.with_producer(Callback { len, consumer })
}
