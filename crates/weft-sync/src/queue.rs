//! [`Queue`]: Python's `queue.Queue` (with 3.13's `shutdown`), shared by
//! threads and async tasks.

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
    items: ConcurrentQueue<T>,
    /// Notified when an item arrives (or on shutdown): wakes getters.
    not_empty: WaitList,
    /// Notified when an item leaves (or on shutdown): wakes putters.
    not_full: WaitList,
    /// Notified when the unfinished count reaches zero: wakes `join`.
    all_done: WaitList,
    /// Written by every put (and `task_done`): on a cache line of its own,
    /// so that the putter's increments do not evict the fields every get
    /// reads (the wait lists' counts) from the getter's cache.
    unfinished: CachePadded<AtomicUsize>,
    shut_down: AtomicBool,
    /// For a bounded queue too large to preallocate: the capacity, enforced
    /// by `reserved` over an unbounded ring (`items`). `None` otherwise.
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

impl<T> Queue<T> {
    /// A queue with no size limit.
    pub fn unbounded() -> Queue<T> {
        Queue::with(ConcurrentQueue::unbounded())
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
        if capacity > PREALLOCATED_CAPACITY {
            Queue {
                large_bound: Some(capacity),
                ..Queue::with(ConcurrentQueue::unbounded())
            }
        } else {
            Queue::with(ConcurrentQueue::bounded(capacity))
        }
    }

    fn with(items: ConcurrentQueue<T>) -> Queue<T> {
        Queue {
            items,
            not_empty: WaitList::new(),
            not_full: WaitList::new(),
            all_done: WaitList::new(),
            unfinished: CachePadded::new(AtomicUsize::new(0)),
            shut_down: AtomicBool::new(false),
            large_bound: None,
            reserved: AtomicUsize::new(0),
        }
    }

    /// The capacity, or `None` when unbounded (Python's `maxsize`).
    pub fn capacity(&self) -> Option<usize> {
        self.large_bound.or_else(|| self.items.capacity())
    }

    /// How many items are in the queue now (Python's `qsize()`).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the queue holds no items now (Python's `empty()`).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether a bounded queue is at capacity now (Python's `full()`).
    pub fn is_full(&self) -> bool {
        match self.large_bound {
            Some(cap) => self.reserved.load(Ordering::Acquire) >= cap,
            None => self.items.is_full(),
        }
    }

    /// With a large bound: takes a place for one item, or says why not.
    fn reserve(&self, cap: usize) -> Result<(), PushError<()>> {
        let mut n = self.reserved.load(Ordering::Acquire);
        loop {
            if self.items.is_closed() {
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
    fn unreserve(&self) {
        self.reserved.fetch_sub(1, Ordering::SeqCst);
        self.not_full.notify_additional(1);
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::Acquire)
    }

    /// One attempt at putting; gives the item back if there is no room.
    fn push(&self, item: T) -> Result<(), PutError<T>> {
        // Count the task before the item becomes visible, so that a fast
        // consumer's `task_done` can never run ahead of the count.
        self.unfinished.fetch_add(1, Ordering::AcqRel);
        let pushed = match self.large_bound {
            None => self.items.push(item),
            Some(cap) => match self.reserve(cap) {
                Ok(()) => self.items.push(item).inspect_err(|_| self.unreserve()),
                Err(PushError::Full(())) => Err(PushError::Full(item)),
                Err(PushError::Closed(())) => Err(PushError::Closed(item)),
            },
        };
        match pushed {
            // The push was a `SeqCst` compare-and-swap: no fence needed
            // before looking for waiters (see the method's comment).
            Ok(()) => {
                self.not_empty.notify_additional_after_seqcst_rmw(1);
                Ok(())
            }
            Err(e) => {
                self.finish_tasks(1);
                Err(match e {
                    PushError::Full(item) => PutError::Full(item),
                    PushError::Closed(item) => PutError::ShutDown(item),
                })
            }
        }
    }

    fn pop(&self) -> Result<T, GetError> {
        match self.items.pop() {
            Ok(item) => {
                if self.large_bound.is_some() {
                    self.unreserve();
                } else if self.items.capacity().is_some() {
                    self.not_full.notify_additional_after_seqcst_rmw(1);
                }
                Ok(item)
            }
            Err(PopError::Empty) => Err(GetError::Empty),
            Err(PopError::Closed) => Err(GetError::ShutDown),
        }
    }

    fn try_push_slot(slot: &mut PutSlot<'_, T>) -> Option<Result<(), PutError<T>>> {
        let item = slot.1.take().expect("put retried after completion");
        match slot.0.push(item) {
            Err(PutError::Full(item)) => {
                slot.1 = Some(item);
                None
            }
            done => Some(done),
        }
    }

    fn try_pop_slot(q: &mut &Queue<T>) -> Option<Result<T, GetError>> {
        match q.pop() {
            Err(GetError::Empty) => None,
            done => Some(done),
        }
    }

    /// Puts `item` at the back, waiting for room if the queue is bounded and
    /// full.
    ///
    /// # Errors
    ///
    /// [`PutError::ShutDown`] (with the item) if the queue is shut down.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        let mut slot = (self, Some(item));
        block_on!(Queue, &self.not_full, peer: &self.not_empty, None, |_| {
            Self::try_push_slot(&mut slot)
        })
        .expect("waits without a deadline")
    }

    /// Puts `item` if there is room right now (Python's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] or [`PutError::ShutDown`], with the item.
    pub fn try_put(&self, item: T) -> Result<(), PutError<T>> {
        self.push(item)
    }

    /// Puts `item`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// [`PutError::Full`] if there was still no room at the deadline, or
    /// [`PutError::ShutDown`]; both hand the item back.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        let mut slot = (self, Some(item));
        let deadline = deadline_after(timeout);
        match block_on!(Queue, &self.not_full, peer: &self.not_empty, deadline, |_| {
            Self::try_push_slot(&mut slot)
        }) {
            Some(done) => done,
            None => Err(PutError::Full(slot.1.take().expect("item kept on timeout"))),
        }
    }

    /// Puts `item` without blocking the thread, waiting for room if needed.
    /// If the future is dropped before the item goes in, the item is
    /// dropped with it.
    pub fn put_async(&self, item: T) -> PutFuture<'_, T> {
        PutFuture {
            wait: EventWait::new(&self.not_full, (self, Some(item)), |slot, _| {
                Self::try_push_slot(slot)
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
        let mut q = self;
        block_on!(Queue, &self.not_empty, peer: &self.not_full, None, |_| {
            Self::try_pop_slot(&mut q)
        })
        .expect("waits without a deadline")
    }

    /// Removes the front item if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`], or [`GetError::ShutDown`] once shut down and empty.
    pub fn try_get(&self) -> Result<T, GetError> {
        self.pop()
    }

    /// Removes the front item, waiting at most `timeout` for one.
    ///
    /// # Errors
    ///
    /// [`GetError::Empty`] if none arrived in time, or [`GetError::ShutDown`].
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        let mut q = self;
        let deadline = deadline_after(timeout);
        block_on!(Queue, &self.not_empty, peer: &self.not_full, deadline, |_| {
            Self::try_pop_slot(&mut q)
        })
        .unwrap_or(Err(GetError::Empty))
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
            wait: EventWait::new(&self.not_empty, self, |q, _| Self::try_pop_slot(q)),
        }
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

    /// Marks one item taken from the queue as processed (Python's
    /// `task_done()`); when every item put has been marked, [`join`](Self::join)
    /// returns.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] if called more times than items were put.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
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

    /// How many items have been put and not yet marked done.
    pub fn unfinished_tasks(&self) -> usize {
        self.unfinished.load(Ordering::Acquire)
    }

    fn all_finished(&self) -> Option<()> {
        (self.unfinished.load(Ordering::Acquire) == 0).then_some(())
    }

    /// Blocks until every item put has been marked done with
    /// [`task_done`](Self::task_done) (Python's `join()`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join(&self) {
        block_on!(Queue, &self.all_done, None, |_| self.all_finished());
    }

    /// As [`join`](Self::join), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`Timeout`] if items were still unfinished at the deadline.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), Timeout> {
        block_on!(Queue, &self.all_done, deadline_after(timeout), |_| {
            self.all_finished()
        })
        .ok_or(Timeout)
    }

    /// The async form of [`join`](Self::join).
    pub async fn join_async(&self) {
        EventWait::new(&self.all_done, self, |q, _| q.all_finished()).await
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
        self.shut_down.store(true, Ordering::Release);
        self.items.close();
        let mut panic = None;
        if immediate {
            let mut dropped = 0;
            while let Ok(item) = self.items.pop() {
                dropped += 1;
                if self.large_bound.is_some() {
                    self.reserved.fetch_sub(1, Ordering::SeqCst);
                }
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(item))) {
                    match panic {
                        None => panic = Some(payload),
                        Some(_) => {
                            crate::task::drop_quietly(payload);
                        }
                    }
                }
            }
            if dropped > 0 {
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
type PutSlot<'a, T> = (&'a Queue<T>, Option<T>);

/// The future returned by [`Queue::put_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct PutFuture<'a, T> {
    wait: EventWait<'a, PutSlot<'a, T>, Result<(), PutError<T>>>,
}

impl<T> Future for PutFuture<'_, T> {
    type Output = Result<(), PutError<T>>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.wait).poll(cx)
    }
}

impl<T> fmt::Debug for PutFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutFuture").finish_non_exhaustive()
    }
}

/// The future returned by [`Queue::get_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct GetFuture<'a, T> {
    wait: EventWait<'a, &'a Queue<T>, Result<T, GetError>>,
}

impl<T> Future for GetFuture<'_, T> {
    type Output = Result<T, GetError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.wait).poll(cx)
    }
}

impl<T> fmt::Debug for GetFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GetFuture").finish_non_exhaustive()
    }
}
