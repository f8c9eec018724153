//! Behaviour of the runtime: run, spawn, Task, cancellation, panics, timers,
//! combinators, TaskGroup, wake-ups from other threads and I/O.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft_async::{
    Builder, Either, GroupError, ReturnWhen, RuntimeError, TaskError, TaskGroup, TaskState,
    TimedOut, all_tasks, as_completed, gather, join_all, race, run, select, sleep, sleep_until,
    spawn, timeout, try_gather, try_join_all, try_run, try_spawn, wait, yield_now,
};

/// Every test that could hang runs under this limit.
const LIMIT: Duration = Duration::from_secs(30);

fn run_limited<T, F: std::future::Future<Output = T>>(f: F) -> T {
    run(async move {
        timeout(LIMIT, f)
            .await
            .expect("test ran past its time limit")
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn run_returns_output_and_spawned_tasks_run() {
    let out = run_limited(async {
        let a = spawn(async { 1 });
        let b = spawn(async { 2 });
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(out, 3);
}

#[test]
fn non_send_futures_and_outputs() {
    let out = run_limited(async {
        let cell = Rc::new(RefCell::new(Vec::new()));
        let c = cell.clone();
        let t = spawn(async move {
            c.borrow_mut().push(1);
            yield_now().await;
            c.borrow_mut().push(2);
            c
        });
        let back = t.await.unwrap();
        back.take()
    });
    assert_eq!(out, vec![1, 2]);
}

#[test]
fn nested_run_is_an_error() {
    run_limited(async {
        assert_eq!(try_run(async { 1 }), Err(RuntimeError::NestedRun));
        let t = spawn(async { try_run(async {}) });
        assert_eq!(t.await.unwrap(), Err(RuntimeError::NestedRun));
    });
    // The panicking form says what went wrong.
    let panic = std::panic::catch_unwind(|| run(async { run(async {}) })).unwrap_err();
    let msg = weft_sync::panic_message(&*panic);
    assert!(msg.contains("inside a running weft-async runtime"), "{msg}");
    // And the thread can run again afterwards.
    assert_eq!(run(async { 5 }), 5);
}

#[test]
fn spawn_outside_run_is_an_error() {
    assert_eq!(try_spawn(async {}).err(), Some(RuntimeError::NoRuntime));
    let panic = std::panic::catch_unwind(|| drop(spawn(async {}))).unwrap_err();
    let msg = weft_sync::panic_message(&*panic);
    assert!(msg.contains("outside a weft-async runtime"), "{msg}");
    assert!(Builder::new().name("x").spawn(async {}).is_err());
}

#[test]
fn timers_complete_in_deadline_order() {
    let order = run_limited(async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, d) in [40u64, 10, 30, 0, 20].into_iter().enumerate() {
            let order = order.clone();
            tasks.push(spawn(async move {
                sleep(ms(d)).await;
                order.borrow_mut().push(i);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        order.take()
    });
    assert_eq!(order, vec![3, 1, 4, 2, 0]);
}

#[test]
fn sleep_until_and_interval() {
    run_limited(async {
        let start = Instant::now();
        sleep_until(start + ms(15)).await;
        assert!(start.elapsed() >= ms(15));
        // a past deadline returns at once
        sleep_until(start).await;
        let mut every = weft_async::interval(ms(5));
        let a = every.tick().await;
        let b = every.tick().await;
        let c = every.tick().await;
        assert!(a < b && b < c);
        assert!(c.duration_since(a) >= ms(10));
    });
}

struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn cancelled_task_never_runs_again_and_its_destructors_run() {
    run_limited(async {
        let polls = Rc::new(Cell::new(0));
        let dropped = Rc::new(Cell::new(false));
        let (p, d) = (polls.clone(), dropped.clone());
        let task = spawn(async move {
            let _flag = DropFlag(d);
            loop {
                p.set(p.get() + 1);
                sleep(ms(1)).await;
            }
        });
        sleep(ms(10)).await;
        assert!(polls.get() > 0);
        assert_eq!(task.cancel().await, None);
        assert!(dropped.get(), "destructor ran by the time cancel returned");
        let seen = polls.get();
        sleep(ms(10)).await;
        assert_eq!(polls.get(), seen, "a cancelled task is never polled again");
    });
}

#[test]
fn dropping_a_task_cancels_it() {
    run_limited(async {
        let dropped = Rc::new(Cell::new(false));
        let ran_to_end = Rc::new(Cell::new(false));
        let (d, r) = (dropped.clone(), ran_to_end.clone());
        let task = spawn(async move {
            let _flag = DropFlag(d);
            sleep(ms(20)).await;
            r.set(true);
        });
        yield_now().await;
        drop(task);
        sleep(ms(40)).await;
        assert!(dropped.get());
        assert!(!ran_to_end.get());
    });
}

#[test]
fn cancel_returns_output_of_a_finished_task() {
    run_limited(async {
        let t = spawn(async { "done" });
        sleep(ms(1)).await;
        assert!(t.is_finished());
        assert_eq!(t.cancel().await, Some(Ok("done")));
    });
}

#[test]
fn detached_tasks_run_to_completion() {
    let hits = run_limited(async {
        let hits = Rc::new(Cell::new(0));
        for _ in 0..10 {
            let h = hits.clone();
            spawn(async move {
                sleep(ms(1)).await;
                h.set(h.get() + 1);
            })
            .detach();
        }
        sleep(ms(30)).await;
        hits.get()
    });
    assert_eq!(hits, 10);
}

#[test]
#[allow(clippy::async_yields_async)] // returns a Task out of run on purpose
fn tasks_alive_when_run_returns_are_cancelled_and_dropped() {
    let dropped = Rc::new(Cell::new(0));
    let leftover = {
        let dropped = dropped.clone();
        run_limited(async move {
            for _ in 0..5 {
                let d = dropped.clone();
                spawn(async move {
                    struct Count(Rc<Cell<i32>>);
                    impl Drop for Count {
                        fn drop(&mut self) {
                            self.0.set(self.0.get() + 1);
                        }
                    }
                    let _c = Count(d);
                    sleep(Duration::from_secs(3600)).await;
                })
                .detach();
            }
            let kept = spawn(sleep(Duration::from_secs(3600)));
            yield_now().await;
            kept
        })
    };
    assert_eq!(dropped.get(), 5, "destructors ran before run returned");
    // The handle that escaped reports the cancellation, in a new runtime too.
    assert_eq!(run(leftover), Err(TaskError::Cancelled));
}

#[test]
fn panics_in_tasks_are_reported_and_the_runtime_survives() {
    run_limited(async {
        let bad = spawn(async {
            yield_now().await;
            panic!("kaboom {}", 7)
        });
        let good = spawn(async { 1 });
        let err: Result<(), TaskError> = bad.await;
        assert_eq!(
            err,
            Err(TaskError::Panicked {
                message: "kaboom 7".into()
            })
        );
        assert_eq!(good.await, Ok(1));
        // the runtime still works
        assert_eq!(spawn(async { 2 }).await, Ok(2));
    });
}

#[test]
fn detached_panics_go_to_the_hook() {
    // The hook is process-wide, so this test checks only for its own panics.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    weft_async::set_panic_hook(move |r| {
        sink.lock()
            .unwrap()
            .push((r.task_name.clone(), r.message.clone()))
    });
    run_limited(async {
        Builder::new()
            .name("detached-panicker")
            .spawn(async { panic!("lost in the background") })
            .unwrap()
            .detach();
        // finished, then dropped without being awaited: also reported
        let t = Builder::new()
            .name("dropped-panicker")
            .spawn(async { panic!("never retrieved") })
            .unwrap();
        sleep(ms(5)).await;
        drop(t);
        // an awaited panic is not reported to the hook
        let awaited = Builder::new()
            .name("awaited-panicker")
            .spawn(async { panic!("seen") })
            .unwrap();
        assert!(awaited.await.is_err());
    });
    weft_async::take_panic_hook();
    let seen = seen.lock().unwrap();
    let mine: Vec<_> = seen
        .iter()
        .filter(|(n, _)| n.as_deref().is_some_and(|n| n.ends_with("-panicker")))
        .cloned()
        .collect();
    assert_eq!(
        mine,
        vec![
            (
                Some("detached-panicker".to_string()),
                "lost in the background".to_string()
            ),
            (
                Some("dropped-panicker".to_string()),
                "never retrieved".to_string()
            ),
        ]
    );
}

#[test]
fn timeout_fires_and_cancels() {
    run_limited(async {
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let slow = async move {
            let _f = DropFlag(d);
            sleep(Duration::from_secs(3600)).await;
            1
        };
        let start = Instant::now();
        assert_eq!(
            timeout(ms(10), slow).await,
            Err(TimedOut { timeout: ms(10) })
        );
        assert!(start.elapsed() >= ms(10));
        assert!(dropped.get());
        assert_eq!(timeout(ms(500), async { 3 }).await, Ok(3));
        let e: TaskError = TimedOut { timeout: ms(1) }.into();
        assert_eq!(e, TaskError::TimedOut { timeout: ms(1) });
        let io: std::io::Error = TimedOut { timeout: ms(1) }.into();
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
        // a huge timeout does not overflow
        assert_eq!(timeout(Duration::MAX, async { 4 }).await, Ok(4));
    });
}

#[test]
fn gather_keeps_argument_order_and_mixes_types() {
    run_limited(async {
        let order = RefCell::new(Vec::new());
        let (a, b, c) = gather!(
            async {
                sleep(ms(30)).await;
                order.borrow_mut().push("a");
                1u8
            },
            async {
                sleep(ms(10)).await;
                order.borrow_mut().push("b");
                "two"
            },
            async {
                sleep(ms(20)).await;
                order.borrow_mut().push("c");
                3.0f64
            },
        )
        .await;
        assert_eq!((a, b, c), (1, "two", 3.0));
        assert_eq!(*order.borrow(), vec!["b", "c", "a"]);
        let (single,) = gather!(async { 9 }).await;
        assert_eq!(single, 9);
    });
}

#[test]
fn try_gather_stops_at_first_error() {
    run_limited(async {
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let r: Result<(u32, u32), &str> = try_gather!(
            async move {
                let _f = DropFlag(d);
                sleep(Duration::from_secs(3600)).await;
                Ok(1)
            },
            async {
                sleep(ms(5)).await;
                Err("failed")
            }
        )
        .await;
        assert_eq!(r, Err("failed"));
        assert!(dropped.get());
    });
}

#[test]
fn join_all_keeps_order() {
    run_limited(async {
        let futs = (0..20u64).map(|i| async move {
            sleep(ms(20 - i)).await;
            i
        });
        assert_eq!(join_all(futs).await, (0..20).collect::<Vec<_>>());
        let tasks: Vec<_> = (0..100).map(|i| spawn(async move { i * 2 })).collect();
        let out: Vec<i32> = join_all(tasks)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        let empty: Vec<std::future::Ready<u8>> = Vec::new();
        assert!(join_all(empty).await.is_empty());
        let r = try_join_all((0..5).map(|i| async move {
            if i == 3 {
                Err(i)
            } else {
                sleep(ms(1)).await;
                Ok(i)
            }
        }))
        .await;
        assert_eq!(r, Err(3));
    });
}

#[test]
fn select_and_race() {
    run_limited(async {
        let r = select(sleep(Duration::from_secs(3600)), async {
            sleep(ms(2)).await;
            7
        })
        .await;
        assert_eq!(r, Either::Right(7));
        // biased towards the first when both are ready
        assert_eq!(select(async { 1 }, async { 2 }).await, Either::Left(1));
        let winner = race(
            async {
                sleep(ms(20)).await;
                "slow"
            },
            async {
                sleep(ms(1)).await;
                "fast"
            },
        )
        .await;
        assert_eq!(winner, "fast");
    });
}

#[test]
fn as_completed_yields_in_completion_order() {
    run_limited(async {
        let mut stream = as_completed([30u64, 5, 15].map(|d| async move {
            sleep(ms(d)).await;
            d
        }));
        assert_eq!(stream.remaining(), 3);
        let mut got = Vec::new();
        while let Some(d) = stream.next().await {
            got.push(d);
        }
        assert_eq!(got, vec![5, 15, 30]);
        assert_eq!(stream.remaining(), 0);
    });
}

#[test]
fn wait_first_completed_all_completed_and_timeout() {
    run_limited(async {
        let mut tasks = vec![
            spawn(async {
                sleep(ms(30)).await;
                0
            }),
            spawn(async {
                sleep(ms(5)).await;
                1
            }),
            spawn(async {
                sleep(Duration::from_secs(3600)).await;
                2
            }),
        ];
        let r = wait(&mut tasks, ReturnWhen::FirstCompleted, None).await;
        assert_eq!(r.done, vec![1]);
        assert_eq!(r.not_done, vec![0, 2]);
        let r = wait(&mut tasks, ReturnWhen::AllCompleted, Some(ms(60))).await;
        assert_eq!(r.done, vec![0, 1], "timed out with the third still running");
        assert_eq!(r.not_done, vec![2]);
        let third = tasks.pop().unwrap();
        assert_eq!(third.cancel().await, None);
        // finished tasks kept their output
        assert_eq!(tasks.pop().unwrap().await, Ok(1));
        assert_eq!(tasks.pop().unwrap().await, Ok(0));

        let mut tasks = vec![
            spawn(async {
                sleep(Duration::from_secs(3600)).await;
            }),
            spawn(async {
                sleep(ms(2)).await;
                panic!("first exception")
            }),
        ];
        let r = wait(&mut tasks, ReturnWhen::FirstException, None).await;
        assert_eq!(r.done, vec![1]);
        let failed = tasks.pop().unwrap().await;
        assert!(failed.unwrap_err().is_panic());
    });
}

#[test]
fn task_group_collects_results_and_borrows() {
    run_limited(async {
        let data = vec![3u64, 1, 2];
        let group = TaskGroup::new();
        for d in &data {
            group.spawn(async move {
                sleep(ms(*d * 3)).await;
                Ok::<_, String>(*d * 10)
            });
        }
        assert_eq!(group.len(), 3);
        assert_eq!(group.join().await, Ok(vec![30, 10, 20]));
        let empty: TaskGroup<'_, (), ()> = TaskGroup::new();
        assert!(empty.is_empty());
        assert_eq!(empty.join().await, Ok(vec![]));
    });
}

#[test]
fn task_group_error_cancels_siblings() {
    run_limited(async {
        let dropped = Rc::new(Cell::new(0));
        let finished = Rc::new(Cell::new(0));
        let group = TaskGroup::new();
        for i in 0..4 {
            let (d, f) = (dropped.clone(), finished.clone());
            group.spawn(async move {
                struct Count(Rc<Cell<i32>>);
                impl Drop for Count {
                    fn drop(&mut self) {
                        self.0.set(self.0.get() + 1);
                    }
                }
                let _c = Count(d);
                if i == 2 {
                    sleep(ms(5)).await;
                    return Err(format!("child {i} failed"));
                }
                sleep(Duration::from_secs(3600)).await;
                f.set(f.get() + 1);
                Ok(i)
            });
        }
        let err = group.join().await.unwrap_err();
        assert_eq!(
            err,
            GroupError::Failed {
                index: 2,
                error: "child 2 failed".to_string()
            }
        );
        assert_eq!(dropped.get(), 4, "every child was dropped");
        assert_eq!(finished.get(), 0);
        assert!(err.to_string().contains("siblings were cancelled"));
    });
}

#[test]
fn task_group_panic_cancels_siblings() {
    run_limited(async {
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let group = TaskGroup::new();
        group.spawn(async move {
            let _f = DropFlag(d);
            sleep(Duration::from_secs(3600)).await;
            Ok::<u8, ()>(0)
        });
        group.spawn(async {
            yield_now().await;
            panic!("child exploded")
        });
        let err = group.join().await.unwrap_err();
        assert_eq!(
            err,
            GroupError::Panicked {
                index: 1,
                message: "child exploded".to_string()
            }
        );
        assert!(dropped.get());
    });
}

#[test]
fn named_tasks_never_polled_are_cleaned_up_when_run_returns() {
    // A named task enters the registry when spawned; run must still return
    // (its shutdown waits until the registry is empty) and drop its future.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let dropped = Rc::new(Cell::new(0));
        let d = dropped.clone();
        run(async move {
            for i in 0..3 {
                let d = d.clone();
                let flag = DropCount(d);
                Builder::new()
                    .name(format!("never-polled-{i}"))
                    .spawn(async move {
                        let _flag = flag;
                    })
                    .unwrap()
                    .detach();
            }
            assert_eq!(all_tasks().len(), 3);
        });
        tx.send(dropped.get()).unwrap();
    });
    assert_eq!(rx.recv_timeout(LIMIT), Ok(3));
}

struct DropCount(Rc<Cell<i32>>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn named_tasks_and_all_tasks() {
    run_limited(async {
        assert!(all_tasks().is_empty());
        let sleeper = Builder::new()
            .name("sleeper")
            .spawn(sleep(Duration::from_secs(3600)))
            .unwrap();
        let yielder = Builder::new()
            .name("yielder")
            .spawn(async {
                loop {
                    yield_now().await;
                }
            })
            .unwrap();
        let me = spawn(async {
            let tasks = all_tasks();
            let mine = weft_async::current_task_id().unwrap();
            tasks
                .into_iter()
                .map(|t| {
                    if t.id == mine {
                        ("me".to_string(), t.state)
                    } else {
                        (t.name.unwrap_or_default(), t.state)
                    }
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(sleeper.name(), Some("sleeper"));
        let mut listing = me.await.unwrap();
        listing.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            listing,
            vec![
                ("me".to_string(), TaskState::Running),
                ("sleeper".to_string(), TaskState::Waiting),
                ("yielder".to_string(), TaskState::Scheduled),
            ]
        );
        drop(yielder);
        drop(sleeper);
        yield_now().await;
        assert!(all_tasks().is_empty());
    });
    assert!(all_tasks().is_empty());
}

#[test]
fn wake_from_another_thread_via_task_handle() {
    run_limited(async {
        let (completer, handle) = weft_sync::TaskHandle::<u32>::pair();
        let waiter = spawn(handle);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(ms(20));
            completer.run(|| 99);
        });
        // The runtime has nothing else to do: it sleeps in the reactor until
        // the other thread's completion wakes it.
        assert_eq!(waiter.await.unwrap(), Ok(99));
        thread.join().unwrap();
        // The main future itself can be woken from another thread, too.
        let (completer, handle) = weft_sync::TaskHandle::<u32>::pair();
        std::thread::spawn(move || {
            std::thread::sleep(ms(5));
            completer.set_result(7);
        });
        assert_eq!(handle.await, Ok(7));
    });
}

#[test]
fn weft_pool_task_completion_wakes_an_awaiting_task() {
    run_limited(async {
        // A CPU-bound job on weft-pool's threads, awaited from async tasks.
        let jobs: Vec<_> = (0..8u64)
            .map(|i| {
                let handle = weft_pool::spawn(move || {
                    std::thread::sleep(ms(5));
                    (0..=i * 1000).sum::<u64>()
                });
                spawn(handle)
            })
            .collect();
        let sums: Vec<u64> = join_all(jobs)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        let expected: Vec<u64> = (0..8u64).map(|i| (0..=i * 1000).sum()).collect();
        assert_eq!(sums, expected);
        // A panic on the pool arrives as a TaskError.
        let bad = weft_pool::spawn(|| -> u8 { panic!("pool job failed") });
        assert_eq!(
            bad.await,
            Err(TaskError::Panicked {
                message: "pool job failed".into()
            })
        );
    });
}

#[test]
fn many_wakes_from_many_threads() {
    let n = if cfg!(debug_assertions) { 200 } else { 2000 };
    let total = run_limited(async move {
        let count = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let mut completers = Vec::new();
        for _ in 0..n {
            let (c, h) = weft_sync::TaskHandle::<usize>::pair();
            completers.push(c);
            tasks.push(spawn(async move { h.await.unwrap() }));
        }
        let mut chunks: Vec<Vec<weft_sync::Completer<usize>>> = Vec::new();
        let mut it = completers.into_iter();
        loop {
            let chunk: Vec<_> = it.by_ref().take(n / 4).collect();
            if chunk.is_empty() {
                break;
            }
            chunks.push(chunk);
        }
        let threads: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let count = count.clone();
                std::thread::spawn(move || {
                    for c in chunk {
                        count.fetch_add(1, Ordering::Relaxed);
                        c.set_result(1);
                    }
                })
            })
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(count.load(Ordering::Relaxed), n);
        sum
    });
    assert_eq!(total, n);
}

#[test]
fn tcp_echo_server_and_client_in_one_run() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    run_limited(async {
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let mut served = 0;
            while served < 4 {
                let (mut stream, _) = listener.accept().await.unwrap();
                spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    loop {
                        let n = stream.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        stream.write_all(&buf[..n]).await.unwrap();
                    }
                })
                .detach();
                served += 1;
            }
        });
        let clients = (0..4).map(|i| async move {
            let mut stream = async_net::TcpStream::connect(addr).await.unwrap();
            let mut echoed = Vec::new();
            for j in 0..10 {
                let msg = format!("client {i} message {j};");
                stream.write_all(msg.as_bytes()).await.unwrap();
                let mut buf = vec![0u8; msg.len()];
                stream.read_exact(&mut buf).await.unwrap();
                assert_eq!(buf, msg.as_bytes());
                echoed.push(String::from_utf8(buf).unwrap());
            }
            echoed.len()
        });
        let counts = join_all(clients).await;
        assert_eq!(counts, vec![10; 4]);
        server.await.unwrap();
    });
}

#[test]
fn runtime_can_run_again_on_the_same_thread_and_on_other_threads() {
    for i in 0..3 {
        assert_eq!(
            run(async move { spawn(async move { i }).await.unwrap() }),
            i
        );
    }
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                run(async move {
                    sleep(ms(5)).await;
                    spawn(async move { i * 2 }).await.unwrap()
                })
            })
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outs, vec![0, 2, 4, 6]);
}

#[test]
fn main_future_panic_tears_down_and_propagates() {
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(async move {
            spawn(async move {
                let _f = DropFlag(d);
                sleep(Duration::from_secs(3600)).await;
            })
            .detach();
            yield_now().await;
            panic!("main failed");
        })
    }));
    assert!(r.is_err());
    assert!(dropped.get());
    assert!(!weft_async::in_runtime());
    assert_eq!(run(async { 1 }), 1);
}

#[test]
fn spawn_from_tasks_and_deep_chains() {
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    let out = run_limited(async move {
        fn chain(left: u32) -> weft_async::Task<u32> {
            spawn(async move {
                if left == 0 {
                    0
                } else {
                    chain(left - 1).await.unwrap() + 1
                }
            })
        }
        chain(n).await.unwrap()
    });
    assert_eq!(out, n);
}

#[test]
fn yielding_tasks_interleave_fairly() {
    let log = run_limited(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = (0..3)
            .map(|i| {
                let log = log.clone();
                spawn(async move {
                    for _ in 0..3 {
                        log.borrow_mut().push(i);
                        yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        log.take()
    });
    assert_eq!(log, vec![0, 1, 2, 0, 1, 2, 0, 1, 2]);
}

#[test]
fn zero_sleep_yields() {
    let log = run_limited(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let t = spawn(async move {
            l.borrow_mut().push("task");
        });
        log.borrow_mut().push("main before");
        sleep(Duration::ZERO).await;
        log.borrow_mut().push("main after");
        t.await.unwrap();
        log.take()
    });
    assert_eq!(log, vec!["main before", "task", "main after"]);
}

/// Counts the polls of the future it wraps.
struct Counted<'a, F> {
    polls: &'a Cell<usize>,
    inner: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> std::future::Future for Counted<'_, F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.polls.set(self.polls.get() + 1);
        self.inner.as_mut().poll(cx)
    }
}

#[test]
fn combinators_poll_only_the_futures_that_were_woken() {
    let n = if cfg!(debug_assertions) {
        2_000
    } else {
        20_000
    };
    run_limited(async move {
        let polls = Cell::new(0);
        let futs = (0..n).map(|i| Counted {
            polls: &polls,
            inner: Box::pin(async move {
                sleep(Duration::from_micros((i % 50) as u64 * 100)).await;
                i
            }),
        });
        let out = join_all(futs).await;
        assert_eq!(out, (0..n).collect::<Vec<_>>());
        // Each future is polled once to start and once per wake-up: linear,
        // not once per wake-up of any of them.
        assert!(
            polls.get() <= 3 * n,
            "{} polls for {n} futures",
            polls.get()
        );

        polls.set(0);
        let mut stream = as_completed((0..n).map(|i| Counted {
            polls: &polls,
            inner: Box::pin(async move {
                sleep(Duration::from_micros((i % 50) as u64 * 100)).await;
            }),
        }));
        let mut seen = 0;
        while stream.next().await.is_some() {
            seen += 1;
        }
        assert_eq!(seen, n);
        assert!(
            polls.get() <= 3 * n,
            "{} polls for {n} futures",
            polls.get()
        );

        polls.set(0);
        let group = TaskGroup::new();
        for i in 0..n {
            group.spawn(Counted {
                polls: &polls,
                inner: Box::pin(async move {
                    sleep(Duration::from_micros((i % 50) as u64 * 100)).await;
                    Ok::<_, ()>(i)
                }),
            });
        }
        assert_eq!(group.join().await.unwrap().len(), n);
        assert!(
            polls.get() <= 3 * n,
            "{} polls for {n} futures",
            polls.get()
        );
    });
}

#[test]
fn busy_yielding_never_starves_timers_or_io() {
    run_limited(async {
        // The main future spins on yield_now until a timer fires.
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        spawn(async move {
            sleep(ms(5)).await;
            f.set(true);
        })
        .detach();
        let mut spins = 0u64;
        while !fired.get() {
            yield_now().await;
            spins += 1;
        }
        assert!(spins > 0);

        // A task spins the same way, while the main future waits on a timer.
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let spinner = spawn(async move {
            while !f.get() {
                yield_now().await;
            }
        });
        sleep(ms(5)).await;
        fired.set(true);
        spinner.await.unwrap();
    });
}

#[test]
fn tasks_queued_when_a_slice_ends_run_before_the_main_future_again() {
    run_limited(async {
        for _ in 0..3 {
            let started = Rc::new(Cell::new(false));
            let s = started.clone();
            let task = spawn(async move {
                s.set(true);
                sleep(ms(1)).await;
            });
            // Hog the thread well past the runtime's time slice, so that the
            // loop hands over to the reactor before it gets to the new task.
            let hog = Instant::now();
            while hog.elapsed() < ms(2) {
                std::hint::spin_loop();
            }
            yield_now().await;
            assert!(
                started.get(),
                "a task spawned before a yield has started after it"
            );
            task.await.unwrap();
        }

        // Tasks that keep the queue full still let the main future in.
        let stop = Rc::new(Cell::new(false));
        let spinners: Vec<_> = (0..100)
            .map(|_| {
                let stop = stop.clone();
                spawn(async move {
                    while !stop.get() {
                        yield_now().await;
                    }
                })
            })
            .collect();
        for _ in 0..1000 {
            yield_now().await;
        }
        stop.set(true);
        join_all(spinners).await;
    });
}

#[test]
fn a_task_can_be_awaited_from_a_plain_thread() {
    run_limited(async {
        let task = spawn(async {
            sleep(ms(10)).await;
            "from the runtime"
        });
        // Task<T> is Send when T is: a plain thread can block on it.
        let (done_tx, done_rx) = weft_sync::TaskHandle::<&'static str>::pair();
        let waiter = std::thread::spawn(move || {
            let out = futures_lite::future::block_on(task).unwrap();
            done_tx.set_result(out);
        });
        assert_eq!(done_rx.await, Ok("from the runtime"));
        waiter.join().unwrap();
    });
}

#[test]
fn a_task_dropped_on_another_thread_is_cancelled_on_its_own() {
    run_limited(async {
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct SendFlag(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for SendFlag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = SendFlag(dropped.clone());
        let task = spawn(async move {
            let _flag = flag;
            sleep(Duration::from_secs(3600)).await;
        });
        yield_now().await;
        // Cancel from a plain thread: the future is still dropped here, on
        // the runtime's thread.
        std::thread::spawn(move || drop(task)).join().unwrap();
        let start = Instant::now();
        while !dropped.load(Ordering::SeqCst) {
            assert!(start.elapsed() < LIMIT);
            sleep(ms(1)).await;
        }
        assert!(all_tasks().is_empty());
    });
}

#[test]
fn wake_ups_after_run_returned_are_harmless() {
    let (completer, handle) = weft_sync::TaskHandle::<u8>::pair();
    let out = run(async move {
        let waiting = spawn(handle);
        yield_now().await;
        waiting.detach();
        1
    });
    assert_eq!(out, 1);
    // The waiting task was cancelled when run returned; completing what it
    // waited for, from another thread, must not touch the dead runtime.
    std::thread::spawn(move || completer.set_result(5))
        .join()
        .unwrap();
    assert_eq!(run(async { 2 }), 2);
}
