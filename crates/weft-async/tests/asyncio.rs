//! The rest of asyncio (issue 17): `Runtime` (asyncio.Runner), `Handle`
//! (run_coroutine_threadsafe), the current task and its cancellation.
//! Every test that could hang runs under a deadline.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use weft_async::{Handle, Runtime, RuntimeError, TaskError};
use weft_sync::Event;

/// Runs `f` on a thread and fails the test if it takes longer than a
/// generous deadline (a hang), passing its panic on otherwise.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(v) => {
            worker.join().unwrap();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sent nothing but did not panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: no result within 60 s"),
    }
}

// ------------------------------------------------------------ Runtime

#[test]
fn runtime_reused_across_block_on_calls_with_a_task_living_across_them() {
    within(|| {
        let rt = Runtime::new();
        let steps = Rc::new(Cell::new(0));
        let gate = Arc::new(Event::new());
        let (s, g) = (steps.clone(), gate.clone());
        // Spawned in the first call; waits past its end.
        #[allow(clippy::async_yields_async, reason = "the task handle is the point")]
        let task = rt.block_on(async move {
            weft_async::spawn(async move {
                s.set(1);
                g.wait_async().await;
                s.set(2);
                "done"
            })
        });
        // It ran in the first call up to its wait... (the first call returns
        // as soon as its main future does, which may be before the task's
        // first poll; a second call lets it start.)
        rt.block_on(weft_async::yield_now());
        assert_eq!(steps.get(), 1);
        // ...stays paused between calls, even when woken from another thread...
        let opener = gate.clone();
        std::thread::spawn(move || opener.set()).join().unwrap();
        assert_eq!(steps.get(), 1, "a runtime runs only inside block_on");
        // ...and finishes in a later call.
        assert_eq!(rt.block_on(task), Ok("done"));
        assert_eq!(steps.get(), 2);
        // Ids go on counting: it is the same runtime.
        let id = rt.block_on(async { weft_async::spawn(async {}).id() });
        assert!(id > 1);
        assert_eq!(rt.block_on(async { 7 }), 7);
    });
}

#[test]
fn dropping_a_runtime_cancels_its_tasks_and_runs_their_destructors() {
    within(|| {
        struct Flag(Rc<Cell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Rc::new(Cell::new(false));
        let rt = Runtime::new();
        let d = dropped.clone();
        rt.block_on(async move {
            weft_async::spawn(async move {
                let _flag = Flag(d);
                weft_async::sleep(Duration::from_secs(3600)).await;
            })
            .detach();
            weft_async::yield_now().await;
        });
        assert!(!dropped.get());
        let handle = rt.handle();
        drop(rt);
        assert!(
            dropped.get(),
            "the task's future was dropped with the runtime"
        );
        assert!(handle.is_closed());
    });
}

#[test]
fn runtime_spawn_between_calls_and_nested_block_on_is_refused() {
    within(|| {
        let rt = Runtime::new();
        let task = rt.spawn(async { 5 });
        assert_eq!(rt.block_on(task), Ok(5));
        rt.block_on(async {
            assert_eq!(
                Runtime::new().try_block_on(async {}),
                Err(RuntimeError::NestedRun)
            );
            assert_eq!(weft_async::try_run(async {}), Err(RuntimeError::NestedRun));
        });
        // A panic in the main future propagates; the runtime stays usable.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async { panic!("main") })
        }));
        assert!(panicked.is_err());
        assert!(!weft_async::in_runtime());
        assert_eq!(
            rt.block_on(async { weft_async::spawn(async { 1 }).await }),
            Ok(1)
        );
    });
}

// ------------------------------------------------------------- Handle

#[test]
fn spawning_from_four_foreign_threads_onto_a_running_runtime() {
    within(|| {
        const THREADS: usize = 4;
        const PER_THREAD: usize = 250;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(Event::new());
        let stop2 = stop.clone();
        let ran_on = Arc::new(AtomicUsize::new(0));
        let runtime = std::thread::spawn(move || {
            weft_async::run(async move {
                tx.send(Handle::current()).unwrap();
                stop2.wait_async().await;
            })
        });
        let handle = rx.recv().unwrap();
        let runtime_thread = runtime.thread().id();
        let spawners: Vec<_> = (0..THREADS)
            .map(|t| {
                let handle = handle.clone();
                let ran_on = ran_on.clone();
                std::thread::spawn(move || {
                    let handles: Vec<_> = (0..PER_THREAD)
                        .map(|i| {
                            let ran_on = ran_on.clone();
                            handle.spawn(async move {
                                if std::thread::current().id() == runtime_thread {
                                    ran_on.fetch_add(1, Ordering::Relaxed);
                                }
                                // A task that waits, too.
                                if i % 10 == 0 {
                                    weft_async::sleep(Duration::from_millis(1)).await;
                                }
                                assert!(weft_async::current_task().is_some());
                                t * 1_000 + i
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap())
                        .sum::<usize>()
                })
            })
            .collect();
        let total: usize = spawners.into_iter().map(|s| s.join().unwrap()).sum();
        let expected: usize = (0..THREADS)
            .map(|t| (0..PER_THREAD).map(|i| t * 1_000 + i).sum::<usize>())
            .sum();
        assert_eq!(total, expected);
        assert_eq!(ran_on.load(Ordering::Relaxed), THREADS * PER_THREAD);
        // Panics reach the handle; the runtime carries on.
        let boom = handle.spawn(async { panic!("remote boom") });
        assert_eq!(
            boom.join(),
            Err(TaskError::Panicked {
                message: "remote boom".into()
            })
        );
        stop.set();
        runtime.join().unwrap();
    });
}

#[test]
fn spawning_after_the_runtime_ended_fails_clearly() {
    within(|| {
        let handle = weft_async::run(async { Handle::current() });
        assert!(handle.is_closed());
        assert_eq!(
            handle.try_spawn(async { 1 }).err(),
            Some(RuntimeError::Closed)
        );
        let late = handle.spawn(async { 1 });
        assert_eq!(late.join(), Err(TaskError::Cancelled));
        assert!(
            RuntimeError::Closed.to_string().contains("has ended"),
            "{}",
            RuntimeError::Closed
        );
        // Outside a runtime there is no current handle.
        assert_eq!(Handle::try_current().err(), Some(RuntimeError::NoRuntime));
    });
}

#[test]
fn a_task_still_running_when_the_runtime_ends_fails_its_handle() {
    within(|| {
        let (tx, rx) = mpsc::channel();
        let started = Arc::new(Event::new());
        let s = started.clone();
        let runtime = std::thread::spawn(move || {
            weft_async::run(async move {
                tx.send(Handle::current()).unwrap();
                s.wait_async().await;
            })
        });
        let handle = rx.recv().unwrap();
        let started2 = started.clone();
        let forever = handle.spawn(async move {
            started2.set();
            weft_async::sleep(Duration::from_secs(3600)).await;
        });
        // The task started, so `run` returns and cancels it.
        runtime.join().unwrap();
        assert_eq!(forever.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn handle_spawn_onto_an_idle_runtime_runs_at_its_next_block_on() {
    within(|| {
        let rt = Runtime::new();
        let handle = rt.handle();
        let task = std::thread::spawn(move || handle.spawn(async { 3 }))
            .join()
            .unwrap();
        assert!(!task.is_finished(), "an idle runtime runs nothing");
        assert_eq!(rt.block_on(task), Ok(3));
        // And one still queued when the Runtime is dropped fails.
        let queued = rt.handle().spawn(async { 4 });
        drop(rt);
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn a_handle_task_cancelled_before_it_starts_never_runs() {
    within(|| {
        let rt = Runtime::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let task = rt.handle().spawn(async move {
            r.fetch_add(1, Ordering::Relaxed);
        });
        assert!(task.cancel());
        rt.block_on(weft_async::sleep(Duration::from_millis(1)));
        assert_eq!(ran.load(Ordering::Relaxed), 0);
        assert_eq!(task.join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn a_wake_from_another_thread_wakes_an_idle_loop() {
    within(|| {
        let event = Arc::new(Event::new());
        let e = event.clone();
        weft_async::run(async move {
            let setter = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                e.set();
            });
            // The loop sleeps with nothing to do until the other thread wakes it.
            event.wait_async().await;
            setter.join().unwrap();
        });
    });
}

// ------------------------------------------------------- current task

#[test]
fn current_task_names_ids_and_cancels() {
    within(|| {
        weft_async::run(async {
            assert_eq!(weft_async::current_task(), None);
            // Self-cancellation: dropped at its next wait.
            let reached = Rc::new(Cell::new(false));
            let r = reached.clone();
            let task = weft_async::spawn(async move {
                assert!(weft_async::current_task().unwrap().cancel());
                weft_async::sleep(Duration::from_secs(3600)).await;
                r.set(true);
            });
            assert_eq!(task.await, Err(TaskError::Cancelled));
            assert!(!reached.get());

            // Cancelled by another task while it waits, through the
            // CurrentTask it handed out.
            let tx = Rc::new(Cell::new(None));
            let t = tx.clone();
            let waiter = weft_async::Builder::new()
                .name("waiter")
                .spawn(async move {
                    t.set(weft_async::current_task());
                    weft_async::sleep(Duration::from_secs(3600)).await;
                })
                .unwrap();
            weft_async::yield_now().await;
            let me = tx.take().unwrap();
            assert_eq!(me.id(), waiter.id());
            assert_eq!(me.name().as_deref(), Some("waiter"));
            assert!(me.cancel());
            assert_eq!(waiter.await, Err(TaskError::Cancelled));
            assert!(!me.cancel(), "a finished task cannot be cancelled");
            assert_eq!(me.name(), None);

            // Cancelled after it registered (second wait).
            let later = weft_async::spawn(async {
                weft_async::yield_now().await;
                weft_async::current_task().unwrap().cancel();
                weft_async::sleep(Duration::from_secs(3600)).await;
            });
            assert_eq!(later.await, Err(TaskError::Cancelled));
            // Too late: finished in the same poll.
            let quick = weft_async::spawn(async {
                weft_async::current_task().unwrap().cancel();
                9
            });
            assert_eq!(quick.await, Ok(9));
        });
    });
}
