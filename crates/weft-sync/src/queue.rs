//! [`Queue`]: Python's `queue.Queue` (with 3.13's `shutdown`), shared by
//! threads and async tasks; and [`Core`], the one implementation of the
//! waiting, task-counting and shutdown logic behind every weft queue
//! ([`Queue`], [`LifoQueue`](crate::LifoQueue),
//! [`PriorityQueue`](crate::PriorityQueue), [`SimpleQueue`](crate::SimpleQueue)),
//! generic over how the items are stored (a [`Store`]: FIFO ring, stack,
//! heap). Each public queue is a thin wrapper that names its store, so
//! every queue has the same protocol, and `Queue` compiles to exactly the
//! code it had before the others existed (the store's methods are inlined;
//! which fence a put needs is a constant of the store).

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use concurrent_queue::{ConcurrentQueue, PopError, PushError};
use crossbeam_utils::CachePadded;

use crate::error::{GetError, PutError, TaskDoneError, Timeout};
use crate::waiting::{EventWait, WaitList, block_on};
use crate::waker::deadline_after;

/// How a queue keeps its items: the storage discipline (FIFO, LIFO,
/// priority) and the bound. [`Core`] does everything else.
pub(crate) trait Store<T> {
    /// Whether a successful `push` publishes the item with a `SeqCst`
    /// read-modify-write, so that the getters' wait list can be checked
    /// without a fence (see [`WaitList::notify_additional_after_seqcst_rmw`]).
    const PUBLISHES_WITH_SEQCST_RMW: bool;

    /// One attempt at adding `item`. `not_full` is the putters' list, for a
    /// store that gives back a reserved place on failure.
    fn push(&self, item: T, not_full: &WaitList) -> Result<(), PushError<T>>;

    /// One attempt at taking the next item; wakes a putter (`not_full`) if
    /// that made room in a bounded store.
    fn pop(&self, not_full: &WaitList) -> Result<T, PopError>;

    /// Takes an item out for an immediate shutdown (which wakes everyone
    /// afterwards, so no notification here).
    fn pop_discard(&self) -> Option<T>;

    /// Refuses every later push; pops drain what is left.
    fn close(&self);

    fn len(&self) -> usize;
    fn is_empty(&self) -> bool;
    fn is_full(&self) -> bool;
    fn capacity(&self) -> Option<usize>;
}

/// `Queue`'s store: a lock-free ring (`concurrent-queue`), with the bound of
/// a large bounded queue kept by a counter instead of preallocated slots.
pub(crate) struct FifoStore<T> {
    ring: ConcurrentQueue<T>,
    /// For a bounded queue too large to preallocate: the capacity, enforced
    /// by `reserved` over an unbounded ring. `None` otherwise.
    large_bound: Option<usize>,
    /// With `large_bound`: the items in the queue plus the puts under way,
    /// each reserving its place before it pushes.
    reserved: AtomicUsize,
}

/// The largest capacity whose slots [`Queue::bounded`] allocates up front
/// (concurrent-queue's bounded ring preallocates every slot). Above it, the
/// queue grows as items arrive, with the bound kept by a counter, so that
/// `Queue::bounded(1_000_000_000)` (a big safety limit, as Python users
/// write `Queue(maxsize=10**9)`) costs nothing until it fills.
const PREALLOCATED_CAPACITY: usize = 1 << 16;

impl<T> FifoStore<T> {
    pub(crate) fn unbounded() -> Self {
        FifoStore {
            ring: ConcurrentQueue::unbounded(),
            large_bound: None,
            reserved: AtomicUsize::new(0),
        }
    }

    /// `capacity` must be at least 1.
    pub(crate) fn bounded(capacity: usize) -> Self {
        if capacity > PREALLOCATED_CAPACITY {
            FifoStore {
                large_bound: Some(capacity),
                ..FifoStore::unbounded()
            }
        } else {
            FifoStore {
                ring: ConcurrentQueue::bounded(capacity),
                large_bound: None,
                reserved: AtomicUsize::new(0),
            }
        }
    }

    /// With a large bound: takes a place for one item, or says why not.
    fn reserve(&self, cap: usize) -> Result<(), PushError<()>> {
        let mut n = self.reserved.load(Ordering::Acquire);
        loop {
            if self.ring.is_closed() {
                return Err(PushError::Closed(()));
            }
            if n >= cap {
                return Err(PushError::Full(()));
            }
            match self
                .reserved
                .compare_exchange_weak(n, n + 1, Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(x) => n = x,
            }
        }
    }

    /// With a large bound: gives back the place of an item that left (or
    /// was never pushed), and wakes a putter.
    fn unreserve(&self, not_full: &WaitList) {
        self.reserved.fetch_sub(1, Ordering::SeqCst);
        not_full.notify_additional(1);
    }
}

impl<T> Store<T> for FifoStore<T> {
    // concurrent-queue 2.5.0 (pinned exactly) publishes pushes and pops
    // with a `SeqCst` compare-and-swap; see the method's comment.
    const PUBLISHES_WITH_SEQCST_RMW: bool = true;

    #[inline]
    fn push(&self, item: T, not_full: &WaitList) -> Result<(), PushError<T>> {
        match self.large_bound {
            None => self.ring.push(item),
            Some(cap) => match self.reserve(cap) {
                Ok(()) => self
                    .ring
                    .push(item)
                    .inspect_err(|_| self.unreserve(not_full)),
                Err(PushError::Full(())) => Err(PushError::Full(item)),
                Err(PushError::Closed(())) => Err(PushError::Closed(item)),
            },
        }
    }

    #[inline]
    fn pop(&self, not_full: &WaitList) -> Result<T, PopError> {
        let item = self.ring.pop()?;
        if self.large_bound.is_some() {
            self.unreserve(not_full);
        } else if self.ring.capacity().is_some() {
            not_full.notify_additional_after_seqcst_rmw(1);
        }
        Ok(item)
    }

    fn pop_discard(&self) -> Option<T> {
        let item = self.ring.pop().ok()?;
        if self.large_bound.is_some() {
            self.reserved.fetch_sub(1, Ordering::SeqCst);
        }
        Some(item)
    }

    fn close(&self) {
        self.ring.close();
    }

    fn len(&self) -> usize {
        self.ring.len()
    }

    fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    fn is_full(&self) -> bool {
        match self.large_bound {
            Some(cap) => self.reserved.load(Ordering::Acquire) >= cap,
            None => self.ring.is_full(),
        }
    }

    fn capacity(&self) -> Option<usize> {
        self.large_bound.or_else(|| self.ring.capacity())
    }
}

/// The queue protocol, once for every store: puts and gets in their
/// blocking, timed and async forms, the unfinished-task count behind
/// `task_done`/`join` (when `TRACKED`), and `shutdown`.
pub(crate) struct Core<T, S, const TRACKED: bool> {
    items: S,
    /// Notified when an item arrives (or on shutdown): wakes getters.
    pub(crate) not_empty: WaitList,
    /// Notified when an item leaves (or on shutdown): wakes putters.
    pub(crate) not_full: WaitList,
    /// Notified when the unfinished count reaches zero: wakes `join`.
    all_done: WaitList,
    /// Written by every put (and `task_done`): on a cache line of its own,
    /// so that the putter's increments do not evict the fields every get
    /// reads (the wait lists' counts) from the getter's cache.
    unfinished: CachePadded<AtomicUsize>,
    shut_down: AtomicBool,
    _items: std::marker::PhantomData<fn(T) -> T>,
}

impl<T, S: Store<T>, const TRACKED: bool> Core<T, S, TRACKED> {
    pub(crate) fn new(items: S) -> Self {
        Core {
            items,
            not_empty: WaitList::new(),
            not_full: WaitList::new(),
            all_done: WaitList::new(),
            unfinished: CachePadded::new(AtomicUsize::new(0)),
            shut_down: AtomicBool::new(false),
            _items: std::marker::PhantomData,
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        self.items.capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.is_full()
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// One attempt at putting; gives the item back if there is no room.
    #[inline]
    pub(crate) fn push(&self, item: T) -> Result<(), PutError<T>> {
        // Count the task before the item becomes visible, so that a fast
        // consumer's `task_done` can never run ahead of the count.
        if TRACKED {
            self.unfinished.fetch_add(1, Ordering::AcqRel);
        }
        match self.items.push(item, &self.not_full) {
            Ok(()) => {
                if S::PUBLISHES_WITH_SEQCST_RMW {
                    // The push was a `SeqCst` read-modify-write: no fence
                    // needed before looking for waiters.
                    self.not_empty.notify_additional_after_seqcst_rmw(1);
                } else {
                    self.not_empty.notify_additional(1);
                }
                Ok(())
            }
            Err(e) => {
                if TRACKED {
                    self.finish_tasks(1);
                }
                Err(match e {
                    PushError::Full(item) => PutError::Full(item),
                    PushError::Closed(item) => PutError::ShutDown(item),
                })
            }
        }
    }

    #[inline]
    pub(crate) fn pop(&self) -> Result<T, GetError> {
        match self.items.pop(&self.not_full) {
            Ok(item) => Ok(item),
            Err(PopError::Empty) => Err(GetError::Empty),
            Err(PopError::Closed) => Err(GetError::ShutDown),
        }
    }

    /// A put's attempt: `None` (item kept) if there is no room yet.
    #[inline]
    pub(crate) fn try_push_slot(&self, slot: &mut Option<T>) -> Option<Result<(), PutError<T>>> {
        let item = slot.take().expect("put retried after completion");
        match self.push(item) {
            Err(PutError::Full(item)) => {
                *slot = Some(item);
                None
            }
            done => Some(done),
        }
    }

    /// A get's attempt: `None` if there is nothing yet.
    #[inline]
    pub(crate) fn try_pop_slot(&self) -> Option<Result<T, GetError>> {
        match self.pop() {
            Err(GetError::Empty) => None,
            done => Some(done),
        }
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn put(&self, item: T) -> Result<(), PutError<T>> {
        let mut slot = Some(item);
        block_on!(Queue, &self.not_full, peer: &self.not_empty, None, |_| {
            self.try_push_slot(&mut slot)
        })
        .expect("waits without a deadline")
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        let mut slot = Some(item);
        let deadline = deadline_after(timeout);
        match block_on!(Queue, &self.not_full, peer: &self.not_empty, deadline, |_| {
            self.try_push_slot(&mut slot)
        }) {
            Some(done) => done,
            None => Err(PutError::Full(slot.take().expect("item kept on timeout"))),
        }
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn get(&self) -> Result<T, GetError> {
        block_on!(Queue, &self.not_empty, peer: &self.not_full, None, |_| {
            self.try_pop_slot()
        })
        .expect("waits without a deadline")
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        let deadline = deadline_after(timeout);
        block_on!(Queue, &self.not_empty, peer: &self.not_full, deadline, |_| {
            self.try_pop_slot()
        })
        .unwrap_or(Err(GetError::Empty))
    }

    /// Counts `n` tasks as done, never below zero (as CPython's
    /// `shutdown(immediate=True)` does: items put but already marked done
    /// with `task_done` must not drive the count under zero, where it would
    /// wrap and `join` would never return).
    fn finish_tasks(&self, n: usize) {
        let mut cur = self.unfinished.load(Ordering::Acquire);
        loop {
            if cur == 0 {
                return;
            }
            let next = cur.saturating_sub(n);
            match self.unfinished.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(x) => cur = x,
            }
        }
        if cur <= n {
            self.all_done.notify_all();
        }
    }

    pub(crate) fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut n = self.unfinished.load(Ordering::Acquire);
        loop {
            if n == 0 {
                return Err(TaskDoneError);
            }
            match self.unfinished.compare_exchange_weak(
                n,
                n - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(x) => n = x,
            }
        }
        if n == 1 {
            self.all_done.notify_all();
        }
        Ok(())
    }

    pub(crate) fn unfinished_tasks(&self) -> usize {
        self.unfinished.load(Ordering::Acquire)
    }

    fn all_finished(&self) -> Option<()> {
        (self.unfinished.load(Ordering::Acquire) == 0).then_some(())
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn join(&self) {
        block_on!(Queue, &self.all_done, None, |_| self.all_finished());
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        block_on!(Queue, &self.all_done, deadline_after(timeout), |_| {
            self.all_finished()
        })
        .ok_or(Timeout)
    }

    pub(crate) async fn join_async(&self) {
        EventWait::new(&self.all_done, self, |q, _| q.all_finished()).await
    }

    pub(crate) fn shutdown(&self, immediate: bool) {
        self.shut_down.store(true, Ordering::Release);
        self.items.close();
        let mut panic = None;
        if immediate {
            let mut dropped = 0;
            while let Some(item) = self.items.pop_discard() {
                dropped += 1;
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(item))) {
                    match panic {
                        None => panic = Some(payload),
                        Some(_) => {
                            crate::task::drop_quietly(payload);
                        }
                    }
                }
            }
            if TRACKED && dropped > 0 {
                self.finish_tasks(dropped);
            }
        }
        self.not_empty.notify_all();
        self.not_full.notify_all();
        if let Some(payload) = panic {
            resume_unwind(payload);
        }
    }
}

/// A first-in, first-out queue for handing values between threads and async
/// tasks (Python's `queue.Queue`).
///
/// Unbounded ([`Queue::unbounded`]) or bounded ([`Queue::bounded`], where
/// `put` waits for room). Every `get` and `put` comes blocking, non-blocking
/// (`try_`), with a timeout, and async; a thread and a task may use the same
/// queue. Values travel through a lock-free ring buffer (`concurrent-queue`),
/// and waiters are only notified when someone is waiting.
///
/// As in Python, each `put` counts an unfinished task: consumers call
/// [`task_done`](Queue::task_done) when they have processed an item, and
/// [`join`](Queue::join) waits until every item has been processed.
/// [`shutdown`](Queue::shutdown) (Python 3.13) stops new puts: gets drain
/// what is left, then fail with [`GetError::ShutDown`].
///
/// The other orders of Python's `queue` module have the same surface:
/// [`LifoQueue`](crate::LifoQueue) (newest first),
/// [`PriorityQueue`](crate::PriorityQueue) (smallest first), and
/// [`SimpleQueue`](crate::SimpleQueue) (unbounded, no task tracking).
///
/// # Examples
///
/// A producer and a consumer:
///
/// ```
/// use weft_sync::{GetError, Queue};
///
/// let q = Queue::bounded(2);
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         for i in 0..5 {
///             q.put(i).unwrap();
///         }
///         q.shutdown(false);
///     });
///     let mut got = Vec::new();
///     loop {
///         match q.get() {
///             Ok(v) => {
///                 got.push(v);
///                 q.task_done().unwrap();
///             }
///             Err(GetError::ShutDown) => break,
///             Err(e) => panic!("{e}"),
///         }
///     }
///     assert_eq!(got, vec![0, 1, 2, 3, 4]);
/// });
/// q.join();
/// ```
pub struct Queue<T> {
    core: Core<T, FifoStore<T>, true>,
}

impl<T> Queue<T> {
    /// A queue with no size limit.
    pub fn unbounded() -> Queue<T> {
        Queue {
            core: Core::new(FifoStore::unbounded()),
        }
    }

    /// A queue holding at most `capacity` items; `put` waits for room.
    ///
    /// Any capacity works, up to `usize::MAX`: up to 65 536 items the
    /// queue's slots are allocated at once; a larger queue allocates as it
    /// fills.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0. (Python treats `maxsize <= 0` as unbounded; weft
    /// makes you say so with [`Queue::unbounded`].)
    pub fn bounded(capacity: usize) -> Queue<T> {
        assert!(
            capacity > 0,
            "a bounded Queue needs a capacity of at least 1; use Queue::unbounded() for no limit"
        );
        Queue {
            core: Core::new(FifoStore::bounded(capacity)),
        }
    }

    /// The capacity, or `None` when unbounded (Python's `maxsize`).
    pub fn capacity(&self) -> Option<usize> {
        self.core.capacity()
    }

    /// How many items are in the queue now (Python's `qsize()`).
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the queue holds no items now (Python's `empty()`).
    pub fn is_empty(&self) -> bool {
        self.core.is_empty()
    }

    /// Whether a bounded queue is at capacity now (Python's `full()`).
    pub fn is_full(&self) -> bool {
        self.core.is_full()
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.core.is_shut_down()
    }

    /// Puts `item` at the back, waiting for room if the queue is bounded and
    /// full.
    ///
    /// # Errors
    ///
    /// [`PutError::ShutDown`] (with the item) if the queue is shut down.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.core.put(item)
    }

    /// Puts `item` if there is room right now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] or [`PutError::ShutDown`], with the item.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.core.push(item)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] if there was still no room at the deadline, or
    /// [`PutError::ShutDown`]; both hand the item back.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.core.put_timeout(item, timeout)
    }

    /// Puts `item` without blocking the thread, waiting for room if needed.
    /// If the future is dropped before the item goes in, the item is
    /// dropped with it.
    pub fn put_async(&self, item: T) -> PutFuture<'_, T> {
        PutFuture {
            wait: EventWait::new(&self.core.not_full, (self, Some(item)), |(q, item), _| {
                q.core.try_push_slot(item)
            }),
        }
    }

    /// Removes and returns the item at the front, waiting for one.
    ///
    /// # Errors
    ///
    /// [`GetError::ShutDown`] once the queue is shut down and empty.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get(&self) -> Result<T, GetError> {
        self.core.get()
    }

    /// Removes the front item if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`], or [`GetError::ShutDown`] once shut down and empty.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.core.pop()
    }

    /// Removes the front item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`] if none arrived in time, or [`GetError::ShutDown`].
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.core.get_timeout(timeout)
    }

    /// Removes the front item without blocking the thread, waiting for one.
    /// Cancel-safe: if the future is dropped, no item is lost.
    ///
    /// ```
    /// use weft_sync::Queue;
    /// let q = Queue::unbounded();
    /// q.put("hello").unwrap();
    /// let v = futures_lite::future::block_on(q.get_async());
    /// assert_eq!(v, Ok("hello"));
    /// ```
    pub fn get_async(&self) -> GetFuture<'_, T> {
        GetFuture {
            wait: EventWait::new(&self.core.not_empty, self, |q, _| q.core.try_pop_slot()),
        }
    }

    /// Marks one item taken from the queue as processed (Python's
    /// `task_done()`); when every item put has been marked, [`join`](Self::join)
    /// returns.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if called more times than items were put.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        self.core.task_done()
    }

    /// How many items have been put and not yet marked done.
    pub fn unfinished_tasks(&self) -> usize {
        self.core.unfinished_tasks()
    }

    /// Blocks until every item put has been marked done with
    /// [`task_done`](Self::task_done) (Python's `join()`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join(&self) {
        self.core.join();
    }

    /// As [`join`](Self::join), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Timeout`] if items were still unfinished at the deadline.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        self.core.join_timeout(timeout)
    }

    /// The async form of [`join`](Self::join).
    pub async fn join_async(&self) {
        self.core.join_async().await
    }

    /// Shuts the queue down (Python 3.13's `shutdown`): every later put
    /// fails with [`PutError::ShutDown`], and blocked putters and getters
    /// wake up. Gets drain the items left and then fail with
    /// [`GetError::ShutDown`]. With `immediate`, the items left are
    /// discarded at once (each counted as done, which may release
    /// [`join`](Self::join)) and gets fail straight away.
    ///
    /// ```
    /// use weft_sync::{GetError, PutError, Queue};
    /// let q = Queue::unbounded();
    /// q.put(1).unwrap();
    /// q.shutdown(false);
    /// assert!(matches!(q.put(2), Err(PutError::ShutDown(2))));
    /// assert_eq!(q.get(), Ok(1));
    /// assert_eq!(q.get(), Err(GetError::ShutDown));
    /// ```
    ///
    /// The unfinished-task count never goes below zero: items that were
    /// already marked done with [`task_done`](Self::task_done) before they
    /// were taken are discarded without counting them twice.
    ///
    /// # Panics
    ///
    /// With `immediate`, if dropping a discarded item panics, the panic is
    /// resumed on this thread, but only once the shutdown is complete: the
    /// other items are still dropped, the count settled and every waiter
    /// woken. (The first panic is resumed; any others are discarded.)
    pub fn shutdown(&self, immediate: bool) {
        self.core.shutdown(immediate);
    }
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue::unbounded()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("unfinished_tasks", &self.unfinished_tasks())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

/// A put in progress: the queue and the item not yet in it.
pub(crate) type PutSlot<'a, T, Q> = (&'a Q, Option<T>);

/// The future returned by `put_async` on [`Queue`] (and, with `Q` naming
/// the queue, on [`LifoQueue`](crate::LifoQueue) and
/// [`PriorityQueue`](crate::PriorityQueue)).
///
/// Dropping it before the item goes in drops the item with it.
#[must_use = "futures do nothing unless awaited"]
pub struct PutFuture<'a, T, Q = Queue<T>> {
    pub(crate) wait: EventWait<'a, PutSlot<'a, T, Q>, Result<(), PutError<T>>>,
}

impl<T, Q> Future for PutFuture<'_, T, Q> {
    type Output = Result<(), PutError<T>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.wait).poll(cx)
    }
}

impl<T, Q> fmt::Debug for PutFuture<'_, T, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutFuture").finish_non_exhaustive()
    }
}

/// The future returned by `get_async` on [`Queue`] (and, with `Q` naming
/// the queue, on [`LifoQueue`](crate::LifoQueue),
/// [`PriorityQueue`](crate::PriorityQueue) and
/// [`SimpleQueue`](crate::SimpleQueue)).
///
/// Cancel-safe: dropping it never loses an item.
#[must_use = "futures do nothing unless awaited"]
pub struct GetFuture<'a, T, Q = Queue<T>> {
    pub(crate) wait: EventWait<'a, &'a Q, Result<T, GetError>>,
}

impl<T, Q> Future for GetFuture<'_, T, Q> {
    type Output = Result<T, GetError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.wait).poll(cx)
    }
}

impl<T, Q> fmt::Debug for GetFuture<'_, T, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetFuture").finish_non_exhaustive()
    }
}
