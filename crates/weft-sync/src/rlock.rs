//! [`RLock`]: Python's `threading.RLock`, a lock its owner may take again.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// A reentrant lock: the thread that holds it may acquire it again, and must
/// release it as many times (Python's `threading.RLock`).
///
/// It guards a `T` that it hands out by shared reference only (a reentrant
/// lock cannot give `&mut T`: the owner may hold two guards at once); put a
/// `Cell` or `RefCell` inside for mutation.
///
/// Ownership belongs to a thread. The async form,
/// [`lock_async`](RLock::lock_async), makes the thread that polls it to
/// completion the owner, and its guard is not `Send`: a future holding it
/// across an `.await` is not `Send` either, so no executor can move the task
/// to another thread while it holds the lock, and reentrancy stays sound.
/// Tasks that share a thread share that thread's ownership, as coroutines
/// sharing a Python event loop do with a `threading.RLock`: an `RLock` does
/// not keep two tasks of one thread apart. Use [`Mutex`](crate::Mutex) for
/// that.
///
/// A [`Condition`](crate::Condition) can wait with an `RLock` held at any
/// depth (Python's default `Condition` lock is an `RLock`): see
/// [`Condition::wait_rlock`](crate::Condition::wait_rlock).
///
/// ```
/// use std::cell::RefCell;
/// use weft_sync::RLock;
///
/// let log = RLock::new(RefCell::new(Vec::new()));
/// fn record(log: &RLock<RefCell<Vec<&'static str>>>, what: &'static str) {
///     log.lock().borrow_mut().push(what);
/// }
/// let outer = log.lock();
/// record(&log, "inner call takes the lock again");
/// outer.borrow_mut().push("outer");
/// drop(outer);
/// assert_eq!(log.lock().borrow().len(), 2);
/// ```
pub struct RLock<T: ?Sized = ()> {
    raw: RawLock,
    #[cfg(feature = "deadlock-detection")]
    node: LockNode,
    /// The owning thread's id, 0 when free.
    owner: AtomicUsize,
    /// Recursion depth; only touched by the owner.
    count: Cell<usize>,
    data: T,
}

// SAFETY: `count` is only accessed by the thread recorded in `owner`, while it
// holds `raw`; the data is only handed out as `&T`, so sharing needs `T: Sync`
// and sending needs `T: Send`.
unsafe impl<T: ?Sized + Send> Send for RLock<T> {}
// SAFETY: see above. Guards are `!Send`, so `&T` stays on the owner thread,
// but several threads hold `&RLock<T>`; `T: Send` suffices as for
// parking_lot's `ReentrantMutex`.
unsafe impl<T: ?Sized + Send> Sync for RLock<T> {}

/// A non-zero id unique to each live thread: the address of a thread-local.
fn thread_id() -> usize {
    thread_local!(static ID: u8 = const { 0 });
    ID.with(|id| id as *const u8 as usize)
}

impl<T> RLock<T> {
    crate::shim::const_unless_loom! {
        /// A new, unlocked reentrant lock guarding `value`.
        pub fn new(value: T) -> RLock<T> {
            RLock {
                raw: RawLock::new(),
                #[cfg(feature = "deadlock-detection")]
                node: LockNode::new(),
                owner: AtomicUsize::new(0),
                count: Cell::new(0),
                data: value,
            }
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.data
    }
}

impl<T: ?Sized> RLock<T> {
    fn owned_here(&self) -> bool {
        self.owner.load(Ordering::Relaxed) == thread_id()
    }

    /// If this thread holds the lock, takes it again.
    fn reenter(&self) -> bool {
        if self.owned_here() {
            let n = self
                .count
                .get()
                .checked_add(1)
                .expect("RLock recursion count overflowed");
            self.count.set(n);
            true
        } else {
            false
        }
    }

    fn become_owner(&self) {
        self.owner.store(thread_id(), Ordering::Relaxed);
        self.count.set(1);
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        if self.reenter() {
            return true;
        }
        #[cfg(feature = "deadlock-detection")]
        let locked = deadlock::lock_raw(
            &self.raw,
            &self.node,
            deadline,
            true, // only the timed forms come here
            Primitive::RLock,
            Location::caller(),
        );
        #[cfg(not(feature = "deadlock-detection"))]
        let locked = self.raw.lock_until(deadline);
        if locked {
            self.become_owner();
            true
        } else {
            false
        }
    }

    /// Blocks until this thread holds the lock (at once if it already does).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn lock(&self) -> RLockGuard<'_, T> {
        self.acquire();
        self.guard()
    }

    /// Takes the lock if it is free or already held by this thread.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_lock(&self) -> Option<RLockGuard<'_, T>> {
        self.try_acquire().then(|| self.guard())
    }

    /// Waits at most `timeout` for the lock.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_lock_for(&self, timeout: Duration) -> Option<RLockGuard<'_, T>> {
        self.acquire_timeout(timeout).then(|| self.guard())
    }

    /// Acquires without a guard (Python's `acquire()`); pair it with
    /// [`release`](Self::release) on the same thread.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire(&self) {
        if !self.reenter() {
            #[cfg(feature = "deadlock-detection")]
            deadlock::lock_raw(
                &self.raw,
                &self.node,
                None,
                false,
                Primitive::RLock,
                Location::caller(),
            );
            #[cfg(not(feature = "deadlock-detection"))]
            self.raw.lock();
            self.become_owner();
        }
    }

    /// Acquires if possible without waiting (Python's `acquire(blocking=False)`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn try_acquire(&self) -> bool {
        if self.reenter() {
            return true;
        }
        #[cfg(feature = "deadlock-detection")]
        let locked =
            deadlock::try_lock_raw(&self.raw, &self.node, Primitive::RLock, Location::caller());
        #[cfg(not(feature = "deadlock-detection"))]
        let locked = self.raw.try_lock();
        if locked {
            self.become_owner();
            true
        } else {
            false
        }
    }

    /// Waits at most `timeout` to acquire (Python's `acquire(timeout=t)`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.acquire_until(deadline_after(timeout))
    }

    /// Releases one level of ownership (Python's `release()`); the lock is
    /// free once every acquisition has been released.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::NotOwner`] if this thread does not hold the lock.
    ///
    /// ```
    /// use weft_sync::{RLock, ReleaseError};
    /// let lock = RLock::new(());
    /// lock.acquire();
    /// lock.acquire();
    /// lock.release().unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert_eq!(lock.release(), Err(ReleaseError::NotOwner)));
    /// });
    /// lock.release().unwrap();
    /// assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    /// ```
    pub fn release(&self) -> Result<(), ReleaseError> {
        if !self.owned_here() {
            return Err(ReleaseError::NotOwner);
        }
        let n = self.count.get() - 1;
        self.count.set(n);
        if n == 0 {
            self.owner.store(0, Ordering::Relaxed);
            #[cfg(feature = "deadlock-detection")]
            deadlock::released(&self.node);
            self.raw.unlock();
        }
        Ok(())
    }

    /// Waits for the lock without blocking the thread; usable from any
    /// executor. The thread that polls the future to completion becomes
    /// the owner (at once if it already is: reentrant). Dropping the future
    /// before it completes gives up the wait and never leaves the lock
    /// held.
    ///
    /// The guard is not `Send`, so a task holding it across an `.await`
    /// stays on its thread. Tasks of one thread share its ownership (see
    /// the [type's docs](RLock)).
    ///
    /// ```
    /// use weft_sync::RLock;
    /// let lock = RLock::new(());
    /// futures_lite::future::block_on(async {
    ///     let outer = lock.lock_async().await;
    ///     let inner = lock.lock_async().await; // reentrant: same thread
    ///     assert!(lock.is_owned_by_current_thread());
    ///     drop((inner, outer));
    /// });
    /// assert!(!lock.is_locked());
    /// ```
    ///
    /// A task that holds the guard across an `.await` is not `Send`, so a
    /// multi-threaded executor cannot move it off the owning thread:
    ///
    /// ```compile_fail
    /// fn spawn_on_any_thread<F: std::future::Future + Send>(_: F) {}
    /// let lock = weft_sync::RLock::new(());
    /// spawn_on_any_thread(async {
    ///     let _guard = lock.lock_async().await;
    ///     std::future::ready(()).await; // holds the guard across an await
    /// });
    /// ```
    pub fn lock_async(&self) -> RLockFuture<'_, T> {
        RLockFuture {
            wait: EventWait::new(self.raw.event(), self, |lock, contended| {
                lock.try_acquire_async(contended).then_some(())
            }),
        }
    }

    /// The async attempt: reenters, or takes the free lock, flagging the
    /// raw lock's async waiters once this waiter listens.
    fn try_acquire_async(&self, registered: bool) -> bool {
        if self.reenter() {
            return true;
        }
        if self.raw.try_lock_async(registered) {
            self.become_owner();
            true
        } else {
            false
        }
    }

    /// Releases every level this thread holds, runs `f`, and takes the
    /// lock back at the same depth (CPython's `_release_save` and
    /// `_acquire_restore`, around a condition wait). The lock is taken back
    /// even if `f` panics.
    ///
    /// # Panics
    ///
    /// If this thread does not hold the lock.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub(crate) fn unlocked_fully<R>(&self, f: impl FnOnce() -> R) -> R {
        assert!(
            self.owned_here(),
            "an RLock can only be released for a wait by the thread that holds it"
        );
        let depth = self.count.get();
        self.count.set(0);
        self.owner.store(0, Ordering::Relaxed);
        #[cfg(feature = "deadlock-detection")]
        deadlock::released(&self.node);
        self.raw.unlock();

        struct Restore<'b, T: ?Sized> {
            lock: &'b RLock<T>,
            depth: usize,
            #[cfg(feature = "deadlock-detection")]
            site: &'static Location<'static>,
        }
        impl<T: ?Sized> Drop for Restore<'_, T> {
            fn drop(&mut self) {
                #[cfg(feature = "deadlock-detection")]
                let hook_panic = self.relock_tracked();
                #[cfg(not(feature = "deadlock-detection"))]
                self.lock.raw.lock();
                self.lock.owner.store(thread_id(), Ordering::Relaxed);
                self.lock.count.set(self.depth);
                #[cfg(feature = "deadlock-detection")]
                if let Some(payload) = hook_panic {
                    std::panic::resume_unwind(payload);
                }
            }
        }
        #[cfg(feature = "deadlock-detection")]
        impl<T: ?Sized> Restore<'_, T> {
            /// Takes the raw lock back, tracked; a deadlock hook's panic is
            /// returned for resuming once the lock is whole again.
            fn relock_tracked(&self) -> Option<Box<dyn std::any::Any + Send>> {
                let lock = self.lock;
                if std::thread::panicking() {
                    // No report while unwinding: a panicking hook would abort.
                    lock.raw.lock();
                    deadlock::held(&lock.node, Primitive::RLock, self.site);
                    return None;
                }
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    deadlock::lock_raw(
                        &lock.raw,
                        &lock.node,
                        None,
                        false,
                        Primitive::RLock,
                        self.site,
                    )
                }));
                match checked {
                    Ok(_) => None,
                    Err(payload) => {
                        // The hook panicked before the lock was taken back;
                        // the guards still release it, so take it first.
                        lock.raw.lock();
                        deadlock::held(&lock.node, Primitive::RLock, self.site);
                        Some(payload)
                    }
                }
            }
        }
        let _restore = Restore {
            lock: self,
            depth,
            #[cfg(feature = "deadlock-detection")]
            site: Location::caller(),
        };
        f()
    }

    /// How many times the current thread holds the lock (0 if it does not).
    ///
    /// ```
    /// let lock = weft_sync::RLock::new(());
    /// let _a = lock.lock();
    /// let _b = lock.lock();
    /// assert_eq!(lock.depth(), 2);
    /// ```
    pub fn depth(&self) -> usize {
        if self.owned_here() {
            self.count.get()
        } else {
            0
        }
    }

    /// Whether any thread holds the lock.
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// This lock's node in the lock-order graph, as named in deadlock
    /// reports (feature `deadlock-detection`).
    #[cfg(feature = "deadlock-detection")]
    pub fn lock_id(&self) -> LockId {
        self.node.lock_id()
    }

    /// Whether the current thread holds the lock.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.owned_here()
    }

    /// Mutable access without locking: `&mut self` proves no one else has it.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.data
    }

    fn guard(&self) -> RLockGuard<'_, T> {
        RLockGuard {
            lock: self,
            _not_send: PhantomData,
        }
    }
}

impl<T: Default> Default for RLock<T> {
    fn default() -> Self {
        RLock::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RLock");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Shared access to the value in an [`RLock`]; releases one level when
/// dropped. Not `Send`: it must be dropped on the owning thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct RLockGuard<'a, T: ?Sized> {
    lock: &'a RLock<T>,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: sharing the guard only shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for RLockGuard<'_, T> {}

impl<T: ?Sized> Deref for RLockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.lock.data
    }
}

impl<T: ?Sized> Drop for RLockGuard<'_, T> {
    fn drop(&mut self) {
        // The guard exists only on the owner thread, so this cannot fail.
        let _ = self.lock.release();
    }
}

impl<'a, T: ?Sized> RLockGuard<'a, T> {
    /// The lock this guard holds.
    ///
    /// ```
    /// use weft_sync::{RLock, RLockGuard};
    /// let lock = RLock::new(5);
    /// let guard = lock.lock();
    /// assert!(std::ptr::eq(RLockGuard::rlock(&guard), &lock));
    /// ```
    pub fn rlock(guard: &Self) -> &'a RLock<T> {
        guard.lock
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RLockGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The future returned by [`RLock::lock_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct RLockFuture<'a, T: ?Sized> {
    wait: EventWait<'a, &'a RLock<T>, ()>,
}

impl<'a, T: ?Sized> Future for RLockFuture<'a, T> {
    type Output = RLockGuard<'a, T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RLockGuard<'a, T>> {
        let lock = *self.wait.ctx();
        Pin::new(&mut self.wait).poll(cx).map(|()| lock.guard())
    }
}

impl<T: ?Sized> fmt::Debug for RLockFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RLockFuture").finish_non_exhaustive()
    }
}
