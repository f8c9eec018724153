//! rayon's remaining surface (`in_place_scope`, `scope_fifo`/`spawn_fifo`,
//! `yield_now`) and `ThreadPoolExecutor`'s (`shutdown_nowait`, a dropped
//! `map_unordered` cancelling its queued chunks).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use weft_pool::{PoolError, ShutdownMode, ThreadPool, Yield};
use weft_sync::TaskError;

/// Runs `f` on a thread and fails (rather than hangs) if it takes longer
/// than `secs`.
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
        Err(_) => panic!("timed out after {secs}s: deadlock"),
    }
}

#[test]
fn in_place_scope_body_may_wait_for_its_own_spawns_on_a_one_thread_pool() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let mut data = vec![1, 2, 3];
        let got = pool.in_place_scope(|s| {
            let (tx, rx) = mpsc::channel();
            for (i, x) in data.iter_mut().enumerate() {
                let tx = tx.clone();
                s.spawn(move |_| {
                    *x *= 10;
                    tx.send((i, weft_pool::current_thread_index())).unwrap();
                });
            }
            // The body blocks the calling thread until every spawn has
            // reported: the pool's only worker must be free to run them.
            let mut seen: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
            seen.sort();
            // The body itself is not on a worker.
            assert_eq!(weft_pool::current_thread_index(), None);
            seen
        });
        assert_eq!(got, [(0, Some(0)), (1, Some(0)), (2, Some(0))]);
        assert_eq!(data, [10, 20, 30]);
    });
}

#[test]
fn in_place_scope_waits_for_nested_spawns_and_resumes_their_panics() {
    with_timeout(30, || {
        let pool = ThreadPool::new(2).unwrap();
        let n = AtomicUsize::new(0);
        pool.in_place_scope(|s| {
            for _ in 0..10 {
                s.spawn(|s| {
                    n.fetch_add(1, Ordering::SeqCst);
                    s.spawn(|_| {
                        thread::sleep(Duration::from_millis(1));
                        n.fetch_add(1, Ordering::SeqCst);
                    });
                });
            }
        });
        // Every spawn, nested ones included, finished before it returned.
        assert_eq!(n.load(Ordering::SeqCst), 20);

        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.in_place_scope(|s| {
                s.spawn(|_| panic!("task failed"));
                s.spawn(|_| {
                    n.fetch_add(1, Ordering::SeqCst);
                });
            })
        }));
        let p = r.expect_err("the task's panic is resumed");
        assert_eq!(p.downcast_ref::<&str>(), Some(&"task failed"));
        assert_eq!(n.load(Ordering::SeqCst), 21, "the other task still ran");

        // The free function: on the global pool, from outside any pool.
        let mut v = [0u8; 4];
        weft_pool::in_place_scope(|s| {
            for x in &mut v {
                s.spawn(move |_| *x = 1);
            }
        });
        assert_eq!(v, [1; 4]);
    });
}

#[test]
fn scope_fifo_runs_spawn_fifo_tasks_in_order() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let order = Mutex::new(Vec::new());
        pool.scope_fifo(|s| {
            for i in 0..20 {
                let order = &order;
                s.spawn_fifo(move |_| order.lock().unwrap().push(i));
            }
        });
        assert_eq!(order.into_inner().unwrap(), (0..20).collect::<Vec<_>>());

        // In an in-place scope too (queued on the pool's global queue).
        let order = Mutex::new(Vec::new());
        pool.in_place_scope(|s| {
            for i in 0..20 {
                let order = &order;
                s.spawn_fifo(move |_| order.lock().unwrap().push(i));
            }
        });
        assert_eq!(order.into_inner().unwrap(), (0..20).collect::<Vec<_>>());
    });
}

#[test]
fn spawn_fifo_starts_tasks_in_submission_order() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (release, gate) = mpsc::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        // Hold the only worker until all are queued.
        let first = pool
            .spawn_fifo(move || {
                gate.recv().unwrap();
            })
            .unwrap();
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let order = order.clone();
                pool.spawn_fifo(move || order.lock().unwrap().push(i))
                    .unwrap()
            })
            .collect();
        release.send(()).unwrap();
        first.join().unwrap();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), (0..20).collect::<Vec<_>>());
        assert_eq!(weft_pool::spawn_fifo(|| 5).join(), Ok(5));
    });
}

#[test]
fn yield_now_runs_a_pending_job_or_says_idle() {
    with_timeout(30, || {
        assert_eq!(weft_pool::yield_now(), None, "not on a worker");
        let pool = Arc::new(ThreadPool::new(1).unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let (p, r) = (pool.clone(), ran.clone());
        let outcome = pool
            .spawn(move || {
                // Queue a task behind this one on the only worker, then let
                // it run from here.
                let r2 = r.clone();
                let h = p
                    .spawn(move || {
                        r2.fetch_add(1, Ordering::SeqCst);
                    })
                    .unwrap();
                let first = weft_pool::yield_now();
                let after = r.load(Ordering::SeqCst);
                let second = weft_pool::yield_now();
                (first, after, second, h.is_finished())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(outcome, (Some(Yield::Executed), 1, Some(Yield::Idle), true));
    });
}

#[test]
fn shutdown_nowait_returns_before_the_queued_work_is_done() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (release, gate) = mpsc::channel::<()>();
        let busy = pool.spawn(move || gate.recv().unwrap()).unwrap();
        let queued = pool.spawn(|| 2).unwrap();
        // Returns although the worker is blocked (a waiting shutdown would
        // hang here: the release comes only after it).
        pool.shutdown_nowait(ShutdownMode::Wait);
        assert!(pool.is_shutdown());
        assert!(matches!(pool.spawn(|| ()), Err(PoolError::ShutDown)));
        // Dropping it does not wait either.
        drop(pool);
        release.send(()).unwrap();
        assert_eq!(busy.join(), Ok(()));
        assert_eq!(queued.join(), Ok(2), "queued work still runs");
    });
}

#[test]
fn shutdown_nowait_with_cancel_pending_cancels_what_has_not_started() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let busy = pool
            .spawn(move || {
                started_tx.send(()).unwrap();
                gate.recv().unwrap();
            })
            .unwrap();
        let queued = pool.spawn(|| 2).unwrap();
        started.recv().unwrap();
        pool.shutdown_nowait(ShutdownMode::CancelPending);
        release.send(()).unwrap();
        assert_eq!(busy.join(), Ok(()));
        assert_eq!(queued.join(), Err(TaskError::Cancelled));
        // A waiting shutdown afterwards joins the workers.
        pool.shutdown(ShutdownMode::Wait);
    });
}

#[test]
fn dropping_map_unordered_cancels_its_queued_chunks() {
    with_timeout(30, || {
        let pool = ThreadPool::new(1).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = mpsc::channel();
        let (release, gate) = mpsc::channel::<()>();
        let (started_tx, gate) = (Mutex::new(started_tx), Mutex::new(gate));
        let c = calls.clone();
        let it = pool.map_unordered(
            move |x: u32| {
                c.fetch_add(1, Ordering::SeqCst);
                if x == 0 {
                    started_tx.lock().unwrap().send(()).unwrap();
                    gate.lock().unwrap().recv().unwrap();
                }
                x
            },
            0..10,
            1,
        );
        // The first chunk is running (on the only worker); nine are queued.
        started.recv().unwrap();
        drop(it);
        release.send(()).unwrap();
        pool.shutdown(ShutdownMode::Wait);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "only the running chunk ran"
        );

        // Control: consumed to the end, every chunk runs.
        let pool = ThreadPool::new(2).unwrap();
        let mut all: Vec<u32> = pool.map_unordered(|x: u32| x, 0..10, 1).collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    });
}
