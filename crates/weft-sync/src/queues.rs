//! The rest of Python's `queue` module: [`LifoQueue`], [`PriorityQueue`]
//! and [`SimpleQueue`], each a thin wrapper over the queue protocol of
//! [`Queue`](crate::Queue) (`queue::Core`) with its own store.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::Duration;

use concurrent_queue::{PopError, PushError};

use crate::error::{GetError, PutError, TaskDoneError, Timeout};
use crate::queue::{Core, FifoStore, GetFuture, PutFuture, Store};
use crate::shim::Mutex;
use crate::waiting::{EventWait, WaitList};

/// What a [`LockedStore`] keeps its items in: the order of the queue.
pub(crate) trait Discipline<T>: Default {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    fn len(&self) -> usize;
}

/// LIFO: a stack.
pub(crate) struct Stack<T>(Vec<T>);

impl<T> Default for Stack<T> {
    fn default() -> Self {
        Stack(Vec::new())
    }
}

impl<T> Discipline<T> for Stack<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Smallest first, and first in, first out among equals: a binary heap of
/// items ranked by (item, arrival number).
pub(crate) struct Heap<T> {
    heap: BinaryHeap<Ranked<T>>,
    arrivals: u64,
}

impl<T: Ord> Default for Heap<T> {
    fn default() -> Self {
        Heap {
            heap: BinaryHeap::new(),
            arrivals: 0,
        }
    }
}

impl<T: Ord> Discipline<T> for Heap<T> {
    fn push(&mut self, item: T) {
        let seq = self.arrivals;
        // 2^64 puts would take centuries; wrapping would only loosen the
        // FIFO order among equal items, never lose one.
        self.arrivals = self.arrivals.wrapping_add(1);
        self.heap.push(Ranked { item, seq });
    }
    fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|r| r.item)
    }
    fn len(&self) -> usize {
        self.heap.len()
    }
}

/// An item and its arrival number, ordered so that `BinaryHeap` (a max
/// heap) pops the smallest item, and the earliest among equal items.
struct Ranked<T> {
    item: T,
    seq: u64,
}

impl<T: Ord> Ord for Ranked<T> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .item
            .cmp(&self.item)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl<T: Ord> PartialOrd for Ranked<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<T: Ord> PartialEq for Ranked<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl<T: Ord> Eq for Ranked<T> {}

/// A store whose order needs more than a ring: the items behind a short
/// lock (`parking_lot`'s; loom's under loom), held only to push or pop one item. The waiting,
/// counting and shutdown protocol around it is `Queue`'s own.
pub(crate) struct LockedStore<D> {
    state: Mutex<Locked<D>>,
    capacity: Option<usize>,
}

struct Locked<D> {
    items: D,
    closed: bool,
}

impl<D: Default> LockedStore<D> {
    fn new(capacity: Option<usize>) -> Self {
        LockedStore {
            state: Mutex::new(Locked {
                items: D::default(),
                closed: false,
            }),
            capacity,
        }
    }
}

impl<T, D: Discipline<T>> Store<T> for LockedStore<D> {
    // A lock's release is not a `SeqCst` read-modify-write: notifiers fence.
    const PUBLISHES_WITH_SEQCST_RMW: bool = false;

    fn push(&self, item: T, _not_full: &WaitList) -> Result<(), PushError<T>> {
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed(item));
        }
        if self.capacity.is_some_and(|cap| st.items.len() >= cap) {
            return Err(PushError::Full(item));
        }
        st.items.push(item);
        Ok(())
    }

    fn pop(&self, not_full: &WaitList) -> Result<T, PopError> {
        let item = {
            let mut st = self.state.lock();
            match st.items.pop() {
                Some(item) => item,
                None if st.closed => return Err(PopError::Closed),
                None => return Err(PopError::Empty),
            }
        };
        if self.capacity.is_some() {
            not_full.notify_additional(1);
        }
        Ok(item)
    }

    fn pop_discard(&self) -> Option<T> {
        self.state.lock().items.pop()
    }

    fn close(&self) {
        self.state.lock().closed = true;
    }

    fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn is_full(&self) -> bool {
        self.capacity.is_some_and(|cap| self.len() >= cap)
    }

    fn capacity(&self) -> Option<usize> {
        self.capacity
    }
}

/// The surface shared by [`LifoQueue`] and [`PriorityQueue`], which is
/// `Queue`'s: constructors, sizes, puts and gets in every form,
/// `task_done`/`join`, `shutdown`. `$first` names the item a get takes, for
/// the docs; `$ex` is an expression of the queue's items for the examples.
macro_rules! queue_surface {
    ($Q:ident, [$($bound:tt)*], $first:literal) => {
        impl<T $($bound)*> $Q<T> {
            #[doc = concat!("A ", stringify!($Q), " with no size limit.")]
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(1).unwrap();
            /// assert_eq!(q.capacity(), None);
            /// ```
            pub fn unbounded() -> Self {
                $Q { core: Core::new(LockedStore::new(None)) }
            }

            #[doc = concat!("A ", stringify!($Q), " holding at most `capacity` items; `put` waits for room.")]
            ///
            /// Any capacity works, up to `usize::MAX`: nothing is allocated
            /// up front.
            ///
            /// # Panics
            ///
            /// If `capacity` is 0 (use `unbounded()` for no limit).
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::bounded(1);")]
            /// q.put(1).unwrap();
            /// assert!(q.is_full());
            /// assert!(q.try_put(2).is_err());
            /// ```
            pub fn bounded(capacity: usize) -> Self {
                assert!(
                    capacity > 0,
                    concat!(
                        "a bounded ", stringify!($Q),
                        " needs a capacity of at least 1; use ", stringify!($Q),
                        "::unbounded() for no limit"
                    )
                );
                $Q { core: Core::new(LockedStore::new(Some(capacity))) }
            }

            /// The capacity, or `None` when unbounded (Python's `maxsize`).
            ///
            /// ```
            #[doc = concat!("assert_eq!(weft_sync::", stringify!($Q), "::<u8>::bounded(3).capacity(), Some(3));")]
            /// ```
            pub fn capacity(&self) -> Option<usize> {
                self.core.capacity()
            }

            /// How many items are in the queue now (Python's `qsize()`).
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(1).unwrap();
            /// assert_eq!(q.len(), 1);
            /// ```
            pub fn len(&self) -> usize {
                self.core.len()
            }

            /// Whether the queue holds no items now (Python's `empty()`).
            ///
            /// ```
            #[doc = concat!("assert!(weft_sync::", stringify!($Q), "::<u8>::unbounded().is_empty());")]
            /// ```
            pub fn is_empty(&self) -> bool {
                self.core.is_empty()
            }

            /// Whether a bounded queue is at capacity now (Python's `full()`).
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::bounded(1);")]
            /// assert!(!q.is_full());
            /// q.put(1).unwrap();
            /// assert!(q.is_full());
            /// ```
            pub fn is_full(&self) -> bool {
                self.core.is_full()
            }

            /// Whether [`shutdown`](Self::shutdown) has been called.
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::<u8>::unbounded();")]
            /// q.shutdown(false);
            /// assert!(q.is_shut_down());
            /// ```
            pub fn is_shut_down(&self) -> bool {
                self.core.is_shut_down()
            }

            /// Puts `item`, waiting for room if the queue is bounded and full.
            ///
            /// # Errors
            ///
            /// [`PutError::ShutDown`] (with the item) if the queue is shut down.
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::bounded(1);")]
            /// q.put(7).unwrap();
            /// q.shutdown(false);
            /// assert!(q.put(8).is_err());
            /// ```
            #[cfg_attr(feature = "deadlock-detection", track_caller)]
            pub fn put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put(item)
            }

            /// Puts `item` if there is room right now (Python's `put_nowait`).
            ///
            /// # Errors
            ///
            /// [`PutError::Full`] or [`PutError::ShutDown`], with the item.
            ///
            /// ```
            /// use weft_sync::PutError;
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::bounded(1);")]
            /// q.try_put(1).unwrap();
            /// assert!(matches!(q.try_put(2), Err(PutError::Full(2))));
            /// ```
            pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.push(item)
            }

            /// Puts `item`, waiting at most `timeout` for room.
            ///
            /// # Errors
            ///
            /// [`PutError::Full`] if there was still no room at the deadline,
            /// or [`PutError::ShutDown`]; both hand the item back.
            ///
            /// ```
            /// use std::time::Duration;
            /// use weft_sync::PutError;
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::bounded(1);")]
            /// q.put(1).unwrap();
            /// let late = q.put_timeout(2, Duration::from_millis(5));
            /// assert!(matches!(late, Err(PutError::Full(2))));
            /// ```
            #[cfg_attr(feature = "deadlock-detection", track_caller)]
            pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
                self.core.put_timeout(item, timeout)
            }

            /// Puts `item` without blocking the thread, waiting for room if
            /// needed. If the future is dropped before the item goes in, the
            /// item is dropped with it.
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::bounded(1);")]
            /// futures_lite::future::block_on(q.put_async(3)).unwrap();
            /// assert_eq!(q.try_get(), Ok(3));
            /// ```
            pub fn put_async(&self, item: T) -> PutFuture<'_, T, Self> {
                PutFuture {
                    wait: EventWait::new(
                        &self.core.not_full,
                        (self, Some(item)),
                        |(q, item), _| q.core.try_push_slot(item),
                    ),
                }
            }

            #[doc = concat!("Removes and returns ", $first, ", waiting for one.")]
            ///
            /// # Errors
            ///
            /// [`GetError::ShutDown`] once the queue is shut down and empty
            /// (at once, if it was shut down with `immediate`).
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(5).unwrap();
            /// assert_eq!(q.get(), Ok(5));
            /// ```
            #[cfg_attr(feature = "deadlock-detection", track_caller)]
            pub fn get(&self) -> Result<T, GetError> {
                self.core.get()
            }

            #[doc = concat!("Removes ", $first, " if there is one now (Python's `get_nowait`).")]
            ///
            /// # Errors
            ///
            /// [`GetError::Empty`], or [`GetError::ShutDown`] once shut down
            /// and empty.
            ///
            /// ```
            /// use weft_sync::GetError;
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::<u8>::unbounded();")]
            /// assert_eq!(q.try_get(), Err(GetError::Empty));
            /// ```
            pub fn try_get(&self) -> Result<T, GetError> {
                self.core.pop()
            }

            #[doc = concat!("Removes ", $first, ", waiting at most `timeout` for one.")]
            ///
            /// # Errors
            ///
            /// [`GetError::Empty`] if none arrived in time, or
            /// [`GetError::ShutDown`].
            ///
            /// ```
            /// use std::time::Duration;
            /// use weft_sync::GetError;
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::<u8>::unbounded();")]
            /// assert_eq!(q.get_timeout(Duration::from_millis(5)), Err(GetError::Empty));
            /// ```
            #[cfg_attr(feature = "deadlock-detection", track_caller)]
            pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
                self.core.get_timeout(timeout)
            }

            #[doc = concat!("Removes ", $first, " without blocking the thread, waiting for one.")]
            /// Cancel-safe: if the future is dropped, no item is lost.
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(4).unwrap();
            /// assert_eq!(futures_lite::future::block_on(q.get_async()), Ok(4));
            /// ```
            pub fn get_async(&self) -> GetFuture<'_, T, Self> {
                GetFuture {
                    wait: EventWait::new(&self.core.not_empty, self, |q, _| q.core.try_pop_slot()),
                }
            }

            /// Marks one item taken from the queue as processed (Python's
            /// `task_done()`); when every item put has been marked,
            /// [`join`](Self::join) returns.
            ///
            /// # Errors
            ///
            /// [`TaskDoneError`] if called more times than items were put.
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(1).unwrap();
            /// q.get().unwrap();
            /// q.task_done().unwrap();
            /// assert!(q.task_done().is_err());
            /// ```
            pub fn task_done(&self) -> Result<(), TaskDoneError> {
                self.core.task_done()
            }

            /// How many items have been put and not yet marked done.
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(1).unwrap();
            /// assert_eq!(q.unfinished_tasks(), 1);
            /// ```
            pub fn unfinished_tasks(&self) -> usize {
                self.core.unfinished_tasks()
            }

            /// Blocks until every item put has been marked done with
            /// [`task_done`](Self::task_done) (Python's `join()`).
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// std::thread::scope(|s| {
            ///     s.spawn(|| {
            ///         q.get().unwrap();
            ///         q.task_done().unwrap();
            ///     });
            ///     q.put(1).unwrap();
            ///     q.join();
            /// });
            /// ```
            #[cfg_attr(feature = "deadlock-detection", track_caller)]
            pub fn join(&self) {
                self.core.join();
            }

            /// As [`join`](Self::join), giving up after `timeout`.
            ///
            /// # Errors
            ///
            /// [`Timeout`] if items were still unfinished at the deadline.
            ///
            /// ```
            /// use std::time::Duration;
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(1).unwrap();
            /// assert!(q.join_timeout(Duration::from_millis(5)).is_err());
            /// ```
            #[cfg_attr(feature = "deadlock-detection", track_caller)]
            pub fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
                self.core.join_timeout(timeout)
            }

            /// The async form of [`join`](Self::join).
            ///
            /// ```
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::<u8>::unbounded();")]
            /// futures_lite::future::block_on(q.join_async()); // nothing unfinished
            /// ```
            pub async fn join_async(&self) {
                self.core.join_async().await
            }

            /// Shuts the queue down (Python 3.13's `shutdown`): every later
            /// put fails with [`PutError::ShutDown`], and blocked putters and
            /// getters wake up. Gets drain the items left and then fail with
            /// [`GetError::ShutDown`]. With `immediate`, the items left are
            /// discarded at once (each counted as done, which may release
            /// [`join`](Self::join)) and gets fail straight away.
            ///
            /// # Panics
            ///
            /// With `immediate`, if dropping a discarded item panics: the
            /// panic is resumed once the shutdown is complete (every other
            /// item dropped, the count settled, every waiter woken).
            ///
            /// ```
            /// use weft_sync::GetError;
            #[doc = concat!("let q = weft_sync::", stringify!($Q), "::unbounded();")]
            /// q.put(1).unwrap();
            /// q.shutdown(false);
            /// assert_eq!(q.get(), Ok(1));
            /// assert_eq!(q.get(), Err(GetError::ShutDown));
            /// ```
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate);
            }
        }

        impl<T $($bound)*> Default for $Q<T> {
            fn default() -> Self {
                $Q::unbounded()
            }
        }

        impl<T $($bound)*> fmt::Debug for $Q<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($Q))
                    .field("len", &self.len())
                    .field("capacity", &self.capacity())
                    .field("unfinished_tasks", &self.unfinished_tasks())
                    .field("shut_down", &self.is_shut_down())
                    .finish()
            }
        }
    };
}

/// A last-in, first-out queue, a stack shared by threads and async tasks
/// (Python's `queue.LifoQueue`).
///
/// Everything [`Queue`](crate::Queue) has, in the other order: `get` takes
/// the item put most recently. Bounded or not, every put and get blocking,
/// non-blocking, timed and async, `task_done`/`join`, and `shutdown`
/// (Python 3.13). The items sit behind a short lock (a stack has no
/// lock-free ring); the waiting is `Queue`'s.
///
/// ```
/// use weft_sync::LifoQueue;
///
/// let stack = LifoQueue::unbounded();
/// for page in ["home", "search", "result"] {
///     stack.put(page).unwrap();
/// }
/// assert_eq!(stack.get(), Ok("result")); // newest first
/// assert_eq!(stack.get(), Ok("search"));
/// ```
pub struct LifoQueue<T> {
    core: Core<T, LockedStore<Stack<T>>, true>,
}

queue_surface!(LifoQueue, [], "the newest item");

/// A queue that hands out the smallest item first (Python's
/// `queue.PriorityQueue`, which pops the smallest entry as `heapq` does).
///
/// Items are ordered by their [`Ord`]; put `(priority, value)` tuples, or
/// wrap in [`std::cmp::Reverse`] for largest first. Among equal items the
/// order is first in, first out (Python leaves it unspecified: its docs
/// suggest adding a counter to each entry; weft keeps one for you).
/// Everything else is [`Queue`](crate::Queue)'s: bounded or not, every put
/// and get in its four forms, `task_done`/`join`, `shutdown`.
///
/// `Ord` runs under the queue's short internal lock: it must not use the
/// queue. If it panics, the panic reaches the caller and the item being
/// moved may be lost (as with [`BinaryHeap`]).
///
/// ```
/// use weft_sync::PriorityQueue;
///
/// let jobs = PriorityQueue::unbounded();
/// jobs.put((2, "write report")).unwrap();
/// jobs.put((1, "fix outage")).unwrap();
/// jobs.put((2, "reply to mail")).unwrap();
/// assert_eq!(jobs.get(), Ok((1, "fix outage")));
/// assert_eq!(jobs.get(), Ok((2, "reply to mail"))); // ("reply" < "write")
/// assert_eq!(jobs.get(), Ok((2, "write report")));
/// ```
pub struct PriorityQueue<T> {
    core: Core<T, LockedStore<Heap<T>>, true>,
}

queue_surface!(PriorityQueue, [: Ord], "the smallest item");

/// An unbounded first-in, first-out queue without task tracking (Python's
/// `queue.SimpleQueue`): `put` never waits, and there is no
/// `task_done`/`join`.
///
/// The same lock-free ring as [`Queue`](crate::Queue), without the
/// unfinished-task counter that every `Queue::put` updates. Gets come
/// blocking, non-blocking, timed and async. Python's `SimpleQueue` has no
/// `shutdown`; weft's has Python 3.13's `Queue.shutdown`, so consumers can
/// be told to stop.
///
/// ```
/// use weft_sync::{GetError, SimpleQueue};
///
/// let q = SimpleQueue::new();
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         for i in 0..3 {
///             q.put(i).unwrap();
///         }
///         q.shutdown(false);
///     });
///     let mut got = Vec::new();
///     while let Ok(v) = q.get() {
///         got.push(v);
///     }
///     assert_eq!(got, vec![0, 1, 2]);
/// });
/// assert_eq!(q.try_get(), Err(GetError::ShutDown));
/// ```
pub struct SimpleQueue<T> {
    core: Core<T, FifoStore<T>, false>,
}

impl<T> SimpleQueue<T> {
    /// A new, empty queue.
    ///
    /// ```
    /// let q = weft_sync::SimpleQueue::<u8>::new();
    /// assert!(q.is_empty());
    /// ```
    pub fn new() -> Self {
        SimpleQueue {
            core: Core::new(FifoStore::unbounded()),
        }
    }

    /// How many items are in the queue now (Python's `qsize()`).
    ///
    /// ```
    /// let q = weft_sync::SimpleQueue::new();
    /// q.put('a').unwrap();
    /// assert_eq!(q.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the queue holds no items now (Python's `empty()`).
    ///
    /// ```
    /// assert!(weft_sync::SimpleQueue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    ///
    /// ```
    /// let q = weft_sync::SimpleQueue::<u8>::new();
    /// q.shutdown(false);
    /// assert!(q.is_shut_down());
    /// ```
    pub fn is_shut_down(&self) -> bool {
        self.core.is_shut_down()
    }

    /// Puts `item` at the back. Never waits: the queue is unbounded
    /// (Python's `put`, `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`PutError::ShutDown`] (with the item) if the queue is shut down.
    ///
    /// ```
    /// use weft_sync::{PutError, SimpleQueue};
    /// let q = SimpleQueue::new();
    /// q.put(1).unwrap();
    /// q.shutdown(false);
    /// assert!(matches!(q.put(2), Err(PutError::ShutDown(2))));
    /// ```
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.core.push(item)
    }

    /// Removes and returns the front item, waiting for one.
    ///
    /// # Errors
    ///
    /// [`GetError::ShutDown`] once the queue is shut down and empty.
    ///
    /// ```
    /// let q = weft_sync::SimpleQueue::new();
    /// q.put("x").unwrap();
    /// assert_eq!(q.get(), Ok("x"));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get(&self) -> Result<T, GetError> {
        self.core.get()
    }

    /// Removes the front item if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`], or [`GetError::ShutDown`] once shut down and
    /// empty.
    ///
    /// ```
    /// use weft_sync::{GetError, SimpleQueue};
    /// assert_eq!(SimpleQueue::<u8>::new().try_get(), Err(GetError::Empty));
    /// ```
    pub fn try_get(&self) -> Result<T, GetError> {
        self.core.pop()
    }

    /// Removes the front item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`] if none arrived in time, or [`GetError::ShutDown`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{GetError, SimpleQueue};
    /// let q = SimpleQueue::<u8>::new();
    /// assert_eq!(q.get_timeout(Duration::from_millis(5)), Err(GetError::Empty));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.core.get_timeout(timeout)
    }

    /// Removes the front item without blocking the thread, waiting for one.
    /// Cancel-safe: if the future is dropped, no item is lost.
    ///
    /// ```
    /// let q = weft_sync::SimpleQueue::new();
    /// q.put(9).unwrap();
    /// assert_eq!(futures_lite::future::block_on(q.get_async()), Ok(9));
    /// ```
    pub fn get_async(&self) -> GetFuture<'_, T, Self> {
        GetFuture {
            wait: EventWait::new(&self.core.not_empty, self, |q, _| q.core.try_pop_slot()),
        }
    }

    /// Shuts the queue down (as Python 3.13's `Queue.shutdown`; Python's
    /// `SimpleQueue` has none): later puts fail with
    /// [`PutError::ShutDown`], blocked getters wake, gets drain what is
    /// left and then fail with [`GetError::ShutDown`]. With `immediate`,
    /// the items left are dropped at once.
    ///
    /// # Panics
    ///
    /// With `immediate`, if dropping a discarded item panics: the panic is
    /// resumed once every other item is dropped and every getter woken.
    ///
    /// ```
    /// use weft_sync::{GetError, SimpleQueue};
    /// let q = SimpleQueue::new();
    /// q.put(1).unwrap();
    /// q.shutdown(true);
    /// assert_eq!(q.get(), Err(GetError::ShutDown));
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        self.core.shutdown(immediate);
    }
}

impl<T> Default for SimpleQueue<T> {
    fn default() -> Self {
        SimpleQueue::new()
    }
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("len", &self.len())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}
