//! Behaviour of weft-pool's thread pool: results, ordering, panics,
//! cancellation, shutdown, scopes, broadcast, nesting, reentrancy and
//! stress. Every test that could hang runs under a timeout.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use weft_pool::{PoolError, ShutdownMode, ThreadPool};
use weft_sync::TaskError;

/// Runs `f` on a helper thread and fails the test if it takes longer than
/// `secs` (a hang shows up as a failure, not as a stuck test run).
fn with_timeout<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    let secs = if cfg!(miri) { secs * 200 } else { secs };
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => match t.join().unwrap() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("timed out after {secs}s: deadlock or lost wake-up"),
    }
}

fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        thread::yield_now();
    }
}

/// Scale for stress sizes: small under Miri, medium in debug, big in release.
const fn scale(miri: usize, debug: usize, release: usize) -> usize {
    if cfg!(miri) {
        miri
    } else if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let e = ThreadPool::builder().num_threads(0).build().unwrap_err();
    assert!(matches!(e, PoolError::ZeroThreads));
    assert!(e.to_string().contains("at least one thread"), "{e}");
    assert!(matches!(ThreadPool::new(0), Err(PoolError::ZeroThreads)));
    let e = ThreadPool::builder().stack_size(0).build().unwrap_err();
    assert!(matches!(e, PoolError::ZeroStackSize));
    let pool = ThreadPool::builder().build().unwrap();
    assert!(pool.num_threads() >= 1);
}

#[test]
fn spawn_returns_results_and_reports_panics() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let handles: Vec<_> = (0..100u64)
            .map(|i| pool.spawn(move || i * i).unwrap())
            .collect();
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, (0..100u64).map(|i| i * i).sum());

        let h = pool.spawn(|| -> u8 { panic!("bad input {}", 7) }).unwrap();
        assert_eq!(
            h.join(),
            Err(TaskError::Panicked {
                message: "bad input 7".into()
            })
        );
        // The worker survived the panic.
        let hs: Vec<_> = (0..4).map(|_| pool.spawn(|| 1).unwrap()).collect();
        assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 4);
    });
}

/// Drops are counted: each capture must be dropped exactly once, whether
/// its task ran or was cancelled unrun.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Spawned closures are queued by value when small and boxed when not:
/// closures of every size (nothing captured, one word, two, a 64-byte
/// array, each with a counted capture) run once, return their own value and
/// drop their captures exactly once, also when cancelled before they run
/// and when the pool shuts down with them queued.
#[test]
fn spawned_closures_of_every_size_run_and_drop_once() {
    with_timeout(60, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let n = scale(8, 200, 2000);
        let pool = ThreadPool::new(2).unwrap();
        let mut expected_drops = 0;
        for i in 0..n {
            let small = Counted(drops.clone());
            let h1 = pool
                .spawn(move || {
                    let _keep = &small;
                    i
                })
                .unwrap();
            let two = (Counted(drops.clone()), i as u64);
            let h2 = pool
                .spawn(move || {
                    let (_c, v) = &two;
                    *v * 2
                })
                .unwrap();
            let big = (Counted(drops.clone()), [i as u64; 8]);
            let h3 = pool
                .spawn(move || {
                    let (_c, arr) = &big;
                    arr.iter().sum::<u64>()
                })
                .unwrap();
            let h0 = pool.spawn(|| 7u8).unwrap();
            expected_drops += 3;
            assert_eq!(h1.join(), Ok(i));
            assert_eq!(h2.join(), Ok(i as u64 * 2));
            assert_eq!(h3.join(), Ok(i as u64 * 8));
            assert_eq!(h0.join(), Ok(7));
        }
        // Cancelled unrun, small and big, behind a blocker.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let one = ThreadPool::new(1).unwrap();
        let blocker = one.spawn(move || release_rx.recv().unwrap()).unwrap();
        let small = Counted(drops.clone());
        let big = (Counted(drops.clone()), [0u64; 8]);
        let v1 = one.spawn(move || drop(small)).unwrap();
        let v2 = one.spawn(move || drop(big)).unwrap();
        expected_drops += 2;
        assert!(v1.cancel() && v2.cancel());
        release_tx.send(()).unwrap();
        blocker.join().unwrap();
        assert_eq!(v1.join(), Err(TaskError::Cancelled));
        assert_eq!(v2.join(), Err(TaskError::Cancelled));
        // Queued at shutdown: run before the workers exit.
        let queued: Vec<_> = (0..4)
            .map(|_| {
                let c = Counted(drops.clone());
                one.spawn(move || drop(c)).unwrap()
            })
            .collect();
        expected_drops += 4;
        one.shutdown(ShutdownMode::Wait);
        for h in queued {
            assert_eq!(h.join(), Ok(()));
        }
        pool.shutdown(ShutdownMode::Wait);
        assert_eq!(drops.load(Ordering::SeqCst), expected_drops);
    });
}

#[test]
fn handles_are_futures() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let h = pool.spawn(|| "async ok").unwrap();
        assert_eq!(futures_lite::future::block_on(h), Ok("async ok"));
    });
}

#[test]
fn cancel_before_start_never_runs() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let blocker = pool.spawn(move || release_rx.recv().unwrap()).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let victim = pool.spawn(move || r.store(true, Ordering::SeqCst)).unwrap();
        assert!(victim.cancel());
        release_tx.send(()).unwrap();
        blocker.join().unwrap();
        assert_eq!(victim.join(), Err(TaskError::Cancelled));
        pool.shutdown(ShutdownMode::Wait);
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn shutdown_wait_runs_everything_queued() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let blocker = pool
            .spawn(|| thread::sleep(Duration::from_millis(30)))
            .unwrap();
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let c = count.clone();
                pool.spawn(move || c.fetch_add(1, Ordering::SeqCst))
                    .unwrap()
            })
            .collect();
        pool.shutdown(ShutdownMode::Wait);
        assert_eq!(count.load(Ordering::SeqCst), 100, "nothing queued is lost");
        assert!(blocker.join().is_ok());
        assert!(handles.into_iter().all(|h| h.join().is_ok()));
        assert!(pool.is_shutdown());
        let e = pool.spawn(|| ()).unwrap_err();
        assert!(matches!(e, PoolError::ShutDown));
        assert!(e.to_string().contains("shut down"), "{e}");
        assert!(matches!(pool.broadcast(|_| ()), Err(PoolError::ShutDown)));
        // Blocking entry points still work after shutdown, off this pool.
        assert_eq!(pool.install(|| 5), 5);
        assert_eq!(pool.join(|| 1, || 2), (1, 2));
        assert_eq!(pool.map(|x: i32| x + 1, [1, 2], 1), [2, 3]);
        assert_eq!(
            pool.map_unordered(|x: i32| x, [3], 1).collect::<Vec<_>>(),
            [3]
        );
        pool.shutdown(ShutdownMode::Wait); // idempotent
    });
}

#[test]
fn shutdown_cancel_pending_reports_cancelled() {
    with_timeout(30, || {
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let blocker = pool
            .spawn(move || {
                s.store(true, Ordering::SeqCst);
                release_rx.recv().unwrap();
                "finished"
            })
            .unwrap();
        wait_for(&started);
        let ran = Arc::new(AtomicUsize::new(0));
        let pending: Vec<_> = (0..50)
            .map(|_| {
                let r = ran.clone();
                pool.spawn(move || r.fetch_add(1, Ordering::SeqCst))
                    .unwrap()
            })
            .collect();
        let p = pool.clone();
        let stopper = thread::spawn(move || p.shutdown(ShutdownMode::CancelPending));
        while !pool.is_shutdown() {
            thread::yield_now();
        }
        release_tx.send(()).unwrap();
        stopper.join().unwrap();
        assert_eq!(blocker.join(), Ok("finished"), "running work finishes");
        for h in pending {
            assert_eq!(h.join(), Err(TaskError::Cancelled));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn drop_drains_and_joins() {
    with_timeout(30, || {
        let count = Arc::new(AtomicUsize::new(0));
        let exited = Arc::new(AtomicUsize::new(0));
        let e = exited.clone();
        let pool = ThreadPool::builder()
            .num_threads(2)
            .exit_handler(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        for _ in 0..40 {
            let c = count.clone();
            drop(pool.spawn(move || {
                thread::sleep(Duration::from_micros(200));
                c.fetch_add(1, Ordering::SeqCst);
            }));
        }
        drop(pool);
        assert_eq!(count.load(Ordering::SeqCst), 40);
        assert_eq!(exited.load(Ordering::SeqCst), 2, "threads joined");
    });
}

#[test]
fn shutdown_from_inside_a_task_does_not_deadlock() {
    with_timeout(30, || {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let p = pool.clone();
        let h = pool
            .spawn(move || {
                p.shutdown(ShutdownMode::Wait);
                p.is_shutdown()
            })
            .unwrap();
        assert_eq!(h.join(), Ok(true));
        pool.shutdown(ShutdownMode::Wait);
    });
}

#[test]
fn builder_names_threads_and_runs_hooks() {
    with_timeout(30, || {
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        let pool = ThreadPool::builder()
            .num_threads(3)
            .thread_name(|i| format!("crunch-{i}"))
            .stack_size(512 * 1024)
            .start_handler(move |_| {
                s.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap();
        let mut names = pool
            .broadcast(|_| thread::current().name().unwrap().to_owned())
            .unwrap();
        names.sort();
        assert_eq!(names, ["crunch-0", "crunch-1", "crunch-2"]);
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert!(format!("{pool:?}").contains("num_threads: 3"));
    });
}

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = weft_pool::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

#[test]
fn join_computes_and_moves_work_into_the_pool() {
    with_timeout(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let n = scale(10, 22, 27) as u64;
        let expect = (0..n).fold((0u64, 1u64), |(a, b), _| (b, a + b)).0;
        assert_eq!(pool.install(|| fib(n)), expect);
        let (a, b) = pool.join(
            weft_pool::current_thread_index,
            weft_pool::current_thread_index,
        );
        assert!(a.is_some() && b.is_some(), "join from outside runs inside");
        assert_eq!(pool.current_thread_index(), None);
        assert!(pool.install(|| pool.current_thread_index()).unwrap() < 2);
    });
}

#[test]
fn nested_join_to_depth_25() {
    fn chain(depth: usize) -> usize {
        if depth == 0 {
            return 1;
        }
        let (a, b) = weft_pool::join(|| chain(depth - 1), || 1);
        a + b
    }
    fn tree(depth: usize) -> usize {
        if depth == 0 {
            return 1;
        }
        let (a, b) = weft_pool::join(|| tree(depth - 1), || tree(depth - 1));
        a + b
    }
    with_timeout(60, || {
        let pool = ThreadPool::new(2).unwrap();
        assert_eq!(pool.install(|| chain(25)), 26);
        assert_eq!(pool.install(|| chain(200)), 201);
        let d = scale(6, 16, 20);
        assert_eq!(pool.install(|| tree(d)), 1 << d);
    });
}

/// Nested deep enough (below the few outermost pending joins a worker
/// keeps on offer), a `join` runs its closures as plain calls. It must still
/// behave like every other `join`: both results in order, a panic in `a`
/// leaves `b` unrun and dropped once, a panic in `b` drops `a`'s result.
#[test]
fn deeply_nested_join_behaves_like_any_join() {
    #[derive(Debug)]
    struct Counted<'a>(&'a AtomicUsize);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    /// Nests `depth` joins (each with a small, pending `b`), then runs `f`.
    fn nest<R: Send>(depth: u32, f: &(dyn Fn() -> R + Sync)) -> (R, u32) {
        if depth == 0 {
            return (f(), 0);
        }
        let ((r, s), d) = weft_pool::join(|| nest(depth - 1, f), || depth);
        (r, s + d)
    }
    with_timeout(60, || {
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads).unwrap();
            let (r, s) = pool.install(|| nest(30, &|| weft_pool::join(|| "a", || "b")));
            assert_eq!((r, s), (("a", "b"), (1..=30).sum()));

            let (b_ran, dropped) = (AtomicBool::new(false), AtomicUsize::new(0));
            let e = catch_unwind(AssertUnwindSafe(|| {
                pool.install(|| {
                    nest(30, &|| {
                        let (guard, b_ran) = (Counted(&dropped), &b_ran);
                        weft_pool::join(
                            || panic!("deep a"),
                            move || {
                                b_ran.store(true, Ordering::SeqCst);
                                drop(guard);
                            },
                        )
                    })
                })
            }))
            .unwrap_err();
            assert_eq!(weft_sync::panic_message(&*e), "deep a");
            if threads == 1 {
                // Nobody could have stolen `b`: it was dropped unrun.
                assert!(!b_ran.load(Ordering::SeqCst));
            }
            assert_eq!(dropped.load(Ordering::SeqCst), 1);

            let dropped = AtomicUsize::new(0);
            let e = catch_unwind(AssertUnwindSafe(|| {
                pool.install(|| {
                    nest(30, &|| {
                        weft_pool::join(|| Counted(&dropped), || -> u8 { panic!("deep b") })
                    })
                })
            }))
            .unwrap_err();
            assert_eq!(weft_sync::panic_message(&*e), "deep b");
            assert_eq!(dropped.load(Ordering::SeqCst), 1);
            assert_eq!(pool.join(|| 2, || 3), (2, 3), "pool still works");
        }
    });
}

#[test]
fn join_panics_propagate_to_the_caller() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let e = catch_unwind(AssertUnwindSafe(|| pool.join(|| panic!("left"), || 1))).unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "left");
        let b_ran = AtomicBool::new(false);
        let e = catch_unwind(AssertUnwindSafe(|| {
            pool.join(
                || 1,
                || {
                    b_ran.store(true, Ordering::SeqCst);
                    panic!("right")
                },
            )
        }))
        .unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "right");
        assert!(b_ran.load(Ordering::SeqCst));
        // Deep in a tree, on a worker.
        fn boom(d: u32) -> u32 {
            if d == 0 {
                panic!("leaf");
            }
            let (a, b) = weft_pool::join(|| boom(d - 1), || d);
            a + b
        }
        let e = catch_unwind(AssertUnwindSafe(|| pool.install(|| boom(12)))).unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "leaf");
        assert_eq!(pool.join(|| 2, || 3), (2, 3), "pool still works");
    });
}

#[test]
fn scope_borrows_and_waits_for_all() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let mut data = vec![0u64; 1000];
        let total = AtomicUsize::new(0);
        pool.scope(|s| {
            for (i, chunk) in data.chunks_mut(10).enumerate() {
                let total = &total;
                s.spawn(move |s2| {
                    for x in chunk.iter_mut() {
                        *x = i as u64;
                    }
                    // Nested spawn through the inner scope handle.
                    s2.spawn(move |_| {
                        total.fetch_add(1, Ordering::SeqCst);
                    });
                });
            }
        });
        assert_eq!(total.load(Ordering::SeqCst), 100);
        // Tasks get the scope by reference on other threads: it is `Sync`.
        fn assert_sync<T: Sync + Send>() {}
        assert_sync::<weft_pool::Scope<'static>>();
        assert_sync::<ThreadPool>();
        assert!(data.iter().enumerate().all(|(j, &x)| x == (j / 10) as u64));
        // Free function on the global pool, returning a value.
        let v = [1, 2, 3];
        let r = weft_pool::scope(|s| {
            s.spawn(|_| assert_eq!(v.len(), 3));
            v.iter().sum::<i32>()
        });
        assert_eq!(r, 6);
    });
}

#[test]
fn scope_panics_propagate_after_all_tasks_finish() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let done = AtomicUsize::new(0);
        let e = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.spawn(|_| panic!("task failed"));
                for _ in 0..20 {
                    s.spawn(|_| {
                        thread::sleep(Duration::from_micros(100));
                        done.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        }))
        .unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "task failed");
        assert_eq!(done.load(Ordering::SeqCst), 20, "siblings all ran");
        let e = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.spawn(|_| ());
                panic!("body failed")
            })
        }))
        .unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "body failed");
    });
}

#[test]
fn map_keeps_order_for_every_chunk_size() {
    with_timeout(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let n = scale(50, 10_000, 100_000);
        let expect: Vec<u64> = (0..n as u64).map(|x| x * 3).collect();
        for chunk in [0, 1, 7, 64, n + 1] {
            assert_eq!(pool.map(|x: u64| x * 3, 0..n as u64, chunk), expect);
        }
        let empty: Vec<u64> = pool.map(|x: u64| x, Vec::new(), 0);
        assert!(empty.is_empty());
        // Owned, non-Copy items are moved exactly once.
        let strings: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let lens = pool.map(|s: String| s.len(), strings, 3);
        assert_eq!(lens.iter().sum::<usize>(), 190);
    });
}

#[test]
fn map_works_from_any_thread() {
    // The result buffer is allocated on the calling thread, which may be a
    // worker of the same pool, a worker of another pool, or (after
    // shutdown) the only thread left to run the map.
    with_timeout(60, || {
        let pool = ThreadPool::new(2).unwrap();
        let other = ThreadPool::new(1).unwrap();
        let input: Vec<u64> = (0..5000).collect();
        let expect: Vec<u64> = input.iter().map(|x| x + 1).collect();
        assert_eq!(
            pool.install(|| pool.map_slice(|x| x + 1, &input, 0)),
            expect
        );
        assert_eq!(
            other.install(|| pool.map(|x: u64| x + 1, input.clone(), 16)),
            expect
        );
        assert_eq!(
            other.install(|| pool.map_slice(|x| x + 1, &input, 1)),
            expect
        );
        pool.shutdown(weft_pool::ShutdownMode::Wait);
        assert_eq!(pool.map_slice(|x| x + 1, &input, 0), expect);
        assert_eq!(pool.map(|x: u64| x + 1, input.clone(), 7), expect);
    });
}

#[test]
fn map_panics_propagate() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let e = catch_unwind(AssertUnwindSafe(|| {
            pool.map(
                |x: String| {
                    if x == "13" {
                        panic!("unlucky {x}");
                    }
                    x
                },
                (0..40).map(|i| i.to_string()),
                4,
            )
        }))
        .unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "unlucky 13");
        let e = catch_unwind(AssertUnwindSafe(|| {
            pool.map_unordered(
                |x: u32| {
                    assert!(x != 5, "five");
                    x
                },
                0..10,
                2,
            )
            .count()
        }))
        .unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "five");
    });
}

#[test]
fn map_unordered_yields_every_result() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let n = scale(30, 5000, 50_000) as u64;
        let mut out: Vec<u64> = pool.map_unordered(|x: u64| x + 1, 0..n, 0).collect();
        out.sort_unstable();
        assert_eq!(out, (1..=n).collect::<Vec<_>>());
        let mut out: Vec<u64> = pool.map_unordered(|x: u64| x, 0..10, 1).collect();
        out.sort_unstable();
        assert_eq!(out, (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn broadcast_reaches_every_worker_exactly_once() {
    with_timeout(30, || {
        let pool = ThreadPool::new(4).unwrap();
        for _ in 0..scale(2, 20, 100) {
            let seen: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
            let r = pool
                .broadcast(|ctx| {
                    assert_eq!(ctx.num_threads(), 4);
                    assert_eq!(weft_pool::current_thread_index(), Some(ctx.index()));
                    seen[ctx.index()].fetch_add(1, Ordering::SeqCst);
                    (ctx.index(), thread::current().id())
                })
                .unwrap();
            assert!(seen.iter().all(|c| c.load(Ordering::SeqCst) == 1));
            assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
            let mut ids: Vec<_> = r.iter().map(|x| format!("{:?}", x.1)).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 4, "four distinct threads");
        }
        // From inside the pool, too.
        let r = pool.install(|| pool.broadcast(|ctx| ctx.index()).unwrap());
        assert_eq!(r, [0, 1, 2, 3]);
        let e = catch_unwind(AssertUnwindSafe(|| {
            pool.broadcast(|ctx| assert!(ctx.index() != 2, "worker two"))
        }))
        .unwrap_err();
        assert_eq!(weft_sync::panic_message(&*e), "worker two");
    });
}

#[test]
fn free_functions_use_the_global_pool() {
    with_timeout(30, || {
        assert_eq!(weft_pool::current_thread_index(), None);
        assert!(weft_pool::current_num_threads() >= 1);
        assert_eq!(weft_pool::join(|| 1, || 2), (1, 2));
        let h = weft_pool::spawn(|| weft_pool::current_thread_index().is_some());
        assert_eq!(h.join(), Ok(true));
        // `spawn` inside a pool's task goes to that pool.
        let pool = ThreadPool::new(1).unwrap();
        let inner = pool
            .install(|| weft_pool::spawn(weft_pool::current_num_threads))
            .join();
        assert_eq!(inner, Ok(1));
    });
}

/// rayon #592: a task that holds a lock and waits in `join` must not be
/// handed an unrelated queued job that takes the same lock.
#[test]
fn no_reentrancy_deadlock_in_join() {
    with_timeout(60, || {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let lock = Arc::new(Mutex::new(0u32));
        let b_started = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicBool::new(false));
        let (l, bs, q) = (lock.clone(), b_started.clone(), queued.clone());
        let holder = pool
            .spawn(move || {
                let guard = l.lock().unwrap();
                weft_pool::join(
                    || {
                        // Keep joining (each join is a chance to hand `b` to
                        // the idle worker) until `b` runs elsewhere.
                        while !bs.load(Ordering::SeqCst) {
                            weft_pool::join(|| (), || ());
                            thread::yield_now();
                        }
                    },
                    || {
                        bs.store(true, Ordering::SeqCst);
                        wait_for(&q);
                        thread::sleep(Duration::from_millis(50));
                    },
                );
                drop(guard);
                "released"
            })
            .unwrap();
        wait_for(&b_started);
        // While the holder waits for `b`, queue jobs that need its lock.
        let lockers: Vec<_> = (0..20)
            .map(|_| {
                let l = lock.clone();
                pool.spawn(move || *l.lock().unwrap() += 1).unwrap()
            })
            .collect();
        queued.store(true, Ordering::SeqCst);
        assert_eq!(holder.join(), Ok("released"));
        for h in lockers {
            h.join().unwrap();
        }
        assert_eq!(*lock.lock().unwrap(), 20);
    });
}

/// The same for a scope: its owner only runs the scope's own spawns while
/// it waits.
#[test]
fn no_reentrancy_deadlock_in_scope() {
    with_timeout(60, || {
        let pool = Arc::new(ThreadPool::new(2).unwrap());
        let lock = Arc::new(Mutex::new(0u32));
        let started = Arc::new(AtomicBool::new(false));
        let queued = Arc::new(AtomicBool::new(false));
        let (l, st, q) = (lock.clone(), started.clone(), queued.clone());
        let holder = pool
            .spawn(move || {
                let guard = l.lock().unwrap();
                weft_pool::scope(|s| {
                    s.spawn(|_| {
                        st.store(true, Ordering::SeqCst);
                        wait_for(&q);
                        thread::sleep(Duration::from_millis(50));
                    });
                    while !st.load(Ordering::SeqCst) {
                        thread::yield_now();
                    }
                });
                drop(guard);
                "released"
            })
            .unwrap();
        wait_for(&started);
        let lockers: Vec<_> = (0..20)
            .map(|_| {
                let l = lock.clone();
                pool.spawn(move || *l.lock().unwrap() += 1).unwrap()
            })
            .collect();
        queued.store(true, Ordering::SeqCst);
        assert_eq!(holder.join(), Ok("released"));
        for h in lockers {
            h.join().unwrap();
        }
        assert_eq!(*lock.lock().unwrap(), 20);
    });
}

#[test]
fn install_a_b_a_with_one_thread_each() {
    with_timeout(30, || {
        let a = Arc::new(ThreadPool::new(1).unwrap());
        let b = Arc::new(ThreadPool::new(1).unwrap());
        let (a2, b2, a3) = (a.clone(), b.clone(), a.clone());
        let r = a.install(move || {
            b2.install(move || {
                a2.install(move || {
                    // Deeper still, with joins and scopes on the way.
                    let (x, y) = weft_pool::join(|| 20, || b.install(|| 1));
                    weft_pool::scope(|s| s.spawn(|_| ()));
                    x + y + a3.current_thread_index().unwrap()
                })
            })
        });
        assert_eq!(r, 21);
    });
}

#[test]
fn stress_many_tiny_tasks_and_joins() {
    with_timeout(90, || {
        let pool = ThreadPool::new(3).unwrap();
        // Many spawned tasks.
        let n = scale(50, 200_000, 1_000_000);
        let sum = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let s = sum.clone();
                pool.spawn(move || {
                    s.fetch_add(i, Ordering::Relaxed);
                })
                .unwrap()
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(sum.load(Ordering::SeqCst), n * (n - 1) / 2);
        // Many nested joins, from several outside threads at once.
        fn tree_sum(lo: u64, hi: u64) -> u64 {
            if hi - lo == 1 {
                return lo;
            }
            let mid = lo + (hi - lo) / 2;
            let (a, b) = weft_pool::join(|| tree_sum(lo, mid), || tree_sum(mid, hi));
            a + b
        }
        let leaves = scale(64, 1 << 19, 1 << 22) as u64;
        let pool = Arc::new(pool);
        let callers: Vec<_> = (0..3)
            .map(|_| {
                let p = pool.clone();
                thread::spawn(move || p.install(|| tree_sum(0, leaves)))
            })
            .collect();
        for c in callers {
            assert_eq!(c.join().unwrap(), leaves * (leaves - 1) / 2);
        }
        // Many scope spawns.
        let count = AtomicUsize::new(0);
        pool.scope(|s| {
            for _ in 0..scale(50, 50_000, 200_000) {
                s.spawn(|_| {
                    count.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(count.into_inner(), scale(50, 50_000, 200_000));
    });
}

/// An idle pool's workers are parked: their CPU time stops growing.
#[cfg(all(target_os = "linux", not(miri)))]
#[test]
fn idle_workers_use_no_cpu() {
    fn cpu_ns(clock: libc::clockid_t) -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid clock id from pthread_getcpuclockid and a valid
        // out pointer.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        assert_eq!(rc, 0);
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        // Some work first, so the workers have been busy and then idle.
        assert_eq!(pool.install(|| fib(18)), 2584);
        let clocks = pool
            .broadcast(|_| {
                let mut id: libc::clockid_t = 0;
                // SAFETY: pthread_self is this live thread; `id` is valid.
                let rc = unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut id) };
                assert_eq!(rc, 0);
                id
            })
            .unwrap();
        thread::sleep(Duration::from_millis(200));
        let before: Vec<u64> = clocks.iter().map(|&c| cpu_ns(c)).collect();
        thread::sleep(Duration::from_millis(500));
        let after: Vec<u64> = clocks.iter().map(|&c| cpu_ns(c)).collect();
        for (b, a) in before.iter().zip(&after) {
            let used = a - b;
            assert!(
                used < 5_000_000,
                "an idle worker used {used} ns of CPU in 500 ms"
            );
        }
    });
}
