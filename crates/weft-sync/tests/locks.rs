//! Mutex, Lock and RLock, modelled on CPython's lock_tests.py.

mod common;

/// Iterations of the stress loops (smaller under Miri, which is slow).
const ROUNDS: u64 = if cfg!(miri) { 40 } else { 2000 };

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{deadline, eventually, settle};
use futures_lite::future::{block_on, poll_once};
use weft_sync::{Lock, Mutex, RLock, ReleaseError};

#[test]
fn mutex_excludes_threads_and_tasks_together() {
    deadline(30, || {
        let m = Arc::new(Mutex::new(0u64));
        let mut hs = Vec::new();
        for i in 0..4 {
            let m = m.clone();
            hs.push(thread::spawn(move || {
                for _ in 0..ROUNDS {
                    if i % 2 == 0 {
                        let mut g = m.lock();
                        let v = *g;
                        thread::yield_now();
                        *g = v + 1;
                    } else {
                        block_on(async {
                            let mut g = m.lock_async().await;
                            let v = *g;
                            *g = v + 1;
                        });
                    }
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 4 * ROUNDS);
    });
}

/// The park/unpark path under churn: holders sleep while holding, so that
/// others park; some waiters give up on short timeouts (a timed-out last
/// waiter clears `PARKED` while an unlock is waking); async waiters mix in.
/// Every successful lock is counted exactly once and nobody is stranded.
#[test]
fn parked_waiters_timeouts_and_tasks_never_strand_or_double_count() {
    deadline(60, || {
        let rounds = ROUNDS / 10;
        let m = Arc::new(Mutex::new(0u64));
        let taken = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (m, taken) = (m.clone(), taken.clone());
                thread::spawn(move || {
                    for r in 0..rounds {
                        let guard = match i % 3 {
                            0 => Some(m.lock()),
                            1 => m.try_lock_for(Duration::from_micros(50 + r % 200)),
                            _ => Some(block_on(m.lock_async())),
                        };
                        if let Some(mut g) = guard {
                            *g += 1;
                            taken.fetch_add(1, Ordering::Relaxed);
                            if r % 16 == 0 {
                                thread::sleep(Duration::from_micros(100));
                            }
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock() as usize, taken.load(Ordering::Relaxed));
        assert!(
            m.try_lock().is_some(),
            "the lock is free once everyone is done"
        );
    });
}

#[test]
fn try_lock_and_timeouts() {
    let m = Mutex::new(1);
    let g = m.lock();
    assert!(m.is_locked());
    assert!(m.try_lock().is_none());
    thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            assert!(m.try_lock_for(Duration::from_millis(50)).is_none());
            assert!(
                start.elapsed() >= Duration::from_millis(50),
                "timed out early"
            );
            assert!(m.try_lock_until(Instant::now()).is_none());
        });
    });
    drop(g);
    assert!(!m.is_locked());
    assert_eq!(*m.try_lock_for(Duration::from_millis(1)).unwrap(), 1);
    // A huge timeout means "wait forever", not an overflow panic.
    assert!(m.try_lock_for(Duration::MAX).is_some());
}

#[test]
fn blocked_thread_wakes_on_unlock() {
    deadline(10, || {
        let m = Arc::new(Mutex::new(Vec::new()));
        let g = m.lock();
        let t = {
            let m = m.clone();
            thread::spawn(move || m.lock().push("thread"))
        };
        settle();
        assert!(
            !t.is_finished(),
            "the thread must wait while the lock is held"
        );
        drop(g);
        t.join().unwrap();
        assert_eq!(*m.lock(), vec!["thread"]);
    });
}

#[test]
fn async_waiter_wakes_on_unlock_from_thread() {
    deadline(10, || {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        let t = {
            let m = m.clone();
            thread::spawn(move || block_on(async { *m.lock_async().await += 1 }))
        };
        settle();
        assert!(!t.is_finished());
        drop(g);
        t.join().unwrap();
        assert_eq!(*m.lock(), 1);
    });
}

#[test]
fn many_async_waiters_are_all_served() {
    // Several tasks queue up on one lock held by a thread; each unlock must
    // pass the lock on, so none is stranded.
    deadline(20, || {
        let m = Arc::new(Mutex::new(0));
        let g = m.lock();
        let ts: Vec<_> = (0..6)
            .map(|_| {
                let m = m.clone();
                thread::spawn(move || {
                    block_on(async {
                        for _ in 0..ROUNDS / 20 {
                            *m.lock_async().await += 1;
                        }
                    })
                })
            })
            .collect();
        settle();
        drop(g);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 6 * (ROUNDS / 20));
    });
}

#[test]
fn dropped_lock_future_gives_up_cleanly() {
    let m = Mutex::new(5);
    let g = m.lock();
    let mut fut = Box::pin(m.lock_async());
    assert!(block_on(poll_once(&mut fut)).is_none());
    drop(fut);
    drop(g);
    // The lock is free and no stale waiter holds it.
    assert!(m.try_lock().is_some());
    // A future dropped after it was woken passes the wake-up on.
    let g = m.lock();
    let mut first = Box::pin(m.lock_async());
    let mut second = Box::pin(m.lock_async());
    assert!(block_on(poll_once(&mut first)).is_none());
    assert!(block_on(poll_once(&mut second)).is_none());
    drop(g);
    drop(first);
    let g2 = block_on(second);
    assert_eq!(*g2, 5);
}

#[test]
fn guard_can_cross_threads_and_unlocked_relocks() {
    let m = Arc::new(Mutex::new(String::from("a")));
    let mut g = m.lock();
    weft_sync::MutexGuard::unlocked(&mut g, || {
        assert!(m.try_lock().is_some(), "unlocked while the closure runs");
    });
    assert!(m.try_lock().is_none(), "relocked afterwards");
    g.push('b');
    let m2 = m.clone();
    thread::scope(|s| {
        s.spawn(move || {
            g.push('c');
            drop(g);
        });
    });
    assert_eq!(*m2.lock(), "abc");
}

#[test]
fn panic_while_locked_unlocks() {
    let m = Arc::new(Mutex::new(0));
    let m2 = m.clone();
    let r = thread::spawn(move || {
        let _g = m2.lock();
        panic!("oops");
    })
    .join();
    assert!(r.is_err());
    assert!(m.try_lock().is_some(), "no poisoning, no stuck lock");
}

#[test]
fn lock_acquire_release_across_threads() {
    let lock = Arc::new(Lock::new(()));
    lock.acquire();
    assert!(lock.locked());
    assert!(!lock.try_acquire());
    assert!(!lock.acquire_timeout(Duration::from_millis(20)));
    let l2 = lock.clone();
    thread::spawn(move || l2.release().unwrap()).join().unwrap();
    assert!(!lock.locked());
    assert_eq!(lock.release(), Err(ReleaseError::NotLocked));
    assert!(lock.try_acquire());
    lock.release().unwrap();
    block_on(lock.acquire_async());
    assert!(lock.locked());
    lock.release().unwrap();
    assert_eq!(
        lock.release().unwrap_err().to_string(),
        "release of an unlocked Lock: acquire it before releasing it"
    );
}

#[test]
fn lock_release_wakes_a_blocked_acquirer() {
    deadline(10, || {
        let lock = Arc::new(Lock::new(()));
        lock.acquire();
        let acquired = Arc::new(AtomicUsize::new(0));
        let t = {
            let (lock, acquired) = (lock.clone(), acquired.clone());
            thread::spawn(move || {
                lock.acquire();
                acquired.fetch_add(1, Ordering::SeqCst);
            })
        };
        settle();
        assert_eq!(acquired.load(Ordering::SeqCst), 0);
        lock.release().unwrap();
        t.join().unwrap();
        assert_eq!(acquired.load(Ordering::SeqCst), 1);
        assert!(lock.locked(), "the other thread now holds it");
    });
}

#[test]
fn rlock_is_reentrant_for_its_owner_only() {
    deadline(10, || {
        let lock = Arc::new(RLock::new(()));
        lock.acquire();
        lock.acquire();
        assert!(lock.try_acquire());
        assert!(lock.is_owned_by_current_thread());
        let l2 = lock.clone();
        // The owner keeps all three levels until the other thread has
        // tried (a sleep was not enough under Miri).
        let (tried, checked) = std::sync::mpsc::channel();
        let other = thread::spawn(move || {
            assert!(!l2.try_acquire());
            assert!(!l2.acquire_timeout(Duration::from_millis(20)));
            assert_eq!(l2.release(), Err(ReleaseError::NotOwner));
            tried.send(()).unwrap();
            // Blocks until the owner has released all three levels.
            l2.acquire();
            l2.release().unwrap();
        });
        checked.recv().unwrap();
        lock.release().unwrap();
        lock.release().unwrap();
        assert!(lock.is_locked(), "still held once");
        settle();
        assert!(!other.is_finished());
        lock.release().unwrap();
        other.join().unwrap();
        assert!(!lock.is_locked());
        assert_eq!(lock.release(), Err(ReleaseError::NotOwner));
    });
}

#[test]
fn rlock_guards_nest_and_time_out() {
    let lock = RLock::new(std::cell::Cell::new(0));
    {
        let a = lock.lock();
        let b = lock.try_lock().expect("reentrant try_lock");
        let c = lock.try_lock_for(Duration::from_millis(1)).unwrap();
        a.set(a.get() + 1);
        b.set(b.get() + 1);
        c.set(c.get() + 1);
    }
    assert!(!lock.is_locked());
    assert_eq!(lock.lock().get(), 3);
    thread::scope(|s| {
        let _g = lock.lock();
        s.spawn(|| assert!(lock.try_lock_for(Duration::from_millis(20)).is_none()))
            .join()
            .unwrap();
    });
}

#[test]
fn debug_output_does_not_block() {
    let m = Mutex::new(3);
    assert_eq!(format!("{m:?}"), "Mutex { data: 3 }");
    let _g = m.lock();
    assert_eq!(format!("{m:?}"), "Mutex { data: <locked> }");
    let r = RLock::new(4);
    assert_eq!(format!("{r:?}"), "RLock { data: 4 }");
    assert!(eventually(|| true));
}

/// An unlock followed at once by a re-lock by the same thread, while the
/// waiter it woke is on its way, strands no waiter (thread or task): the
/// next unlock reaches it.
#[test]
fn unlock_then_immediate_relock_strands_no_waiter() {
    deadline(60, || {
        for round in 0..if cfg!(miri) { 6 } else { 50 } {
            let lock = Arc::new(Lock::new(()));
            lock.acquire();
            let waiter = {
                let lock = lock.clone();
                thread::spawn(move || {
                    if round % 2 == 0 {
                        lock.acquire();
                    } else {
                        block_on(lock.acquire_async());
                    }
                    lock.release().unwrap();
                })
            };
            if round % 5 == 0 {
                settle();
            }
            lock.release().unwrap();
            if lock.try_acquire() {
                lock.release().unwrap();
            }
            waiter.join().unwrap();
            assert!(lock.try_acquire(), "left unlocked");
        }
    });
}

// RLock's async form: the polling thread owns it.

#[test]
fn async_rlock_is_reentrant_on_its_thread() {
    deadline(10, || {
        let lock = RLock::new(std::cell::Cell::new(0));
        block_on(async {
            let a = lock.lock_async().await;
            let b = lock.lock_async().await;
            let c = lock.lock(); // blocking form on the same thread: reentrant too
            assert_eq!(lock.depth(), 3);
            c.set(c.get() + 1);
            drop((a, c));
            assert!(lock.is_locked());
            drop(b);
        });
        assert!(!lock.is_locked());
        assert_eq!(lock.into_inner().get(), 1);
    });
}

#[test]
fn async_rlock_waits_for_another_thread_and_excludes_it() {
    deadline(20, || {
        let lock = Arc::new(RLock::new(()));
        let held = lock.lock();
        let (polled, waited) = std::sync::mpsc::channel();
        let waiter = {
            let lock = lock.clone();
            thread::spawn(move || {
                let mut fut = lock.lock_async();
                assert!(
                    block_on(poll_once(&mut fut)).is_none(),
                    "held elsewhere: waits"
                );
                polled.send(()).unwrap();
                let g = block_on(fut);
                assert!(lock.is_owned_by_current_thread());
                drop(g);
            })
        };
        // Held until the waiter has polled (a sleep was not enough under
        // Miri).
        waited.recv().unwrap();
        settle();
        assert!(!waiter.is_finished());
        drop(held);
        waiter.join().unwrap();
        assert!(!lock.is_locked());
    });
}

#[test]
fn async_rlock_counts_under_contention() {
    deadline(30, || {
        let rounds = if cfg!(miri) { 20 } else { 2000 };
        let lock = Arc::new(RLock::new(std::cell::Cell::new(0u64)));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let lock = lock.clone();
                thread::spawn(move || {
                    for i in 0..rounds {
                        if (w + i) % 2 == 0 {
                            block_on(async {
                                let g = lock.lock_async().await;
                                let inner = lock.lock_async().await;
                                inner.set(g.get() + 1);
                            });
                        } else {
                            let g = lock.lock();
                            g.set(g.get() + 1);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(lock.lock().get(), 4 * rounds as u64);
    });
}

#[test]
fn dropped_async_rlock_future_leaves_it_free() {
    deadline(10, || {
        let lock = Arc::new(RLock::new(()));
        let held = lock.lock();
        let t = {
            let lock = lock.clone();
            thread::spawn(move || {
                let mut fut = lock.lock_async();
                assert!(block_on(poll_once(&mut fut)).is_none());
                drop(fut);
            })
        };
        t.join().unwrap();
        drop(held);
        assert!(!lock.is_locked());
        let t = {
            let lock = lock.clone();
            thread::spawn(move || lock.try_lock().is_some())
        };
        assert!(t.join().unwrap());
    });
}
