//! Every timed wait given a timeout too large for the clock
//! (`Duration::MAX`) waits without a limit: no overflow panic, no instant
//! timeout. Each wait here is released by another thread a little later.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{deadline, settle};
use weft_sync::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, Queue, RLock, ReturnWhen, Semaphore,
    TaskHandle, as_completed, wait,
};

const FOREVER: Duration = Duration::MAX;

/// Runs `release` on another thread after the caller has had time to block.
fn later(release: impl FnOnce() + Send + 'static) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        settle();
        release();
    })
}

#[test]
fn locks_wait_without_limit() {
    deadline(60, || {
        let m = Arc::new(Mutex::new(0));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let t = {
            let m = m.clone();
            thread::spawn(move || {
                let mut g = m.lock();
                held_tx.send(()).unwrap();
                settle();
                *g += 1;
            })
        };
        held_rx.recv().unwrap();
        let g = m.try_lock_for(FOREVER).expect("waits for the holder");
        assert_eq!(*g, 1);
        drop(g);
        t.join().unwrap();

        let lock = Arc::new(Lock::new(()));
        assert!(lock.acquire_timeout(FOREVER));
        let t = later({
            let lock = lock.clone();
            move || lock.release().unwrap()
        });
        assert!(lock.acquire_timeout(FOREVER), "waits for the release");
        t.join().unwrap();
        lock.release().unwrap();

        let r = RLock::new(());
        let outer = r.try_lock_for(FOREVER).unwrap();
        assert!(r.try_lock_for(FOREVER).is_some());
        assert!(r.acquire_timeout(FOREVER));
        r.release().unwrap();
        drop(outer);
    });
}

#[test]
fn condition_waits_without_limit() {
    deadline(60, || {
        let pair = Arc::new((Mutex::new(false), Condition::new()));
        let t = later({
            let pair = pair.clone();
            move || {
                *pair.0.lock() = true;
                pair.1.notify_all();
            }
        });
        let (m, c) = &*pair;
        let mut g = m.lock();
        assert!(c.wait_for_timeout(&mut g, FOREVER, |ready| *ready));
        drop(g);
        t.join().unwrap();

        let t = later({
            let pair = pair.clone();
            move || {
                let _g = pair.0.lock();
                pair.1.notify_all();
            }
        });
        let mut g = m.lock();
        assert!(c.wait_timeout(&mut g, FOREVER));
        drop(g);
        t.join().unwrap();
    });
}

#[test]
fn semaphores_events_and_barriers_wait_without_limit() {
    deadline(60, || {
        let sem = Arc::new(Semaphore::new(0));
        let t = later({
            let sem = sem.clone();
            move || sem.release(1)
        });
        assert!(sem.acquire_timeout(FOREVER).is_some());
        t.join().unwrap();

        let bounded = Arc::new(BoundedSemaphore::new(1));
        bounded.acquire().forget();
        let t = later({
            let bounded = bounded.clone();
            move || bounded.release(1).unwrap()
        });
        assert!(bounded.acquire_timeout(FOREVER).is_some());
        t.join().unwrap();

        let e = Arc::new(Event::new());
        let t = later({
            let e = e.clone();
            move || e.set()
        });
        assert!(e.wait_timeout(FOREVER));
        t.join().unwrap();

        let b = Arc::new(Barrier::new(2).with_timeout(FOREVER));
        let t = {
            let b = b.clone();
            thread::spawn(move || {
                settle();
                b.wait().unwrap();
            })
        };
        b.wait().unwrap();
        t.join().unwrap();
        let t = {
            let b = b.clone();
            thread::spawn(move || {
                settle();
                b.wait_timeout(FOREVER).unwrap();
            })
        };
        b.wait_timeout(FOREVER).unwrap();
        t.join().unwrap();
        assert!(!b.is_broken());
    });
}

#[test]
fn queues_wait_without_limit() {
    deadline(60, || {
        let q = Arc::new(Queue::bounded(1));
        let t = later({
            let q = q.clone();
            move || q.put(1).unwrap()
        });
        assert_eq!(q.get_timeout(FOREVER), Ok(1));
        t.join().unwrap();

        q.put(2).unwrap();
        let t = later({
            let q = q.clone();
            move || {
                assert_eq!(q.get(), Ok(2));
                q.task_done().unwrap();
            }
        });
        assert!(q.put_timeout(3, FOREVER).is_ok());
        t.join().unwrap();

        let t = later({
            let q = q.clone();
            move || {
                assert_eq!(q.get(), Ok(3));
                q.task_done().unwrap();
                q.task_done().unwrap();
            }
        });
        assert_eq!(q.join_timeout(FOREVER), Ok(()));
        t.join().unwrap();
    });
}

#[test]
fn task_handles_wait_without_limit() {
    deadline(60, || {
        let (c, h) = TaskHandle::pair();
        let t = later(move || {
            c.set_result(1);
        });
        assert!(h.wait_timeout(FOREVER));
        assert_eq!(h.join_timeout(FOREVER).ok(), Some(Ok(1)));
        t.join().unwrap();

        let (c0, h0) = TaskHandle::pair();
        let (c1, h1) = TaskHandle::pair();
        let t = later(move || {
            c0.set_result(0);
            c1.set_result(1);
        });
        let handles = vec![h0, h1];
        let r = wait(&handles, ReturnWhen::AllCompleted, Some(FOREVER));
        assert_eq!(r.done, vec![0, 1]);
        t.join().unwrap();

        let (c0, h0) = TaskHandle::pair();
        let t = later(move || {
            c0.set_result('a');
        });
        let mut it = as_completed([h0]);
        assert_eq!(it.next_timeout(FOREVER), Ok(Some((0, Ok('a')))));
        assert_eq!(it.next_timeout(FOREVER), Ok(None));
        t.join().unwrap();
    });
}
