//! [`Mutex`] and [`Lock`]: Python's `threading.Lock`, with Rust's guards.

use std::cell::UnsafeCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

#[cfg(feature = "deadlock-detection")]
use std::panic::Location;

#[cfg(feature = "deadlock-detection")]
use crate::deadlock::{self, LockId, LockNode, Primitive};
use crate::error::ReleaseError;
use crate::raw_lock::RawLock;
use crate::waiting::EventWait;
use crate::waker::deadline_after;

/// A mutual-exclusion lock protecting a `T`, that threads and async tasks can
/// wait on alike.
///
/// `lock` blocks a thread, `try_lock_for` blocks with a time limit, and
/// `lock_async().await` waits in any executor without blocking its thread.
/// Each gives a [`MutexGuard`] that unlocks when dropped. Unlocking with no
/// waiters is a single atomic operation, as in parking_lot.
///
/// There is no poisoning: a panic while the lock is held unlocks it, as
/// parking_lot does.
///
/// # Examples
///
/// Python's lost-update race, fixed:
///
/// ```
/// use std::sync::Arc;
/// use weft_sync::Mutex;
///
/// let counter = Arc::new(Mutex::new(0));
/// let threads: Vec<_> = (0..4)
///     .map(|_| {
///         let counter = counter.clone();
///         std::thread::spawn(move || {
///             for _ in 0..1000 {
///                 *counter.lock() += 1;
///             }
///         })
///     })
///     .collect();
/// for t in threads {
///     t.join().unwrap();
/// }
/// assert_eq!(*counter.lock(), 4000);
/// ```
pub struct Mutex<T: ?Sized> {
    raw: RawLock,
    #[cfg(feature = "deadlock-detection")]
    node: LockNode,
    data: UnsafeCell<T>,
}

/// Python's `threading.Lock`: a [`Mutex`] that guards nothing and may also be
/// acquired and released explicitly, by different threads.
///
/// ```
/// use weft_sync::{Lock, ReleaseError};
///
/// let lock = Lock::new(());
/// lock.acquire();
/// assert!(lock.locked());
/// // Any thread may release it, as in Python.
/// std::thread::scope(|s| {
///     s.spawn(|| lock.release().unwrap());
/// });
/// assert!(!lock.locked());
/// assert_eq!(lock.release(), Err(ReleaseError::NotLocked));
/// ```
pub type Lock = Mutex<()>;

// SAFETY: the mutex hands out access to `T` to one holder at a time, so it
// can be sent and shared across threads when `T` can be sent.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}
// SAFETY: as above; `&Mutex<T>` only gives access to `T` through the lock.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    crate::shim::const_unless_loom! {
        /// A new, unlocked mutex holding `value`.
        pub fn new(value: T) -> Mutex<T> {
            Mutex {
                raw: RawLock::new(),
                #[cfg(feature = "deadlock-detection")]
                node: LockNode::new(),
                data: UnsafeCell::new(value),
            }
        }
    }

    /// Consumes the mutex and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks the current thread until the lock is acquired.
    ///
    /// Locking a `Mutex` the same thread already holds deadlocks (use
    /// [`RLock`](crate::RLock) for reentrancy).
    ///
    /// With the `deadlock-detection` feature, that relock, and a lock-order
    /// inversion, are reported instead (see the `deadlock` module).
    #[inline]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(feature = "deadlock-detection")]
        self.lock_tracked(None, false, Primitive::Mutex, Location::caller());
        #[cfg(not(feature = "deadlock-detection"))]
        self.raw.lock();
        self.guard()
    }

    /// Acquires the lock if it is free right now.
    #[inline]
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(feature = "deadlock-detection")]
        let locked =
            deadlock::try_lock_raw(&self.raw, &self.node, Primitive::Mutex, Location::caller());
        #[cfg(not(feature = "deadlock-detection"))]
        let locked = self.raw.try_lock();
        locked.then(|| self.guard())
    }

    /// Waits at most `timeout` for the lock.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<MutexGuard<'_, T>> {
        #[cfg(feature = "deadlock-detection")]
        let locked = self.lock_tracked(
            deadline_after(timeout),
            true,
            Primitive::Mutex,
            Location::caller(),
        );
        #[cfg(not(feature = "deadlock-detection"))]
        let locked = self.raw.lock_until(deadline_after(timeout));
        locked.then(|| self.guard())
    }

    /// Waits until `deadline` at most for the lock.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_lock_until(&self, deadline: Instant) -> Option<MutexGuard<'_, T>> {
        #[cfg(feature = "deadlock-detection")]
        let locked = self.lock_tracked(Some(deadline), true, Primitive::Mutex, Location::caller());
        #[cfg(not(feature = "deadlock-detection"))]
        let locked = self.raw.lock_until(Some(deadline));
        locked.then(|| self.guard())
    }

    /// A tracked blocking or timed acquisition.
    #[cfg(feature = "deadlock-detection")]
    fn lock_tracked(
        &self,
        deadline: Option<Instant>,
        timed: bool,
        primitive: Primitive,
        site: &'static Location<'static>,
    ) -> bool {
        deadlock::lock_raw(&self.raw, &self.node, deadline, timed, primitive, site)
    }

    /// This lock's node in the lock-order graph, as named in deadlock
    /// reports (feature `deadlock-detection`).
    #[cfg(feature = "deadlock-detection")]
    pub fn lock_id(&self) -> LockId {
        self.node.lock_id()
    }

    /// Unlocks, keeping the held-lock bookkeeping right.
    #[inline]
    fn unlock(&self) {
        #[cfg(feature = "deadlock-detection")]
        deadlock::released(&self.node);
        self.raw.unlock();
    }

    /// Waits for the lock without blocking the thread; usable from any
    /// executor. Dropping the future before it completes gives up the wait
    /// and never leaves the lock held.
    ///
    /// ```
    /// use weft_sync::Mutex;
    /// let m = Mutex::new(vec![1]);
    /// futures_lite::future::block_on(async {
    ///     m.lock_async().await.push(2);
    /// });
    /// assert_eq!(m.into_inner(), vec![1, 2]);
    /// ```
    pub fn lock_async(&self) -> MutexLockFuture<'_, T> {
        MutexLockFuture {
            wait: EventWait::new(self.raw.event(), self, |m, contended| {
                m.raw.try_lock_async(contended).then_some(())
            }),
        }
    }

    /// Whether the lock is held by anyone right now.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Mutable access without locking: `&mut self` proves no one else has it.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    #[inline]
    fn guard(&self) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            _marker: PhantomData,
        }
    }
}

impl Mutex<()> {
    /// Blocks until the lock is acquired, with no guard: release it with
    /// [`release`](Self::release), from any thread (Python's `acquire()`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire(&self) {
        #[cfg(feature = "deadlock-detection")]
        self.lock_tracked(None, false, Primitive::Lock, Location::caller());
        #[cfg(not(feature = "deadlock-detection"))]
        self.raw.lock();
    }

    /// Acquires the lock if it is free right now (Python's
    /// `acquire(blocking=False)`); returns whether it did.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_acquire(&self) -> bool {
        #[cfg(feature = "deadlock-detection")]
        return deadlock::try_lock_raw(&self.raw, &self.node, Primitive::Lock, Location::caller());
        #[cfg(not(feature = "deadlock-detection"))]
        self.raw.try_lock()
    }

    /// Waits at most `timeout` to acquire the lock (Python's
    /// `acquire(timeout=t)`); returns whether it did.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        #[cfg(feature = "deadlock-detection")]
        return self.lock_tracked(
            deadline_after(timeout),
            true,
            Primitive::Lock,
            Location::caller(),
        );
        #[cfg(not(feature = "deadlock-detection"))]
        self.raw.lock_until(deadline_after(timeout))
    }

    /// Acquires the lock from async code, with no guard.
    pub async fn acquire_async(&self) {
        self.lock_async().await.leak();
    }

    /// Releases the lock, whoever acquired it (Python's `release()`).
    ///
    /// # Errors
    ///
    /// [`ReleaseError::NotLocked`] if the lock is not held.
    pub fn release(&self) -> Result<(), ReleaseError> {
        #[cfg(feature = "deadlock-detection")]
        deadlock::released(&self.node);
        if self.raw.try_unlock() {
            Ok(())
        } else {
            Err(ReleaseError::NotLocked)
        }
    }

    /// Whether the lock is held (Python's `locked()`).
    pub fn locked(&self) -> bool {
        self.raw.is_locked()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Access to the value in a [`Mutex`]; unlocks when dropped.
///
/// The guard may be held across `.await` points and sent to another thread
/// when `T: Send`, so it works in multi-threaded executors.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    // Makes the guard Send/Sync exactly as `&mut T` is.
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// The mutex this guard locks.
    pub fn mutex(guard: &Self) -> &'a Mutex<T> {
        guard.mutex
    }

    /// Unlocks the mutex while `f` runs, then locks it again.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn unlocked<R>(guard: &mut Self, f: impl FnOnce() -> R) -> R {
        struct Relock<'b, T: ?Sized> {
            mutex: &'b Mutex<T>,
            #[cfg(feature = "deadlock-detection")]
            site: &'static Location<'static>,
        }
        impl<T: ?Sized> Drop for Relock<'_, T> {
            fn drop(&mut self) {
                #[cfg(feature = "deadlock-detection")]
                self.relock_tracked();
                #[cfg(not(feature = "deadlock-detection"))]
                self.mutex.raw.lock();
            }
        }
        #[cfg(feature = "deadlock-detection")]
        impl<T: ?Sized> Relock<'_, T> {
            fn relock_tracked(&self) {
                if std::thread::panicking() {
                    // No report while unwinding: a panicking hook would abort.
                    self.mutex.raw.lock();
                    deadlock::held(&self.mutex.node, Primitive::Mutex, self.site);
                    return;
                }
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.mutex
                        .lock_tracked(None, false, Primitive::Mutex, self.site)
                }));
                if let Err(payload) = checked {
                    // The hook panicked before the lock was taken back; the
                    // guard still unlocks it when dropped, so take it first.
                    self.mutex.raw.lock();
                    deadlock::held(&self.mutex.node, Primitive::Mutex, self.site);
                    std::panic::resume_unwind(payload);
                }
            }
        }
        guard.mutex.unlock();
        let _relock = Relock {
            mutex: guard.mutex,
            #[cfg(feature = "deadlock-detection")]
            site: Location::caller(),
        };
        f()
    }

    /// Forgets the guard, leaving the mutex locked.
    fn leak(self) {
        std::mem::forget(self);
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no one else has
        // access to the data.
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, and `&mut self` proves
        // this is the only access through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// The future returned by [`Mutex::lock_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct MutexLockFuture<'a, T: ?Sized> {
    wait: EventWait<'a, &'a Mutex<T>, ()>,
}

impl<'a, T: ?Sized> Future for MutexLockFuture<'a, T> {
    type Output = MutexGuard<'a, T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let mutex = *self.wait.ctx();
        Pin::new(&mut self.wait).poll(cx).map(|()| mutex.guard())
    }
}

impl<T: ?Sized> fmt::Debug for MutexLockFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexLockFuture").finish_non_exhaustive()
    }
}
