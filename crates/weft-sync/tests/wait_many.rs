//! `wait`, `wait_async` and `as_completed` over 100,000 handles, finished
//! before the call or one by one while it waits: every outcome is reported
//! once, with its own index and value. (The cost is linear in the number of
//! handles; the weft-pool bench `as_completed_100k_finished` shows the time.)

mod common;

use std::thread;

use common::deadline;
use futures_lite::future::block_on;
use weft_sync::{Completer, ReturnWhen, TaskError, TaskHandle, as_completed, wait, wait_async};

/// Handles per test: 100,000, or 200 under Miri (on the loaded 2-core
/// machine, with the tests and seeds running side by side, 100,000 took
/// past the 120 s deadline, and so did 1,000 for some seeds; 1,000 alone,
/// one test at a time, took 28 s a test).
const N: usize = if cfg!(miri) { 200 } else { 100_000 };

fn pairs(n: usize) -> (Vec<Completer<usize>>, Vec<TaskHandle<usize>>) {
    (0..n).map(|_| TaskHandle::pair()).unzip()
}

/// Completes every completer, in an order that is not the input order (odd
/// indices first, then even), from another thread.
fn complete_all_later(completers: Vec<Completer<usize>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (odd, even): (Vec<_>, Vec<_>) = completers
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 1);
        for (i, c) in odd.into_iter().chain(even) {
            c.set_result(i * 3);
        }
    })
}

#[test]
fn wait_all_completed_over_100k_handles_finishing_while_it_waits() {
    deadline(120, || {
        let (completers, handles) = pairs(N);
        let t = complete_all_later(completers);
        let r = wait(&handles, ReturnWhen::AllCompleted, None);
        t.join().unwrap();
        assert_eq!(r.done.len(), N);
        assert!(r.not_done.is_empty());
        assert!(r.done.iter().enumerate().all(|(k, &i)| k == i));
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join(), Ok(i * 3));
        }
    });
}

#[test]
fn wait_over_100k_handles_already_finished_and_first_exception() {
    deadline(120, || {
        let (completers, handles) = pairs(N);
        // Left pending, kept alive to the end (dropping a completer
        // finishes its task): the odd ones never finish (but N - 7).
        let mut pending = Vec::new();
        for (i, c) in completers.into_iter().enumerate() {
            if i == N - 7 {
                c.set_error(TaskError::Panicked {
                    message: "boom".into(),
                });
            } else if i % 2 == 0 {
                c.set_result(i);
            } else {
                pending.push(c);
            }
        }
        let r = wait(&handles, ReturnWhen::FirstException, None);
        assert_eq!(r.done.len(), N / 2 + 1);
        assert!(r.done.contains(&(N - 7)));
        let r = wait(&handles, ReturnWhen::FirstCompleted, None);
        assert_eq!(r.not_done.len(), N / 2 - 1);
        drop(pending);
    });
}

#[test]
fn wait_first_exception_among_100k_pending_returns_on_the_failure() {
    deadline(120, || {
        let (mut completers, handles) = pairs(N);
        let failing = completers.swap_remove(N / 3);
        let t = thread::spawn(move || {
            failing.set_error(TaskError::Panicked {
                message: "boom".into(),
            });
        });
        let r = wait(&handles, ReturnWhen::FirstException, None);
        t.join().unwrap();
        assert_eq!(r.done, vec![N / 3]);
        assert_eq!(r.not_done.len(), N - 1);
        drop(completers);
    });
}

#[test]
fn wait_async_over_100k_handles_finishing_while_it_waits() {
    deadline(120, || {
        let (completers, handles) = pairs(N);
        let t = complete_all_later(completers);
        let r = block_on(wait_async(&handles, ReturnWhen::AllCompleted));
        t.join().unwrap();
        assert_eq!(r.done.len(), N);
        assert!(r.not_done.is_empty());
    });
}

#[test]
fn as_completed_over_100k_handles_reports_each_once() {
    deadline(120, || {
        let (completers, handles) = pairs(N);
        // Half finished before the call, half while it runs.
        let (before, after): (Vec<_>, Vec<_>) = completers
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        for (i, c) in before {
            c.set_result(i * 3);
        }
        let t = thread::spawn(move || {
            for (i, c) in after {
                c.set_result(i * 3);
            }
        });
        let mut seen = vec![false; N];
        let mut it = as_completed(handles);
        assert_eq!(it.remaining(), N);
        for (i, r) in &mut it {
            assert_eq!(r, Ok(i * 3));
            assert!(!std::mem::replace(&mut seen[i], true), "index {i} twice");
        }
        t.join().unwrap();
        assert!(seen.iter().all(|&s| s));
        assert_eq!(it.remaining(), 0);
    });
}
