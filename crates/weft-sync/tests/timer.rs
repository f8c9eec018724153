//! Timer: Python's `threading.Timer`, on one shared timer thread. Modelled
//! on CPython's test_threading TimerTests, plus the races Python leaves
//! open (a cancel that returns `true` must mean the function never runs).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::deadline;
use futures_lite::future::block_on;
use weft_sync::{TaskError, Timer};

/// Rounds of the cancel-versus-fire race (fewer under Miri, which is slow).
const RACES: usize = if cfg!(miri) { 20 } else { 2000 };

/// Runs a test body under [`deadline`], then waits for the shared timer
/// thread to be gone, which every test of this binary does, so that the
/// process never ends with the thread up (Miri's leak check fails a test
/// binary that does). Other tests' timers may keep it up meanwhile: at
/// most a few hundred milliseconds.
fn timers(secs: u64, body: impl FnOnce() + Send + 'static) {
    deadline(secs, body);
    assert!(
        Timer::wait_idle(Duration::from_secs(30)),
        "the timer thread did not go"
    );
}

#[test]
fn fires_once_with_its_result() {
    timers(20, || {
        let count = Arc::new(AtomicUsize::new(0));
        let t = {
            let count = count.clone();
            Timer::start(Duration::from_millis(1), move || {
                count.fetch_add(1, Ordering::SeqCst) + 100
            })
        };
        assert_eq!(t.join(), Ok(100));
        // A later timer fires after it: by then a second firing would show.
        Timer::start(Duration::from_millis(20), || ()).wait();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn never_runs_after_cancel() {
    timers(20, || {
        let ran = Arc::new(AtomicBool::new(false));
        let t = {
            let ran = ran.clone();
            Timer::start(Duration::from_millis(30), move || {
                ran.store(true, Ordering::SeqCst)
            })
        };
        assert!(t.cancel());
        assert!(t.is_cancelled() && t.is_finished());
        assert!(t.cancel(), "a cancelled timer stays cancelled");
        // Timers fire in deadline order on one thread: once this later one
        // has fired, the cancelled one's deadline has long passed.
        Timer::start(Duration::from_millis(60), || ()).wait();
        assert!(!ran.load(Ordering::SeqCst));
        assert_eq!(t.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn cancel_racing_the_deadline_has_one_winner() {
    timers(60, || {
        for round in 0..RACES {
            let ran = Arc::new(AtomicBool::new(false));
            let t = {
                let ran = ran.clone();
                // 0 to 49 µs: sometimes due before the cancel, sometimes after.
                let delay = Duration::from_micros((round % 50) as u64);
                Timer::start(delay, move || ran.store(true, Ordering::SeqCst))
            };
            let t = Arc::new(t);
            let canceller = {
                let t = t.clone();
                std::thread::spawn(move || t.cancel())
            };
            let cancelled = canceller.join().unwrap();
            t.wait();
            assert_eq!(
                ran.load(Ordering::SeqCst),
                !cancelled,
                "round {round}: cancel() returned {cancelled}"
            );
            assert_eq!(t.is_cancelled(), cancelled);
        }
    });
}

#[test]
fn many_cancels_racing_many_firings() {
    timers(60, || {
        let n = RACES;
        let ran: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        let timers: Vec<Timer> = (0..n)
            .map(|i| {
                let ran = ran.clone();
                let delay = Duration::from_micros((i % 200) as u64 * 10);
                Timer::start(delay, move || {
                    assert!(!ran[i].swap(true, Ordering::SeqCst), "fired twice");
                })
            })
            .collect();
        let timers = Arc::new(timers);
        let cancels: Vec<bool> = {
            let timers = timers.clone();
            std::thread::spawn(move || timers.iter().step_by(2).map(Timer::cancel).collect())
                .join()
                .unwrap()
        };
        for t in timers.iter() {
            t.wait();
        }
        // A sentinel after every deadline: nothing cancelled fires late.
        Timer::start(Duration::from_millis(30), || ()).wait();
        for (k, i) in (0..n).step_by(2).enumerate() {
            assert_eq!(ran[i].load(Ordering::SeqCst), !cancels[k], "timer {i}");
        }
        for i in (1..n).step_by(2) {
            assert!(
                ran[i].load(Ordering::SeqCst),
                "uncancelled timer {i} never fired"
            );
            assert!(!timers[i].handle().is_cancelled());
        }
    });
}

#[test]
fn a_panicking_callback_does_not_stop_other_timers() {
    timers(20, || {
        let bad = Timer::start(Duration::ZERO, || -> u8 { panic!("timer callback failed") });
        assert_eq!(
            bad.join(),
            Err(TaskError::Panicked {
                message: "timer callback failed".into()
            })
        );
        let good = Timer::start(Duration::from_millis(1), || "still here");
        assert_eq!(good.join(), Ok("still here"));
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "forgets, on purpose, a panic payload whose Drop panics: a leak Miri reports"
)]
fn a_callback_whose_panic_payload_panics_when_dropped_does_not_stop_other_timers() {
    timers(20, || {
        struct Loud;
        impl Drop for Loud {
            fn drop(&mut self) {
                panic!("payload drop");
            }
        }
        let worse = Timer::start(Duration::ZERO, || std::panic::panic_any(Loud));
        assert!(worse.join().unwrap_err().is_panic());
        let good = Timer::start(Duration::from_millis(1), || "still here");
        assert_eq!(good.join(), Ok("still here"));
    });
}

#[test]
fn cancelling_drops_the_callback_at_once_and_contains_its_drop_panic() {
    timers(20, || {
        struct PanicsOnDrop(Arc<AtomicBool>);
        impl Drop for PanicsOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
                panic!("callback drop");
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let captured = PanicsOnDrop(dropped.clone());
        let t = Timer::start(Duration::from_secs(3600), move || drop(captured));
        assert!(t.cancel(), "the cancel itself does not panic");
        assert!(
            dropped.load(Ordering::SeqCst),
            "dropped at cancel, not in an hour"
        );
    });
}

#[test]
fn huge_delays_mean_never() {
    timers(20, || {
        let t = Timer::start(Duration::MAX, || unreachable!());
        assert!(!t.wait_timeout(Duration::from_millis(20)));
        assert!(!t.is_finished());
        assert!(t.cancel());
        let t = Timer::start(Duration::from_secs(u64::MAX), || unreachable!());
        assert!(t.cancel());
    });
}

#[test]
fn fires_in_deadline_order() {
    timers(20, || {
        // Deadlines 1, 2 and 3 units from one instant, started out of
        // order; under Miri starting three timers can take over 100 ms.
        let unit = Duration::from_millis(if cfg!(miri) { 500 } else { 100 });
        let base = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let timers: Vec<Timer> = [3u32, 1, 2]
            .into_iter()
            .map(|k| {
                let order = order.clone();
                let delay = (base + unit * k).saturating_duration_since(Instant::now());
                Timer::start(delay, move || order.lock().unwrap().push(k))
            })
            .collect();
        for t in &timers {
            t.wait();
        }
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);
    });
}

#[test]
fn dropping_a_timer_does_not_cancel_it() {
    timers(20, || {
        let (tx, rx) = mpsc::channel();
        drop(Timer::start(Duration::from_millis(1), move || {
            tx.send(1).unwrap()
        }));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1));
    });
}

#[test]
fn a_timer_is_a_future_and_a_task_handle() {
    timers(20, || {
        let t = Timer::start(Duration::from_millis(1), || 7);
        assert_eq!(block_on(t), Ok(7));
        let cancelled = Timer::start(Duration::from_secs(60), || 7);
        cancelled.cancel();
        assert_eq!(block_on(cancelled), Err(TaskError::Cancelled));
        let h = Timer::start(Duration::ZERO, || 8).into_handle();
        assert_eq!(h.join(), Ok(8));
    });
}

/// The OS threads of this process (Linux; Miri cannot read /proc).
#[cfg(all(target_os = "linux", not(miri)))]
fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn ten_thousand_timers_share_one_thread() {
    timers(60, || {
        let n = 10_000;
        let before = os_threads();
        let fired = Arc::new(AtomicUsize::new(0));
        let timers: Vec<Timer> = (0..n)
            .map(|i| {
                let fired = fired.clone();
                Timer::start(Duration::from_millis(20 + (i % 100) as u64), move || {
                    fired.fetch_add(1, Ordering::Relaxed);
                })
            })
            .collect();
        let during = os_threads();
        // The other tests of this binary may run threads meanwhile: allow
        // for them, but nowhere near one per timer.
        assert!(
            during < before + 50,
            "{before} threads before, {during} with {n} timers"
        );
        for t in &timers {
            t.wait();
        }
        assert_eq!(fired.load(Ordering::Relaxed), n);
    });
}

#[test]
fn cancelled_entries_do_not_pile_up() {
    timers(30, || {
        // Far deadlines, all cancelled: the heap is compacted as it goes, and
        // a timer started afterwards still fires promptly.
        for _ in 0..if cfg!(miri) { 100 } else { 20_000 } {
            let t = Timer::start(Duration::from_secs(3600), || ());
            assert!(t.cancel());
        }
        assert_eq!(Timer::start(Duration::ZERO, || 1).join(), Ok(1));
    });
}

#[test]
fn an_earlier_timer_wakes_the_sleeping_thread() {
    // The thread sleeps until the far deadline; a timer due sooner must
    // wake it rather than wait behind it.
    timers(30, || {
        let far = Timer::start(Duration::from_secs(3600), || ());
        std::thread::sleep(Duration::from_millis(20));
        let soon = Timer::start(Duration::from_millis(1), || "soon");
        assert!(
            soon.wait_timeout(Duration::from_secs(20)),
            "stuck behind the far timer"
        );
        assert_eq!(soon.join(), Ok("soon"));
        assert!(far.cancel());
    });
}

#[test]
fn wait_idle_waits_for_pending_timers_and_the_thread_restarts_on_demand() {
    timers(60, || {
        // A pending timer keeps the thread up: the wait gives up.
        let far = Timer::start(Duration::from_secs(3600), || ());
        assert!(!Timer::wait_idle(Duration::from_millis(20)));
        // Cancelled, it no longer does: its entry is dropped at once, not
        // in an hour.
        assert!(far.cancel());
        assert!(Timer::wait_idle(Duration::from_secs(30)));
        // A timer started afterwards starts the thread again, and fires.
        assert_eq!(Timer::start(Duration::from_millis(1), || 5).join(), Ok(5));
        assert!(Timer::wait_idle(Duration::from_secs(30)));
    });
}

#[test]
fn a_never_timer_does_not_keep_the_thread() {
    timers(60, || {
        let never = Timer::start(Duration::MAX, || ());
        assert!(Timer::wait_idle(Duration::from_secs(30)));
        assert!(!never.is_finished());
        assert!(never.cancel());
    });
}

#[test]
fn several_callers_wait_idle_at_once() {
    timers(60, || {
        let t = Timer::start(Duration::from_millis(5), || ());
        let waiters: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(|| Timer::wait_idle(Duration::from_secs(30))))
            .collect();
        for w in waiters {
            assert!(w.join().unwrap(), "a caller gave up");
        }
        assert!(t.is_finished(), "the thread went before firing its timer");
    });
}

#[test]
fn wait_idle_from_a_timer_function_returns_false_at_once() {
    // The thread cannot exit while it runs the function that waits for it
    // to: without the check this would wait out its 30 s and trip the
    // 20 s deadline.
    timers(20, || {
        let t = Timer::start(Duration::ZERO, || Timer::wait_idle(Duration::from_secs(30)));
        assert_eq!(t.join(), Ok(false));
    });
}
