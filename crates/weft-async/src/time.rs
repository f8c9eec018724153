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
/// [`Stream`] of the instants at which it fired. If a tick is late, the next
/// one is scheduled one `period` after the missed one (no burst to catch up,
/// as `async-io`'s periodic timers).
#[derive(Debug)]
pub struct Interval {
    timer: Timer,
}

/// A timer that fires every `period` (there is no asyncio built-in for this;
/// it replaces `while True: ...; await asyncio.sleep(period)` without drift).
///
/// # Panics
///
/// If `period` is zero: a zero period would fire continuously.
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
    assert!(
        !period.is_zero(),
        "weft_async::interval: the period must be greater than zero"
    );
    Interval {
        timer: Timer::interval(period),
    }
}

impl Interval {
    /// Waits for the next tick and returns the instant it was due.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        match Pin::new(&mut self.timer).poll_next(cx) {
            Poll::Ready(Some(at)) => Poll::Ready(at),
            // An interval timer never ends; treat an end as "never fires".
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
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
