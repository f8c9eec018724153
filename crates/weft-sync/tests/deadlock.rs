//! Lock-order deadlock detection and the watchdog (feature
//! `deadlock-detection`): `cargo test -p weft-sync --features deadlock-detection`.
#![cfg(feature = "deadlock-detection")]

mod common;

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex as StdMutex, MutexGuard as StdMutexGuard};
use std::thread;
use std::time::Duration;

use common::{deadline, eventually, settle};
use weft_sync::deadlock::{
    self, DeadlockKind, DeadlockReport, Primitive, StalledWait, Watchdog, waiting_longer_than,
};
use weft_sync::{
    Barrier, Condition, Event, Lock, Mutex, Queue, RLock, ReleaseError, Semaphore, panic_message,
};

/// The deadlock hook is global to the process: every test that may produce
/// a report holds this while it runs.
static SERIAL: StdMutex<()> = StdMutex::new(());

/// Collects reports while alive; puts the default (panicking) hook back
/// when dropped, even if the test fails.
struct Capture {
    reports: Reports,
    _serial: StdMutexGuard<'static, ()>,
}

/// The reports a [`Capture`] collected; can be moved to other threads.
#[derive(Clone)]
struct Reports(Arc<StdMutex<Vec<DeadlockReport>>>);

impl Reports {
    fn take(&self) -> Vec<DeadlockReport> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Capture {
    fn new() -> Capture {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let reports = Arc::new(StdMutex::new(Vec::new()));
        let sink = reports.clone();
        deadlock::set_deadlock_hook(move |r| sink.lock().unwrap().push(r.clone()));
        Capture {
            reports: Reports(reports),
            _serial: serial,
        }
    }

    fn take(&self) -> Vec<DeadlockReport> {
        self.reports.take()
    }

    fn reports(&self) -> Reports {
        self.reports.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        deadlock::reset_deadlock_hook();
    }
}

/// Serialises a test that relies on the default hook.
fn default_hook() -> StdMutexGuard<'static, ()> {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    deadlock::reset_deadlock_hook();
    serial
}

fn site(file_line: u32) -> String {
    format!("tests/deadlock.rs:{file_line}:")
}

#[test]
fn abba_inversion_is_reported_on_a_single_threaded_run() {
    let cap = Capture::new();
    let (a, b) = (Mutex::new(1), Mutex::new(2));
    {
        let (_ga, la1) = (a.lock(), line!());
        let (_gb, lb1) = (b.lock(), line!());
        drop((_gb, _ga));
        assert!(cap.take().is_empty(), "one order alone is fine");

        let (_gb, lb2) = (b.lock(), line!());
        let (_ga, la2) = (a.lock(), line!());
        let reports = cap.take();
        assert_eq!(reports.len(), 1, "{reports:#?}");
        let r = &reports[0];
        assert_eq!(r.kind, DeadlockKind::LockOrderInversion);
        assert_eq!(r.acquiring.lock, a.lock_id());
        assert_eq!(r.acquiring.primitive, Primitive::Mutex);
        assert_eq!(r.acquiring.site.line(), la2);
        assert_eq!(r.holding.lock, b.lock_id());
        assert_eq!(r.holding.site.line(), lb2);
        assert_eq!(r.earlier.len(), 1);
        let e = &r.earlier[0];
        assert_eq!((e.first.lock, e.first.site.line()), (a.lock_id(), la1));
        assert_eq!((e.then.lock, e.then.site.line()), (b.lock_id(), lb1));
        assert!(e.first.site.file().ends_with("deadlock.rs"));
        // Both orders' sites are in the message.
        let msg = r.to_string();
        for line in [la1, lb1, lb2, la2] {
            assert!(msg.contains(&site(line)), "{line} missing in:\n{msg}");
        }
        assert!(msg.contains("lock-order inversion"), "{msg}");
        // A backtrace exactly when the environment asks for one.
        let enabled = Backtrace::capture().status() == BacktraceStatus::Captured;
        assert_eq!(r.backtrace.is_some(), enabled);
        assert_eq!(e.backtrace.is_some(), enabled);
    }
    // Reported once, not on every later use of the same orders.
    {
        let _gb = b.lock();
        let _ga = a.lock();
    }
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    assert!(cap.take().is_empty());
}

#[test]
fn default_hook_panics_before_taking_the_lock() {
    let _serial = default_hook();
    deadline(10, || {
        let (a, b) = (Lock::new(()), Lock::new(()));
        a.acquire();
        let lb1 = line!() + 1;
        b.acquire();
        b.release().unwrap();
        a.release().unwrap();

        b.acquire();
        let la2 = line!() + 1;
        let err = catch_unwind(AssertUnwindSafe(|| a.acquire())).unwrap_err();
        let msg = panic_message(&*err);
        assert!(msg.contains("lock-order inversion"), "{msg}");
        assert!(msg.contains("Lock #"), "{msg}");
        assert!(msg.contains(&site(lb1)), "{msg}");
        assert!(msg.contains(&site(la2)), "{msg}");
        // The panic came before the acquisition: `a` is free.
        assert!(!a.locked());
        b.release().unwrap();
    });
}

#[test]
fn inversion_across_threads_that_never_overlapped() {
    let cap = Capture::new();
    let (a, b) = (Arc::new(Mutex::new(())), Arc::new(Mutex::new(())));
    let first = {
        let (a, b) = (a.clone(), b.clone());
        thread::Builder::new()
            .name("first-a-then-b".into())
            .spawn(move || {
                let _a = a.lock();
                let _b = b.lock();
            })
            .unwrap()
    };
    first.join().unwrap();
    let second = {
        let (a, b) = (a.clone(), b.clone());
        thread::Builder::new()
            .name("then-b-then-a".into())
            .spawn(move || {
                let _b = b.lock();
                let _a = a.lock();
            })
            .unwrap()
    };
    second.join().unwrap();
    let reports = cap.take();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0].thread, "then-b-then-a");
    assert_eq!(reports[0].earlier[0].thread, "first-a-then-b");
    let msg = reports[0].to_string();
    assert!(msg.contains("'first-a-then-b'") && msg.contains("'then-b-then-a'"));
}

#[test]
fn longer_cycles_are_found() {
    let cap = Capture::new();
    let (a, b, c) = (Mutex::new(()), Mutex::new(()), Mutex::new(()));
    {
        let _a = a.lock();
        let _b = b.lock();
    }
    {
        let _b = b.lock();
        let _c = c.lock();
    }
    assert!(cap.take().is_empty());
    {
        let _c = c.lock();
        let _a = a.lock();
    }
    let reports = cap.take();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let path: Vec<_> = reports[0]
        .earlier
        .iter()
        .map(|e| (e.first.lock, e.then.lock))
        .collect();
    assert_eq!(
        path,
        [(a.lock_id(), b.lock_id()), (b.lock_id(), c.lock_id())]
    );
}

/// "A lock dropped and re-taken in the other order later is not a false
/// positive": the locks of the first order are destroyed and new ones take
/// their place (at the very same addresses), or a lock is released before
/// the other is taken. Neither is an inversion.
#[test]
fn dropped_and_retaken_in_the_other_order_is_not_reported() {
    let cap = Capture::new();

    // 1. The locks themselves are dropped; new ones reuse the addresses.
    let mut a = Lock::new(());
    let mut b = Lock::new(());
    let (addr_a, addr_b) = (&a as *const Lock, &b as *const Lock);
    let (old_a, old_b) = (a.lock_id(), b.lock_id());
    {
        let _a = a.lock();
        let _b = b.lock();
    }
    a = Lock::new(()); // the old `a` is dropped here
    b = Lock::new(());
    assert_eq!((&a as *const Lock, &b as *const Lock), (addr_a, addr_b));
    assert_ne!(a.lock_id(), old_a, "ids are never reused, addresses are");
    assert_ne!(b.lock_id(), old_b);
    {
        let _b = b.lock();
        let _a = a.lock();
    }
    assert!(cap.take().is_empty());

    // 2. Only one of the pair replaced: the other's history went with it.
    {
        let _b = b.lock();
        let _a = a.lock();
    }
    a = Lock::new(());
    {
        let _a = a.lock();
        let _b = b.lock();
    }
    assert!(cap.take().is_empty());

    // 3. Not nested: each guard dropped before the other lock is taken.
    let (c, d) = (Mutex::new(0), Mutex::new(0));
    {
        let gc = c.lock();
        drop(gc);
        let _gd = d.lock();
    }
    {
        let _gd = d.lock();
        let _gc = c.lock(); // d then c, nested: the first nesting, no cycle
    }
    assert!(cap.take().is_empty());

    // The same sequence with the locks kept is an inversion, for contrast.
    {
        let _gc = c.lock();
        let _gd = d.lock();
    }
    assert_eq!(cap.take().len(), 1);
}

#[test]
fn rlock_reentry_is_not_reported() {
    let cap = Capture::new();
    let r = RLock::new(());
    let m = Mutex::new(());
    {
        let _r1 = r.lock();
        let _r2 = r.lock();
        r.acquire();
        assert!(r.try_acquire());
        assert!(r.acquire_timeout(Duration::from_millis(1)));
        let _m = m.lock(); // r then m
        let _r3 = r.lock(); // re-entry while holding m: cannot block
        for _ in 0..3 {
            r.release().unwrap();
        }
    }
    assert!(cap.take().is_empty());
    // Fully released: taking m then r for real is an inversion.
    {
        let _m = m.lock();
        let (_r, line) = (r.lock(), line!());
        let reports = cap.take();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].acquiring.primitive, Primitive::RLock);
        assert_eq!(reports[0].acquiring.site.line(), line);
    }
}

#[test]
fn mutex_relock_is_reported_instead_of_hanging() {
    let _serial = default_hook();
    deadline(10, || {
        let m = Mutex::new(5);
        let (g, first) = (m.lock(), line!());
        let (err, second) = (catch_unwind(AssertUnwindSafe(|| m.lock())), line!());
        let msg = panic_message(&*err.unwrap_err());
        assert!(msg.contains("relock"), "{msg}");
        assert!(msg.contains(&site(first)), "{msg}");
        assert!(msg.contains(&site(second)), "{msg}");
        drop(g);
        // Released: locking again is fine.
        assert_eq!(*m.lock(), 5);

        let lock = Lock::new(());
        lock.acquire();
        let err = catch_unwind(AssertUnwindSafe(|| lock.acquire())).unwrap_err();
        assert!(panic_message(&*err).contains("Lock #"));
        lock.release().unwrap();
    });
}

#[test]
fn relock_with_a_hook_that_returns_still_blocks_until_released() {
    let capture = Capture::new();
    let cap = capture.reports();
    deadline(10, move || {
        let lock = Arc::new(Lock::new(()));
        lock.acquire();
        thread::scope(|s| {
            s.spawn(|| {
                settle();
                lock.release().unwrap(); // Python's Lock: any thread may release
            });
            lock.acquire(); // reported, then waits for the release
        });
        let reports = cap.take();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind, DeadlockKind::Relock);
        assert_eq!(reports[0].acquiring.primitive, Primitive::Lock);
        lock.release().unwrap();
    });
}

#[test]
fn timed_relock_is_not_reported_and_times_out() {
    let cap = Capture::new();
    let m = Mutex::new(());
    let _g = m.lock();
    assert!(m.try_lock_for(Duration::from_millis(5)).is_none());
    assert!(m.try_lock().is_none());
    let lock = Lock::new(());
    lock.acquire();
    assert!(!lock.acquire_timeout(Duration::from_millis(5)));
    assert!(!lock.try_acquire());
    lock.release().unwrap();
    assert!(cap.take().is_empty());
}

#[test]
fn try_lock_creates_no_edge_but_counts_as_held() {
    let cap = Capture::new();
    let (a, b) = (Mutex::new(()), Mutex::new(()));
    {
        let _a = a.lock();
        let _b = b.try_lock().unwrap(); // no edge a -> b
    }
    {
        let _b = b.lock();
        let _a = a.lock(); // edge b -> a, no cycle
    }
    assert!(cap.take().is_empty());

    // A try-locked lock is held: what is taken under it is ordered after it.
    let (c, d) = (Lock::new(()), Lock::new(()));
    assert!(c.try_acquire());
    d.acquire(); // edge c -> d
    d.release().unwrap();
    c.release().unwrap();
    {
        let _d = d.lock();
        let _c = c.lock();
    }
    assert_eq!(cap.take().len(), 1);
}

#[test]
fn guard_dropped_on_another_thread_keeps_bookkeeping() {
    let capture = Capture::new();
    let cap = capture.reports();
    deadline(10, move || {
        let (a, b) = (Mutex::new(0), Mutex::new(0));
        let (a, b) = (&a, &b);
        let ga = a.lock();
        thread::scope(|s| {
            s.spawn(move || drop(ga));
        });
        // This thread no longer holds `a`: no relock, and `b` is not
        // ordered after it.
        drop(a.lock());
        {
            let _b = b.lock();
        }
        {
            let _b = b.lock();
            let _a = a.lock();
        }
        assert!(cap.take().is_empty());

        // Nor does the thread that dropped it: it may lock `a` freely.
        let ga = a.lock();
        thread::scope(|s| {
            s.spawn(move || {
                drop(ga);
                let _a = a.lock();
                let _b = b.lock(); // a then b on this thread: the inversion of b then a
            });
        });
        let reports = cap.take();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].kind, DeadlockKind::LockOrderInversion);

        // A `Lock` released by another thread (Python allows it).
        let lock = Lock::new(());
        lock.acquire();
        thread::scope(|s| {
            s.spawn(|| lock.release().unwrap());
        });
        lock.acquire(); // not a relock
        lock.release().unwrap();
        assert_eq!(lock.release(), Err(ReleaseError::NotLocked));
        assert!(cap.take().is_empty());
    });
}

#[test]
fn condition_wait_releases_and_retakes_the_mutex() {
    let capture = Capture::new();
    let cap = capture.reports();
    deadline(10, move || {
        let pair = (Mutex::new(false), Condition::new());
        let other = Mutex::new(());
        thread::scope(|s| {
            s.spawn(|| {
                settle();
                *pair.0.lock() = true;
                pair.1.notify_all();
            });
            let mut ready = pair.0.lock();
            pair.1.wait_for(&mut ready, |r| *r);
            // Still recorded as held, exactly once: taking `other` orders it
            // after the mutex, and the guard's drop releases the record.
            let _o = other.lock();
        });
        assert!(!pair.0.is_locked());
        drop(pair.0.lock()); // no relock report: the record is gone
        assert!(cap.take().is_empty());
        {
            // other -> mutex: the inversion of the order above.
            let _o = other.lock();
            let _m = pair.0.lock();
        }
        assert_eq!(cap.take().len(), 1);
    });
}

#[test]
fn dropping_a_held_lock_clears_its_record() {
    let cap = Capture::new();
    let a = Lock::new(());
    a.acquire();
    drop(a); // never released
    let b = Lock::new(());
    let c = Lock::new(());
    {
        let _b = b.lock();
        let _c = c.lock();
    }
    {
        let _c = c.lock();
        let _b = b.lock();
    }
    // Exactly the b/c inversion; nothing about the dropped lock.
    let reports = cap.take();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0]
            .earlier
            .iter()
            .all(|e| e.first.lock == b.lock_id())
    );
}

// ---------------------------------------------------------------------------
// The watchdog.

fn stalled_on(thread_name: &str) -> Vec<StalledWait> {
    waiting_longer_than(Duration::from_millis(20))
        .into_iter()
        .filter(|w| w.thread_name.as_deref() == Some(thread_name))
        .collect()
}

#[test]
fn watchdog_reports_a_thread_stuck_on_a_semaphore_then_stops() {
    deadline(20, || {
        let sem = Arc::new(Semaphore::new(0));
        let expected_line = line!() + 6;
        let waiter = {
            let sem = sem.clone();
            thread::Builder::new()
                .name("stuck-on-semaphore".into())
                .spawn(move || {
                    let _permit = sem.acquire();
                })
                .unwrap()
        };
        assert!(eventually(|| !stalled_on("stuck-on-semaphore").is_empty()));
        let w = &stalled_on("stuck-on-semaphore")[0];
        assert_eq!(w.primitive, Primitive::Semaphore);
        assert!(w.site.file().ends_with("deadlock.rs"), "{}", w.site);
        assert_eq!(w.site.line(), expected_line);
        assert!(w.waited >= Duration::from_millis(20));
        let text = w.to_string();
        assert!(text.contains("stuck-on-semaphore") && text.contains("Semaphore"));

        sem.release(1);
        waiter.join().unwrap();
        assert!(
            waiting_longer_than(Duration::ZERO)
                .iter()
                .all(|w| w.thread_name.as_deref() != Some("stuck-on-semaphore"))
        );
    });
}

#[test]
fn background_watchdog_reports_a_stuck_mutex_until_it_proceeds() {
    deadline(20, || {
        let (tx, rx) = mpsc::channel::<Vec<StalledWait>>();
        let watchdog = Watchdog::spawn(
            Duration::from_millis(20),
            Duration::from_millis(10),
            move |stalled| {
                let mine: Vec<_> = stalled
                    .iter()
                    .filter(|w| w.thread_name.as_deref() == Some("stuck-on-mutex"))
                    .cloned()
                    .collect();
                if !mine.is_empty() {
                    let _ = tx.send(mine);
                }
            },
        )
        .unwrap();
        let m = Arc::new(Mutex::new(0));
        let held = m.lock();
        let expected_line = line!() + 6;
        let waiter = {
            let m = m.clone();
            thread::Builder::new()
                .name("stuck-on-mutex".into())
                .spawn(move || {
                    *m.lock() += 1;
                })
                .unwrap()
        };
        let first = rx.recv_timeout(Duration::from_secs(5)).expect("a report");
        assert_eq!(first[0].primitive, Primitive::Mutex);
        assert_eq!(first[0].site.line(), expected_line);
        // Reported again at later checks while it is still stuck.
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a second report");

        drop(held);
        waiter.join().unwrap();
        // Drain what was sent before it proceeded, then nothing more comes.
        while rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        drop(watchdog); // stops and joins its thread
        assert_eq!(*m.lock(), 1);
    });
}

/// A hook that panics is reported and the watchdog goes on checking; a
/// check interval of `Duration::MAX` means "never", not a panic.
#[test]
fn watchdog_survives_a_panicking_hook() {
    deadline(30, || {
        let (tx, rx) = mpsc::channel::<()>();
        let watchdog = Watchdog::spawn(Duration::ZERO, Duration::from_millis(10), move |stalled| {
            if stalled
                .iter()
                .any(|w| w.thread_name.as_deref() == Some("stuck-for-the-panicking-hook"))
            {
                let _ = tx.send(());
                panic!("watchdog hook failed");
            }
        })
        .unwrap();
        let e = Arc::new(Event::new());
        let waiter = {
            let e = e.clone();
            thread::Builder::new()
                .name("stuck-for-the-panicking-hook".into())
                .spawn(move || e.wait())
                .unwrap()
        };
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(10))
                .expect("the hook is called again after it panicked");
        }
        e.set();
        waiter.join().unwrap();
        drop(watchdog);

        let idle = Watchdog::spawn(Duration::ZERO, Duration::MAX, |_| {}).unwrap();
        drop(idle); // stops and joins
    });
}

#[test]
fn watchdog_rejects_a_zero_interval() {
    let err = Watchdog::spawn(Duration::from_secs(1), Duration::ZERO, |_| {}).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn watchdog_names_every_blocking_primitive() {
    deadline(30, || {
        let lock = Arc::new(Lock::new(()));
        let rlock = Arc::new(RLock::new(()));
        let event = Arc::new(Event::new());
        let queue = Arc::new(Queue::<u8>::bounded(1));
        let barrier = Arc::new(Barrier::new(2));
        let cond = Arc::new((Mutex::new(false), Condition::new()));
        lock.acquire();
        let rguard_release = Arc::new(Event::new());
        // Hold the RLock on a helper thread (its guard is not Send).
        let rholder = {
            let (rlock, done) = (rlock.clone(), rguard_release.clone());
            thread::spawn(move || {
                let _g = rlock.lock();
                done.wait();
            })
        };
        assert!(eventually(|| rlock.is_locked()));

        type Body = Box<dyn FnOnce() + Send>;
        let mut cases: Vec<(&str, Primitive, u32, Body)> = Vec::new();
        {
            let l = lock.clone();
            cases.push((
                "wd-lock",
                Primitive::Lock,
                line!(),
                Box::new(move || l.acquire()),
            ));
            let r = rlock.clone();
            cases.push((
                "wd-rlock",
                Primitive::RLock,
                line!(),
                Box::new(move || drop(r.lock())),
            ));
            let e = event.clone();
            cases.push((
                "wd-event",
                Primitive::Event,
                line!(),
                Box::new(move || e.wait()),
            ));
            let q = queue.clone();
            cases.push((
                "wd-queue",
                Primitive::Queue,
                line!(),
                Box::new(move || {
                    let _ = q.get();
                }),
            ));
            let b = barrier.clone();
            cases.push((
                "wd-barrier",
                Primitive::Barrier,
                line!(),
                Box::new(move || {
                    let _ = b.wait();
                }),
            ));
            let c = cond.clone();
            cases.push((
                "wd-condition",
                Primitive::Condition,
                line!(),
                Box::new(move || {
                    let mut g = c.0.lock();
                    c.1.wait_for(&mut g, |ready| *ready)
                }),
            ));
        }
        let mut threads = Vec::new();
        let mut expect = Vec::new();
        for (name, primitive, line, body) in cases {
            threads.push(
                thread::Builder::new()
                    .name(name.into())
                    .spawn(body)
                    .unwrap(),
            );
            expect.push((name, primitive, line));
        }
        for (name, primitive, line) in expect {
            assert!(
                eventually(|| !stalled_on(name).is_empty()),
                "{name} never reported"
            );
            let w = &stalled_on(name)[0];
            assert_eq!(w.primitive, primitive, "{name}");
            assert!(w.site.file().ends_with("deadlock.rs"), "{name}: {}", w.site);
            // The call is on the line of `line!()` or just below it.
            assert!(
                (line..line + 5).contains(&w.site.line()),
                "{name}: {} (expected line {line})",
                w.site
            );
        }

        lock.release().unwrap();
        rguard_release.set();
        event.set();
        queue.put(1).unwrap();
        barrier.wait().unwrap();
        *cond.0.lock() = true;
        cond.1.notify_all();
        for t in threads {
            t.join().unwrap();
        }
        rholder.join().unwrap();
        for name in [
            "wd-lock",
            "wd-rlock",
            "wd-event",
            "wd-queue",
            "wd-barrier",
            "wd-condition",
        ] {
            assert!(stalled_on(name).is_empty(), "{name}");
        }
        lock.release().unwrap();
    });
}
