//! Event, modelled on CPython's lock_tests.py EventTests.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{deadline, settle};
use futures_lite::future::{block_on, poll_once};
use weft_sync::Event;

#[test]
fn set_clear_and_wait() {
    let e = Event::new();
    assert!(!e.is_set());
    let start = Instant::now();
    assert!(!e.wait_timeout(Duration::from_millis(30)));
    assert!(start.elapsed() >= Duration::from_millis(30));
    e.set();
    assert!(e.is_set());
    e.wait();
    assert!(e.wait_timeout(Duration::ZERO));
    block_on(e.wait_async());
    e.clear();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::from_millis(1)));
}

#[test]
fn set_wakes_every_thread_and_task() {
    deadline(10, || {
        let e = Arc::new(Event::new());
        let hs: Vec<_> = (0..6)
            .map(|i| {
                let e = e.clone();
                thread::spawn(move || {
                    if i % 2 == 0 {
                        e.wait();
                    } else {
                        block_on(e.wait_async());
                    }
                })
            })
            .collect();
        settle();
        assert!(hs.iter().all(|h| !h.is_finished()));
        e.set();
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn dropped_async_wait_is_harmless() {
    let e = Event::new();
    let mut fut = Box::pin(e.wait_async());
    assert!(block_on(poll_once(&mut fut)).is_none());
    drop(fut);
    e.set();
    assert!(block_on(poll_once(e.wait_async())).is_some());
}
