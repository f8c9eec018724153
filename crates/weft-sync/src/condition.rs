//! [`Condition`]: Python's `threading.Condition`, over a weft [`Mutex`] or
//! [`RLock`](crate::RLock).

use std::fmt;
use std::time::{Duration, Instant};

use event_listener::{Event, IntoNotification, Listener};

use crate::mutex::{Mutex, MutexGuard};
use crate::rlock::RLockGuard;
use crate::waker::deadline_after;

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
/// use [`wait_for`](Condition::wait_for) with a predicate. `notify(n)` wakes
/// exactly `n` of the waiters present at that moment (fewer if fewer wait),
/// never a waiter that starts waiting afterwards.
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
#[derive(Default)]
pub struct Condition {
    event: Event,
}

impl Condition {
    crate::shim::const_unless_loom! {
        /// A new condition variable.
        pub fn new() -> Condition {
            Condition {
                event: Event::new(),
            }
        }
    }

    /// Releases the guard's mutex, blocks until notified, and locks it again.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait<T: ?Sized>(&self, guard: &mut MutexGuard<'_, T>) {
        let listener = self.event.listen();
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        MutexGuard::unlocked(guard, || {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            listener.wait()
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
        let listener = self.event.listen();
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        MutexGuard::unlocked(guard, || {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            listener.wait_deadline(deadline).is_some()
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
        let listener = self.event.listen();
        drop(guard);
        // Dropped here, a notified listener passes its notification on.
        listener.await;
        // Notified: from here until the mutex is ours again, a drop must
        // hand the notification to another waiter, or it would be lost.
        let pass_on = PassOn(Some(&self.event));
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
        let listener = self.event.listen();
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        RLockGuard::rlock(guard).unlocked_fully(|| {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            listener.wait()
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
        let listener = self.event.listen();
        #[cfg(feature = "deadlock-detection")]
        let site = std::panic::Location::caller();
        RLockGuard::rlock(guard).unlocked_fully(|| {
            #[cfg(feature = "deadlock-detection")]
            let _wait = crate::deadlock::wait_begins(crate::deadlock::Primitive::Condition, site);
            listener.wait_deadline(deadline).is_some()
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

    /// Wakes one waiter, if any.
    pub fn notify_one(&self) {
        self.notify(1);
    }

    /// Wakes up to `n` of the current waiters (Python's `notify(n)`).
    pub fn notify(&self, n: usize) {
        self.event.notify(n.additional());
    }

    /// Wakes every current waiter.
    pub fn notify_all(&self) {
        self.event.notify(usize::MAX);
    }
}

/// Notifies one more waiter when dropped armed: the notification an async
/// waiter received, given up because the waiter was cancelled.
struct PassOn<'a>(Option<&'a Event>);

impl PassOn<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for PassOn<'_> {
    fn drop(&mut self) {
        if let Some(event) = self.0 {
            event.notify(1.additional());
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition").finish_non_exhaustive()
    }
}
