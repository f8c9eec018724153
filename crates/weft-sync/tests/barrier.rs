//! Barrier, modelled on CPython's lock_tests.py BarrierTests.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::{deadline, eventually, settle};
use futures_lite::future::{block_on, poll_once};
use weft_sync::{Barrier, BrokenBarrierError};

fn run_parties<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let hs: Vec<_> = (0..n)
        .map(|i| {
            let f = f.clone();
            thread::spawn(move || f(i))
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn several_rounds_with_unique_indices() {
    deadline(20, || {
        let b = Arc::new(Barrier::new(4));
        let b2 = b.clone();
        let results = run_parties(4, move |_| {
            (0..5).map(|_| b2.wait().unwrap()).collect::<Vec<_>>()
        });
        for round in 0..5 {
            let mut idx: Vec<usize> = results.iter().map(|r| r[round]).collect();
            idx.sort();
            assert_eq!(idx, vec![0, 1, 2, 3]);
        }
        assert_eq!(b.n_waiting(), 0);
        assert!(!b.is_broken());
    });
}

#[test]
fn action_runs_once_per_round_before_release() {
    deadline(20, || {
        let runs = Arc::new(AtomicUsize::new(0));
        let r2 = runs.clone();
        let b = Arc::new(Barrier::with_action(3, move || {
            r2.fetch_add(1, Ordering::SeqCst);
        }));
        let (b2, runs2) = (b.clone(), runs.clone());
        let seen = run_parties(3, move |_| {
            let mut seen = Vec::new();
            for _ in 0..4 {
                b2.wait().unwrap();
                seen.push(runs2.load(Ordering::SeqCst));
            }
            seen
        });
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        for s in seen {
            // After round k every party sees that the action ran k times.
            for (k, v) in s.iter().enumerate() {
                assert!(*v > k, "released before the action ran");
            }
        }
    });
}

#[test]
fn timeout_breaks_the_barrier_for_everyone() {
    deadline(20, || {
        let b = Arc::new(Barrier::new(3));
        let other = {
            let b = b.clone();
            thread::spawn(move || b.wait())
        };
        assert!(eventually(|| b.n_waiting() == 1));
        assert_eq!(
            b.wait_timeout(Duration::from_millis(30)),
            Err(BrokenBarrierError)
        );
        assert_eq!(other.join().unwrap(), Err(BrokenBarrierError));
        assert!(b.is_broken());
        assert_eq!(b.wait(), Err(BrokenBarrierError), "stays broken");
        assert_eq!(block_on(b.wait_async()), Err(BrokenBarrierError));
        b.reset();
        let b2 = b.clone();
        let mut idx = run_parties(3, move |_| b2.wait().unwrap());
        idx.sort();
        assert_eq!(idx, vec![0, 1, 2], "usable again after reset");
    });
}

#[test]
fn default_timeout_applies_to_wait() {
    let b = Barrier::new(2).with_timeout(Duration::from_millis(20));
    assert_eq!(b.wait(), Err(BrokenBarrierError));
}

#[test]
fn abort_releases_waiters_with_an_error() {
    deadline(10, || {
        let b = Arc::new(Barrier::new(3));
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let b = b.clone();
                thread::spawn(move || {
                    if i == 0 {
                        b.wait()
                    } else {
                        block_on(b.wait_async())
                    }
                })
            })
            .collect();
        assert!(eventually(|| b.n_waiting() == 2));
        b.abort();
        for h in hs {
            assert_eq!(h.join().unwrap(), Err(BrokenBarrierError));
        }
    });
}

/// Issue 13, item 13: once the barrier broke and its parties left with the
/// error, nobody is waiting (Python reports 0 for a broken barrier).
#[test]
fn broken_barrier_has_no_one_waiting() {
    deadline(30, || {
        let b = Arc::new(Barrier::new(3));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.wait())
            })
            .collect();
        assert!(eventually(|| b.n_waiting() == 2));
        b.abort();
        for h in hs {
            assert_eq!(h.join().unwrap(), Err(BrokenBarrierError));
        }
        assert_eq!(b.n_waiting(), 0);
        assert!(format!("{b:?}").contains("n_waiting: 0"));
        // Broken by a timeout: the same.
        b.reset();
        let t = {
            let b = b.clone();
            thread::spawn(move || b.wait())
        };
        assert!(eventually(|| b.n_waiting() == 1));
        assert_eq!(
            b.wait_timeout(Duration::from_millis(10)),
            Err(BrokenBarrierError)
        );
        assert_eq!(t.join().unwrap(), Err(BrokenBarrierError));
        assert_eq!(b.n_waiting(), 0);
        // And after a reset the count starts again from zero.
        b.reset();
        assert_eq!(b.n_waiting(), 0);
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.wait())
            })
            .collect();
        assert!(eventually(|| b.n_waiting() == 2));
        assert_eq!(b.wait(), Ok(2));
        for h in hs {
            assert!(h.join().unwrap().is_ok());
        }
    });
}

#[test]
fn reset_breaks_current_waiters_then_recovers() {
    deadline(10, || {
        let b = Arc::new(Barrier::new(2));
        let waiter = {
            let b = b.clone();
            thread::spawn(move || b.wait())
        };
        assert!(eventually(|| b.n_waiting() == 1));
        b.reset();
        assert_eq!(waiter.join().unwrap(), Err(BrokenBarrierError));
        assert!(!b.is_broken());
        assert_eq!(b.n_waiting(), 0);
        let b2 = b.clone();
        let t = thread::spawn(move || b2.wait());
        b.wait().unwrap();
        t.join().unwrap().unwrap();
    });
}

#[test]
fn panicking_action_breaks_and_propagates() {
    deadline(10, || {
        let b = Arc::new(Barrier::with_action(2, || panic!("action failed")));
        let other = {
            let b = b.clone();
            thread::spawn(move || b.wait())
        };
        assert!(eventually(|| b.n_waiting() == 1));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.wait()));
        let msg = weft_sync::panic_message(&*r.unwrap_err());
        assert_eq!(msg, "action failed");
        assert_eq!(other.join().unwrap(), Err(BrokenBarrierError));
        assert!(b.is_broken());
    });
}

#[test]
fn async_parties_and_withdrawal() {
    deadline(10, || {
        let b = Arc::new(Barrier::new(2));
        // A party that starts waiting and is then dropped withdraws.
        {
            let mut fut = Box::pin(b.wait_async());
            assert!(block_on(poll_once(&mut fut)).is_none());
            assert_eq!(b.n_waiting(), 1);
        }
        assert_eq!(b.n_waiting(), 0, "the dropped wait withdrew its arrival");
        assert!(!b.is_broken());
        let b2 = b.clone();
        let t = thread::spawn(move || b2.wait());
        settle();
        let mine = block_on(b.wait_async()).unwrap();
        let theirs = t.join().unwrap().unwrap();
        assert_eq!(mine + theirs, 1);
    });
}

#[test]
#[should_panic(expected = "at least one party")]
fn zero_parties_is_refused() {
    let _ = Barrier::new(0);
}

// The async wait honours the barrier's default timeout.

#[test]
fn async_wait_default_timeout_breaks_the_barrier_for_everyone() {
    deadline(20, || {
        let b = Arc::new(Barrier::new(3).with_timeout(Duration::from_millis(50)));
        let task = {
            let b = b.clone();
            thread::spawn(move || futures_lite::future::block_on(b.wait_async()))
        };
        let blocked = {
            let b = b.clone();
            // An explicit long timeout: only the async party's can break it.
            thread::spawn(move || b.wait_timeout(Duration::from_secs(60)))
        };
        assert_eq!(task.join().unwrap(), Err(BrokenBarrierError));
        assert_eq!(blocked.join().unwrap(), Err(BrokenBarrierError));
        assert!(b.is_broken());
        assert_eq!(
            futures_lite::future::block_on(b.wait_async()),
            Err(BrokenBarrierError)
        );
        b.reset();
        assert!(!b.is_broken());
    });
    timer_thread_gone();
}

#[test]
fn async_wait_that_trips_in_time_leaves_no_alarm_behind() {
    deadline(20, || {
        let b = Arc::new(Barrier::new(2).with_timeout(Duration::from_millis(100)));
        let other = {
            let b = b.clone();
            thread::spawn(move || b.wait())
        };
        let mine = futures_lite::future::block_on(b.wait_async()).unwrap();
        let theirs = other.join().unwrap().unwrap();
        assert_eq!(mine + theirs, 1);
        // Past the old deadline: nothing breaks the barrier late.
        thread::sleep(Duration::from_millis(150));
        assert!(!b.is_broken());
    });
    timer_thread_gone();
}

#[test]
fn dropped_async_wait_withdraws_and_its_alarm_does_nothing() {
    deadline(20, || {
        // Miri runs slowly enough in real time to let 30 ms pass before
        // the first poll returns.
        let timeout = Duration::from_millis(if cfg!(miri) { 1000 } else { 30 });
        let b = Barrier::new(2).with_timeout(timeout);
        let mut wait = Box::pin(b.wait_async());
        assert!(
            futures_lite::future::block_on(futures_lite::future::poll_once(&mut wait)).is_none()
        );
        assert_eq!(b.n_waiting(), 1);
        drop(wait);
        assert_eq!(b.n_waiting(), 0);
        thread::sleep(2 * timeout);
        assert!(!b.is_broken());
    });
    timer_thread_gone();
}

/// The async waits with a timeout run their alarms on the shared timer
/// thread: a test that used one waits for the thread to go, so that the
/// process does not end with it up (Miri's leak check fails a binary
/// that does).
fn timer_thread_gone() {
    assert!(
        weft_sync::Timer::wait_idle(Duration::from_secs(30)),
        "an alarm kept the timer thread up"
    );
}
