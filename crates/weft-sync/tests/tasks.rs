//! TaskHandle, wait and as_completed, modelled on CPython's
//! test_concurrent_futures (wait, as_completed, Future).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::{deadline, settle};
use futures_lite::StreamExt;
use futures_lite::future::{block_on, poll_once};
use weft_sync::{ReturnWhen, TaskError, TaskHandle, WaitResult, as_completed, wait, wait_async};

fn finish_later<T: Send + 'static>(
    c: weft_sync::Completer<T>,
    after_ms: u64,
    v: Result<T, TaskError>,
) {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(after_ms));
        c.complete(v);
    });
}

#[test]
fn handle_is_awaitable_in_tokio_and_futures_lite() {
    deadline(10, || {
        let (c, h) = TaskHandle::pair();
        finish_later(c, 20, Ok(5u32));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        assert_eq!(rt.block_on(h), Ok(5));

        let (c, h) = TaskHandle::<u32>::pair();
        finish_later(
            c,
            20,
            Err(TaskError::TimedOut {
                timeout: Duration::from_secs(1),
            }),
        );
        assert_eq!(
            block_on(h),
            Err(TaskError::TimedOut {
                timeout: Duration::from_secs(1)
            })
        );
    });
}

#[test]
fn await_then_cancel_from_async() {
    let (c, mut h) = TaskHandle::<u8>::pair();
    assert!(block_on(poll_once(&mut h)).is_none());
    assert!(h.cancel());
    assert_eq!(block_on(&mut h), Err(TaskError::Cancelled));
    assert!(!c.start(), "a cancelled task never starts");
}

#[test]
#[should_panic(expected = "already taken")]
fn polling_after_completion_panics_clearly() {
    let mut h = TaskHandle::ready(Ok(1u8));
    assert_eq!(block_on(&mut h), Ok(1));
    let _ = block_on(&mut h);
}

#[test]
fn wait_first_completed_all_completed_and_timeout() {
    deadline(10, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let (c1, h1) = TaskHandle::<u32>::pair();
        let (c2, h2) = TaskHandle::<u32>::pair();
        let hs = vec![h0, h1, h2];
        let start = Instant::now();
        let r = wait(
            &hs,
            ReturnWhen::FirstCompleted,
            Some(Duration::from_millis(30)),
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(
            r,
            WaitResult {
                done: vec![],
                not_done: vec![0, 1, 2]
            }
        );
        finish_later(c1, 20, Ok(1));
        let r = wait(&hs, ReturnWhen::FirstCompleted, None);
        assert_eq!(r.done, vec![1]);
        finish_later(c0, 10, Ok(0));
        finish_later(c2, 30, Ok(2));
        let r = wait(&hs, ReturnWhen::AllCompleted, Some(Duration::from_secs(5)));
        assert_eq!(
            r,
            WaitResult {
                done: vec![0, 1, 2],
                not_done: vec![]
            }
        );
        let results: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results, vec![0, 1, 2]);
        assert_eq!(
            wait::<u8>(&[], ReturnWhen::AllCompleted, None),
            WaitResult::default()
        );
    });
}

#[test]
fn wait_first_exception() {
    deadline(10, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let (c1, h1) = TaskHandle::<u32>::pair();
        let (_c2, h2) = TaskHandle::<u32>::pair();
        let hs = vec![h0, h1, h2];
        c0.set_result(0); // a success does not satisfy FIRST_EXCEPTION
        finish_later(
            c1,
            20,
            Err(TaskError::Panicked {
                message: "boom".into(),
            }),
        );
        let r = wait(
            &hs,
            ReturnWhen::FirstException,
            Some(Duration::from_secs(5)),
        );
        assert_eq!(
            r,
            WaitResult {
                done: vec![0, 1],
                not_done: vec![2]
            }
        );
        // With no failure at all, FIRST_EXCEPTION waits for everything.
        let (a, ha) = TaskHandle::<u8>::pair();
        let (b, hb) = TaskHandle::<u8>::pair();
        finish_later(a, 10, Ok(1));
        finish_later(b, 30, Ok(2));
        let hs2 = [ha, hb];
        let r = wait(
            &hs2,
            ReturnWhen::FirstException,
            Some(Duration::from_secs(5)),
        );
        assert_eq!(r.not_done, Vec::<usize>::new());
    });
}

#[test]
fn wait_async_works_in_an_executor() {
    deadline(10, || {
        let (c0, h0) = TaskHandle::<u32>::pair();
        let (_c1, h1) = TaskHandle::<u32>::pair();
        let hs = [h0, h1];
        finish_later(c0, 20, Ok(0));
        let r = block_on(wait_async(&hs, ReturnWhen::FirstCompleted));
        assert_eq!(r.done, vec![0]);
        // Dropping a pending wait unregisters cleanly.
        let mut fut = Box::pin(wait_async(&hs, ReturnWhen::AllCompleted));
        assert!(block_on(poll_once(&mut fut)).is_none());
        drop(fut);
    });
}

#[test]
fn as_completed_yields_in_completion_order() {
    deadline(10, || {
        let mut completers = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..4 {
            let (c, h) = TaskHandle::<usize>::pair();
            completers.push(c);
            handles.push(h);
        }
        let order = [2usize, 0, 3, 1];
        let mut it = as_completed(handles);
        assert_eq!(it.remaining(), 4);
        assert_eq!(
            it.next_timeout(Duration::from_millis(20)).unwrap_err(),
            weft_sync::Timeout
        );
        let mut cs: Vec<Option<_>> = completers.into_iter().map(Some).collect();
        thread::spawn(move || {
            for (k, &i) in order.iter().enumerate() {
                thread::sleep(Duration::from_millis(10));
                let c = cs[i].take().unwrap();
                if k == 2 {
                    c.set_error(TaskError::Cancelled);
                } else {
                    c.set_result(i * 10);
                }
            }
        });
        let got: Vec<_> = it.collect();
        assert_eq!(
            got,
            vec![
                (2, Ok(20)),
                (0, Ok(0)),
                (3, Err(TaskError::Cancelled)),
                (1, Ok(10))
            ]
        );
    });
}

#[test]
fn as_completed_is_a_stream() {
    deadline(10, || {
        let (c0, h0) = TaskHandle::<u8>::pair();
        let (c1, h1) = TaskHandle::<u8>::pair();
        let s = as_completed([h0, h1]).into_stream();
        finish_later(c1, 10, Ok(1));
        finish_later(c0, 40, Ok(0));
        let got: Vec<_> = block_on(s.collect::<Vec<_>>());
        assert_eq!(got, vec![(1, Ok(1)), (0, Ok(0))]);
    });
}

#[test]
fn as_completed_after_timeout_resumes() {
    let (c, h) = TaskHandle::<u8>::pair();
    let mut it = as_completed(vec![h]);
    assert!(it.next_timeout(Duration::from_millis(10)).is_err());
    c.set_result(3);
    assert_eq!(
        it.next_timeout(Duration::from_secs(1)),
        Ok(Some((0, Ok(3))))
    );
    assert_eq!(it.next_timeout(Duration::from_secs(1)), Ok(None));
    assert_eq!(it.next(), None);
}

#[test]
fn completer_dropped_while_task_waits() {
    deadline(10, || {
        let (c, h) = TaskHandle::<u8>::pair();
        let t = thread::spawn(move || h.join());
        settle();
        drop(c);
        assert_eq!(t.join().unwrap(), Err(TaskError::Abandoned));
    });
}

/// A value whose `Drop` panics.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

/// A result dropped unread (its handle was dropped first) is dropped on the
/// completing thread; a panic in its `Drop` must not unwind into it.
#[test]
fn panicking_drop_of_an_unread_result_spares_the_completing_thread() {
    let (c, h) = TaskHandle::pair();
    drop(h);
    let completing = thread::spawn(move || c.set_result(PanicOnDrop("result drop failed")));
    assert!(
        completing.join().expect("the completing thread survives"),
        "the result was delivered"
    );

    // Refused after a cancel: dropped on the completing thread too.
    let (c, h) = TaskHandle::pair();
    assert!(h.cancel());
    let completing = thread::spawn(move || c.set_result(PanicOnDrop("refused drop failed")));
    assert!(!completing.join().expect("the completing thread survives"));
    assert_eq!(h.join().err(), Some(TaskError::Cancelled));
}

/// A task that panics with a payload whose own `Drop` panics.
#[test]
#[cfg_attr(
    miri,
    ignore = "forgets, on purpose, a panic payload whose Drop panics: a leak Miri reports"
)]
fn panic_payload_with_a_panicking_drop_spares_the_worker() {
    let (c, h) = TaskHandle::<u8>::pair();
    let worker =
        thread::spawn(move || c.run(|| std::panic::panic_any(PanicOnDrop("payload drop failed"))));
    assert!(worker.join().expect("the worker survives"));
    assert!(h.join().unwrap_err().is_panic());
}

/// A done-callback that panics does not stop the others, does not poison
/// the handle, and does not unwind into the completing thread (Python logs
/// it and goes on); nor does one whose panic payload panics when dropped.
#[test]
#[cfg_attr(
    miri,
    ignore = "forgets, on purpose, a panic payload whose Drop panics: a leak Miri reports"
)]
fn panicking_done_callbacks_do_not_stop_the_others() {
    use std::sync::{Arc, Mutex};
    let log = Arc::new(Mutex::new(Vec::new()));
    let (c, h) = TaskHandle::<u32>::pair();
    for i in 0..4 {
        let log = log.clone();
        h.add_done_callback(move |r| {
            log.lock().unwrap().push(i);
            match i {
                1 => panic!("callback {i} failed"),
                2 => std::panic::panic_any(PanicOnDrop("callback payload drop failed")),
                _ => assert_eq!(r, Ok(&7)),
            }
        });
    }
    let completing = thread::spawn(move || c.set_result(7));
    assert!(completing.join().expect("the completing thread survives"));
    assert_eq!(*log.lock().unwrap(), vec![0, 1, 2, 3]);
    // Late callbacks, on this thread: a panicking one is contained too, and
    // the handle still works afterwards.
    h.add_done_callback(|_| panic!("late callback failed"));
    let late = log.clone();
    h.add_done_callback(move |r| late.lock().unwrap().push(r.copied().unwrap()));
    assert_eq!(log.lock().unwrap().last(), Some(&7));
    assert!(h.is_finished());
    assert_eq!(h.join(), Ok(7));
}
