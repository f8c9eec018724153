//! Loom models of weft-sync's hand-written protocols: the task handle's
//! completion/cancel/wake protocol, the semaphore's permit accounting,
//! the event's generation protocol (a `set` is never lost to a `clear`),
//! the locked store of `LifoQueue`/`PriorityQueue`, and the shared timer
//! thread (cancel versus fire, a start racing the thread's idle exit, a
//! wait for it to go racing both).
//!
//! Run with `cargo xtask loom weft-sync` (RUSTFLAGS="--cfg loom").
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;
use weft_sync::{Semaphore, TaskError, TaskHandle};

#[test]
fn completion_wakes_a_blocked_joiner() {
    loom::model(|| {
        let (c, h) = TaskHandle::<u32>::pair();
        let t = thread::spawn(move || {
            assert!(c.set_result(7));
        });
        assert_eq!(h.join(), Ok(7));
        t.join().unwrap();
    });
}

#[test]
fn completion_wakes_an_awaiting_task() {
    loom::model(|| {
        let (c, h) = TaskHandle::<u32>::pair();
        let t = thread::spawn(move || {
            c.run(|| 9);
        });
        assert_eq!(loom::future::block_on(h), Ok(9));
        t.join().unwrap();
    });
}

#[test]
fn cancel_and_start_race_has_one_winner() {
    loom::model(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let (c, h) = TaskHandle::<u32>::pair();
        let t = {
            let ran = ran.clone();
            thread::spawn(move || {
                c.run(|| {
                    ran.store(true, Ordering::SeqCst);
                    1
                })
            })
        };
        let cancelled = h.cancel();
        let started = t.join().unwrap();
        assert_ne!(cancelled, started, "exactly one of cancel and start wins");
        assert_eq!(ran.load(Ordering::SeqCst), started);
        let outcome = h.join();
        if cancelled {
            assert_eq!(outcome, Err(TaskError::Cancelled));
        } else {
            assert_eq!(outcome, Ok(1));
        }
    });
}

#[test]
fn dropped_completer_never_strands_a_joiner() {
    loom::model(|| {
        let (c, h) = TaskHandle::<u32>::pair();
        let t = thread::spawn(move || drop(c));
        assert_eq!(h.join(), Err(TaskError::Abandoned));
        t.join().unwrap();
    });
}

#[test]
fn semaphore_permit_is_never_lost_between_threads() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let t = {
            let sem = sem.clone();
            thread::spawn(move || {
                let _p = sem.acquire();
            })
        };
        {
            let _p = sem.acquire();
        }
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn semaphore_release_wakes_an_async_waiter() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let t = {
            let sem = sem.clone();
            thread::spawn(move || sem.release(1))
        };
        let permit = loom::future::block_on(sem.acquire_async());
        drop(permit);
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

#[test]
fn two_released_permits_reach_a_thread_and_a_task() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiter = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().forget())
        };
        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.release(2))
        };
        loom::future::block_on(sem.acquire_async()).forget();
        waiter.join().unwrap();
        releaser.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

#[test]
fn cancel_wakes_a_blocked_waiter() {
    loom::model(|| {
        let (c, h) = TaskHandle::<u32>::pair();
        let h = Arc::new(h);
        let waiter = {
            let h = h.clone();
            thread::spawn(move || {
                h.wait();
                h.is_cancelled()
            })
        };
        assert!(h.cancel());
        assert!(
            waiter.join().unwrap(),
            "the waiter woke and saw the cancellation"
        );
        assert!(!c.start());
    });
}

#[test]
fn queue_put_and_get_wake_each_other() {
    loom::model(|| {
        let q = Arc::new(weft_sync::Queue::bounded(1));
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                q.put(1).unwrap();
                q.put(2).unwrap(); // waits for the consumer to make room
            })
        };
        assert_eq!(q.get(), Ok(1));
        assert_eq!(q.get(), Ok(2)); // waits for the producer
        producer.join().unwrap();
    });
}

#[test]
fn event_set_wakes_a_waiter() {
    loom::model(|| {
        let e = Arc::new(weft_sync::Event::new());
        let setter = {
            let e = e.clone();
            thread::spawn(move || e.set())
        };
        e.wait();
        assert!(e.is_set());
        setter.join().unwrap();
    });
}

/// A waiter already waiting when `set` and `clear` run back to back must be
/// released: it notes the event's generation when it starts, and the `set`
/// moves the generation on whatever the flag says by the time it looks.
#[test]
fn event_set_then_clear_still_releases_a_waiter() {
    loom::model(|| {
        let e = Arc::new(weft_sync::Event::new());
        let mut wait = Box::pin(e.wait_async());
        // The first poll starts the wait (and registers it).
        assert!(loom::future::block_on(futures_lite::future::poll_once(&mut wait)).is_none());
        let setter = {
            let e = e.clone();
            thread::spawn(move || {
                e.set();
                e.clear();
            })
        };
        loom::future::block_on(&mut wait);
        drop(wait);
        setter.join().unwrap();
        assert!(!e.is_set());
    });
}

/// A `set` and a `clear` on two threads, in either order, against a waiter
/// that started before both: the waiter is released either way.
#[test]
fn event_set_racing_a_clear_still_releases_a_waiter() {
    loom::model(|| {
        let e = Arc::new(weft_sync::Event::new());
        let mut wait = Box::pin(e.wait_async());
        assert!(loom::future::block_on(futures_lite::future::poll_once(&mut wait)).is_none());
        let setter = {
            let e = e.clone();
            thread::spawn(move || e.set())
        };
        let clearer = {
            let e = e.clone();
            thread::spawn(move || e.clear())
        };
        loom::future::block_on(&mut wait);
        drop(wait);
        setter.join().unwrap();
        clearer.join().unwrap();
    });
}

/// The releaser takes its permit straight back while the waiter it woke is
/// on its way: the waiter goes back to waiting, and the next release
/// reaches it.
#[test]
fn semaphore_release_then_reacquire_strands_no_waiter() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let waiter = {
            let sem = sem.clone();
            thread::spawn(move || sem.acquire().forget())
        };
        sem.release(1);
        if let Some(permit) = sem.try_acquire() {
            permit.forget();
            sem.release(1);
        }
        waiter.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

/// A LifoQueue's store is a locked stack (not concurrent-queue's ring): its
/// puts and gets still wake each other through the shared wait lists.
#[test]
fn lifo_queue_put_and_get_wake_each_other() {
    loom::model(|| {
        let q = Arc::new(weft_sync::LifoQueue::bounded(1));
        let producer = {
            let q = q.clone();
            thread::spawn(move || {
                q.put(1).unwrap();
                q.put(2).unwrap(); // waits for the consumer to make room
            })
        };
        assert_eq!(q.get(), Ok(1));
        assert_eq!(q.get(), Ok(2)); // waits for the producer
        producer.join().unwrap();
    });
}

/// The timer thread and a cancel race for a due timer: exactly one wins,
/// and `cancel() == true` means the function never ran.
#[test]
fn timer_cancel_racing_its_firing_has_one_winner() {
    loom::model(|| {
        let ran = Arc::new(AtomicBool::new(false));
        let timer = {
            let ran = ran.clone();
            weft_sync::Timer::start(std::time::Duration::ZERO, move || {
                ran.store(true, Ordering::SeqCst)
            })
        };
        let cancelled = timer.cancel();
        timer.wait();
        assert_eq!(ran.load(Ordering::SeqCst), !cancelled);
    });
}

/// The timer thread exits as soon as it has nothing to do (at once under
/// loom): a timer started while it exits must still fire, by the old
/// thread or by a new one.
#[test]
fn timer_started_while_the_thread_exits_still_fires() {
    loom::model(|| {
        let first = weft_sync::Timer::start(std::time::Duration::ZERO, || 1);
        let other =
            thread::spawn(|| weft_sync::Timer::start(std::time::Duration::ZERO, || 2).join());
        assert_eq!(first.join(), Ok(1));
        assert_eq!(other.join().unwrap(), Ok(2));
    });
}

/// `Timer::wait_idle` races the thread's exit and a start from another
/// thread: it returns only with no timer thread running (having joined
/// the one that ran), never hangs, and the racing timer still fires.
#[test]
fn wait_idle_racing_a_start_joins_the_thread_and_the_timer_fires() {
    loom::model(|| {
        let first = weft_sync::Timer::start(std::time::Duration::ZERO, || 1);
        let other =
            thread::spawn(|| weft_sync::Timer::start(std::time::Duration::ZERO, || 2).join());
        assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(
            60
        )));
        assert!(first.is_finished(), "the thread went before firing");
        assert_eq!(other.join().unwrap(), Ok(2));
    });
}
