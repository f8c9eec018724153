//! The raw lock under [`Mutex`](crate::Mutex), [`Lock`](crate::Lock) and
//! [`RLock`](crate::RLock): one byte of state, parking_lot_core's parking
//! lot for blocked threads, and an `event_listener::Event` for blocked async
//! tasks, so that threads and tasks can wait on the same lock.
//!
//! State bits:
//! - `LOCKED`: someone holds the lock.
//! - `PARKED`: threads may be parked on the lock's address (managed exactly
//!   as in parking_lot's `RawMutex`: set before parking, cleared under the
//!   parking-lot bucket lock by the unlocker when the last one is woken).
//! - `ASYNC`: async tasks may be listening on `event`. Set by a task after it
//!   registers its listener and every time it retries after a wake-up;
//!   cleared by the unlocker, which then notifies one listener. The woken
//!   task sets it again before retrying, so a listener is never stranded.
//!
//! Unlocking with no waiters is a single compare-and-swap, as in parking_lot.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use crate::waiting::WaitList;
use parking_lot_core::{DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN, ParkResult, SpinWait};

const LOCKED: u8 = 0b001;
const PARKED: u8 = 0b010;
const ASYNC: u8 = 0b100;

pub(crate) struct RawLock {
    state: AtomicU8,
    event: WaitList,
}

impl RawLock {
    crate::shim::const_unless_loom! {
        pub(crate) fn new() -> RawLock {
            RawLock {
                state: AtomicU8::new(0),
                event: WaitList::new(),
            }
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(s) => state = s,
            }
        }
    }

    /// The uncontended case: free, with no waiter bits set.
    #[inline]
    fn lock_fast(&self) -> bool {
        self.state
            .compare_exchange_weak(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    #[inline]
    pub(crate) fn lock(&self) {
        if !self.lock_fast() {
            self.lock_slow(None);
        }
    }

    /// Locks, giving up at `deadline`. Returns whether the lock was taken.
    #[inline]
    #[cfg_attr(feature = "deadlock-detection", allow(dead_code))]
    pub(crate) fn lock_until(&self, deadline: Option<Instant>) -> bool {
        self.lock_fast() || self.lock_slow(deadline)
    }

    /// [`lock_until`](Self::lock_until) that registers the wait with the
    /// watchdog when it has to wait.
    #[cfg(feature = "deadlock-detection")]
    pub(crate) fn lock_until_tracked(
        &self,
        deadline: Option<Instant>,
        primitive: crate::deadlock::Primitive,
        site: &'static std::panic::Location<'static>,
    ) -> bool {
        if self.lock_fast() {
            return true;
        }
        let _wait = crate::deadlock::wait_begins(primitive, site);
        self.lock_slow(deadline)
    }

    #[inline]
    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    #[cold]
    fn lock_slow(&self, deadline: Option<Instant>) -> bool {
        let mut spin = SpinWait::new();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                match self.state.compare_exchange_weak(
                    state,
                    state | LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(s) => state = s,
                }
                continue;
            }
            // Nobody parked yet: spin a little, the holder may be quick.
            if state & PARKED == 0 && spin.spin() {
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            if state & PARKED == 0
                && let Err(s) = self.state.compare_exchange_weak(
                    state,
                    state | PARKED,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
            {
                state = s;
                continue;
            }
            let addr = self as *const RawLock as usize;
            let validate =
                || self.state.load(Ordering::Relaxed) & (LOCKED | PARKED) == LOCKED | PARKED;
            let timed_out = |_, was_last: bool| {
                if was_last {
                    self.state.fetch_and(!PARKED, Ordering::Relaxed);
                }
            };
            // SAFETY: `addr` is the address of this lock, which outlives the
            // call; `validate` and `timed_out` only touch our atomic and do
            // not panic or call back into parking_lot; `before_sleep` is empty.
            let result = unsafe {
                parking_lot_core::park(
                    addr,
                    validate,
                    || {},
                    timed_out,
                    DEFAULT_PARK_TOKEN,
                    deadline,
                )
            };
            if let ParkResult::TimedOut = result {
                return false;
            }
            spin.reset();
            state = self.state.load(Ordering::Relaxed);
        }
    }

    /// Unlocks. The caller must hold the lock.
    ///
    /// One unconditional swap, as std's futex mutex does (no compare, no
    /// retry loop); the waiters it finds are woken afterwards.
    #[inline]
    pub(crate) fn unlock(&self) {
        let prev = self.state.swap(0, Ordering::Release);
        if prev != LOCKED {
            self.wake_after_unlock(prev);
        }
    }

    /// Wakes what `prev`, the state [`unlock`](Self::unlock) (or
    /// [`try_unlock`](Self::try_unlock)) replaced with 0, says is waiting:
    /// one parked thread and/or one async listener.
    ///
    /// No wake-up can be lost although the lock is already free: a thread
    /// about to park validates `LOCKED | PARKED` under the bucket lock that
    /// `unpark_one` takes, so it either parked before that (and is woken
    /// here) or sees the swapped state and retries instead of parking. A
    /// thread that parked meanwhile behind a new holder set `PARKED` itself,
    /// and that holder's unlock wakes it; the callback only ever adds
    /// `PARKED` back, for the threads still queued.
    #[cold]
    fn wake_after_unlock(&self, prev: u8) {
        if prev & PARKED != 0 {
            let addr = self as *const RawLock as usize;
            let callback = |result: parking_lot_core::UnparkResult| {
                if result.have_more_threads {
                    self.state.fetch_or(PARKED, Ordering::Relaxed);
                }
                DEFAULT_UNPARK_TOKEN
            };
            // SAFETY: `addr` is this lock's address; the callback only
            // touches our atomic, does not panic and does not call into
            // parking_lot.
            unsafe {
                parking_lot_core::unpark_one(addr, callback);
            }
        }
        if prev & ASYNC != 0 {
            self.event.notify(1);
        }
    }

    /// Unlocks if locked (by anyone); returns `false`, changing nothing, if
    /// it was not locked. Python's `Lock.release`, which any thread may call.
    pub(crate) fn try_unlock(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                return false;
            }
            match self
                .state
                .compare_exchange_weak(state, 0, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    if state != LOCKED {
                        self.wake_after_unlock(state);
                    }
                    return true;
                }
                Err(s) => state = s,
            }
        }
    }

    /// The future-friendly acquisition step: called with `registered ==
    /// true` once a listener on [`Self::event`] is registered, so that the
    /// unlocker knows to notify it.
    #[inline]
    pub(crate) fn try_lock_async(&self, registered: bool) -> bool {
        if registered {
            self.state.fetch_or(ASYNC, Ordering::SeqCst);
        }
        self.try_lock()
    }

    pub(crate) fn event(&self) -> &WaitList {
        &self.event
    }
}
