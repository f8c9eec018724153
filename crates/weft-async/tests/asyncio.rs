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

// --------------------------------------------------- TaskGroup::scope

use weft_async::{GroupError, TaskGroup, TaskSet, shield, timeout};

#[test]
fn group_children_start_when_spawned_not_at_the_end() {
    within(|| {
        weft_async::run(async {
            let log = &std::cell::RefCell::new(Vec::new());
            let out = TaskGroup::<u32, String>::scope(|tg| async move {
                tg.spawn(async move {
                    log.borrow_mut().push("child ran");
                    Ok(1)
                });
                log.borrow_mut().push("body spawned");
                weft_async::yield_now().await;
                // The child has run before the body went on.
                log.borrow_mut().push("body resumed");
                7
            })
            .await;
            assert_eq!(out, Ok((7, vec![1])));
            assert_eq!(*log.borrow(), ["body spawned", "child ran", "body resumed"]);
        });
    });
}

#[test]
fn group_child_spawns_a_sibling() {
    within(|| {
        weft_async::run(async {
            let out = TaskGroup::<usize, ()>::scope(|tg| async move {
                let g = tg.clone();
                tg.spawn(async move {
                    let g2 = g.clone();
                    g.spawn(async move {
                        // A grandchild spawning a sibling too.
                        g2.spawn(async { Ok(30) });
                        weft_async::yield_now().await;
                        Ok(20)
                    });
                    Ok(10)
                });
            })
            .await;
            assert_eq!(out, Ok(((), vec![10, 20, 30])));
        });
    });
}

#[test]
fn group_cancel_drops_body_and_children() {
    within(|| {
        weft_async::run(async {
            struct Flag<'a>(&'a Cell<usize>);
            impl Drop for Flag<'_> {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let dropped = &Cell::new(0);
            let body_done = &Cell::new(false);
            let err = TaskGroup::<(), String>::scope(|tg| async move {
                for _ in 0..3 {
                    tg.spawn(async move {
                        let _f = Flag(dropped);
                        weft_async::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    });
                }
                let canceller = tg.clone();
                tg.spawn(async move {
                    weft_async::yield_now().await;
                    canceller.cancel();
                    Ok(())
                });
                weft_async::sleep(Duration::from_secs(3600)).await;
                body_done.set(true);
            })
            .await
            .unwrap_err();
            assert!(err.is_cancelled());
            assert!(err.errors().is_empty());
            assert_eq!(err.to_string(), "the task group was cancelled");
            assert_eq!(dropped.get(), 3, "every child was dropped");
            assert!(!body_done.get());

            // Cancelled from outside: dropping the scope's future.
            let dropped2 = &Cell::new(0);
            let timed_out = timeout(
                Duration::from_millis(5),
                TaskGroup::<(), ()>::scope(|tg| async move {
                    tg.spawn(async move {
                        let _f = Flag(dropped2);
                        weft_async::sleep(Duration::from_secs(3600)).await;
                        Ok(())
                    });
                    weft_async::sleep(Duration::from_secs(3600)).await;
                }),
            )
            .await;
            assert!(timed_out.is_err());
            assert_eq!(dropped2.get(), 1);
        });
    });
}

#[test]
fn group_reports_every_failure() {
    within(|| {
        weft_async::run(async {
            // Two children fail in the same turn (both wait for one event).
            let go = Arc::new(Event::new());
            let err = TaskGroup::<u8, String>::scope(|tg| {
                let go = go.clone();
                async move {
                    for (i, what) in ["disk full", "no route"].into_iter().enumerate() {
                        let go = go.clone();
                        tg.spawn(async move {
                            go.wait_async().await;
                            Err(format!("{i}: {what}"))
                        });
                    }
                    tg.spawn(async { Ok(1) });
                    tg.spawn(async { panic!("kaboom") });
                    weft_async::yield_now().await;
                    unreachable!("the panicking child stops the group first")
                }
            })
            .await
            .unwrap_err();
            assert_eq!(
                err.errors(),
                [GroupError::Panicked {
                    index: 3,
                    message: "kaboom".into()
                }]
            );
            let err = TaskGroup::<u8, String>::scope(|tg| {
                let go = go.clone();
                async move {
                    for (i, what) in ["disk full", "no route"].into_iter().enumerate() {
                        let go = go.clone();
                        tg.spawn(async move {
                            go.wait_async().await;
                            Err(format!("{i}: {what}"))
                        });
                    }
                    tg.spawn(async {
                        weft_async::sleep(Duration::from_secs(3600)).await;
                        Ok(1)
                    });
                    weft_async::yield_now().await;
                    go.set();
                    weft_async::sleep(Duration::from_secs(3600)).await;
                }
            })
            .await
            .unwrap_err();
            assert!(!err.is_cancelled());
            assert_eq!(
                err.errors(),
                [
                    GroupError::Failed {
                        index: 0,
                        error: "0: disk full".into()
                    },
                    GroupError::Failed {
                        index: 1,
                        error: "1: no route".into()
                    },
                ]
            );
            let text = err.to_string();
            assert!(text.contains("2 tasks of the group failed"), "{text}");
            assert!(
                text.contains("0: disk full") && text.contains("1: no route"),
                "{text}"
            );
        });
    });
}

#[test]
#[should_panic(expected = "has already ended")]
fn group_spawn_after_the_scope_ended_panics_clearly() {
    weft_async::run(async {
        let kept = TaskGroup::<(), ()>::scope(|tg| async move { tg.clone() })
            .await
            .unwrap()
            .0;
        kept.spawn(async { Ok(()) });
    });
}

// ------------------------------------------------------------ TaskSet

#[test]
fn task_set_gives_results_in_completion_order() {
    within(|| {
        weft_async::run(async {
            let gates: Vec<Arc<Event>> = (0..4).map(|_| Arc::new(Event::new())).collect();
            let mut set = TaskSet::new();
            let mut ids = Vec::new();
            for (i, gate) in gates.iter().enumerate() {
                let gate = gate.clone();
                ids.push(set.spawn(async move {
                    gate.wait_async().await;
                    i
                }));
            }
            assert_eq!(set.len(), 4);
            // Finish them in the order 2, 0, 3, 1.
            let mut order = Vec::new();
            for i in [2, 0, 3, 1] {
                gates[i].set();
                let (id, out) = set.join_next_with_id().await.unwrap();
                assert_eq!(id, ids[i]);
                order.push(out.unwrap());
                // Tasks join the set while results are taken.
                if i == 0 {
                    set.spawn(async { 100 });
                    assert_eq!(set.join_next().await, Some(Ok(100)));
                }
            }
            assert_eq!(order, [2, 0, 3, 1]);
            assert!(set.is_empty());
            assert_eq!(set.join_next().await, None);

            // A panic is one outcome among others.
            set.spawn(async { panic!("one bad task") });
            assert!(set.join_next().await.unwrap().unwrap_err().is_panic());

            // Dropping or shutting down the set cancels its tasks.
            struct Flag(Rc<Cell<u32>>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.set(self.0.get() + 1);
                }
            }
            let dropped_u32 = Rc::new(Cell::new(0u32));
            for _ in 0..3 {
                let f = Flag(dropped_u32.clone());
                set.spawn(async move {
                    let _f = f;
                    weft_async::sleep(Duration::from_secs(3600)).await;
                    0
                });
            }
            weft_async::yield_now().await;
            set.shutdown().await;
            assert_eq!(dropped_u32.get(), 3);
            assert!(set.is_empty());
        });
    });
}

// ------------------------------------------------------------- shield

#[test]
fn shield_keeps_the_inner_future_running_when_the_outer_is_cancelled() {
    within(|| {
        weft_async::run(async {
            let (go, saved) = (Arc::new(Event::new()), Arc::new(Event::new()));
            let (g, s) = (go.clone(), saved.clone());
            let inner = shield(async move {
                g.wait_async().await;
                s.set();
                5
            });
            // The outer task awaits the shielded future and is cancelled.
            let outer = weft_async::spawn(inner);
            weft_async::yield_now().await;
            assert_eq!(outer.cancel().await, None, "the outer task was cancelled");
            go.set();
            timeout(Duration::from_secs(30), saved.wait_async())
                .await
                .expect("the shielded future finished after its caller was cancelled");

            // Without the shield, the same inner future is cancelled.
            let (go, saved) = (Arc::new(Event::new()), Arc::new(Event::new()));
            let (g, s) = (go.clone(), saved.clone());
            let outer = weft_async::spawn(async move {
                g.wait_async().await;
                s.set();
            });
            weft_async::yield_now().await;
            assert_eq!(outer.cancel().await, None);
            go.set();
            assert!(
                timeout(Duration::from_millis(20), saved.wait_async())
                    .await
                    .is_err()
            );

            // Awaited to the end, a shielded future gives its output.
            assert_eq!(shield(async { 8 }).await, Ok(8));
        });
    });
}

// -------------------------------------------------------- task locals

weft_async::task_local! {
    /// A number per task.
    static REQUEST: u32;
    /// A name per scope.
    pub static NAME: String;
}

#[test]
fn task_locals_are_isolated_per_task() {
    within(|| {
        weft_async::run(async {
            let mut tasks = Vec::new();
            for id in 0..10u32 {
                tasks.push(weft_async::spawn(REQUEST.scope(id, async move {
                    for _ in 0..5 {
                        // Other tasks run (and set their own values) here.
                        weft_async::yield_now().await;
                        assert_eq!(REQUEST.get(), id);
                    }
                    if id % 2 == 0 {
                        assert_eq!(REQUEST.set(id * 100), Ok(id));
                        weft_async::yield_now().await;
                    }
                    REQUEST.get()
                })));
            }
            let got: Vec<u32> = weft_async::join_all(tasks)
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let want: Vec<u32> = (0..10)
                .map(|id| if id % 2 == 0 { id * 100 } else { id })
                .collect();
            assert_eq!(got, want);
            // Not set outside a scope, nor inherited by a spawned task.
            assert!(REQUEST.try_get().is_err());
            let child = REQUEST.scope(1, async {
                weft_async::spawn(async { REQUEST.try_get() }).await
            });
            assert!(child.await.unwrap().is_err());
            // Passing it on explicitly.
            let passed = REQUEST.scope(2, async {
                weft_async::spawn(REQUEST.scope(REQUEST.get(), async { REQUEST.get() })).await
            });
            assert_eq!(passed.await, Ok(2));
            // Nested scopes hide and restore.
            NAME.scope("outer".into(), async {
                NAME.scope("inner".into(), async {
                    assert_eq!(NAME.get(), "inner");
                })
                .await;
                assert_eq!(NAME.get(), "outer");
            })
            .await;
            assert_eq!(REQUEST.sync_scope(9, || REQUEST.get()), 9);
        });
    });
}

#[test]
fn a_runtime_made_and_dropped_inside_another_leaves_it_intact() {
    within(|| {
        weft_async::run(async {
            let outer = weft_async::spawn(async {
                weft_async::yield_now().await;
                1
            });
            let dropped = Rc::new(Cell::new(false));
            let d = dropped.clone();
            let inner = Runtime::new();
            // Spawned onto the idle inner runtime from inside the outer one.
            struct Flag(Rc<Cell<bool>>);
            impl Drop for Flag {
                fn drop(&mut self) {
                    self.0.set(true);
                }
            }
            let flag = Flag(d);
            inner
                .spawn(async move {
                    let _f = flag;
                    std::future::pending::<()>().await;
                })
                .detach();
            assert!(
                weft_async::current_task().is_none(),
                "still the outer main future"
            );
            drop(inner);
            assert!(dropped.get());
            assert!(weft_async::in_runtime());
            assert_eq!(outer.await, Ok(1));
            assert_eq!(weft_async::spawn(async { 2 }).await, Ok(2));
        });
    });
}
