//! Timer: Python's `threading.Timer`, on one shared timer thread. Modelled
//! on CPython's test_threading TimerTests, plus the races Python leaves
//! open (a cancel that returns `true` must mean the function never runs).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use common::deadline;
use futures_lite::future::block_on;
use weft_sync::{TaskError, Timer};

/// Rounds of the cancel-versus-fire race (fewer under Miri, which is slow).
const RACES: usize = if cfg!(miri) { 20 } else { 2000 };

#[test]
fn fires_once_with_its_result() {
    deadline(20, || {
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
    deadline(20, || {
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
    deadline(60, || {
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
    deadline(60, || {
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
    deadline(20, || {
        let bad = Timer::start(Duration::ZERO, || -> u8 { panic!("timer callback failed") });
        assert_eq!(
            bad.join(),
            Err(TaskError::Panicked {
                message: "timer callback failed".into()
            })
        );
        // A panic whose payload panics when dropped, too.
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
    deadline(20, || {
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
    deadline(20, || {
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
    deadline(20, || {
        let order = Arc::new(Mutex::new(Vec::new()));
        let timers: Vec<Timer> = [300u64, 100, 200]
            .into_iter()
            .map(|ms| {
                let order = order.clone();
                Timer::start(Duration::from_millis(ms), move || {
                    order.lock().unwrap().push(ms)
                })
            })
            .collect();
        for t in &timers {
            t.wait();
        }
        assert_eq!(*order.lock().unwrap(), vec![100, 200, 300]);
    });
}

#[test]
fn dropping_a_timer_does_not_cancel_it() {
    deadline(20, || {
        let (tx, rx) = mpsc::channel();
        drop(Timer::start(Duration::from_millis(1), move || {
            tx.send(1).unwrap()
        }));
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(1));
    });
}

#[test]
fn a_timer_is_a_future_and_a_task_handle() {
    deadline(20, || {
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
    deadline(60, || {
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
    deadline(30, || {
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
    deadline(30, || {
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
