//! Condition, modelled on CPython's lock_tests.py ConditionTests.

mod common;

/// Iterations of the stress loops (smaller under Miri, which is slow).
const ROUNDS: u32 = if cfg!(miri) { 30 } else { 300 };

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{deadline, eventually, settle};
use futures_lite::future::{block_on, poll_once};
use weft_sync::{Condition, Mutex};

type Shared = Arc<(Mutex<u32>, Condition, AtomicUsize)>;

fn waiters(shared: &Shared, n: usize) -> Vec<thread::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let s = shared.clone();
            thread::spawn(move || {
                let (m, c, woken) = &*s;
                let mut g = m.lock();
                *g += 1; // registered as waiting
                c.wait(&mut g);
                woken.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect()
}

#[test]
fn notify_wakes_exactly_n() {
    deadline(20, || {
        let shared: Shared = Arc::new((Mutex::new(0), Condition::new(), AtomicUsize::new(0)));
        let hs = waiters(&shared, 5);
        let (m, c, woken) = &*shared;
        assert!(eventually(|| *m.lock() == 5), "all five are waiting");
        // Holding the lock while notifying guarantees they are all inside wait.
        {
            let _g = m.lock();
            c.notify(2);
        }
        assert!(eventually(|| woken.load(Ordering::SeqCst) == 2));
        settle();
        assert_eq!(
            woken.load(Ordering::SeqCst),
            2,
            "notify(2) woke more than two"
        );
        c.notify_one();
        assert!(eventually(|| woken.load(Ordering::SeqCst) == 3));
        settle();
        assert_eq!(woken.load(Ordering::SeqCst), 3);
        c.notify_all();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(woken.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn notify_does_not_reach_later_waiters() {
    deadline(10, || {
        let (m, c) = (Mutex::new(()), Condition::new());
        c.notify_all(); // nobody waiting: lost, as in Python
        let mut g = m.lock();
        assert!(!c.wait_timeout(&mut g, Duration::from_millis(30)));
    });
}

#[test]
fn wait_timeout_expires_and_relocks() {
    let (m, c) = (Mutex::new(7), Condition::new());
    let mut g = m.lock();
    let start = Instant::now();
    assert!(!c.wait_timeout(&mut g, Duration::from_millis(40)));
    assert!(start.elapsed() >= Duration::from_millis(40));
    assert!(
        m.try_lock().is_none(),
        "the lock is held again after the wait"
    );
    assert_eq!(*g, 7);
    assert!(!c.wait_for_timeout(&mut g, Duration::from_millis(10), |v| *v == 8));
}

#[test]
fn wait_for_predicate_across_threads_and_tasks() {
    deadline(10, || {
        let s = Arc::new((Mutex::new(0u32), Condition::new()));
        let t = {
            let s = s.clone();
            thread::spawn(move || {
                let (m, c) = &*s;
                let mut g = m.lock();
                c.wait_for(&mut g, |v| *v >= 3);
                *g
            })
        };
        let task = {
            let s = s.clone();
            thread::spawn(move || {
                block_on(async {
                    let (m, c) = &*s;
                    let g = m.lock_async().await;
                    let g = c.wait_for_async(g, |v| *v >= 3).await;
                    *g
                })
            })
        };
        for _ in 0..3 {
            settle();
            let (m, c) = &*s;
            *m.lock() += 1;
            c.notify_all();
        }
        assert!(t.join().unwrap() >= 3);
        assert!(task.join().unwrap() >= 3);
        let (m, c) = &*s;
        let mut g = m.lock();
        assert!(c.wait_for_timeout(&mut g, Duration::from_millis(1), |v| *v == 3));
    });
}

#[test]
fn dropped_async_wait_leaves_mutex_unlocked() {
    let (m, c) = (Mutex::new(()), Condition::new());
    let g = m.lock();
    let mut fut = Box::pin(c.wait_async(g));
    assert!(block_on(futures_lite::future::poll_once(&mut fut)).is_none());
    assert!(m.try_lock().is_none() || m.try_lock().is_some());
    drop(fut);
    assert!(m.try_lock().is_some(), "mutex released by the dropped wait");
}

#[test]
fn producer_consumer() {
    deadline(20, || {
        let s = Arc::new((Mutex::new(Vec::<u32>::new()), Condition::new()));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || {
                    let (m, c) = &*s;
                    let mut sum = 0u64;
                    loop {
                        let mut g = m.lock();
                        c.wait_for(&mut g, |q| !q.is_empty());
                        let v = g.pop().unwrap();
                        if v == 0 {
                            return sum;
                        }
                        sum += u64::from(v);
                    }
                })
            })
            .collect();
        let (m, c) = &*s;
        for v in 1..=ROUNDS {
            m.lock().insert(0, v);
            c.notify_one();
        }
        for _ in 0..3 {
            m.lock().insert(0, 0);
            c.notify_one();
        }
        let total: u64 = consumers.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, (1..=u64::from(ROUNDS)).sum::<u64>());
    });
}

/// An async waiter cancelled after it was notified passes the notification
/// on to another waiter (tokio's `Notify`, Python's `asyncio.Condition`),
/// whether it is dropped before it saw the notification or while it waits
/// to take the mutex back.
#[test]
fn notified_then_cancelled_async_waiter_passes_the_notification_on() {
    let m = Mutex::new(0);
    let c = Condition::new();
    let waiter = || async {
        let g = m.lock_async().await;
        c.wait_async(g).await
    };

    // Dropped while waiting to re-take the mutex.
    let mut a = Box::pin(waiter());
    let mut b = Box::pin(waiter());
    assert!(block_on(poll_once(&mut a)).is_none());
    assert!(block_on(poll_once(&mut b)).is_none());
    c.notify_one(); // reaches `a`, the first to wait
    let held = m.lock();
    assert!(
        block_on(poll_once(&mut a)).is_none(),
        "`a` saw the notification and now waits for the mutex"
    );
    drop(a);
    drop(held);
    let g = block_on(poll_once(&mut b)).expect("`a`'s notification reached `b`");
    drop(g);
    drop(b);

    // Dropped before it even saw the notification.
    let mut a = Box::pin(waiter());
    let mut b = Box::pin(waiter());
    assert!(block_on(poll_once(&mut a)).is_none());
    assert!(block_on(poll_once(&mut b)).is_none());
    c.notify_one();
    drop(a);
    assert!(block_on(poll_once(&mut b)).is_some());
}

/// A blocking waiter notified just as its timeout fires either reports the
/// notification (`true`) or never had it: then the other waiter gets it.
/// One notification is never lost between the two.
#[test]
fn notify_racing_a_timeout_is_never_lost() {
    deadline(120, || {
        for round in 0..if cfg!(miri) { 4 } else { 40u64 } {
            // The mutex counts the waiters that have started waiting (a
            // waiter is listening before `wait_timeout` unlocks the mutex).
            let shared = Arc::new((Mutex::new(0usize), Condition::new()));
            let spawn = |timeout: Duration| {
                let shared = shared.clone();
                thread::spawn(move || {
                    let (m, c) = &*shared;
                    let mut g = m.lock();
                    *g += 1;
                    c.wait_timeout(&mut g, timeout)
                })
            };
            let (m, c) = &*shared;
            // First in line, with a timeout about as long as it takes to
            // start the second waiter and notify.
            let racer = spawn(Duration::from_micros(200 * (round % 10)));
            assert!(eventually(|| *m.lock() == 1));
            let patient = spawn(Duration::from_secs(30));
            assert!(eventually(|| *m.lock() == 2));
            c.notify_one();
            if racer.join().unwrap() {
                // The racer had it; the patient waiter still waits: give it
                // its own.
                c.notify_one();
            }
            assert!(
                patient.join().unwrap(),
                "the patient waiter timed out: a notification was lost"
            );
        }
    });
}

// Condition with an RLock (Python's default Condition lock).

#[test]
fn rlock_condition_at_depth_three_releases_fully_and_restores() {
    deadline(20, || {
        use std::sync::atomic::AtomicBool;
        use weft_sync::RLock;
        let shared = Arc::new((
            RLock::new(AtomicBool::new(false)),
            Condition::new(),
            AtomicBool::new(false),
        ));
        let waiter = {
            let shared = shared.clone();
            thread::spawn(move || {
                let (lock, cond, entered) = &*shared;
                let g1 = lock.lock();
                let g2 = lock.lock();
                let mut g3 = lock.lock();
                assert_eq!(lock.depth(), 3);
                entered.store(true, Ordering::SeqCst);
                cond.wait_for_rlock(&mut g3, |ready| ready.load(Ordering::SeqCst));
                // Woken and restored to the depth it had.
                assert!(lock.is_owned_by_current_thread());
                assert_eq!(lock.depth(), 3);
                drop(g3);
                drop(g2);
                assert!(lock.is_locked(), "one level still held");
                drop(g1);
                assert!(!lock.is_owned_by_current_thread());
            })
        };
        let (lock, cond, entered) = &*shared;
        assert!(eventually(|| entered.load(Ordering::SeqCst)));
        // The waiter took the lock three times: the notifier can take it
        // only once the waiter's wait has released all three levels.
        assert!(eventually(|| {
            match lock.try_lock() {
                Some(g) => !g.load(Ordering::SeqCst) && lock.depth() == 1,
                None => false,
            }
        }));
        {
            let g = lock.lock();
            assert_eq!(lock.depth(), 1, "the notifier holds it alone");
            g.store(true, Ordering::SeqCst);
            cond.notify_all();
        }
        waiter.join().unwrap();
        assert!(!lock.is_locked());
    });
}

#[test]
fn rlock_condition_timeouts_restore_the_depth() {
    deadline(20, || {
        use weft_sync::RLock;
        let (lock, cond) = (RLock::new(0u32), Condition::new());
        let _g1 = lock.lock();
        let _g2 = lock.lock();
        let mut g3 = lock.lock();
        let start = Instant::now();
        assert!(!cond.wait_rlock_timeout(&mut g3, Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert_eq!(lock.depth(), 3);
        assert!(!cond.wait_for_rlock_timeout(&mut g3, Duration::from_millis(10), |n| *n > 0));
        assert_eq!(lock.depth(), 3);
        // While it waits, another thread can take the lock. The notifier
        // notifies each time it finds the lock free, until the waiter has
        // woken: a notification that lands after a wait timed out and
        // before the waiter took the lock back reaches nobody (as in
        // Python), and the next wait needs one of its own.
        let woken = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !woken.load(Ordering::SeqCst) {
                    if lock.try_lock().is_some() {
                        cond.notify_all();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            while !cond.wait_rlock_timeout(&mut g3, Duration::from_millis(50)) {}
            woken.store(true, Ordering::SeqCst);
        });
        assert_eq!(lock.depth(), 3);
    });
}

#[test]
fn rlock_condition_notify_wakes_exactly_the_waiters_present() {
    deadline(20, || {
        use weft_sync::RLock;
        let shared = Arc::new((
            RLock::new(AtomicUsize::new(0)),
            Condition::new(),
            AtomicUsize::new(0),
        ));
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let s = shared.clone();
                thread::spawn(move || {
                    let (lock, cond, woken) = &*s;
                    let _outer = lock.lock();
                    let mut g = lock.lock();
                    g.fetch_add(1, Ordering::SeqCst);
                    cond.wait_rlock(&mut g);
                    assert_eq!(lock.depth(), 2);
                    woken.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let (lock, cond, woken) = &*shared;
        assert!(eventually(|| lock.lock().load(Ordering::SeqCst) == 3));
        cond.notify(2);
        assert!(eventually(|| woken.load(Ordering::SeqCst) == 2));
        settle();
        assert_eq!(woken.load(Ordering::SeqCst), 2);
        cond.notify_all();
        for w in waiters {
            w.join().unwrap();
        }
    });
}

// Threads and tasks in one queue: notify(n) takes the n oldest waiters,
// whichever kind they are.

/// What each waiter of the mixed tests records: who woke, in which order.
type Log = Arc<(Mutex<usize>, Condition, std::sync::Mutex<Vec<&'static str>>)>;

/// A thread that waits once (counting itself in the mutex first, so the
/// caller knows it is queued once it can take the mutex and sees the
/// count), then logs `name`.
fn thread_waiter(log: &Log, name: &'static str) -> thread::JoinHandle<()> {
    let log = log.clone();
    let before = queued(&log);
    let h = {
        let log = log.clone();
        thread::spawn(move || {
            let (m, c, woke) = &*log;
            let mut g = m.lock();
            *g += 1;
            c.wait(&mut g);
            woke.lock().unwrap().push(name);
        })
    };
    assert!(eventually(|| *log.0.lock() > before), "{name} is waiting");
    h
}

fn queued(log: &Log) -> usize {
    *log.0.lock()
}

/// A task (a future polled by hand on this thread) that waits once, then
/// logs `name`; polled once here, so it is queued when this returns.
fn task_waiter<'a>(
    log: &'a Log,
    name: &'static str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> {
    let mut fut = Box::pin(async move {
        let (m, c, woke) = &**log;
        let mut g = m.lock_async().await;
        *g += 1;
        let g = c.wait_async(g).await;
        drop(g);
        woke.lock().unwrap().push(name);
    });
    assert!(block_on(poll_once(&mut fut)).is_none(), "{name} is waiting");
    fut
}

fn woke(log: &Log) -> Vec<&'static str> {
    log.2.lock().unwrap().clone()
}

/// Waits until `n` waiters have logged, then checks that no more do.
fn settled_at(log: &Log, n: usize) -> Vec<&'static str> {
    assert!(eventually(|| woke(log).len() >= n), "{n} waiters woke");
    settle();
    let w = woke(log);
    assert_eq!(w.len(), n, "woke more than notified: {w:?}");
    w
}

#[test]
fn notify_n_wakes_exactly_n_threads_and_tasks_oldest_first() {
    deadline(30, || {
        let log: Log = Arc::new((Mutex::new(0), Condition::new(), Default::default()));
        let (m, c, _) = &*log;
        let t1 = thread_waiter(&log, "t1");
        let mut a1 = task_waiter(&log, "a1");
        let t2 = thread_waiter(&log, "t2");
        let mut a2 = task_waiter(&log, "a2");
        let t3 = thread_waiter(&log, "t3");
        let mut a3 = task_waiter(&log, "a3");
        assert_eq!(queued(&log), 6);

        // Three of six, with the mutex held (Python's rule): t1, a1, t2.
        {
            let _g = m.lock();
            c.notify(3);
        }
        // The woken threads done with the mutex, a notified task's poll
        // takes it and completes, and one not notified stays pending.
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(block_on(poll_once(&mut a1)).is_some(), "a1 was notified");
        assert!(block_on(poll_once(&mut a2)).is_none(), "a2 was not");
        assert!(block_on(poll_once(&mut a3)).is_none(), "a3 was not");
        let mut w = settled_at(&log, 3);
        w.sort_unstable();
        assert_eq!(w, ["a1", "t1", "t2"]);

        // The next oldest is a task.
        c.notify_one();
        assert!(block_on(poll_once(&mut a3)).is_none(), "a3 is younger");
        assert!(block_on(poll_once(&mut a2)).is_some(), "a2 was next");
        settled_at(&log, 4);

        // Then t3, then a3; the third of these three finds nobody.
        c.notify_one();
        settled_at(&log, 5);
        t3.join().unwrap();
        assert!(block_on(poll_once(&mut a3)).is_none(), "a3 is younger");
        c.notify(2);
        assert!(block_on(poll_once(&mut a3)).is_some());
        settled_at(&log, 6);
        assert_eq!(&woke(&log)[3..], ["a2", "t3", "a3"]);
    });
}

#[test]
fn notify_all_wakes_every_thread_and_task_but_not_later_ones() {
    deadline(30, || {
        let log: Log = Arc::new((Mutex::new(0), Condition::new(), Default::default()));
        let (_, c, _) = &*log;
        let mut threads = Vec::new();
        let mut tasks = Vec::new();
        const NAMES: [(&str, &str); 12] = [
            ("t0", "a0"),
            ("t1", "a1"),
            ("t2", "a2"),
            ("t3", "a3"),
            ("t4", "a4"),
            ("t5", "a5"),
            ("t6", "a6"),
            ("t7", "a7"),
            ("t8", "a8"),
            ("t9", "a9"),
            ("t10", "a10"),
            ("t11", "a11"),
        ];
        // More than one batch of wake-ups (8) of each kind.
        let n = if cfg!(miri) { 5 } else { 12 };
        for &(t, a) in &NAMES[..n] {
            threads.push(thread_waiter(&log, t));
            tasks.push(task_waiter(&log, a));
        }
        c.notify_all();
        for t in threads {
            t.join().unwrap();
        }
        // A waiter that arrives after notify_all is not woken by it.
        let mut late = task_waiter(&log, "late");
        for task in &mut tasks {
            assert!(block_on(poll_once(task)).is_some());
        }
        settled_at(&log, 2 * n);
        assert!(block_on(poll_once(&mut late)).is_none(), "late was woken");
        c.notify_all();
        assert!(block_on(poll_once(&mut late)).is_some());
    });
}

/// A waiter that gave up (timed out, or a task dropped before it was
/// notified) takes no notification with it: the next one goes to the
/// waiter behind it.
#[test]
fn withdrawn_waiters_do_not_absorb_notifications() {
    deadline(30, || {
        let log: Log = Arc::new((Mutex::new(0), Condition::new(), Default::default()));
        let (m, c, _) = &*log;
        let timed = {
            let log = log.clone();
            thread::spawn(move || {
                let (m, c, _) = &*log;
                let mut g = m.lock();
                *g += 1;
                c.wait_timeout(&mut g, Duration::from_millis(20))
            })
        };
        assert!(eventually(|| *m.lock() == 1));
        let cancelled = task_waiter(&log, "cancelled");
        let t = thread_waiter(&log, "t");
        assert!(!timed.join().unwrap(), "the timed waiter timed out");
        drop(cancelled);
        c.notify_one();
        t.join().unwrap();
        assert_eq!(woke(&log), ["t"]);
    });
}

/// A thread waiter notified just as its timeout fires either returns
/// `true` (the notification was its) or `false` (it was not counted, and
/// the next waiter gets it): the notification is never lost, and never
/// wakes two waiters.
#[test]
fn timeout_racing_notify_wakes_exactly_one() {
    deadline(120, || {
        let rounds = if cfg!(miri) { 3 } else { 60u64 };
        for round in 0..rounds {
            let log: Log = Arc::new((Mutex::new(0), Condition::new(), Default::default()));
            let (m, c, _) = &*log;
            let racer = {
                let log = log.clone();
                thread::spawn(move || {
                    let (m, c, _) = &*log;
                    let mut g = m.lock();
                    *g += 1;
                    c.wait_timeout(&mut g, Duration::from_micros(50 * (round % 20)))
                })
            };
            assert!(eventually(|| *m.lock() >= 1));
            let patient = thread_waiter(&log, "patient");
            c.notify_one();
            if racer.join().unwrap() {
                // The racer had it: the patient waiter must still wait.
                settle();
                assert!(!patient.is_finished(), "one notification woke two waiters");
                assert!(woke(&log).is_empty());
                c.notify_one();
            }
            patient.join().unwrap();
            assert_eq!(woke(&log), ["patient"]);
        }
    });
}

/// Timed waits on an RLock condition take their turn in the same queue.
#[test]
fn rlock_waiters_share_the_fifo_queue() {
    deadline(30, || {
        use weft_sync::RLock;
        let shared = Arc::new((RLock::new(()), Condition::new(), AtomicUsize::new(0)));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for i in 0..3usize {
            let (s, order) = (shared.clone(), order.clone());
            hs.push(thread::spawn(move || {
                let (lock, cond, queued) = &*s;
                let _outer = lock.lock();
                let mut g = lock.lock();
                queued.fetch_add(1, Ordering::SeqCst);
                assert!(cond.wait_rlock_timeout(&mut g, Duration::from_secs(30)));
                assert_eq!(lock.depth(), 2);
                order.lock().unwrap().push(i);
            }));
            // Queued once it released the lock.
            assert!(eventually(|| {
                shared.2.load(Ordering::SeqCst) == i + 1 && shared.0.try_lock().is_some()
            }));
        }
        let (_, cond, _) = &*shared;
        for n in 1..=3 {
            cond.notify_one();
            assert!(eventually(|| order.lock().unwrap().len() == n));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    });
}

/// Many producers and consumers (threads and tasks) on a bounded buffer,
/// with two conditions and notify_one only: a lost notification hangs the
/// test, a duplicated or lost item breaks the counts.
#[test]
fn stress_bounded_buffer_counts_exactly() {
    deadline(120, || {
        const CAP: usize = 4;
        let (producers, consumers, tasks, per) = if cfg!(miri) {
            (2, 2, 1, 10u64)
        } else {
            (6, 5, 3, 2_000u64)
        };
        struct Buf {
            items: std::collections::VecDeque<u64>,
            done_producers: usize,
        }
        let shared = Arc::new((
            Mutex::new(Buf {
                items: Default::default(),
                done_producers: 0,
            }),
            Condition::new(), // not empty (or all producers done)
            Condition::new(), // not full
        ));
        let produced = producers as u64 * per;
        let mut hs = Vec::new();
        for p in 0..producers as u64 {
            let s = shared.clone();
            hs.push(thread::spawn(move || {
                let (m, not_empty, not_full) = &*s;
                for i in 0..per {
                    let mut g = m.lock();
                    not_full.wait_for(&mut g, |b| b.items.len() < CAP);
                    g.items.push_back(p * per + i);
                    drop(g);
                    not_empty.notify_one();
                }
                m.lock().done_producers += 1;
                not_empty.notify_all();
                (0, 0)
            }));
        }
        let consume = move |s: Arc<(Mutex<Buf>, Condition, Condition)>| {
            move || {
                let (m, not_empty, not_full) = &*s;
                let (mut n, mut sum) = (0u64, 0u64);
                loop {
                    let mut g = m.lock();
                    not_empty.wait_for(&mut g, |b| {
                        !b.items.is_empty() || b.done_producers == producers
                    });
                    let Some(v) = g.items.pop_front() else {
                        return (n, sum);
                    };
                    drop(g);
                    not_full.notify_one();
                    n += 1;
                    sum += v;
                }
            }
        };
        for _ in 0..consumers {
            hs.push(thread::spawn(consume(shared.clone())));
        }
        for _ in 0..tasks {
            let s = shared.clone();
            hs.push(thread::spawn(move || {
                block_on(async {
                    let (m, not_empty, not_full) = &*s;
                    let (mut n, mut sum) = (0u64, 0u64);
                    loop {
                        let g = m.lock_async().await;
                        let mut g = not_empty
                            .wait_for_async(g, |b| {
                                !b.items.is_empty() || b.done_producers == producers
                            })
                            .await;
                        let Some(v) = g.items.pop_front() else {
                            return (n, sum);
                        };
                        drop(g);
                        not_full.notify_one();
                        n += 1;
                        sum += v;
                    }
                })
            }));
        }
        let (mut n, mut sum) = (0, 0);
        for h in hs {
            let (hn, hsum) = h.join().unwrap();
            n += hn;
            sum += hsum;
        }
        assert_eq!(n, produced, "every item consumed exactly once");
        assert_eq!(sum, (0..produced).sum::<u64>());
        assert!(shared.0.lock().items.is_empty());
    });
}

/// A task notified and then dropped before it ran passes its notification
/// to the next waiter, a thread here; `notify(0)` wakes nobody.
#[test]
fn notified_task_dropped_passes_the_notification_to_a_thread() {
    deadline(30, || {
        let log: Log = Arc::new((Mutex::new(0), Condition::new(), Default::default()));
        let (_, c, _) = &*log;
        let a = task_waiter(&log, "a");
        let t = thread_waiter(&log, "t");
        c.notify(0);
        c.notify_one(); // takes `a`, the oldest
        settle();
        assert!(woke(&log).is_empty(), "the thread was not notified");
        drop(a);
        t.join().unwrap();
        assert_eq!(woke(&log), ["t"]);
    });
}
