//! User code that the runtime calls (destructors, the panic hook) may panic:
//! the panic fails only what it belongs to, never the runtime or the process.
//!
//! Before these were contained, several of these tests aborted the whole
//! test process (SIGABRT): `async-task` drops a task's future and a detached
//! task's output under an abort-on-panic guard.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_async::{
    Builder, GroupError, PanicPhase, PanicReport, TaskError, TaskGroup, run, sleep, spawn, timeout,
    yield_now,
};

const LIMIT: Duration = Duration::from_secs(30);

/// Panics with its message when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// The panic hook is process-wide and the tests run in parallel: each test
/// names its tasks with its own prefix and looks only at its own reports.
fn reports() -> &'static Mutex<Vec<PanicReport>> {
    static REPORTS: Mutex<Vec<PanicReport>> = Mutex::new(Vec::new());
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        weft_async::set_panic_hook(|report| {
            REPORTS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(report.clone())
        })
    });
    &REPORTS
}

/// The reports whose message starts with `prefix`.
fn reports_of(prefix: &str) -> Vec<(PanicPhase, String)> {
    reports()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|r| r.message.starts_with(prefix))
        .map(|r| (r.phase, r.message.clone()))
        .collect()
}

fn run_limited<T>(f: impl Future<Output = T>) -> T {
    run(async move {
        timeout(LIMIT, f)
            .await
            .expect("test ran past its time limit")
    })
}

#[test]
fn a_panicking_destructor_of_a_dropped_task_is_contained_and_reported() {
    reports();
    run_limited(async {
        let task = spawn(async {
            let _guard = PanicOnDrop("dropped-task: destructor");
            sleep(Duration::from_secs(3600)).await;
        });
        yield_now().await; // it starts and waits
        drop(task);
        // The runtime goes on, and so do other tasks.
        sleep(Duration::from_millis(5)).await;
        assert_eq!(spawn(async { 3 }).await, Ok(3));
    });
    assert_eq!(
        reports_of("dropped-task"),
        vec![(
            PanicPhase::Cancelled,
            "dropped-task: destructor".to_string()
        )]
    );
}

#[test]
fn a_panicking_destructor_of_a_task_dropped_before_its_first_poll_is_contained() {
    reports();
    run_limited(async {
        let guard = PanicOnDrop("never-polled: destructor");
        let task = spawn(async move {
            let _guard = guard;
        });
        drop(task);
        yield_now().await;
        assert_eq!(spawn(async { 4 }).await, Ok(4));
    });
    assert_eq!(
        reports_of("never-polled"),
        vec![(
            PanicPhase::Cancelled,
            "never-polled: destructor".to_string()
        )]
    );
}

#[test]
fn cancel_await_with_a_panicking_destructor_is_contained() {
    reports();
    let out = run_limited(async {
        let task = Builder::new()
            .name("cancelled-by-await")
            .spawn(async {
                let _guard = PanicOnDrop("cancel-await: destructor");
                sleep(Duration::from_secs(3600)).await;
            })
            .unwrap();
        yield_now().await;
        let cancelled = task.cancel().await;
        (cancelled.is_none(), spawn(async { 5 }).await)
    });
    assert_eq!(out, (true, Ok(5)));
    let mine: Vec<_> = reports()
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.message.starts_with("cancel-await"))
        .map(|r| (r.task_name.clone(), r.phase))
        .collect();
    assert_eq!(
        mine,
        vec![(
            Some("cancelled-by-await".to_string()),
            PanicPhase::Cancelled
        )]
    );
}

#[test]
#[allow(
    clippy::async_yields_async,
    reason = "the Task handle is meant to outlive run"
)]
fn panicking_destructors_of_tasks_left_when_run_returns_are_contained() {
    reports();
    let out = run(async {
        spawn(async {
            let _guard = PanicOnDrop("run-cleanup: detached");
            sleep(Duration::from_secs(3600)).await;
        })
        .detach();
        let kept = spawn(async {
            let _guard = PanicOnDrop("run-cleanup: kept");
            sleep(Duration::from_secs(3600)).await;
        });
        yield_now().await;
        kept
    });
    // The handle outlived run: its task was cancelled.
    assert_eq!(
        futures_lite::future::block_on(out),
        Err(TaskError::Cancelled)
    );
    let mut mine = reports_of("run-cleanup");
    mine.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        mine,
        vec![
            (PanicPhase::Cancelled, "run-cleanup: detached".to_string()),
            (PanicPhase::Cancelled, "run-cleanup: kept".to_string()),
        ]
    );
    // The thread can run a runtime again.
    assert_eq!(run(async { 6 }), 6);
}

/// A future that completes at once but whose own destructor panics.
struct ReadyThenPanicOnDrop(#[allow(dead_code)] PanicOnDrop);

impl Future for ReadyThenPanicOnDrop {
    type Output = u8;
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<u8> {
        std::task::Poll::Ready(7)
    }
}

#[test]
fn a_future_whose_destructor_panics_as_it_finishes_fails_its_task() {
    run_limited(async {
        let task = spawn(ReadyThenPanicOnDrop(PanicOnDrop("finished: destructor")));
        assert_eq!(
            task.await,
            Err(TaskError::Panicked {
                message: "finished: destructor".into()
            })
        );
        assert_eq!(spawn(async { 8 }).await, Ok(8));
    });
}

#[test]
fn a_panicking_destructor_of_an_output_nobody_reads_is_contained() {
    reports();
    run_limited(async {
        // Detached: the output is dropped when the task finishes.
        spawn(async {
            yield_now().await;
            PanicOnDrop("output: detached")
        })
        .detach();
        // Finished, then its handle dropped.
        let finished = spawn(async { PanicOnDrop("output: handle dropped") });
        sleep(Duration::from_millis(5)).await;
        assert!(finished.is_finished());
        drop(finished);
        // Finished, then detached.
        let late = spawn(async { PanicOnDrop("output: detached late") });
        sleep(Duration::from_millis(5)).await;
        late.detach();
        sleep(Duration::from_millis(5)).await;
        assert_eq!(spawn(async { 9 }).await, Ok(9));
    });
    let mut mine = reports_of("output:");
    mine.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        mine,
        vec![
            (PanicPhase::Output, "output: detached".to_string()),
            (PanicPhase::Output, "output: detached late".to_string()),
            (PanicPhase::Output, "output: handle dropped".to_string()),
        ]
    );
}

#[test]
#[allow(
    clippy::async_yields_async,
    reason = "the Task handle is meant to outlive run"
)]
fn a_panicking_destructor_of_an_output_dropped_on_a_plain_thread_is_contained() {
    reports();
    let task = run_limited(async {
        let task = spawn(async { PanicOnDrop("plain-thread: output") });
        while !task.is_finished() {
            sleep(Duration::from_millis(1)).await;
        }
        task
    });
    // The handle outlives run, holding the finished task's output.
    std::thread::spawn(move || drop(task)).join().unwrap();
    assert_eq!(
        reports_of("plain-thread"),
        vec![(PanicPhase::Output, "plain-thread: output".to_string())]
    );
}

#[test]
fn a_task_group_child_whose_destructor_panics_fails_only_its_group() {
    run_limited(async {
        // A child that finishes but panics as it is dropped: the group fails
        // with that child's panic.
        let group: TaskGroup<'_, u8, String> = TaskGroup::new();
        group.spawn(async { Ok(1) });
        group.spawn(async {
            let _guard = PanicOnDrop("group: finished child");
            Ok(2)
        });
        assert_eq!(
            group.join().await,
            Err(GroupError::Panicked {
                index: 1,
                message: "group: finished child".into()
            })
        );
        // A sibling cancelled after another child failed panics as it is
        // dropped: the group still reports the first failure, and the task
        // awaiting it goes on.
        let group: TaskGroup<'_, u8, String> = TaskGroup::new();
        group.spawn(async {
            let _guard = PanicOnDrop("group: cancelled sibling");
            sleep(Duration::from_secs(3600)).await;
            Ok(1)
        });
        group.spawn(async {
            yield_now().await;
            Err("first failure".to_string())
        });
        assert_eq!(
            group.join().await,
            Err(GroupError::Failed {
                index: 1,
                error: "first failure".into()
            })
        );
        // The group's join cancelled from outside (a timeout): the children
        // are dropped, a panic in one of them goes no further.
        let group: TaskGroup<'_, u8, String> = TaskGroup::new();
        group.spawn(async {
            let _guard = PanicOnDrop("group: join cancelled");
            sleep(Duration::from_secs(3600)).await;
            Ok(1)
        });
        assert!(
            timeout(Duration::from_millis(5), group.join())
                .await
                .is_err()
        );
    });
}

#[test]
fn a_panicking_panic_hook_is_contained() {
    // A separate process-wide hook would race with the other tests' hook:
    // this one panics only on its own reports.
    reports();
    let seen = Arc::new(Mutex::new(0));
    let count = seen.clone();
    weft_async::set_panic_hook(move |report| {
        if report.message.starts_with("hook-panics") {
            *count.lock().unwrap() += 1;
            panic!("the hook itself panicked");
        }
        reports().lock().unwrap().push(report.clone());
    });
    run_limited(async {
        spawn(async { panic!("hook-panics: detached") }).detach();
        sleep(Duration::from_millis(5)).await;
        assert_eq!(spawn(async { 10 }).await, Ok(10));
    });
    assert_eq!(*seen.lock().unwrap(), 1);
}

/// A waker whose `wake` panics with its message.
struct PanickingWake(&'static str);

impl std::task::Wake for PanickingWake {
    fn wake(self: Arc<Self>) {
        panic!("{}", self.0);
    }
}

#[test]
fn a_panicking_parent_waker_of_a_combinator_is_contained() {
    reports();
    run_limited(async {
        // join_all over a task, polled by hand with a waker that panics:
        // when the task finishes, async-task wakes join_all's child waker,
        // which wakes that parent waker.
        let mut joined = std::pin::pin!(weft_async::join_all([spawn(async {
            yield_now().await;
            1
        })]));
        let waker = std::task::Waker::from(Arc::new(PanickingWake("wake-panics: parent")));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(joined.as_mut().poll(&mut cx).is_pending());
        sleep(Duration::from_millis(5)).await;
        // The runtime went on, and the result is there for the next poll.
        assert_eq!(
            joined.as_mut().poll(&mut cx),
            std::task::Poll::Ready(vec![Ok(1)])
        );
        assert_eq!(spawn(async { 11 }).await, Ok(11));
    });
    assert_eq!(
        reports_of("wake-panics: parent"),
        vec![(PanicPhase::Wake, "wake-panics: parent".to_string())]
    );
}

#[cfg(unix)]
#[test]
fn a_panicking_waker_of_a_socket_is_contained() {
    use weft_async::net::{TcpListener, TcpStream};
    reports();
    run_limited(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let waker = std::task::Waker::from(Arc::new(PanickingWake("wake-panics: socket")));
        let mut cx = std::task::Context::from_waker(&waker);
        // Waits for a connection with the panicking waker.
        assert!(listener.poll_accept(&mut cx).is_pending());
        // Another task, waiting on the same reactor, must still be woken.
        let second = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second_addr = second.local_addr().unwrap();
        let accepting = spawn(async move { second.accept().await.map(|_| ()) });
        yield_now().await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(second_addr).await.unwrap();
        assert!(accepting.await.unwrap().is_ok());
        assert!(matches!(
            listener.poll_accept(&mut cx),
            std::task::Poll::Ready(Ok(_))
        ));
    });
    assert_eq!(
        reports_of("wake-panics: socket"),
        vec![(PanicPhase::Wake, "wake-panics: socket".to_string())]
    );
}

/// A waker that does nothing when woken and panics with its message when
/// its last clone is dropped.
struct PanicOnDropWake(&'static str);

impl std::task::Wake for PanicOnDropWake {
    fn wake(self: Arc<Self>) {}
}

impl Drop for PanicOnDropWake {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

/// A waker whose `clone` panics (a hand-made vtable: `Wake` cannot make
/// one); waking and dropping it do nothing.
fn clone_panicking_waker() -> std::task::Waker {
    use std::task::{RawWaker, RawWakerVTable};
    fn clone(_: *const ()) -> RawWaker {
        panic!("clone-panics: task handle")
    }
    fn noop(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
    // SAFETY: the vtable's functions ignore the data pointer (null), never
    // touch memory, and `clone` never returns, so the RawWaker contract
    // (clone/wake/wake_by_ref/drop are sound for this data) holds trivially.
    unsafe { std::task::Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Polls `future` once with `waker`.
fn poll_with<F: Future + Unpin>(
    future: &mut F,
    waker: &std::task::Waker,
) -> std::task::Poll<F::Output> {
    std::pin::Pin::new(future).poll(&mut std::task::Context::from_waker(waker))
}

// Before wakers handed to a task handle were guarded, each of the next three
// tests aborted the test process: async-task clones, wakes and drops the
// waker of a task's awaiter under an abort-on-panic guard.

#[test]
fn a_task_polled_with_a_waker_whose_wake_panics_is_contained() {
    reports();
    run_limited(async {
        let mut task = spawn(async {
            yield_now().await;
            5
        });
        let waker = std::task::Waker::from(Arc::new(PanickingWake("wake-panics: task handle")));
        assert!(poll_with(&mut task, &waker).is_pending());
        // The task finishes and wakes its awaiter: the panicking waker.
        sleep(Duration::from_millis(5)).await;
        assert_eq!(task.await, Ok(5));
        assert_eq!(spawn(async { 12 }).await, Ok(12));
    });
    assert_eq!(
        reports_of("wake-panics: task handle"),
        vec![(PanicPhase::Wake, "wake-panics: task handle".to_string())]
    );
}

#[test]
fn a_task_polled_with_a_waker_whose_drop_panics_is_contained() {
    reports();
    run_limited(async {
        let mut task = spawn(async {
            yield_now().await;
            6
        });
        let waker = std::task::Waker::from(Arc::new(PanicOnDropWake("drop-panics: task handle")));
        assert!(poll_with(&mut task, &waker).is_pending());
        drop(waker); // the handle holds the last clone now
        // Awaited by this task from here on; the first waker goes when the
        // handle does.
        assert_eq!(task.await, Ok(6));
        assert_eq!(spawn(async { 13 }).await, Ok(13));
    });
    assert_eq!(
        reports_of("drop-panics: task handle"),
        vec![(PanicPhase::Wake, "drop-panics: task handle".to_string())]
    );
}

#[test]
fn a_task_polled_with_a_waker_whose_clone_panics_fails_only_that_poll() {
    run_limited(async {
        let mut task = spawn(async {
            yield_now().await;
            7
        });
        let waker = clone_panicking_waker();
        // The panic reaches whoever polled the handle, as any panic of a
        // poll does...
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll_with(&mut task, &waker)
        }));
        let message = weft_sync::into_panic_message(polled.expect_err("the clone panicked"));
        assert_eq!(message, "clone-panics: task handle");
        // ...and the task, the handle and the runtime are fine.
        assert_eq!(task.await, Ok(7));
        assert_eq!(spawn(async { 14 }).await, Ok(14));
    });
}

#[test]
fn a_multi_thread_task_polled_with_panicking_wakers_is_contained() {
    use weft_async::multi;
    reports();
    let rt = multi::Runtime::builder().threads(2).build().unwrap();
    let gate = Arc::new(weft_sync::Event::new());
    let g = gate.clone();
    let mut task = rt.spawn(async move {
        g.wait_async().await;
        8
    });
    // clone panics: only this poll fails.
    let waker = clone_panicking_waker();
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        poll_with(&mut task, &waker)
    }));
    assert!(polled.is_err());
    // wake panics: contained where the worker finishes the task.
    let waker = std::task::Waker::from(Arc::new(PanickingWake("wake-panics: multi handle")));
    assert!(poll_with(&mut task, &waker).is_pending());
    gate.set();
    let start = std::time::Instant::now();
    while reports_of("wake-panics: multi handle").is_empty() {
        assert!(start.elapsed() < LIMIT, "the wake never came");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(task.join(), Ok(8));
    // The runtime goes on.
    assert_eq!(rt.spawn(async { 15 }).join(), Ok(15));
    assert_eq!(
        reports_of("wake-panics: multi handle"),
        vec![(PanicPhase::Wake, "wake-panics: multi handle".to_string())]
    );
}
