//! Timers: [`sleep`], [`sleep_until`], [`interval`], [`timeout`],
//! [`timeout_at`], and [`yield_now`]. They run on `async-io`'s timer wheel,
//! which the runtime's loop drives, so they work in any executor that drives
//! `async-io` too.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_core::Stream;

use crate::error::TimedOut;

/// Waits for `duration` (Python's `asyncio.sleep`).
///
/// `sleep(Duration::ZERO)` yields to the other tasks once, as
/// `asyncio.sleep(0)` does. A duration too large to represent sleeps forever.
///
/// ```
/// use std::time::{Duration, Instant};
/// weft_async::run(async {
///     let start = Instant::now();
///     weft_async::sleep(Duration::from_millis(10)).await;
///     assert!(start.elapsed() >= Duration::from_millis(10));
/// });
/// ```
pub async fn sleep(duration: Duration) {
    if duration.is_zero() {
        yield_now().await;
    } else {
        Timer::after(duration).await;
    }
}

/// Waits until `deadline` (returns at once, after one yield, if it has passed).
///
/// ```
/// use std::time::{Duration, Instant};
/// weft_async::run(async {
///     let deadline = Instant::now() + Duration::from_millis(5);
///     weft_async::sleep_until(deadline).await;
///     assert!(Instant::now() >= deadline);
/// });
/// ```
pub async fn sleep_until(deadline: Instant) {
    if deadline <= Instant::now() {
        yield_now().await;
    } else {
        Timer::at(deadline).await;
    }
}

/// Yields once to the other tasks: the current task goes to the back of the
/// run queue (Python's `await asyncio.sleep(0)`).
///
/// ```
/// weft_async::run(async {
///     weft_async::yield_now().await;
/// });
/// ```
pub fn yield_now() -> futures_lite::future::YieldNow {
    futures_lite::future::yield_now()
}

/// Ticks every `period`, starting one `period` from now.
///
/// Created by [`interval`]. Await [`tick`](Interval::tick), or use it as a
/// [`Stream`] of the instants at which it was due.
///
/// When ticks are missed (the task did not ask for one in time, or the
/// thread was stalled), [`MissedTickBehavior`] says what happens; the default,
/// [`Skip`](MissedTickBehavior::Skip), fires one late tick at once and then
/// keeps to the original schedule: no burst to catch up, and no drift.
///
/// A `period` too large to add to the current time never ticks.
#[derive(Debug)]
pub struct Interval {
    /// Armed at `next` (unarmed when that is `None`).
    timer: Timer,
    /// When the next tick is due; `None`: never (the schedule ran past the
    /// largest `Instant`).
    next: Option<Instant>,
    period: Duration,
    missed: MissedTickBehavior,
    /// For a zero period: whether this tick has yielded once already.
    yielded: bool,
}

/// What an [`Interval`] does about ticks it missed (as tokio's
/// `MissedTickBehavior`).
///
/// Say the period is 10 ms, ticks are due at 10, 20, 30, ... ms, and the
/// task is stalled from 15 ms to 47 ms, missing the ticks due at 20, 30 and
/// 40 ms. The late tick due at 20 ms fires at once (at 47 ms) in every
/// behaviour; what follows differs:
///
/// | Behaviour | The next ticks fire at |
/// |---|---|
/// | [`Burst`](Self::Burst) | 47, 47 (due 30, 40), then 50, 60, ... |
/// | [`Delay`](Self::Delay) | 57, 67, 77, ... (one period after each tick) |
/// | [`Skip`](Self::Skip) (the default) | 50, 60, 70, ... (the original schedule) |
///
/// ```
/// use std::time::Duration;
/// use weft_async::{interval, MissedTickBehavior};
/// weft_async::run(async {
///     let mut every = interval(Duration::from_millis(5));
///     assert_eq!(every.missed_tick_behavior(), MissedTickBehavior::Skip);
///     every.set_missed_tick_behavior(MissedTickBehavior::Delay);
///     every.tick().await;
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MissedTickBehavior {
    /// Fire every missed tick, back to back, until the schedule is caught up
    /// (each reports the instant it was due). Right when every tick must be
    /// counted, e.g. a rate computed from the number of ticks.
    Burst,
    /// Fire the late tick at once, then wait a full period from then on: the
    /// schedule shifts by the stall.
    Delay,
    /// Fire the late tick at once, then go on at the next tick of the
    /// original schedule, skipping the ones that were missed. The default:
    /// the interval promises no burst to catch up and no drift.
    #[default]
    Skip,
}

/// A timer that fires every `period` (there is no asyncio built-in for this;
/// it replaces `while True: ...; await asyncio.sleep(period)` without drift).
///
/// Missed ticks are skipped by default: see [`MissedTickBehavior`].
///
/// A zero `period` ticks every time it is awaited, after yielding to the
/// other tasks once (as `sleep(Duration::ZERO)` does), so a loop over it
/// never starves the runtime. A `period` too large to add to the current
/// time (such as `Duration::MAX`) never ticks.
///
/// ```
/// use std::time::Duration;
/// weft_async::run(async {
///     let mut every = weft_async::interval(Duration::from_millis(2));
///     let first = every.tick().await;
///     let second = every.tick().await;
///     assert!(second > first);
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    let next = Instant::now().checked_add(period);
    Interval {
        timer: match next {
            Some(at) if !period.is_zero() => Timer::at(at),
            _ => Timer::never(),
        },
        next,
        period,
        missed: MissedTickBehavior::default(),
        yielded: false,
    }
}

impl Interval {
    /// Waits for the next tick and returns the instant it was due.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// The period it was made with.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What it does about missed ticks.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what it does about missed ticks from now on.
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.period.is_zero() {
            // Each tick yields once first, as sleep(Duration::ZERO) does.
            if !self.yielded {
                self.yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.yielded = false;
            return Poll::Ready(Instant::now());
        }
        let Some(due) = self.next else {
            return Poll::Pending;
        };
        if Pin::new(&mut self.timer).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = Instant::now();
        self.next = match self.missed {
            MissedTickBehavior::Burst => due.checked_add(self.period),
            MissedTickBehavior::Delay => now.checked_add(self.period),
            MissedTickBehavior::Skip => next_after(due, self.period, now),
        };
        if let Some(at) = self.next {
            self.timer.set_at(at);
        }
        Poll::Ready(due)
    }
}

/// The first instant of the schedule `due + k * period` (k >= 1) that is
/// after `now`; `None` if it is past the largest `Instant`.
fn next_after(due: Instant, period: Duration, now: Instant) -> Option<Instant> {
    let behind = now.saturating_duration_since(due).as_nanos();
    let steps = behind / period.as_nanos() + 1;
    let ahead = period.as_nanos().checked_mul(steps)?;
    let secs = u64::try_from(ahead / 1_000_000_000).ok()?;
    let nanos = u32::try_from(ahead % 1_000_000_000).ok()?;
    due.checked_add(Duration::new(secs, nanos))
}

impl Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

/// Runs `future`, giving up after `duration` (Python's `asyncio.wait_for` and
/// `async with asyncio.timeout(...)`).
///
/// Returns the output, or [`TimedOut`] if the time ran out first, in which
/// case `future` is dropped (cancelled). [`TimedOut`] converts into
/// [`TaskError::TimedOut`](weft_sync::TaskError::TimedOut) and
/// `std::io::Error`, so `?` works.
///
/// ```
/// use std::time::Duration;
/// use weft_async::{timeout, sleep, TimedOut};
/// weft_async::run(async {
///     assert_eq!(timeout(Duration::from_secs(5), async { 1 }).await, Ok(1));
///     let slow = sleep(Duration::from_secs(60));
///     assert_eq!(
///         timeout(Duration::from_millis(5), slow).await,
///         Err(TimedOut { timeout: Duration::from_millis(5) })
///     );
/// });
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, TimedOut> {
    let deadline = Instant::now().checked_add(duration);
    race_timer(
        future,
        match deadline {
            Some(at) => Timer::at(at),
            None => Timer::never(),
        },
        duration,
    )
    .await
}

/// Like [`timeout`], with a deadline instead of a duration. The [`TimedOut`]
/// error reports the time that was left when it started.
pub async fn timeout_at<F: Future>(deadline: Instant, future: F) -> Result<F::Output, TimedOut> {
    let left = deadline.saturating_duration_since(Instant::now());
    race_timer(future, Timer::at(deadline), left).await
}

async fn race_timer<F: Future>(
    future: F,
    mut timer: Timer,
    limit: Duration,
) -> Result<F::Output, TimedOut> {
    let mut future = pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match Pin::new(&mut timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(Err(TimedOut { timeout: limit })),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}
