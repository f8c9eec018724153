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

/// Issue 13, item 11: a `set` followed at once by `clear` must still release
/// the waiters that were waiting (CPython's `test_set_and_clear`).
#[test]
fn set_then_clear_still_releases_an_async_waiter() {
    let e = Event::new();
    let mut fut = Box::pin(e.wait_async());
    assert!(block_on(poll_once(&mut fut)).is_none(), "not set yet");
    e.set();
    e.clear();
    assert!(
        block_on(poll_once(&mut fut)).is_some(),
        "the set happened while the future waited: it must complete"
    );
    // A wait that starts after the clear waits for the next set.
    let mut later = Box::pin(e.wait_async());
    assert!(block_on(poll_once(&mut later)).is_none());
    e.set();
    assert!(block_on(poll_once(&mut later)).is_some());
}

#[test]
fn set_then_clear_releases_every_blocked_thread() {
    deadline(60, || {
        let e = Arc::new(Event::new());
        let waiters: Vec<_> = (0..20)
            .map(|i| {
                let e = e.clone();
                thread::spawn(move || {
                    if i % 2 == 0 {
                        // Generous: only a lost wake-up runs it out.
                        e.wait_timeout(Duration::from_secs(20))
                    } else {
                        e.wait();
                        true
                    }
                })
            })
            .collect();
        // Let every waiter reach its wait (a waiter that had not started
        // by the `set` would rightly wait for the next one).
        thread::sleep(Duration::from_millis(300));
        e.set();
        e.clear();
        assert!(!e.is_set());
        for w in waiters {
            assert!(w.join().unwrap(), "a waiter missed the set");
        }
    });
}

#[test]
fn set_on_a_set_event_changes_nothing() {
    let e = Event::new();
    e.set();
    e.set();
    assert!(e.is_set());
    e.clear();
    assert!(!e.is_set());
    assert!(!e.wait_timeout(Duration::from_millis(1)));
    e.set();
    assert!(
        e.wait_timeout(Duration::MAX),
        "a huge timeout is no limit, not a panic"
    );
}
