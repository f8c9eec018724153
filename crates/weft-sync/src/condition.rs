//! [`Condition`]: Python's `threading.Condition`, over a weft [`Mutex`] or
//! [`RLock`](crate::RLock).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::mutex::{Mutex, MutexGuard};
use crate::rlock::RLockGuard;
use crate::shim::{AtomicUsize, Ordering};
use crate::waker::{ThreadWaker, deadline_after};

/// A condition variable: threads and tasks wait on it, holding a
/// [`Mutex`]'s guard, until another notifies them (Python's
/// `threading.Condition`).
///
/// It works with a [`Mutex`] (`wait`, `wait_for`, ..., and the async forms)
/// or with an [`RLock`](crate::RLock), Python's default (`wait_rlock`,
/// `wait_for_rlock`, ...: the lock is released fully, whatever its depth,
/// and restored to that depth).
///
/// Waiting releases the lock and takes it again before returning. As with
/// every condition variable, wake-ups may be spurious: wait in a loop, or
/// use [`wait_for`](Condition::wait_for) with a predicate.
///
/// # Order and counting
///
/// Threads and tasks wait in one first-in, first-out queue (CPython's
/// `Condition` keeps one deque of waiters too): a waiter joins it before
/// its wait releases the lock, and `notify(n)` takes the `n` oldest
/// waiters present at that moment off it (fewer if fewer wait), whichever
/// kind they are, never a waiter that starts waiting afterwards;
/// `notify_all` takes all of them. Each notification is counted once:
///
/// - A timed wait whose time runs out just as it is notified returns
///   `true` if the notification took it off the queue first (the
///   notification is its own), and `false` only if it left the queue
///   first, in which case the notification goes to the next waiter.
///   (CPython can return `False` from a wait whose notification it
///   consumed; weft never does.)
/// - A task whose [`wait_async`](Condition::wait_async) future is dropped
///   before it was notified leaves the queue; one dropped after it was
///   notified, before it returned, passes the notification to the oldest
///   waiter then present.
///
/// Notifying with nobody waiting takes no lock. Waiters are woken after
/// the queue's lock is released, and a woken thread needs nothing more of
/// the queue (a flag of its own says it was notified), so it never waits
/// for its notifier (two threads handing a flag back and forth make about
/// 2 futex calls per round trip, as with parking_lot's `Condvar`, where an
/// event-listener wait list made 7 to 8). A waiting thread parks at once,
/// without spinning or yielding first: on a machine with more runnable
/// threads than cores, yielding hands the core to whatever else runs.
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::{Condition, Mutex};
///
/// let pair = Arc::new((Mutex::new(Vec::new()), Condition::new()));
/// let consumer = {
///     let pair = pair.clone();
///     std::thread::spawn(move || {
///         let (items, cond) = &*pair;
///         let mut items = items.lock();
///         cond.wait_for(&mut items, |items| !items.is_empty());
///         items.pop().unwrap()
///     })
/// };
/// let (items, cond) = &*pair;
/// items.lock().push("work");
/// cond.notify_one();
/// assert_eq!(consumer.join().unwrap(), "work");
/// ```
pub struct Condition {
    /// The waiters, oldest first: threads and tasks in one queue.
    waiters: crate::shim::Mutex<Waiters>,
    /// `waiters.queue.len()`, stored under the lock and read without it,
    /// so that a notification with nobody waiting takes no lock.
    len: AtomicUsize,
}

/// The wait queue of a [`Condition`].
struct Waiters {
    /// Oldest first; ids increase from front to back.
    queue: VecDeque<Waiter>,
    /// The id the next waiter gets.
    next_id: u64,
}

/// A thread or task waiting on a [`Condition`]: a waiter that is no longer
/// in the queue has been notified (removed by `notify`).
struct Waiter {
    id: u64,
    /// A thread's [`ThreadWaker`] (sets its flag, then unparks it) or a
    /// task's waker.
    waker: Waker,
}

/// How many waiters one turn of `notify` takes off the queue before it
/// releases the queue's lock and wakes them.
const WAKE_BATCH: usize = 8;

impl Condition {
    crate::shim::const_unless_loom! {
        /// A new condition variable.
        pub fn new() -> Condition {
            Condition {
                waiters: crate::shim::Mutex::new(Waiters {
                    queue: VecDeque::new(),
                    next_id: 0,
                }),
                len: AtomicUsize::new(0),
            }
        }
    }

    /// Releases the guard's mutex, blocks until notified, and locks it again.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        // In the queue before the mutex is released: a notifier that takes
        // the mutex after this thread released it finds this thread there.
        let waiting = ThreadWait::register(self);
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        MutexGuard::unlocked(guard, || {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            waiting.park(None)
        });
    }

    /// As [`wait`](Self::wait), giving up after `timeout`. Returns `false` if
    /// the time ran out without a notification (Python returns `False` too).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
    ) -> bool {
        match deadline_after(timeout) {
            Some(deadline) => self.wait_until(guard, deadline),
            None => {
                self.wait(guard);
                true
            }
        }
    }

    /// As [`wait`](Self::wait), giving up at `deadline`.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_until<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>, deadline: Instant) -> bool {
        let waiting = ThreadWait::register(self);
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        MutexGuard::unlocked(guard, || {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            waiting.park(Some(deadline))
        })
    }

    /// Waits until `predicate` returns `true` for the guarded value (Python's
    /// `wait_for`). Returns at once if it already does.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_for<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) {
        while !predicate(guard) {
            self.wait(guard);
        }
    }

    /// As [`wait_for`](Self::wait_for), giving up after `timeout`. Returns the
    /// predicate's last value.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_for_timeout<T: ?Sized>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout: Duration,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) -> bool {
        let deadline = deadline_after(timeout);
        loop {
            if predicate(guard) {
                return true;
            }
            match deadline {
                None => self.wait(guard),
                Some(d) => {
                    if !self.wait_until(guard, d) {
                        return predicate(guard);
                    }
                }
            }
        }
    }

    /// The async form of [`wait`](Self::wait): takes the guard, waits
    /// without blocking the thread, and returns the guard re-locked.
    ///
    /// Dropping the future while it waits leaves the mutex unlocked, and
    /// loses no notification: a future dropped after it was notified (while
    /// it still waits for the notification to be seen, or for the mutex)
    /// passes the notification on to another waiter, as tokio's `Notify`
    /// and Python's `asyncio.Condition` do. That waiter may then wake to
    /// find nothing to do, which every condition-variable loop allows.
    ///
    /// ```
    /// use weft_sync::{Condition, Mutex};
    /// let (m, c) = (Mutex::new(false), Condition::new());
    /// std::thread::scope(|s| {
    ///     s.spawn(|| futures_lite::future::block_on(async {
    ///         let mut ready = m.lock_async().await;
    ///         while !*ready {
    ///             ready = c.wait_async(ready).await;
    ///         }
    ///     }));
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    ///     *m.lock() = true;
    ///     c.notify_all();
    /// });
    /// ```
    pub async fn wait_async<'a, T: ?Sized>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        let mutex: &'a Mutex<T> = MutexGuard::mutex(&guard);
        // Queued before the mutex is released, as a thread is; the real
        // waker replaces the no-op one at the first poll.
        let notified = Notified {
            cond: self,
            id: self.register(Waker::noop().clone()),
            done: false,
        };
        drop(guard);
        // Dropped here, a notified waiter passes its notification on.
        notified.await;
        // Notified: from here until the mutex is ours again, a drop must
        // hand the notification to another waiter, or it would be lost.
        let pass_on = PassOn(Some(self));
        let guard = mutex.lock_async().await;
        pass_on.disarm();
        guard
    }

    /// The async form of [`wait_for`](Self::wait_for).
    pub async fn wait_for_async<'a, T: ?Sized>(
        &self,
        mut guard: MutexGuard<'a, T>,
        mut predicate: impl FnMut(&mut T) -> bool,
    ) -> MutexGuard<'a, T> {
        while !predicate(&mut guard) {
            guard = self.wait_async(guard).await;
        }
        guard
    }

    /// Releases the guard's [`RLock`](crate::RLock) fully, whatever its depth (the thread
    /// may hold it several times, through several guards), blocks until
    /// notified, and takes it back at the same depth: Python's
    /// `Condition(RLock())` (CPython's `_release_save` and
    /// `_acquire_restore`). While this thread waits, other threads may take
    /// the lock.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use weft_sync::{Condition, RLock};
    ///
    /// let (lock, cond) = (RLock::new(Cell::new(false)), Condition::new());
    /// std::thread::scope(|s| {
    ///     let outer = lock.lock();
    ///     let mut inner = lock.lock(); // depth 2
    ///     s.spawn(|| {
    ///         lock.lock().set(true); // possible only while the waiter waits
    ///         cond.notify_all();
    ///     });
    ///     while !inner.get() {
    ///         cond.wait_rlock(&mut inner);
    ///     }
    ///     assert_eq!(lock.depth(), 2); // restored
    ///     drop(outer);
    /// });
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_rlock<T: ?Sized>(&self, guard: &mut RLockGuard<'_, T>) {
        let waiting = ThreadWait::register(self);
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        RLockGuard::rlock(guard).unlocked_fully(|| {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            waiting.park(None)
        });
    }

    /// As [`wait_rlock`](Self::wait_rlock), giving up after `timeout`.
    /// Returns `false` if the time ran out without a notification.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{Condition, RLock};
    /// let (lock, cond) = (RLock::new(()), Condition::new());
    /// let mut guard = lock.lock();
    /// assert!(!cond.wait_rlock_timeout(&mut guard, Duration::from_millis(5)));
    /// assert!(lock.is_owned_by_current_thread());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_rlock_timeout<T: ?Sized>(
        &self,
        guard: &mut RLockGuard<'_, T>,
        timeout: Duration,
    ) -> bool {
        match deadline_after(timeout) {
            Some(deadline) => self.wait_rlock_until(guard, deadline),
            None => {
                self.wait_rlock(guard);
                true
            }
        }
    }

    /// As [`wait_rlock`](Self::wait_rlock), giving up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use weft_sync::{Condition, RLock};
    /// let (lock, cond) = (RLock::new(()), Condition::new());
    /// let mut guard = lock.lock();
    /// let deadline = Instant::now() + Duration::from_millis(5);
    /// assert!(!cond.wait_rlock_until(&mut guard, deadline));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_rlock_until<T: ?Sized>(
        &self,
        guard: &mut RLockGuard<'_, T>,
        deadline: Instant,
    ) -> bool {
        let waiting = ThreadWait::register(self);
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        RLockGuard::rlock(guard).unlocked_fully(|| {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            waiting.park(Some(deadline))
        })
    }

    /// Waits with an [`RLock`](crate::RLock) held until `predicate` holds for the guarded
    /// value (Python's `wait_for` on a `Condition(RLock())`). Returns at
    /// once if it already does.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use weft_sync::{Condition, RLock};
    /// let (lock, cond) = (RLock::new(AtomicBool::new(false)), Condition::new());
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         lock.lock().store(true, Ordering::Relaxed);
    ///         cond.notify_all();
    ///     });
    ///     let mut guard = lock.lock();
    ///     cond.wait_for_rlock(&mut guard, |ready| ready.load(Ordering::Relaxed));
    /// });
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_for_rlock<T: ?Sized>(
        &self,
        guard: &mut RLockGuard<'_, T>,
        mut predicate: impl FnMut(&T) -> bool,
    ) {
        while !predicate(guard) {
            self.wait_rlock(guard);
        }
    }

    /// As [`wait_for_rlock`](Self::wait_for_rlock), giving up after
    /// `timeout`. Returns the predicate's last value.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{Condition, RLock};
    /// let (lock, cond) = (RLock::new(0), Condition::new());
    /// let mut guard = lock.lock();
    /// assert!(!cond.wait_for_rlock_timeout(&mut guard, Duration::from_millis(5), |n| *n > 0));
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_for_rlock_timeout<T: ?Sized>(
        &self,
        guard: &mut RLockGuard<'_, T>,
        timeout: Duration,
        mut predicate: impl FnMut(&T) -> bool,
    ) -> bool {
        let deadline = deadline_after(timeout);
        loop {
            if predicate(guard) {
                return true;
            }
            match deadline {
                None => self.wait_rlock(guard),
                Some(d) => {
                    if !self.wait_rlock_until(guard, d) {
                        return predicate(guard);
                    }
                }
            }
        }
    }

    /// Wakes the oldest waiter, if any.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes the `n` oldest of the current waiters, threads and tasks alike
    /// (fewer if fewer wait): Python's `notify(n)`.
    pub fn notify(&self, n: usize) {
        // No lock when nobody waits. A waiter joins the queue before it
        // releases the mutex, so a notifier that took the mutex after it
        // (as a notifier must, to have changed what the waiter waits for)
        // sees its `len` store.
        if n == 0 || self.len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut left = n;
        // Only the waiters present at the first look: a notification never
        // reaches a waiter that arrives while the batches are woken.
        let mut limit = None;
        loop {
            let mut batch: [Option<Waker>; WAKE_BATCH] = Default::default();
            let mut taken = 0;
            {
                let mut w = self.waiters.lock();
                let limit = *limit.get_or_insert(w.next_id);
                while taken < WAKE_BATCH && left > 0 {
                    match w.queue.front() {
                        Some(first) if first.id < limit => {
                            batch[taken] = w.queue.pop_front().map(|waiter| waiter.waker);
                            taken += 1;
                            left -= 1;
                        }
                        _ => break,
                    }
                }
                self.len.store(w.queue.len(), Ordering::Relaxed);
            }
            // Woken outside the lock: a woken thread needs nothing of the
            // queue (its own flag says it was notified), and a woken task
            // that polls at once finds the lock free.
            for waker in batch.into_iter().flatten() {
                waker.wake();
            }
            if taken < WAKE_BATCH || left == 0 {
                return;
            }
        }
    }

    /// Wakes every current waiter.
    pub fn notify_all(&self) {
        self.notify(usize::MAX);
    }

    /// Queues a waiter; returns its id.
    fn register(&self, waker: Waker) -> u64 {
        let mut w = self.waiters.lock();
        let id = w.next_id;
        w.next_id += 1;
        w.queue.push_back(Waiter { id, waker });
        self.len.store(w.queue.len(), Ordering::Relaxed);
        id
    }

    /// Takes waiter `id` off the queue if it is still there (it timed out
    /// or was cancelled). Returns `false` if it was not: a notification
    /// took it off first, and the waiter holds that notification.
    fn withdraw(&self, id: u64) -> bool {
        let mut w = self.waiters.lock();
        match w.queue.binary_search_by_key(&id, |waiter| waiter.id) {
            Ok(i) => {
                w.queue.remove(i);
                self.len.store(w.queue.len(), Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether waiter `id` still waits; if so, `waker` will wake it.
    fn still_waiting(&self, id: u64, waker: &Waker) -> bool {
        let mut w = self.waiters.lock();
        match w.queue.binary_search_by_key(&id, |waiter| waiter.id) {
            Ok(i) => {
                w.queue[i].waker.clone_from(waker);
                true
            }
            Err(_) => false,
        }
    }
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

/// A thread's place in a [`Condition`]'s queue, from before it releases
/// the lock until it has been notified or has withdrawn.
///
/// Dropped without [`park`](ThreadWait::park) having returned (a panic in
/// between, as from a deadlock hook), it withdraws, passing on a
/// notification it had already received.
struct ThreadWait<'a> {
    cond: &'a Condition,
    id: u64,
    thread: Arc<ThreadWaker>,
    done: bool,
}

impl<'a> ThreadWait<'a> {
    fn register(cond: &'a Condition) -> ThreadWait<'a> {
        let (thread, waker) = ThreadWaker::current();
        let id = cond.register(waker);
        ThreadWait {
            cond,
            id,
            thread,
            done: false,
        }
    }

    /// Parks until notified, or until `deadline`. Returns whether it was
    /// notified: a notification that took this waiter off the queue before
    /// the time ran out counts, even if the thread sees it only after.
    fn park(mut self, deadline: Option<Instant>) -> bool {
        self.done = true;
        if self.thread.park_until(deadline) {
            return true;
        }
        // Timed out: leave the queue, unless a notification took this
        // waiter off it first; then that notification is ours (its wake-up
        // only sets a flag that nobody reads again).
        !self.cond.withdraw(self.id)
    }
}

impl Drop for ThreadWait<'_> {
    fn drop(&mut self) {
        if !self.done && !self.cond.withdraw(self.id) {
            self.cond.notify(1);
        }
    }
}

/// An async waiter's place in a [`Condition`]'s queue: ready once a
/// notification has taken it off. Dropped before that, it withdraws; dropped
/// after (before it was polled to completion), it passes the notification
/// on.
struct Notified<'a> {
    cond: &'a Condition,
    id: u64,
    done: bool,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done || !self.cond.still_waiting(self.id, cx.waker()) {
            self.done = true;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        if !self.done && !self.cond.withdraw(self.id) {
            self.cond.notify(1);
        }
    }
}

/// Notifies one more waiter when dropped armed: the notification an async
/// waiter received, given up because the waiter was cancelled.
struct PassOn<'a>(Option<&'a Condition>);

impl PassOn<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if let Some(cond) = self.0 {
            cond.notify(1);
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}
