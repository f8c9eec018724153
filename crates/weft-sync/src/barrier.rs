//! [`Barrier`]: Python's `threading.Barrier`, with its broken state.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use event_listener::{Event, Listener};

use crate::error::BrokenBarrierError;
use crate::waker::deadline_after;

const FILLING: u8 = 0;
const TRIPPED: u8 = 1;
const BROKEN: u8 = 2;

/// The outcome of one round of the barrier, shared by its waiters.
struct Round {
    outcome: AtomicU8,
}

struct State {
    /// How many have arrived in the current round.
    count: usize,
    /// The current round; replaced when it trips or is reset.
    round: Arc<Round>,
    /// Set by a timeout, `abort`, or a panicking action; cleared by `reset`.
    broken: bool,
}

type Action = Box<dyn Fn() + Send + Sync>;

/// A meeting point for a fixed number of parties (Python's
/// `threading.Barrier`): each calls [`wait`](Barrier::wait), and all are
/// released together when the last arrives. The barrier then resets itself
/// for the next round.
///
/// An optional action runs once per round, on the last party to arrive,
/// before the others are released (it must not call back into the barrier).
/// A wait that times out, an
/// [`abort`](Barrier::abort), or an action that panics *breaks* the barrier:
/// every waiter, present and future, gets [`BrokenBarrierError`] until
/// [`reset`](Barrier::reset) is called, exactly as in Python.
///
/// ```
/// use weft_sync::Barrier;
///
/// let barrier = Barrier::new(3);
/// let indices: Vec<usize> = std::thread::scope(|s| {
///     let hs: Vec<_> = (0..3).map(|_| s.spawn(|| barrier.wait().unwrap())).collect();
///     hs.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// let mut sorted = indices.clone();
/// sorted.sort();
/// assert_eq!(sorted, vec![0, 1, 2]); // each party gets its arrival index
/// ```
pub struct Barrier {
    parties: usize,
    action: Option<Action>,
    default_timeout: Option<Duration>,
    state: parking_lot::Mutex<State>,
    event: Event,
}

impl Barrier {
    /// A barrier for `parties` parties.
    ///
    /// # Panics
    ///
    /// If `parties` is 0 (Python raises `ValueError`): a barrier needs at
    /// least one party.
    pub fn new(parties: usize) -> Barrier {
        assert!(
            parties > 0,
            "a Barrier needs at least one party, got parties = 0"
        );
        Barrier {
            parties,
            action: None,
            default_timeout: None,
            state: parking_lot::Mutex::new(State {
                count: 0,
                round: Arc::new(Round {
                    outcome: AtomicU8::new(FILLING),
                }),
                broken: false,
            }),
            event: Event::new(),
        }
    }

    /// A barrier whose `action` runs once per round, on the last party to
    /// arrive, before the others are released (Python's `action=`).
    ///
    /// # Panics
    ///
    /// If `parties` is 0.
    pub fn with_action(parties: usize, action: impl Fn() + Send + Sync + 'static) -> Barrier {
        Barrier {
            action: Some(Box::new(action)),
            ..Barrier::new(parties)
        }
    }

    /// Sets the timeout that [`wait`](Self::wait) and
    /// [`wait_async`](Self::wait_async) apply (Python's `timeout=`); a wait
    /// that exceeds it breaks the barrier.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{Barrier, BrokenBarrierError};
    /// let b = Barrier::new(2).with_timeout(Duration::from_millis(5));
    /// assert_eq!(b.wait(), Err(BrokenBarrierError));
    /// ```
    pub fn with_timeout(mut self, timeout: Duration) -> Barrier {
        self.default_timeout = Some(timeout);
        self
    }

    /// The number of parties needed to trip the barrier.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many parties are waiting in the current round; 0 while the
    /// barrier is broken (as Python's `n_waiting`): the parties that were
    /// waiting have been released with [`BrokenBarrierError`].
    pub fn n_waiting(&self) -> usize {
        let st = self.state.lock();
        if st.broken { 0 } else { st.count }
    }

    /// Whether the barrier is broken.
    pub fn is_broken(&self) -> bool {
        self.state.lock().broken
    }

    /// Arrives: either trips the barrier (if this is the last party) and
    /// returns `Ok(Some(index))`, or returns the round to wait on.
    fn arrive(&self) -> Result<Result<usize, (usize, Arc<Round>)>, BrokenBarrierError> {
        let mut st = self.state.lock();
        if st.broken {
            return Err(BrokenBarrierError);
        }
        let index = st.count;
        st.count += 1;
        if st.count < self.parties {
            return Ok(Err((index, st.round.clone())));
        }
        // Last to arrive: run the action (under the state lock, as Python
        // does, so no one can arrive in between), then release everyone.
        if let Some(action) = &self.action
            && let Err(payload) = catch_unwind(AssertUnwindSafe(action))
        {
            self.break_locked(&mut st);
            drop(st);
            resume_unwind(payload);
        }
        st.round.outcome.store(TRIPPED, Ordering::Release);
        st.round = Arc::new(Round {
            outcome: AtomicU8::new(FILLING),
        });
        st.count = 0;
        drop(st);
        self.event.notify(usize::MAX);
        Ok(Ok(index))
    }

    fn break_locked(&self, st: &mut State) {
        st.broken = true;
        // Every party of the round leaves with the error: none is waiting.
        st.count = 0;
        st.round.outcome.store(BROKEN, Ordering::Release);
        self.event.notify(usize::MAX);
    }

    fn outcome(round: &Round) -> Option<Result<(), BrokenBarrierError>> {
        match round.outcome.load(Ordering::Acquire) {
            FILLING => None,
            TRIPPED => Some(Ok(())),
            _ => Some(Err(BrokenBarrierError)),
        }
    }

    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    fn wait_until(&self, deadline: Option<Instant>) -> Result<usize, BrokenBarrierError> {
        let (index, round) = match self.arrive()? {
            Ok(index) => return Ok(index),
            Err(waiting) => waiting,
        };
        #[cfg(feature = "deadlock-detection")]
        let _wait = crate::deadlock::wait_begins(
            crate::deadlock::Primitive::Barrier,
            std::panic::Location::caller(),
        );
        loop {
            if let Some(outcome) = Self::outcome(&round) {
                return outcome.map(|()| index);
            }
            let listener = self.event.listen();
            if let Some(outcome) = Self::outcome(&round) {
                return outcome.map(|()| index);
            }
            let notified = match deadline {
                None => {
                    listener.wait();
                    true
                }
                Some(d) => listener.wait_deadline(d).is_some(),
            };
            if !notified {
                let mut st = self.state.lock();
                // It may have tripped just as the time ran out.
                if let Some(outcome) = Self::outcome(&round) {
                    return outcome.map(|()| index);
                }
                self.break_locked(&mut st);
                return Err(BrokenBarrierError);
            }
        }
    }

    /// Waits for the other parties; returns this party's arrival index
    /// (0 for the first to arrive, `parties - 1` for the last), as Python
    /// does. Uses the barrier's timeout if one was set with
    /// [`with_timeout`](Self::with_timeout).
    ///
    /// # Errors
    ///
    /// [`BrokenBarrierError`] if the barrier is or becomes broken while
    /// waiting (timeout, abort, reset, or a panicking action).
    ///
    /// # Panics
    ///
    /// Resumes the action's panic on the thread that ran it.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait(&self) -> Result<usize, BrokenBarrierError> {
        self.wait_until(self.default_timeout.and_then(deadline_after))
    }

    /// As [`wait`](Self::wait) with an explicit `timeout`; if it expires the
    /// barrier breaks, for everyone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{Barrier, BrokenBarrierError};
    /// let b = Barrier::new(2);
    /// assert_eq!(b.wait_timeout(Duration::from_millis(5)), Err(BrokenBarrierError));
    /// assert!(b.is_broken());
    /// assert_eq!(b.wait(), Err(BrokenBarrierError));
    /// b.reset();
    /// assert!(!b.is_broken());
    /// ```
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, BrokenBarrierError> {
        self.wait_until(deadline_after(timeout))
    }

    /// Waits for the other parties without blocking the thread.
    ///
    /// Honours the barrier's timeout, as [`wait`](Self::wait) does: if one
    /// was set with [`with_timeout`](Self::with_timeout) and the round has
    /// not tripped in time, the barrier breaks and every waiter, thread or
    /// task, gets [`BrokenBarrierError`] (as Python's `Barrier`). The
    /// deadline is kept by weft's shared timer thread (see
    /// [`Timer`](crate::Timer)), so this works in any executor.
    ///
    /// Dropping the future before the barrier trips withdraws this party's
    /// arrival (the barrier does not break).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{Barrier, BrokenBarrierError};
    /// let b = Barrier::new(2).with_timeout(Duration::from_millis(10));
    /// // Nobody else comes: the timeout breaks the barrier.
    /// let alone = futures_lite::future::block_on(b.wait_async());
    /// assert_eq!(alone, Err(BrokenBarrierError));
    /// assert!(b.is_broken());
    /// # assert!(weft_sync::Timer::wait_idle(Duration::from_secs(60)));
    /// ```
    pub async fn wait_async(&self) -> Result<usize, BrokenBarrierError> {
        let (index, round) = match self.arrive()? {
            Ok(index) => return Ok(index),
            Err(waiting) => waiting,
        };
        let mut withdraw = Withdraw {
            barrier: self,
            round: Some(round.clone()),
        };
        let alarm = self
            .default_timeout
            .map(|t| crate::timer::Alarm::at(deadline_after(t)));
        loop {
            if let Some(outcome) = Self::outcome(&round) {
                withdraw.round = None;
                return outcome.map(|()| index);
            }
            let mut listener = self.event.listen();
            if let Some(outcome) = Self::outcome(&round) {
                withdraw.round = None;
                return outcome.map(|()| index);
            }
            let notified = std::future::poll_fn(|cx| {
                if std::pin::Pin::new(&mut listener).poll(cx).is_ready() {
                    return std::task::Poll::Ready(true);
                }
                match &alarm {
                    Some(alarm) => alarm.poll(cx).map(|()| false),
                    None => std::task::Poll::Pending,
                }
            })
            .await;
            if !notified {
                // Timed out: break the barrier, as the blocking wait does
                // (unless it tripped just as the time ran out).
                withdraw.round = None;
                let mut st = self.state.lock();
                if let Some(outcome) = Self::outcome(&round) {
                    return outcome.map(|()| index);
                }
                self.break_locked(&mut st);
                return Err(BrokenBarrierError);
            }
        }
    }

    /// Breaks the barrier: every current and future waiter gets
    /// [`BrokenBarrierError`] until [`reset`](Self::reset) (Python's `abort()`).
    pub fn abort(&self) {
        let mut st = self.state.lock();
        self.break_locked(&mut st);
    }

    /// Returns the barrier to its initial, unbroken state. Parties waiting
    /// at that moment get [`BrokenBarrierError`] (Python's `reset()`).
    pub fn reset(&self) {
        let mut st = self.state.lock();
        if st.count > 0 {
            st.round.outcome.store(BROKEN, Ordering::Release);
        }
        st.round = Arc::new(Round {
            outcome: AtomicU8::new(FILLING),
        });
        st.count = 0;
        st.broken = false;
        drop(st);
        self.event.notify(usize::MAX);
    }
}

/// Takes back an async party's arrival if its wait is dropped mid-round.
struct Withdraw<'a> {
    barrier: &'a Barrier,
    round: Option<Arc<Round>>,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        if let Some(round) = self.round.take() {
            let mut st = self.barrier.state.lock();
            if Arc::ptr_eq(&st.round, &round) && round.outcome.load(Ordering::Acquire) == FILLING {
                st.count -= 1;
            }
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("n_waiting", &if st.broken { 0 } else { st.count })
            .field("broken", &st.broken)
            .finish()
    }
}
