//! weft-pool used as an outside user would misuse it: opposite cross-pool
//! `install` chains, shutdown from two threads, builders given absurd
//! values, and user code that panics where weft calls it on a worker (hooks,
//! `Drop` of results and of cancelled closures, panic payloads). Nothing may
//! hang, kill a worker, or abort the process. Every test that could hang runs
//! under a timeout.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use weft_pool::{PoolError, ShutdownMode, ThreadPool};
use weft_sync::TaskError;

/// Runs `f` on a helper thread and fails the test if it takes longer than
/// `secs` (a hang shows up as a failure, not as a stuck test run). Under
/// Miri, which runs these tests (and their panics) hundreds of times more
/// slowly, the limit is 20 times longer.
fn with_timeout<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let secs = if cfg!(miri) { secs * 20 } else { secs };
    let (tx, rx) = mpsc::channel();
    let t = thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => match t.join().unwrap() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("timed out after {secs}s: deadlock or lost wake-up"),
    }
}

/// Waits (yielding) until `flag` is up.
fn wait_for(flag: &AtomicBool) {
    while !flag.load(Ordering::SeqCst) {
        thread::yield_now();
    }
}

/// A value whose `Drop` always panics, even while unwinding (where a panic
/// aborts the process unless weft drops it under `catch_unwind`).
#[derive(Debug)]
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop was dropped");
    }
}

/// Forgets a panic payload that may be a `PanicOnDrop`.
fn forget_payload(p: Box<dyn Any + Send>) {
    std::mem::forget(p);
}

/// A one-thread pool whose only worker is held by a task until the
/// returned flag is raised; the flag of the second element is up once the
/// worker is inside that task.
fn held_pool(exits: &Arc<AtomicUsize>) -> (Arc<ThreadPool>, Arc<AtomicBool>) {
    let e = exits.clone();
    let pool = Arc::new(
        ThreadPool::builder()
            .num_threads(1)
            .exit_handler(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
            })
            .build()
            .unwrap(),
    );
    let (release, started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (r, s) = (release.clone(), started.clone());
    drop(pool.spawn(move || {
        s.store(true, Ordering::SeqCst);
        wait_for(&r);
    }));
    wait_for(&started);
    (pool, release)
}

// ---- item 8: cross-pool install chains ----------------------------------

/// Two threads run opposite chains, `a -> b -> a` and `b -> a -> b`, on two
/// one-thread pools, and both outer installs are running before either
/// inner one starts: each pool's only worker waits for the other pool. A
/// worker waiting in a cross-pool `install` runs the other pool's install
/// job meanwhile, so both finish (they used to hang forever).
#[test]
fn opposite_cross_pool_install_chains_both_finish() {
    with_timeout(60, || {
        for _ in 0..20 {
            let a = Arc::new(ThreadPool::new(1).unwrap());
            let b = Arc::new(ThreadPool::new(1).unwrap());
            let both_in = Arc::new(Barrier::new(2));
            let chain = |x: &Arc<ThreadPool>, y: &Arc<ThreadPool>, tag: usize| {
                let (x, y, both_in) = (x.clone(), y.clone(), both_in.clone());
                thread::spawn(move || {
                    let x2 = x.clone();
                    x.install(|| {
                        both_in.wait();
                        y.install(|| {
                            x2.install(|| {
                                assert_eq!(x2.current_thread_index(), Some(0));
                                let (p, q) = weft_pool::join(|| tag, || 1);
                                p + q
                            })
                        })
                    })
                })
            };
            let t1 = chain(&a, &b, 10);
            let t2 = chain(&b, &a, 20);
            assert_eq!(t1.join().unwrap(), 11);
            assert_eq!(t2.join().unwrap(), 21);
        }
    });
}

/// The same with three pools in a ring (`a -> b -> c -> a`, and its two
/// rotations), each outer install holding its pool's only worker first.
#[test]
fn three_pool_install_ring_finishes() {
    with_timeout(60, || {
        for _ in 0..10 {
            let pools: Vec<Arc<ThreadPool>> = (0..3)
                .map(|_| Arc::new(ThreadPool::new(1).unwrap()))
                .collect();
            let all_in = Arc::new(Barrier::new(3));
            let threads: Vec<_> = (0..3)
                .map(|k| {
                    let (p0, p1, p2) = (
                        pools[k].clone(),
                        pools[(k + 1) % 3].clone(),
                        pools[(k + 2) % 3].clone(),
                    );
                    let all_in = all_in.clone();
                    thread::spawn(move || {
                        let p0b = p0.clone();
                        p0.install(|| {
                            all_in.wait();
                            p1.install(|| p2.install(|| p0b.install(|| k)))
                        })
                    })
                })
                .collect();
            for (k, t) in threads.into_iter().enumerate() {
                assert_eq!(t.join().unwrap(), k);
            }
        }
    });
}

/// A worker of pool `a` that broadcasts on pool `b` waits as in a
/// cross-pool `install`, so a broadcast closure that installs back into `a`
/// (whose only worker is the one waiting) finishes.
#[test]
fn broadcast_from_another_pools_worker_can_install_back() {
    with_timeout(30, || {
        let a = Arc::new(ThreadPool::new(1).unwrap());
        let b = Arc::new(ThreadPool::new(2).unwrap());
        let a2 = a.clone();
        let r = a.install(|| b.broadcast(|ctx| a2.install(|| ctx.index() + 1)).unwrap());
        assert_eq!(r, [1, 2]);
    });
}

/// A scope's task spawned from a thread outside the pool (here a plain
/// thread, while the scope's owner is the pool's only worker) reaches the
/// owner, which runs it while it waits for the scope.
#[test]
fn scope_spawn_from_outside_the_pool_reaches_the_owner() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let ran = AtomicBool::new(false);
        pool.scope(|s| {
            thread::scope(|ts| {
                ts.spawn(|| s.spawn(|_| ran.store(true, Ordering::SeqCst)));
            });
        });
        assert!(ran.load(Ordering::SeqCst));
        // And from a worker of another pool.
        let other = ThreadPool::new(1).unwrap();
        let ran = AtomicBool::new(false);
        pool.scope(|s| {
            other.install(|| s.spawn(|_| ran.store(true, Ordering::SeqCst)));
        });
        assert!(ran.load(Ordering::SeqCst));
    });
}

// ---- item 9: shutdown from two threads ----------------------------------

/// While one thread's `shutdown(Wait)` is joining the workers, a second
/// call must wait for the queued work too (it used to return at once,
/// finding the worker handles already taken).
#[test]
fn second_shutdown_wait_waits_for_the_queued_work() {
    with_timeout(60, || {
        let exits = Arc::new(AtomicUsize::new(0));
        let (pool, release) = held_pool(&exits);
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let d = done.clone();
            drop(pool.spawn(move || {
                d.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let p = pool.clone();
        let first = thread::spawn(move || p.shutdown(ShutdownMode::Wait));
        while !pool.is_shutdown() {
            thread::yield_now();
        }
        // Let the first call reach the join (if it has not, the second call
        // joins and the test proves less, but still passes honestly).
        thread::sleep(Duration::from_millis(100));
        let (p, d) = (pool.clone(), done.clone());
        let second = thread::spawn(move || {
            p.shutdown(ShutdownMode::Wait);
            d.load(Ordering::SeqCst)
        });
        thread::sleep(Duration::from_millis(100));
        release.store(true, Ordering::SeqCst);
        assert_eq!(
            second.join().unwrap(),
            10,
            "the second shutdown returned early"
        );
        first.join().unwrap();
        assert_eq!(done.load(Ordering::SeqCst), 10);
        assert_eq!(exits.load(Ordering::SeqCst), 1);
        // A third call, after everything, returns at once.
        pool.shutdown(ShutdownMode::CancelPending);
    });
}

// ---- item 10 and the builder sweep ----------------------------------------

/// Hook counters for a builder.
fn counted(
    b: weft_pool::ThreadPoolBuilder,
) -> (
    weft_pool::ThreadPoolBuilder,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let (starts, exits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, e) = (starts.clone(), exits.clone());
    let b = b
        .start_handler(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .exit_handler(move |_| {
            e.fetch_add(1, Ordering::SeqCst);
        });
    (b, starts, exits)
}

/// The names of this process's live threads (Linux; empty elsewhere).
fn live_thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_owned())
        .collect()
}

/// Whether every thread whose name starts with `prefix` is gone within a
/// generous limit. A joined thread can linger in `/proc` for a moment after
/// `join` returns (the kernel reaps it just after waking the joiner); a
/// leaked worker, parked forever, never goes.
fn threads_gone(prefix: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if !live_thread_names().iter().any(|n| n.starts_with(prefix)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A thread name with a NUL byte used to panic inside `build()` (in std)
/// and leave the workers already started parked forever.
#[test]
fn nul_in_a_thread_name_is_an_error_and_stops_the_started_workers() {
    with_timeout(30, || {
        let (b, starts, exits) = counted(ThreadPool::builder().num_threads(3));
        let e = b
            .thread_name(|i| {
                if i == 1 {
                    "w13nul\0x".to_owned()
                } else {
                    format!("w13nul-{i}")
                }
            })
            .build()
            .unwrap_err();
        match &e {
            PoolError::InvalidThreadName { index, name } => {
                assert_eq!((*index, name.as_str()), (1, "w13nul\0x"));
            }
            other => panic!("unexpected error: {other:?}"),
        }
        assert!(e.to_string().contains("NUL"), "{e}");
        // Worker 0 was started, then stopped and joined before `build`
        // returned: its hooks both ran, and its thread is gone.
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(exits.load(Ordering::SeqCst), 1);
        assert!(threads_gone("w13nul"), "a worker thread was left behind");
    });
}

#[test]
fn a_panicking_thread_name_closure_is_an_error_and_stops_the_started_workers() {
    with_timeout(30, || {
        let (b, starts, exits) = counted(ThreadPool::builder().num_threads(3));
        let e = b
            .thread_name(|i| {
                assert!(i < 2, "no name for worker {i}");
                format!("w13name-{i}")
            })
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, PoolError::ThreadNamePanicked { index: 2, message } if message.contains("no name for worker 2")),
            "{e:?}"
        );
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        assert_eq!(exits.load(Ordering::SeqCst), 2);
        assert!(threads_gone("w13name"), "a worker thread was left behind");
    });
}

#[test]
fn absurd_builder_values_are_errors() {
    with_timeout(30, || {
        for n in [usize::MAX, weft_pool::ThreadPoolBuilder::MAX_THREADS + 1] {
            let e = ThreadPool::builder().num_threads(n).build().unwrap_err();
            assert!(
                matches!(e, PoolError::TooManyThreads { requested, .. } if requested == n),
                "{e:?}"
            );
            assert!(e.to_string().contains("at most"), "{e}");
        }
        if cfg!(miri) {
            // Miri starts a thread of any stack size: the OS refusal below
            // cannot happen there.
            return;
        }
        let (b, starts, exits) = counted(ThreadPool::builder().num_threads(2));
        let e = b.stack_size(usize::MAX).build().unwrap_err();
        assert!(matches!(e, PoolError::ThreadSpawn { .. }), "{e:?}");
        assert!(e.to_string().contains("stack size"), "{e}");
        assert_eq!(starts.load(Ordering::SeqCst), 0);
        assert_eq!(exits.load(Ordering::SeqCst), 0);
    });
}

// ---- user code that panics on a worker ----------------------------------

/// A start hook that panics (even with a payload whose `Drop` panics)
/// breaks the pool, as Python's initializer does (`BrokenThreadPool`):
/// every later `spawn` and `broadcast` says so, with the hook's message. The
/// workers themselves survive (work already inside the pool, `install`,
/// still runs) and the pool shuts down normally, running the exit hooks.
#[test]
fn a_panicking_start_hook_breaks_the_pool_and_every_submit_says_so() {
    with_timeout(30, || {
        let exits = Arc::new(AtomicUsize::new(0));
        let e = exits.clone();
        let pool = ThreadPool::builder()
            .num_threads(2)
            .start_handler(|i| {
                if i == 0 {
                    std::panic::panic_any(PanicOnDrop);
                }
                panic!("start hook of worker {i}");
            })
            .exit_handler(move |_| {
                e.fetch_add(1, Ordering::SeqCst);
                panic!("exit hook");
            })
            .build()
            .unwrap();
        for _ in 0..3 {
            match pool.spawn(|| 7) {
                Err(PoolError::Broken { message }) => {
                    assert!(message.contains("start hook of worker"), "{message}");
                }
                other => panic!("expected Broken, got {:?}", other.map(|_| ())),
            }
        }
        let err = pool.broadcast(|ctx| ctx.index()).unwrap_err();
        assert!(matches!(err, PoolError::Broken { .. }));
        assert!(err.to_string().contains("broken"), "{err}");
        // The workers are alive: work inside the pool still runs.
        assert_eq!(pool.install(|| weft_pool::join(|| 1, || 2)), (1, 2));
        pool.shutdown(ShutdownMode::Wait);
        assert_eq!(exits.load(Ordering::SeqCst), 2);
    });
}

/// A start hook that returns leaves the pool whole (the control case).
#[test]
fn a_start_hook_that_returns_leaves_the_pool_whole() {
    let pool = ThreadPool::builder()
        .num_threads(2)
        .start_handler(|_| {})
        .build()
        .unwrap();
    assert_eq!(pool.spawn(|| 7).unwrap().join(), Ok(7));
    assert_eq!(pool.broadcast(|ctx| ctx.index()).unwrap(), [0, 1]);
}

/// The result of a task nobody waits for is dropped on the worker; a panic
/// in its `Drop` must not kill the worker (the next task still runs).
#[test]
fn a_result_whose_drop_panics_does_not_kill_the_worker() {
    with_timeout(30, || {
        let exits = Arc::new(AtomicUsize::new(0));
        let (pool, release) = held_pool(&exits);
        drop(pool.spawn(|| PanicOnDrop).unwrap());
        release.store(true, Ordering::SeqCst);
        assert_eq!(pool.spawn(|| 5).unwrap().join(), Ok(5));
        pool.shutdown(ShutdownMode::Wait);
        assert_eq!(exits.load(Ordering::SeqCst), 1);
    });
}

/// A closure cancelled at shutdown (or through its handle) is dropped
/// unrun on the worker; a panic in its `Drop` fails nothing else.
#[test]
fn a_cancelled_closure_whose_drop_panics_fails_nothing_else() {
    with_timeout(30, || {
        let exits = Arc::new(AtomicUsize::new(0));
        let (pool, release) = held_pool(&exits);
        let bomb = PanicOnDrop;
        let by_handle = pool
            .spawn(move || {
                let _keep = &bomb;
            })
            .unwrap();
        assert!(by_handle.cancel());
        let bomb = PanicOnDrop;
        let at_shutdown = pool
            .spawn(move || {
                let _keep = &bomb;
            })
            .unwrap();
        let after = pool.spawn(|| 1).unwrap();
        let p = pool.clone();
        let stopper = thread::spawn(move || p.shutdown(ShutdownMode::CancelPending));
        while !pool.is_shutdown() {
            thread::yield_now();
        }
        release.store(true, Ordering::SeqCst);
        stopper.join().unwrap();
        assert_eq!(by_handle.join(), Err(TaskError::Cancelled));
        assert_eq!(at_shutdown.join(), Err(TaskError::Cancelled));
        assert_eq!(after.join(), Err(TaskError::Cancelled));
        assert_eq!(exits.load(Ordering::SeqCst), 1);
    });
}

/// Only the first panic of a scope's tasks is resumed; the others' payloads
/// are dropped on the workers, and a payload whose `Drop` panics must not
/// stop the scope from finishing.
#[test]
fn scope_survives_panic_payloads_whose_drop_panics() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        for _ in 0..5 {
            let r = catch_unwind(AssertUnwindSafe(|| {
                pool.scope(|s| {
                    for _ in 0..4 {
                        s.spawn(|_| std::panic::panic_any(PanicOnDrop));
                    }
                });
            }));
            forget_payload(r.unwrap_err());
        }
        // The body's panic wins; the tasks' payloads are dropped quietly.
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.spawn(|_| std::panic::panic_any(PanicOnDrop));
                panic!("body");
            })
        }));
        assert_eq!(weft_sync::panic_message(&*r.unwrap_err()), "body");
        assert_eq!(pool.install(|| 3), 3);
    });
}

/// A broadcast resumes the first panic; every other result is dropped
/// first, quietly (dropped while unwinding, a panicking `Drop` would abort
/// the process).
#[test]
fn broadcast_panic_drops_the_other_results_quietly() {
    with_timeout(30, || {
        let pool = ThreadPool::new(3).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.broadcast(|ctx| {
                if ctx.index() == 0 {
                    panic!("worker 0");
                }
                PanicOnDrop
            })
        }));
        assert_eq!(weft_sync::panic_message(&*r.unwrap_err()), "worker 0");
        assert_eq!(pool.broadcast(|ctx| ctx.index()).unwrap(), [0, 1, 2]);
    });
}

/// `join`: when `a` panics, `b`'s closure (taken back unrun) or its result
/// (when another worker ran it) is dropped quietly and `a`'s panic is the
/// one resumed.
#[test]
fn join_panic_drops_the_other_half_quietly() {
    with_timeout(30, || {
        // Taken back unrun: a one-thread pool never runs `b` elsewhere.
        let pool = ThreadPool::new(1).unwrap();
        let bomb = PanicOnDrop;
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.join(
                || panic!("a"),
                move || {
                    let _keep = &bomb;
                },
            )
        }));
        assert_eq!(weft_sync::panic_message(&*r.unwrap_err()), "a");

        // Run by another worker: `a` panics only once `b` has run.
        let pool = ThreadPool::new(2).unwrap();
        let b_ran = AtomicBool::new(false);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.join(
                || {
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !b_ran.load(Ordering::SeqCst) && Instant::now() < deadline {
                        thread::yield_now();
                    }
                    panic!("a")
                },
                || {
                    b_ran.store(true, Ordering::SeqCst);
                    PanicOnDrop
                },
            )
        }));
        assert_eq!(weft_sync::panic_message(&*r.unwrap_err()), "a");
        assert_eq!(pool.join(|| 1, || 2), (1, 2));
    });
}

/// `map_unordered` results nobody reads (the iterator was dropped) are
/// dropped on the workers; a panic there must not kill them.
#[test]
fn map_unordered_results_dropped_unread_do_not_kill_workers() {
    with_timeout(30, || {
        let exits = Arc::new(AtomicUsize::new(0));
        let (pool, release) = held_pool(&exits);
        drop(pool.map_unordered(|_: u32| PanicOnDrop, 0..4, 1));
        release.store(true, Ordering::SeqCst);
        assert_eq!(pool.spawn(|| 9).unwrap().join(), Ok(9));
        pool.shutdown(ShutdownMode::Wait);
        assert_eq!(exits.load(Ordering::SeqCst), 1);
    });
}

/// A stack too small for a worker is refused (it used to overflow in the
/// worker, which aborts the process); the smallest accepted one gives
/// workers that run tasks, joins, scopes and caught panics.
#[test]
fn a_tiny_stack_size_is_an_error_and_the_minimum_works() {
    with_timeout(30, || {
        let min = weft_pool::ThreadPoolBuilder::MIN_STACK_SIZE;
        for n in [1, 4096, min - 1] {
            let e = ThreadPool::builder().stack_size(n).build().unwrap_err();
            assert!(
                matches!(e, PoolError::StackTooSmall { requested, .. } if requested == n),
                "{e:?}"
            );
            assert!(e.to_string().contains("at least"), "{e}");
        }
        let pool = ThreadPool::builder()
            .num_threads(2)
            .stack_size(min)
            .build()
            .unwrap();
        assert_eq!(pool.spawn(|| 1 + 1).unwrap().join(), Ok(2));
        assert_eq!(pool.join(|| 1, || 2), (1, 2));
        let n = AtomicUsize::new(0);
        pool.scope(|s| {
            for _ in 0..8 {
                s.spawn(|_| {
                    n.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        assert_eq!(n.into_inner(), 8);
        let h = pool.spawn(|| panic!("boom")).unwrap();
        assert!(h.join().is_err());
        let r = catch_unwind(AssertUnwindSafe(|| pool.join(|| panic!("x"), || 1)));
        assert!(r.is_err());
    });
}

// ---- shutdown of one pool from a worker of another ------------------------

/// A worker of pool `a` shuts pool `b` down (or drops it) while `b`'s
/// queued task is about to `install` into `a`. `a`'s only worker is the one
/// waiting for `b`'s workers to exit: it must run that install meanwhile
/// (it used to block in the thread join, and both waited forever).
#[test]
fn shutdown_from_another_pools_worker_runs_installs_sent_back_to_it() {
    with_timeout(60, || {
        for drop_it in [false, true] {
            let a = Arc::new(ThreadPool::new(1).unwrap());
            let b = ThreadPool::new(1).unwrap();
            let go = Arc::new(AtomicBool::new(false));
            let (a2, g) = (a.clone(), go.clone());
            let h = b
                .spawn(move || {
                    wait_for(&g);
                    // Give `a`'s worker time to be inside `shutdown`.
                    thread::sleep(Duration::from_millis(50));
                    a2.install(|| a2.current_thread_index().map(|i| i + 7))
                })
                .unwrap();
            let exited = a.install(move || {
                go.store(true, Ordering::SeqCst);
                if drop_it {
                    drop(b);
                    true
                } else {
                    b.shutdown(ShutdownMode::Wait);
                    b.is_shutdown()
                }
            });
            assert!(exited);
            // `shutdown(Wait)` returned only after the task had finished.
            assert!(h.is_finished(), "drop: {drop_it}");
            assert_eq!(h.join(), Ok(Some(7)));
        }
    });
}

/// `a -> b -> a`: a worker of `a`, inside an `install` that a worker of `b`
/// is waiting on, shuts `b` down. `b`'s worker cannot exit before that
/// install returns, so waiting for it would never end: the call closes `b`
/// and returns without waiting, as a call from `b`'s own worker does.
#[test]
fn shutdown_of_a_pool_waiting_on_the_caller_does_not_wait_for_it() {
    with_timeout(60, || {
        let a = Arc::new(ThreadPool::new(1).unwrap());
        let b = Arc::new(ThreadPool::new(1).unwrap());
        let (a2, b2) = (a.clone(), b.clone());
        let r = b.install(move || {
            a2.install(move || {
                b2.shutdown(ShutdownMode::Wait);
                b2.is_shutdown()
            })
        });
        assert!(r);
        assert!(b.spawn(|| ()).is_err());
        // From outside, it waits (and returns, the workers gone).
        b.shutdown(ShutdownMode::Wait);
        drop(a);
    });
}
