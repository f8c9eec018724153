//! Python's semantics of `concurrent.futures.wait` and `as_completed` that
//! go beyond "every outcome once": `FIRST_EXCEPTION` does not count a
//! cancelled task as one that raised, and `as_completed(fs, timeout)` puts a
//! total deadline on the whole iteration.

mod common;

use std::thread;
use std::time::Duration;

use common::deadline;
use futures_lite::future::block_on;
use weft_sync::{ReturnWhen, TaskError, TaskHandle, Timeout, as_completed, wait, wait_async};

#[test]
fn first_exception_does_not_count_a_cancelled_task_as_raised() {
    deadline(30, || {
        let (_c0, h0) = TaskHandle::<u32>::pair();
        let (c1, h1) = TaskHandle::<u32>::pair();
        assert!(h0.cancel());
        // h1 finishes later: FIRST_EXCEPTION must wait for it (nothing
        // raised), as ALL_COMPLETED would, instead of returning on the
        // cancellation.
        let later = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            c1.set_result(1);
        });
        let handles = vec![h0, h1];
        let r = wait(&handles, ReturnWhen::FirstException, None);
        assert_eq!((r.done, r.not_done), (vec![0, 1], vec![]));
        later.join().unwrap();
    });
}

#[test]
fn first_exception_async_does_not_count_a_cancelled_task_as_raised() {
    deadline(30, || {
        let (_c0, h0) = TaskHandle::<u32>::pair();
        let (c1, h1) = TaskHandle::<u32>::pair();
        assert!(h0.cancel());
        let later = thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            c1.set_result(1);
        });
        let handles = vec![h0, h1];
        let r = block_on(wait_async(&handles, ReturnWhen::FirstException));
        assert_eq!((r.done, r.not_done), (vec![0, 1], vec![]));
        later.join().unwrap();
    });
}

#[test]
fn first_exception_still_returns_on_a_real_error() {
    deadline(30, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let (_c1, h1) = TaskHandle::<u32>::pair(); // never finishes
        let (_c2, h2) = TaskHandle::<u32>::pair();
        assert!(h2.cancel());
        c0.set_error(TaskError::Panicked {
            message: "boom".into(),
        });
        let handles = vec![h0, h1, h2];
        let r = wait(&handles, ReturnWhen::FirstException, None);
        assert_eq!((r.done, r.not_done), (vec![0, 2], vec![1]));
        let r = block_on(wait_async(&handles, ReturnWhen::FirstException));
        assert_eq!((r.done, r.not_done), (vec![0, 2], vec![1]));
    });
}

#[test]
fn as_completed_within_yields_what_finishes_then_one_timeout_then_ends() {
    deadline(30, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let (_c1, h1) = TaskHandle::<u32>::pair(); // never finishes
        let (c2, h2) = TaskHandle::<u32>::pair();
        c2.set_result(2);
        let finisher = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            c0.set_result(0);
        });
        let mut it = as_completed([h0, h1, h2]).within(Duration::from_secs(2));
        assert_eq!(it.next(), Some(Ok((2, Ok(2)))));
        assert_eq!(it.next(), Some(Ok((0, Ok(0)))));
        assert_eq!(it.remaining(), 1);
        // The deadline is for the whole iteration, not per item.
        assert_eq!(it.next(), Some(Err(Timeout)));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
        // The unfinished task is given back, still usable.
        let left = it.into_remaining();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, 1);
        assert!(left[0].1.cancel());
        finisher.join().unwrap();
    });
}

#[test]
fn as_completed_within_ends_without_a_timeout_when_all_finish_in_time() {
    deadline(30, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let (c1, h1) = TaskHandle::<u32>::pair();
        let mut it = as_completed([h0, h1]).within(Duration::MAX);
        c1.set_result(1);
        c0.set_result(0);
        let got: Vec<_> = it.by_ref().collect();
        assert_eq!(got, vec![Ok((1, Ok(1))), Ok((0, Ok(0)))]);
        assert_eq!(it.next(), None);
        assert!(it.into_remaining().is_empty());
    });
}

#[test]
fn remaining_handles_after_a_timeout_get_their_results() {
    deadline(30, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let mut it = as_completed([h0]).within(Duration::from_millis(10));
        assert_eq!(it.next(), Some(Err(Timeout)));
        let mut left = it.into_remaining();
        // No watcher is left behind: completing and joining works as usual.
        c0.set_result(5);
        assert_eq!(left.pop().unwrap().1.join(), Ok(5));
    });
}
