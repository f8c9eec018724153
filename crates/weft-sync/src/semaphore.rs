//! [`Semaphore`] and [`BoundedSemaphore`]: Python's counting semaphores,
//! shared by threads and async tasks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::ReleaseError;
use crate::shim::{AtomicUsize, Ordering};
use crate::waiting::{EventWait, WaitList, block_on};
use crate::waker::deadline_after;

/// A counting semaphore (Python's `threading.Semaphore`): `acquire` takes a
/// permit, waiting while there are none; `release` gives one back.
///
/// Threads and async tasks can wait on the same semaphore. Taking a free
/// permit is one atomic compare-and-swap; waiters are woken in the order
/// they started waiting, one per released permit.
///
/// `acquire` returns a [`SemaphoreGuard`] that releases the permit when
/// dropped; [`SemaphoreGuard::forget`] keeps it taken, for Python-style
/// explicit [`release`](Semaphore::release) calls.
///
/// The count saturates at `usize::MAX` (a semaphore made with
/// `Semaphore::new(usize::MAX)` is unlimited in practice): releasing past
/// it changes nothing, where a wrapping count would have dropped to zero.
///
/// # Examples
///
/// At most two workers in the critical section at once:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use weft_sync::Semaphore;
///
/// let slots = Semaphore::new(2);
/// let inside = AtomicUsize::new(0);
/// std::thread::scope(|s| {
///     for _ in 0..8 {
///         s.spawn(|| {
///             let _permit = slots.acquire();
///             assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
///             std::thread::sleep(std::time::Duration::from_millis(1));
///             inside.fetch_sub(1, Ordering::SeqCst);
///         });
///     }
/// });
/// assert_eq!(slots.available_permits(), 2);
/// ```
pub struct Semaphore {
    permits: AtomicUsize,
    event: WaitList,
}

impl Semaphore {
    crate::shim::const_unless_loom! {
        /// A semaphore with `permits` permits available.
        pub fn new(permits: usize) -> Semaphore {
            Semaphore {
                permits: AtomicUsize::new(permits),
                event: WaitList::new(),
            }
        }
    }

    /// How many permits are free right now.
    pub fn available_permits(&self) -> usize {
        self.permits.load(Ordering::Acquire)
    }

    fn try_take(&self) -> bool {
        let mut n = self.permits.load(Ordering::Acquire);
        loop {
            if n == 0 {
                return false;
            }
            match self
                .permits
                .compare_exchange_weak(n, n - 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(x) => n = x,
            }
        }
    }

    /// Gives back `n` permits, the count stopping at `max` (`usize::MAX`
    /// for a plain semaphore, the bound for a [`BoundedSemaphore`]'s
    /// guards), and wakes as many waiters as permits were added.
    fn put_back(&self, n: usize, max: usize) {
        let mut cur = self.permits.load(Ordering::Acquire);
        let next = loop {
            let next = cur.saturating_add(n).min(max);
            if next <= cur {
                // At the limit already: nothing to add, no one to wake
                // (waiters only wait while the count is 0).
                return;
            }
            match self
                .permits
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break next,
                Err(x) => cur = x,
            }
        };
        self.event.notify_additional(next - cur);
    }

    fn guard(&self) -> SemaphoreGuard<'_> {
        SemaphoreGuard {
            sem: self,
            max: usize::MAX,
        }
    }

    /// Takes a permit, blocking the thread while none is free.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        block_on!(Semaphore, &self.event, None, |_| self
            .try_take()
            .then_some(()));
        self.guard()
    }

    /// Takes a permit if one is free right now (Python's
    /// `acquire(blocking=False)`).
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.try_take().then(|| self.guard())
    }

    /// Waits at most `timeout` for a permit (Python's `acquire(timeout=t)`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        block_on!(Semaphore, &self.event, deadline_after(timeout), |_| {
            self.try_take().then_some(())
        })
        .map(|()| self.guard())
    }

    /// Waits for a permit without blocking the thread; usable from any
    /// executor. Dropping the future gives up the wait; a wake-up it had
    /// received passes to the next waiter.
    ///
    /// ```
    /// use weft_sync::Semaphore;
    /// let sem = Semaphore::new(1);
    /// futures_lite::future::block_on(async {
    ///     let permit = sem.acquire_async().await;
    ///     assert!(sem.try_acquire().is_none());
    ///     drop(permit);
    ///     assert!(sem.try_acquire().is_some());
    /// });
    /// ```
    pub fn acquire_async(&self) -> AcquireFuture<'_> {
        AcquireFuture {
            wait: EventWait::new(&self.event, self, |s, _| s.try_take().then_some(())),
            max: usize::MAX,
        }
    }

    /// Adds `n` permits, waking up to `n` waiters (Python's `release(n)`).
    /// The count stops at `usize::MAX` instead of wrapping.
    pub fn release(&self, n: usize) {
        if n > 0 {
            self.put_back(n, usize::MAX);
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .finish()
    }
}

/// A permit taken from a [`Semaphore`] (or a [`BoundedSemaphore`]); gives it
/// back when dropped.
///
/// A guard of a [`BoundedSemaphore`] never pushes the count past the bound:
/// if its permit was already given back by an explicit `release` (a double
/// release, which Python reports with `ValueError`), dropping the guard
/// adds nothing.
#[must_use = "the permit is released as soon as the guard is dropped"]
pub struct SemaphoreGuard<'a> {
    sem: &'a Semaphore,
    /// The most permits the semaphore may hold.
    max: usize,
}

impl SemaphoreGuard<'_> {
    /// Keeps the permit taken: it is then given back only by an explicit
    /// `release`, as in Python.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for SemaphoreGuard<'_> {
    fn drop(&mut self) {
        self.sem.put_back(1, self.max);
    }
}

impl fmt::Debug for SemaphoreGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard").finish_non_exhaustive()
    }
}

/// The future returned by [`Semaphore::acquire_async`] and
/// [`BoundedSemaphore::acquire_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct AcquireFuture<'a> {
    wait: EventWait<'a, &'a Semaphore, ()>,
    /// The bound for the guard it makes.
    max: usize,
}

impl<'a> Future for AcquireFuture<'a> {
    type Output = SemaphoreGuard<'a>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphoreGuard<'a>> {
        let (sem, max) = (*self.wait.ctx(), self.max);
        Pin::new(&mut self.wait)
            .poll(cx)
            .map(|()| SemaphoreGuard { sem, max })
    }
}

impl fmt::Debug for AcquireFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireFuture").finish_non_exhaustive()
    }
}

/// A semaphore that refuses to be released past its initial value (Python's
/// `threading.BoundedSemaphore`), catching a release without an acquire.
///
/// ```
/// use weft_sync::{BoundedSemaphore, ReleaseError};
/// let sem = BoundedSemaphore::new(1);
/// sem.acquire().forget();
/// assert_eq!(sem.release(1), Ok(()));
/// assert_eq!(sem.release(1), Err(ReleaseError::OverRelease));
/// assert_eq!(sem.available_permits(), 1);
/// ```
pub struct BoundedSemaphore {
    sem: Semaphore,
    max: usize,
}

impl BoundedSemaphore {
    /// A bounded semaphore with `permits` permits, which is also its limit.
    pub fn new(permits: usize) -> BoundedSemaphore {
        BoundedSemaphore {
            sem: Semaphore::new(permits),
            max: permits,
        }
    }

    /// The initial (and largest) number of permits.
    pub fn max_permits(&self) -> usize {
        self.max
    }

    /// How many permits are free right now.
    pub fn available_permits(&self) -> usize {
        self.sem.available_permits()
    }

    /// Takes a permit, blocking while none is free.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire(&self) -> SemaphoreGuard<'_> {
        self.bounded(self.sem.acquire())
    }

    /// The bound applies to the guard's release.
    fn bounded<'a>(&self, mut guard: SemaphoreGuard<'a>) -> SemaphoreGuard<'a> {
        guard.max = self.max;
        guard
    }

    /// Takes a permit if one is free right now.
    pub fn try_acquire(&self) -> Option<SemaphoreGuard<'_>> {
        self.sem.try_acquire().map(|g| self.bounded(g))
    }

    /// Waits at most `timeout` for a permit.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<SemaphoreGuard<'_>> {
        self.sem.acquire_timeout(timeout).map(|g| self.bounded(g))
    }

    /// Waits for a permit without blocking the thread.
    pub fn acquire_async(&self) -> AcquireFuture<'_> {
        AcquireFuture {
            max: self.max,
            ..self.sem.acquire_async()
        }
    }

    /// Gives back `n` permits.
    ///
    /// # Errors
    ///
    /// [`ReleaseError::OverRelease`] if that would exceed the initial value;
    /// nothing is released then.
    pub fn release(&self, n: usize) -> Result<(), ReleaseError> {
        let mut cur = self.sem.permits.load(Ordering::Acquire);
        loop {
            let next = cur
                .checked_add(n)
                .filter(|&next| next <= self.max)
                .ok_or(ReleaseError::OverRelease)?;
            match self.sem.permits.compare_exchange_weak(
                cur,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(x) => cur = x,
            }
        }
        if n > 0 {
            self.sem.event.notify_additional(n);
        }
        Ok(())
    }
}

impl fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("available_permits", &self.available_permits())
            .field("max_permits", &self.max)
            .finish()
    }
}
