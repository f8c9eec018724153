//! Semaphore and BoundedSemaphore, modelled on CPython's lock_tests.py.

mod common;

/// Iterations of the stress loops (smaller under Miri, which is slow).
const ROUNDS: usize = if cfg!(miri) { 20 } else { 200 };

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{deadline, eventually, settle};
use futures_lite::future::{block_on, poll_once};
use weft_sync::{BoundedSemaphore, ReleaseError, Semaphore};

#[test]
fn acquire_blocks_at_zero_and_release_wakes() {
    deadline(10, || {
        let sem = Arc::new(Semaphore::new(0));
        let got = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (sem, got) = (sem.clone(), got.clone());
                thread::spawn(move || {
                    sem.acquire().forget();
                    got.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        settle();
        assert_eq!(got.load(Ordering::SeqCst), 0);
        sem.release(2);
        assert!(eventually(|| got.load(Ordering::SeqCst) == 2));
        settle();
        assert_eq!(
            got.load(Ordering::SeqCst),
            2,
            "two permits wake exactly two"
        );
        sem.release(1);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(sem.available_permits(), 0);
    });
}

#[test]
fn try_and_timeout() {
    let sem = Semaphore::new(1);
    let p = sem.try_acquire().unwrap();
    assert!(sem.try_acquire().is_none());
    let start = Instant::now();
    assert!(sem.acquire_timeout(Duration::from_millis(40)).is_none());
    assert!(start.elapsed() >= Duration::from_millis(40));
    drop(p);
    assert!(sem.acquire_timeout(Duration::from_millis(1)).is_some());
    assert_eq!(sem.available_permits(), 1);
    sem.release(0);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn threads_and_tasks_share_a_semaphore() {
    deadline(30, || {
        let sem = Arc::new(Semaphore::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
                thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        let enter = || {
                            let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(n, Ordering::SeqCst);
                            thread::yield_now();
                            inside.fetch_sub(1, Ordering::SeqCst);
                        };
                        if i % 2 == 0 {
                            let _p = sem.acquire();
                            enter();
                        } else {
                            block_on(async {
                                let _p = sem.acquire_async().await;
                                enter();
                            });
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "more than two inside at once"
        );
        assert_eq!(sem.available_permits(), 2);
    });
}

#[test]
fn cancelled_async_acquire_passes_its_wakeup_on() {
    let sem = Semaphore::new(0);
    let mut first = Box::pin(sem.acquire_async());
    let mut second = Box::pin(sem.acquire_async());
    assert!(block_on(poll_once(&mut first)).is_none());
    assert!(block_on(poll_once(&mut second)).is_none());
    sem.release(1); // wakes `first`
    drop(first); // ...which gives up: the permit must reach `second`
    let p = deadline_free_block(second);
    drop(p);
    assert_eq!(sem.available_permits(), 1);
}

fn deadline_free_block<F: std::future::Future>(f: F) -> F::Output {
    block_on(f)
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(sem.release(1), Err(ReleaseError::OverRelease));
    sem.acquire().forget();
    sem.acquire().forget();
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.release(3), Err(ReleaseError::OverRelease));
    assert_eq!(
        sem.available_permits(),
        0,
        "a refused release changes nothing"
    );
    sem.release(2).unwrap();
    assert_eq!(
        sem.release(1).unwrap_err().to_string(),
        "BoundedSemaphore released too many times: the counter would exceed its initial value"
    );
    assert_eq!(sem.max_permits(), 2);
    {
        let _a = sem.acquire_timeout(Duration::from_millis(1)).unwrap();
        let _b = block_on(sem.acquire_async());
        assert!(sem.try_acquire().is_none());
    }
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn bounded_release_wakes_waiter() {
    deadline(10, || {
        let sem = Arc::new(BoundedSemaphore::new(1));
        sem.acquire().forget();
        let t = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().forget())
        };
        settle();
        assert!(!t.is_finished());
        sem.release(1).unwrap();
        t.join().unwrap();
    });
}

/// The count saturates at `usize::MAX` instead of wrapping to 0.
#[test]
fn huge_counts_saturate_instead_of_wrapping() {
    let sem = Semaphore::new(usize::MAX);
    sem.release(1);
    assert_eq!(sem.available_permits(), usize::MAX);
    let permit = sem
        .try_acquire()
        .expect("an unlimited semaphore has permits");
    assert_eq!(sem.available_permits(), usize::MAX - 1);
    sem.release(usize::MAX);
    assert_eq!(sem.available_permits(), usize::MAX);
    drop(permit);
    assert_eq!(sem.available_permits(), usize::MAX);
    assert!(sem.acquire_timeout(Duration::MAX).is_some());

    let sem = Semaphore::new(3);
    sem.release(usize::MAX);
    assert_eq!(sem.available_permits(), usize::MAX);

    let bounded = BoundedSemaphore::new(usize::MAX);
    assert_eq!(bounded.release(1), Err(ReleaseError::OverRelease));
    assert_eq!(bounded.available_permits(), usize::MAX);
}

/// A guard of a bounded semaphore whose permit was already given back by
/// an explicit release (a double release) does not push the count past the
/// bound when it drops.
#[test]
fn bounded_guard_never_exceeds_the_bound() {
    let sem = BoundedSemaphore::new(2);
    let a = sem.acquire();
    let b = sem.try_acquire().unwrap();
    assert_eq!(sem.release(2), Ok(()), "a mistaken explicit release");
    assert_eq!(sem.available_permits(), 2);
    drop(a);
    drop(b);
    assert_eq!(sem.available_permits(), 2, "the bound holds");
    let c = sem.acquire_timeout(Duration::from_secs(1)).unwrap();
    let d = block_on(sem.acquire_async());
    assert_eq!(sem.release(1), Ok(()));
    drop(c);
    drop(d);
    assert_eq!(sem.available_permits(), sem.max_permits());
}

/// A release followed at once by a re-acquire by the releaser, while the
/// waiter it woke is on its way, strands no waiter: the next release
/// reaches it (a thread and a task alike).
#[test]
fn release_then_immediate_reacquire_strands_no_waiter() {
    deadline(60, || {
        for round in 0..if cfg!(miri) { 6 } else { 50 } {
            let sem = Arc::new(Semaphore::new(0));
            let waiter = {
                let sem = sem.clone();
                thread::spawn(move || {
                    if round % 2 == 0 {
                        sem.acquire().forget();
                    } else {
                        block_on(sem.acquire_async()).forget();
                    }
                })
            };
            if round % 5 == 0 {
                settle();
            }
            sem.release(1);
            if let Some(p) = sem.try_acquire() {
                p.forget();
                sem.release(1);
            }
            waiter.join().unwrap();
            assert_eq!(sem.available_permits(), 0);
        }
    });
}
