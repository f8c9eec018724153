//! Behaviour of the multi-threaded flavour (`weft_async::multi`): building
//! (and refusing to build), block_on, spawn, Task, Handle, cancellation,
//! panics, timers, combinators, TaskGroup, TCP through async-net, and
//! that dropping a runtime leaves no thread behind.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use weft_async::TaskError;
use weft_async::multi::{
    self, Either, Error, GroupError, Handle, MAX_THREADS, Runtime, TaskGroup, TimedOut,
};

/// Every test that could hang runs under this limit.
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` on a thread of its own and fails the test if it has not
/// returned within [`LIMIT`] (a hang fails instead of blocking the suite).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let body = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(out) => {
            body.join().unwrap();
            out
        }
        // The body panicked: show its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(body.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test ran past {LIMIT:?}"),
    }
}

fn mt(threads: usize) -> Runtime {
    Runtime::builder().threads(threads).build().unwrap()
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

/// Sets its flag when dropped (a future's destructor ran).
struct DropFlag(Arc<AtomicBool>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Panics when dropped.
struct Loud;
impl Drop for Loud {
    fn drop(&mut self) {
        panic!("loud drop");
    }
}

/// A future that never completes and owns `guard`.
async fn pending_with<G: Send + 'static>(guard: G) {
    let _guard = guard;
    std::future::pending::<()>().await
}

#[test]
fn a_million_tasks_on_two_threads_exact_results() {
    within(|| {
        let rt = mt(2);
        let (sum, count) = rt.block_on(async {
            let mut sum = 0u64;
            let mut count = 0u64;
            // In batches, so the handles of all 1M need not be alive at once.
            for batch in 0..100u64 {
                let tasks: Vec<_> = (0..10_000u64)
                    .map(|i| {
                        let n = batch * 10_000 + i;
                        multi::spawn(async move { n * 3 + 1 })
                    })
                    .collect();
                for task in tasks {
                    sum += task.await.unwrap();
                    count += 1;
                }
            }
            (sum, count)
        });
        let n: u64 = 1_000_000;
        assert_eq!(count, n);
        assert_eq!(sum, 3 * (n * (n - 1) / 2) + n);
    });
}

#[test]
fn two_workers_run_tasks_at_the_same_time() {
    within(|| {
        let rt = mt(2);
        // Each task blocks its worker until the other has started: both
        // finish only if they run on two threads at once.
        let (tx_a, rx_a) = mpsc::channel::<()>();
        let (tx_b, rx_b) = mpsc::channel::<()>();
        let a = rt.spawn(async move {
            tx_a.send(()).unwrap();
            rx_b.recv_timeout(Duration::from_secs(30)).is_ok()
        });
        let b = rt.spawn(async move {
            tx_b.send(()).unwrap();
            rx_a.recv_timeout(Duration::from_secs(30)).is_ok()
        });
        assert_eq!(a.join(), Ok(true));
        assert_eq!(b.join(), Ok(true));
    });
}

#[test]
fn bad_builds_are_errors_and_leave_no_thread() {
    within(|| {
        assert_eq!(
            Runtime::builder().threads(0).build().err(),
            Some(Error::ZeroThreads)
        );
        assert_eq!(
            Runtime::builder().threads(MAX_THREADS + 1).build().err(),
            Some(Error::TooManyThreads {
                requested: MAX_THREADS + 1,
                max: MAX_THREADS
            })
        );
        assert_eq!(
            Runtime::builder().thread_name("a\0b").build().err(),
            Some(Error::InvalidThreadName)
        );
        // The OS refuses a stack this large: the build fails, and the
        // workers started before the refusal (none here) are joined.
        let err = Runtime::builder()
            .threads(3)
            .thread_name("mtbadstk")
            .stack_size(1 << 60)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, Error::ThreadSpawn { index: 0, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("worker thread 0"), "{err}");
        assert_eq!(threads_named("mtbadstk"), 0);
        assert!(Error::ZeroThreads.to_string().contains("at least one"));
    });
}

#[test]
fn dropping_the_runtime_joins_its_threads() {
    within(|| {
        let rt = Runtime::builder()
            .threads(3)
            .thread_name("mtjoin")
            .build()
            .unwrap();
        assert_eq!(rt.threads(), 3);
        // A worker names itself as it starts.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while threads_named("mtjoin-") < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "workers never started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(threads_named("mtjoin-"), 3);
        let busy = Arc::new(AtomicBool::new(false));
        for _ in 0..10 {
            // Tasks that are always ready: drop must still stop the workers.
            rt.spawn(async {
                loop {
                    multi::yield_now().await;
                }
            })
            .detach();
        }
        let flag = busy.clone();
        rt.spawn(pending_with(DropFlag(flag))).detach();
        drop(rt);
        assert_eq!(threads_named("mtjoin-"), 0);
        // The task left pending was cancelled: its future was dropped.
        assert!(busy.load(Ordering::SeqCst));
    });
}

#[test]
fn block_on_spawns_onto_the_runtime_and_returns() {
    within(|| {
        let rt = mt(2);
        let names = rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    multi::spawn(async {
                        std::thread::current().name().unwrap_or_default().to_owned()
                    })
                })
                .collect();
            let mut names = Vec::new();
            for t in tasks {
                names.push(t.await.unwrap());
            }
            names
        });
        assert!(
            names.iter().all(|n| n.starts_with("weft-worker-")),
            "{names:?}"
        );
        // The runtime is reusable between block_on calls.
        assert_eq!(rt.block_on(async { 5 }), 5);
        // block_on's future need not be Send.
        let rc = std::rc::Rc::new(3);
        assert_eq!(rt.block_on(async { *rc + 1 }), 4);
    });
}

#[test]
fn run_one_liner() {
    within(|| {
        let out = multi::run(async {
            let tasks = (0..100u64).map(|i| multi::spawn(async move { i }));
            multi::join_all(tasks).await
        });
        assert_eq!(out, (0..100u64).map(Ok).collect::<Vec<_>>());
        assert_eq!(multi::try_run(async { 1 }), Ok(1));
    });
}

#[test]
fn spawn_outside_a_runtime_is_an_error() {
    assert_eq!(multi::try_spawn(async {}).err(), Some(Error::NoRuntime));
    assert_eq!(Handle::try_current().err(), Some(Error::NoRuntime));
    let panicked = std::panic::catch_unwind(|| multi::spawn(async {}).detach()).unwrap_err();
    assert!(
        weft_sync::panic_message(&*panicked).contains("outside a multi-threaded runtime"),
        "{}",
        weft_sync::panic_message(&*panicked)
    );
    // Nor does the single-threaded runtime count as one.
    weft_async::run(async {
        assert_eq!(multi::try_spawn(async {}).err(), Some(Error::NoRuntime));
    });
}

#[test]
fn nested_block_on_is_an_error() {
    within(|| {
        let rt = mt(1);
        let other = mt(1);
        // Inside block_on, and on a worker thread.
        assert_eq!(
            rt.block_on(async { other.try_block_on(async {}) }),
            Err(Error::NestedBlockOn)
        );
        let other = Arc::new(other);
        let o = other.clone();
        assert_eq!(
            rt.spawn(async move { o.try_block_on(async {}).err() })
                .join(),
            Ok(Some(Error::NestedBlockOn))
        );
        // Inside the single-threaded runtime.
        let o = other.clone();
        weft_async::run(async move {
            assert_eq!(o.try_block_on(async {}), Err(Error::NestedBlockOn));
        });
        let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async { other.block_on(async {}) })
        }))
        .unwrap_err();
        assert!(weft_sync::panic_message(&*msg).contains("inside a running runtime"));
        // After all that, both still work.
        assert_eq!(rt.block_on(async { 1 }), 1);
        assert_eq!(other.block_on(async { 2 }), 2);
    });
}

#[test]
fn a_panicking_task_fails_its_handle_and_the_worker_carries_on() {
    within(|| {
        // One worker: if the panic killed it, nothing after would run.
        let rt = mt(1);
        let out = rt.block_on(async {
            let bad = multi::spawn(async {
                panic!("boom {}", 7);
            });
            let r: Result<(), TaskError> = bad.await;
            let after = multi::spawn(async { "still here" }).await;
            (r, after)
        });
        assert_eq!(
            out,
            (
                Err(TaskError::Panicked {
                    message: "boom 7".into()
                }),
                Ok("still here")
            )
        );
        // A panic in the future's destructor, as it finishes, fails it too.
        let dtor = rt.spawn(async {
            let _loud = Loud;
            1
        });
        assert_eq!(
            dtor.join(),
            Err(TaskError::Panicked {
                message: "loud drop".into()
            })
        );
        // A cancelled task whose destructor panics: contained.
        let (tx, rx) = mpsc::channel();
        let cancelled = rt.spawn(async move {
            let _loud = Loud;
            tx.send(()).unwrap();
            std::future::pending::<()>().await
        });
        rx.recv().unwrap();
        drop(cancelled);
        // Detached panicking task, and an output whose destructor panics
        // dropped by the executor (a detached task's output).
        rt.spawn(async { panic!("detached") }).detach();
        rt.spawn(async { Loud }).detach();
        assert_eq!(rt.spawn(async { 3 }).join(), Ok(3));
        // Panics through a Handle.
        assert_eq!(
            rt.handle().spawn(async { panic!("via handle") }).join(),
            Err(TaskError::Panicked {
                message: "via handle".into()
            })
        );
        assert_eq!(rt.handle().spawn(async { 4 }).join(), Ok(4));
    });
}

#[test]
fn dropping_a_task_cancels_it_and_cancel_reports() {
    within(|| {
        let rt = mt(2);
        rt.block_on(async {
            let dropped = Arc::new(AtomicBool::new(false));
            let task = multi::spawn(pending_with(DropFlag(dropped.clone())));
            multi::sleep(Duration::from_millis(5)).await;
            assert!(!task.is_finished());
            drop(task);
            // The future is dropped by the worker that takes the cancelled task.
            multi::timeout(Duration::from_secs(30), async {
                while !dropped.load(Ordering::SeqCst) {
                    multi::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap();

            let slow = multi::spawn(multi::sleep(Duration::from_secs(3600)));
            assert_eq!(slow.cancel().await, None);
            let quick = multi::spawn(async { 7 });
            while !quick.is_finished() {
                multi::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(quick.cancel().await, Some(Ok(7)));
        });
    });
}

#[test]
fn dropping_the_runtime_cancels_what_is_left() {
    within(|| {
        let rt = mt(2);
        let dropped = Arc::new(AtomicBool::new(false));
        let task = rt.spawn(pending_with(DropFlag(dropped.clone())));
        let handle = rt.handle();
        let via_handle = handle.spawn(pending_with(()));
        let loud = rt.spawn(pending_with(Loud));
        drop(rt);
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(task.join(), Err(TaskError::Cancelled));
        assert_eq!(loud.join(), Err(TaskError::Cancelled));
        assert_eq!(via_handle.join(), Err(TaskError::Cancelled));
        assert!(handle.is_closed());
        assert_eq!(handle.try_spawn(async {}).err(), Some(Error::Closed));
        assert_eq!(handle.spawn_task(async {}).err(), Some(Error::Closed));
        assert_eq!(handle.spawn(async { 1 }).join(), Err(TaskError::Cancelled));
    });
}

#[test]
fn handles_spawn_from_other_threads() {
    within(|| {
        let rt = mt(2);
        let handle = rt.handle();
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let handle = handle.clone();
                std::thread::spawn(move || {
                    let tasks: Vec<_> = (0..1000u64)
                        .map(|i| handle.spawn(async move { t * 1000 + i }))
                        .collect();
                    tasks.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                })
            })
            .collect();
        let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, (0..4000u64).sum());
        // Handle::current inside a task, and a TaskHandle awaited there.
        let inner = rt.block_on(async {
            let h = multi::spawn(async { Handle::current() }).await.unwrap();
            h.spawn(async { 9 }).await
        });
        assert_eq!(inner, Ok(9));
        // A TaskHandle cancelled before its task starts: the future never runs.
        let ran = Arc::new(AtomicBool::new(false));
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let one = mt(1);
        let blocker = one.spawn(async move {
            let _ = go_rx.recv_timeout(Duration::from_secs(30));
        });
        // Let the blocker take the only worker first.
        std::thread::sleep(Duration::from_millis(20));
        let r = ran.clone();
        let queued = one
            .handle()
            .spawn(async move { r.store(true, Ordering::SeqCst) });
        let cancelled = queued.cancel();
        go_tx.send(()).unwrap();
        blocker.join().unwrap();
        assert_eq!(one.spawn(async { 0 }).join(), Ok(0));
        if cancelled {
            assert_eq!(queued.join(), Err(TaskError::Cancelled));
            assert!(!ran.load(Ordering::SeqCst));
        } else {
            // It had started already (a loaded machine): it ran.
            assert_eq!(queued.join(), Ok(()));
        }
        let mut tasks = Vec::new();
        for i in 0..3 {
            tasks.push(handle.spawn_task(async move { i }).unwrap());
        }
        assert_eq!(
            tasks.into_iter().map(|t| t.join()).collect::<Vec<_>>(),
            vec![Ok(0), Ok(1), Ok(2)]
        );
    });
}

#[test]
fn timers_and_timeouts() {
    within(|| {
        let rt = mt(2);
        rt.block_on(async {
            let slow = multi::spawn(async {
                multi::timeout(
                    Duration::from_millis(10),
                    multi::sleep(Duration::from_secs(3600)),
                )
                .await
            });
            assert_eq!(
                slow.await.unwrap(),
                Err(TimedOut {
                    timeout: Duration::from_millis(10)
                })
            );
            let fast = multi::timeout(Duration::from_secs(30), multi::spawn(async { 1 })).await;
            assert_eq!(fast, Ok(Ok(1)));
            let ticks = multi::spawn(async {
                let mut every = multi::interval(Duration::from_millis(2));
                let first = every.tick().await;
                let second = every.tick().await;
                second > first
            });
            assert_eq!(ticks.await, Ok(true));
        });
        // join_timeout gives the task back while it runs.
        let long = rt.spawn(multi::sleep(Duration::from_secs(3600)));
        let long = long.join_timeout(Duration::from_millis(10)).unwrap_err();
        assert!(!long.is_finished());
        let short = rt.spawn(async { 2 });
        assert_eq!(
            short.join_timeout(Duration::from_secs(30)).ok(),
            Some(Ok(2))
        );
    });
}

#[test]
fn combinators_run_send_futures_on_the_workers() {
    within(|| {
        let out = multi::run(async {
            let (a, b) = multi::gather!(
                multi::spawn(async { 1 }),
                multi::spawn(async {
                    multi::sleep(Duration::from_millis(2)).await;
                    "two"
                }),
            )
            .await;
            let both: Result<(i32, i32), String> =
                multi::try_gather!(async { Ok(1) }, async { Ok(2) }).await;
            let raced = multi::race(
                async {
                    multi::sleep(Duration::from_secs(3600)).await;
                    0
                },
                async { 5 },
            )
            .await;
            let sel = multi::select(multi::sleep(Duration::from_secs(3600)), async { 'x' }).await;
            let mut order = Vec::new();
            let mut done = multi::as_completed([20u64, 1, 10].map(|ms| {
                multi::spawn(async move {
                    multi::sleep(Duration::from_millis(ms)).await;
                    ms
                })
            }));
            while let Some(ms) = done.next().await {
                order.push(ms.unwrap());
            }
            let err = multi::try_join_all(
                (0..3).map(|i| async move { if i == 1 { Err(i) } else { Ok(i) } }),
            )
            .await;
            (a, b, both, raced, sel, order.len(), err)
        });
        assert_eq!(
            out,
            (
                Ok(1),
                Ok("two"),
                Ok((1, 2)),
                5,
                Either::Right('x'),
                3,
                Err(1)
            )
        );
    });
}

#[test]
fn task_group_succeeds_together_or_fails_together() {
    within(|| {
        let rt = mt(2);
        rt.block_on(async {
            let mut group = TaskGroup::new();
            assert!(group.is_empty());
            for n in [3u64, 1, 2] {
                group.spawn(async move {
                    multi::sleep(Duration::from_millis(n)).await;
                    Ok::<_, String>(n * 10)
                });
            }
            assert_eq!(group.len(), 3);
            assert_eq!(group.join().await, Ok(vec![30, 10, 20]));

            // The first failure cancels the siblings.
            let sibling_dropped = Arc::new(AtomicBool::new(false));
            let flag = DropFlag(sibling_dropped.clone());
            let mut group = TaskGroup::new();
            group.spawn(async move {
                let _flag = flag;
                multi::sleep(Duration::from_secs(3600)).await;
                Ok(1)
            });
            group.spawn(async { Err("no route to host".to_string()) });
            assert_eq!(
                group.join().await,
                Err(GroupError::Failed {
                    index: 1,
                    error: "no route to host".to_string()
                })
            );
            multi::timeout(Duration::from_secs(30), async {
                while !sibling_dropped.load(Ordering::SeqCst) {
                    multi::sleep(Duration::from_millis(1)).await;
                }
            })
            .await
            .unwrap();

            // A panic fails the group too.
            let mut group: TaskGroup<(), String> = TaskGroup::new();
            group.spawn(async { panic!("child {}", 2) });
            assert_eq!(
                group.join().await,
                Err(GroupError::Panicked {
                    index: 0,
                    message: "child 2".into()
                })
            );
        });
        // A group awaited inside a task (it is Send).
        let handle = rt.handle();
        let in_task = rt.spawn(async move {
            let mut group = TaskGroup::new();
            for i in 0..100u32 {
                group.insert(handle.spawn_task(async move { Ok::<_, ()>(i) }).unwrap());
            }
            group.join().await.map(|v| v.iter().sum::<u32>())
        });
        assert_eq!(in_task.join(), Ok(Ok(4950)));
    });
}

#[test]
fn tcp_echo_through_async_net() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    within(|| {
        let rt = mt(2);
        let echoed = rt.block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = multi::spawn(async move {
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    multi::spawn(async move {
                        let mut buf = [0u8; 64];
                        loop {
                            let n = stream.read(&mut buf).await.unwrap();
                            if n == 0 {
                                break;
                            }
                            stream.write_all(&buf[..n]).await.unwrap();
                        }
                    })
                    .detach();
                }
            });
            let clients = (0..50u32).map(|i| {
                multi::spawn(async move {
                    let mut s = async_net::TcpStream::connect(addr).await.unwrap();
                    let msg = format!("hello {i}");
                    let mut total = 0;
                    for _ in 0..10 {
                        s.write_all(msg.as_bytes()).await.unwrap();
                        let mut back = vec![0u8; msg.len()];
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(back, msg.as_bytes());
                        total += back.len();
                    }
                    total
                })
            });
            let totals = multi::join_all(clients).await;
            drop(server);
            totals.into_iter().map(Result::unwrap).sum::<usize>()
        });
        let expected: usize = (0..50u32).map(|i| format!("hello {i}").len() * 10).sum();
        assert_eq!(echoed, expected);
    });
}

#[test]
fn a_runtime_dropped_inside_its_own_task_does_not_hang() {
    within(|| {
        let rt = Runtime::builder()
            .threads(2)
            .thread_name("mtself")
            .build()
            .unwrap();
        let handle = rt.handle();
        let done = handle.spawn(async move {
            drop(rt);
            "dropped"
        });
        assert_eq!(done.join(), Ok("dropped"));
        // Its workers wind down on their own.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while threads_named("mtself-") > 0 {
            assert!(std::time::Instant::now() < deadline, "workers left behind");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(handle.is_closed());
    });
}

#[test]
fn many_runtimes_come_and_go() {
    within(|| {
        let count = Arc::new(AtomicUsize::new(0));
        for _ in 0..20 {
            let rt = Runtime::builder()
                .threads(2)
                .thread_name("mtchurn")
                .build()
                .unwrap();
            let c = count.clone();
            rt.block_on(async move {
                let tasks: Vec<_> = (0..50)
                    .map(|_| {
                        let c = c.clone();
                        multi::spawn(async move {
                            multi::yield_now().await;
                            c.fetch_add(1, Ordering::Relaxed);
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
        }
        assert_eq!(count.load(Ordering::Relaxed), 1000);
        assert_eq!(threads_named("mtchurn-"), 0);
    });
}

#[test]
fn task_set_takes_results_in_completion_order_and_cancels_on_drop() {
    within(|| {
        let rt = mt(2);
        rt.block_on(async {
            let mut set = multi::TaskSet::new();
            assert!(set.join_next().await.is_none());
            // Results come in the order the tasks finish, not the spawn
            // order: each task waits for its own go-ahead.
            let gates: Vec<Arc<weft_sync::Event>> =
                (0..3).map(|_| Arc::new(weft_sync::Event::new())).collect();
            let ids: Vec<u64> = gates
                .iter()
                .enumerate()
                .map(|(i, gate)| {
                    let gate = gate.clone();
                    set.spawn(async move {
                        gate.wait_async().await;
                        i * 100
                    })
                })
                .collect();
            assert_eq!(ids, [0, 1, 2]);
            assert_eq!(set.len(), 3);
            let mut order = Vec::new();
            for i in [1, 2, 0] {
                gates[i].set();
                let (id, out) = set.join_next_with_id().await.unwrap();
                order.push((id, out.unwrap()));
            }
            assert_eq!(order, [(1, 100), (2, 200), (0, 0)]);
            assert!(set.join_next().await.is_none());
            assert!(set.is_empty());
            // A panic is one task's outcome; the set goes on.
            set.spawn(async { panic!("one bad task") });
            set.spawn(async { 7 });
            let mut outcomes = [
                set.join_next().await.unwrap(),
                set.join_next().await.unwrap(),
            ];
            outcomes.sort_by_key(|o| o.is_ok());
            assert!(outcomes[0].as_ref().unwrap_err().is_panic());
            assert_eq!(outcomes[1], Ok(7));
            // Dropping the set (in a task: it is Send) cancels what is left.
            let dropped = Arc::new(AtomicBool::new(false));
            struct SetOnDrop(Arc<AtomicBool>);
            impl Drop for SetOnDrop {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
            let flag = SetOnDrop(dropped.clone());
            let owner = multi::spawn(async move {
                let mut set = multi::TaskSet::new();
                set.spawn(async move {
                    let _flag = flag;
                    multi::sleep(Duration::from_secs(3600)).await;
                });
                set.shutdown().await;
                set.len()
            });
            assert_eq!(owner.await, Ok(0));
            assert!(
                dropped.load(Ordering::SeqCst),
                "shutdown did not drop the task"
            );
        });
    });
}

#[test]
fn shield_lets_the_work_finish_when_the_caller_gives_up() {
    within(|| {
        let rt = mt(2);
        rt.block_on(async {
            let go = Arc::new(weft_sync::Event::new());
            let done = Arc::new(weft_sync::Event::new());
            let (g, d) = (go.clone(), done.clone());
            let work = multi::shield(async move {
                g.wait_async().await;
                d.set();
                5
            });
            // The caller gives up while the work still waits for `go`.
            assert!(
                multi::timeout(Duration::from_millis(1), work)
                    .await
                    .is_err()
            );
            go.set();
            // The work was not cancelled with its caller: it finishes.
            multi::timeout(LIMIT, done.wait_async())
                .await
                .expect("the shielded work was cancelled");
            // Awaited to the end, it gives the outcome.
            assert_eq!(multi::shield(async { 9 }).await, Ok(9));
        });
    });
}

multi::task_local! {
    static REQUEST: u64;
}

#[test]
fn task_locals_follow_their_task_across_workers() {
    within(|| {
        let rt = mt(2);
        let seen = rt.block_on(async {
            let tasks: Vec<_> = (0..200u64)
                .map(|i| {
                    multi::spawn(REQUEST.scope(i, async move {
                        let mut seen = Vec::new();
                        for _ in 0..20 {
                            // Each yield may resume on the other worker.
                            multi::yield_now().await;
                            seen.push(REQUEST.get());
                        }
                        (i, seen)
                    }))
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.push(t.await.unwrap());
            }
            assert!(
                REQUEST.try_get().is_err(),
                "the value leaked out of its scope"
            );
            all
        });
        for (i, seen) in seen {
            assert!(seen.iter().all(|&v| v == i), "task {i} saw {seen:?}");
        }
    });
}

#[test]
fn scoped_task_group_runs_in_block_on() {
    within(|| {
        let rt = mt(2);
        let out = rt.block_on(async {
            let names = vec!["a".to_string(), "b".to_string()];
            let names = &names; // borrowed by the children
            weft_async::TaskGroup::<usize, String>::scope(|tg| async move {
                for n in names {
                    tg.spawn(async move {
                        // Children can await the multi flavour's tasks.
                        let len = n.len();
                        multi::spawn(async move { len * 10 })
                            .await
                            .map_err(|e| e.to_string())
                    });
                }
                "body"
            })
            .await
        });
        assert_eq!(out.unwrap(), ("body", vec![10, 10]));
    });
}

/// Each worker has an executor of its own, and a task spawned by a worker
/// goes to that worker's executor: the other workers must still run it when
/// its own worker is busy (here, blocked until that very task has run).
#[test]
fn a_task_spawned_by_a_blocked_worker_runs_on_another() {
    within(|| {
        let rt = mt(2);
        let ran_elsewhere = rt.block_on(async {
            multi::spawn(async {
                let done = Arc::new(weft_sync::Event::new());
                let d = done.clone();
                let me = std::thread::current().id();
                let child = multi::spawn(async move {
                    d.set();
                    std::thread::current().id()
                });
                // Block this worker (no await) until the child has run.
                assert!(done.wait_timeout(LIMIT), "the child never ran");
                (me, child.join().unwrap())
            })
            .await
            .unwrap()
        });
        assert_ne!(ran_elsewhere.0, ran_elsewhere.1);
    });
}

/// Work spawned from outside the workers is spread over all of them: two
/// tasks that each wait for the other to start both run, on two threads.
#[test]
fn tasks_spawned_from_outside_use_every_worker() {
    within(|| {
        let rt = mt(2);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                rt.spawn(async move {
                    b.wait(); // blocks its worker until the other task arrives
                    std::thread::current().id()
                })
            })
            .collect();
        let ids: Vec<_> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
        assert_ne!(ids[0], ids[1]);
    });
}

/// `TaskGroup::scope_send` is `Send` where its contents are, so it runs
/// inside a task of the multi flavour: borrowing children, a sibling
/// spawned by a child from another worker's wake-up, and every failure.
#[test]
fn a_send_task_group_scope_runs_inside_a_spawned_task() {
    fn assert_send<T: Send>(t: T) -> T {
        t
    }
    within(|| {
        let rt = mt(2);
        let (ok, failed) = rt.block_on(async {
            let ok = multi::spawn(assert_send(async {
                let words = vec!["alpha".to_string(), "beta".to_string()];
                let words = &words; // borrowed by the children
                weft_async::TaskGroup::<usize, String>::scope_send(|tg| async move {
                    for w in words {
                        tg.spawn(async move { Ok(w.len()) });
                    }
                    let sibling = tg.clone();
                    tg.spawn(async move {
                        // Woken by a task on another worker first.
                        multi::spawn(async { 1 }).await.unwrap();
                        sibling.spawn(async { Ok(7) });
                        Ok(0)
                    });
                    "body"
                })
                .await
            }));
            let failed = multi::spawn(async {
                weft_async::TaskGroup::<(), String>::scope_send(|tg| async move {
                    tg.spawn(async { Err("disk full".to_string()) });
                    tg.spawn(async { Err("no route".to_string()) });
                })
                .await
            });
            (ok.await.unwrap(), failed.await.unwrap())
        });
        assert_eq!(ok, Ok(("body", vec![5, 4, 0, 7])));
        let errors = failed.unwrap_err().into_errors();
        assert_eq!(
            errors,
            vec![
                GroupError::Failed {
                    index: 0,
                    error: "disk full".to_string()
                },
                GroupError::Failed {
                    index: 1,
                    error: "no route".to_string()
                },
            ]
        );
    });
}
