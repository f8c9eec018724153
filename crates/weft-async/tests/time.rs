//! Timers at the edges: missed interval ticks, zero and huge durations.
//!
//! No test here depends on how fast the machine is: stalls and periods are
//! generous, and the assertions are about the instants the ticks were due
//! (which the interval computes) and about which ticks are ready at once,
//! never about how long something took.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future::poll_once;
use weft_async::{
    MissedTickBehavior, ReturnWhen, TimedOut, interval, run, sleep, spawn, timeout, wait, yield_now,
};

const PERIOD: Duration = Duration::from_millis(40);

/// Creates an interval, takes no tick while the thread stalls for a bit more
/// than five periods, and returns the interval with the instant the stall
/// ended.
fn stalled(behavior: Option<MissedTickBehavior>) -> (weft_async::Interval, Instant) {
    let mut every = interval(PERIOD);
    if let Some(behavior) = behavior {
        every.set_missed_tick_behavior(behavior);
    }
    // Blocks the runtime's thread, as a long computation in a task would.
    std::thread::sleep(PERIOD * 5 + PERIOD / 2);
    (every, Instant::now())
}

fn assert_multiple_of_period(from: Instant, to: Instant) {
    let gap = to.duration_since(from).as_nanos();
    assert_eq!(
        gap % PERIOD.as_nanos(),
        0,
        "{gap} ns is not a whole number of periods"
    );
}

#[test]
fn interval_skips_missed_ticks_by_default_without_burst_or_drift() {
    run(async {
        let (mut every, stall_end) = stalled(None);
        assert_eq!(every.missed_tick_behavior(), MissedTickBehavior::Skip);
        // The late tick fires at once...
        let late = every.tick().await;
        assert!(late < stall_end);
        // ...and the next is the first one of the original schedule after
        // the stall: no burst of the missed ticks.
        let next = every.tick().await;
        assert!(next > stall_end, "a missed tick fired after the stall");
        assert!(next.duration_since(late) >= PERIOD * 5);
        assert_multiple_of_period(late, next);
        let after = every.tick().await;
        assert!(after > next);
        assert_multiple_of_period(next, after);
    });
}

#[test]
fn interval_can_burst_to_catch_up() {
    run(async {
        let (mut every, stall_end) = stalled(Some(MissedTickBehavior::Burst));
        // Every tick due before the stall ended is ready at once, back to
        // back, each reporting the instant it was due.
        let mut dues = Vec::new();
        while let Some(due) = poll_once(every.tick()).await {
            dues.push(due);
            if due > stall_end {
                break;
            }
        }
        let missed = dues.iter().filter(|&&due| due < stall_end).count();
        assert!(
            missed >= 5,
            "only {missed} ticks were ready at once: {dues:?}"
        );
        for pair in dues.windows(2) {
            assert_eq!(pair[1].duration_since(pair[0]), PERIOD);
        }
    });
}

#[test]
fn interval_can_delay_after_a_stall() {
    run(async {
        let (mut every, stall_end) = stalled(Some(MissedTickBehavior::Delay));
        let late = every.tick().await;
        assert!(late < stall_end);
        // One whole period after the late tick fired, not on the old schedule.
        let next = every.tick().await;
        assert!(next >= stall_end + PERIOD);
        // Each tick is due a period after the previous one fired.
        let after = every.tick().await;
        assert!(after >= next + PERIOD);
    });
}

#[test]
fn zero_period_interval_ticks_after_yielding_to_the_other_tasks() {
    run(async {
        let mut every = interval(Duration::ZERO);
        assert_eq!(every.period(), Duration::ZERO);
        let turns = Rc::new(Cell::new(0u32));
        let counter = turns.clone();
        let other = spawn(async move {
            loop {
                counter.set(counter.get() + 1);
                yield_now().await;
            }
        });
        let mut last = every.tick().await;
        for _ in 0..10 {
            let now = every.tick().await;
            assert!(now >= last);
            last = now;
        }
        // The other task ran between the ticks: a loop over the interval does
        // not starve the runtime.
        assert!(
            turns.get() >= 10,
            "the other task ran {} times",
            turns.get()
        );
        drop(other);
    });
}

#[test]
fn huge_durations_mean_never_not_a_panic() {
    run(async {
        let short = Duration::from_millis(20);
        assert_eq!(
            timeout(short, sleep(Duration::MAX)).await,
            Err(TimedOut { timeout: short })
        );
        let mut never = interval(Duration::MAX);
        assert!(timeout(short, never.tick()).await.is_err());
        assert_eq!(timeout(Duration::MAX, async { 1 }).await, Ok(1));
        let mut tasks = vec![spawn(async { 2 })];
        let r = wait(&mut tasks, ReturnWhen::AllCompleted, Some(Duration::MAX)).await;
        assert_eq!(r.done, vec![0]);
        // An interval whose schedule runs past the largest Instant stops
        // ticking instead of overflowing.
        let mut huge = interval(Duration::from_secs(u64::MAX / 4));
        huge.set_missed_tick_behavior(MissedTickBehavior::Burst);
        assert!(timeout(short, huge.tick()).await.is_err());
    });
}
