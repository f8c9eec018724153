//! weft-sync against its peers, same workload, same run.
//!
//! Group name = workload, function name = implementation (`weft` or the
//! peer's crate name): `cargo xtask bench` turns these into the table in
//! docs/benchmarks.md.
//!
//! Semaphore policies: weft's `Semaphore` lets any caller take a free
//! permit (one compare-and-swap; a woken waiter can lose the permit to a
//! newcomer: "barging"), and wakes waiters in arrival order. async-lock's
//! `Semaphore` has the same policy (`try_acquire` is a CAS loop on the
//! count, a release adds to the count and notifies one event-listener
//! waiter, which must race for the permit again), so it is the like-for-like
//! peer on the contended row. tokio's `Semaphore` is fair: a released permit
//! goes to the oldest waiter (its batch semaphore queues acquirers FIFO and
//! a newcomer cannot take a permit while others wait). Fairness costs hand-
//! offs under contention, so its row is kept but named for its policy,
//! `tokio (fair FIFO policy)`: it compares policies, not implementations.
//!
//! `mutex_nested` (one lock held while another is taken) is the
//! detection-off twin of `benches/deadlock.rs`'s `mutex_nested_detection_on`.

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use futures_lite::future::block_on;

/// Runs `threads` threads that each do `iters / threads` operations with
/// `op`, started together, and returns the wall time of the whole batch.
fn parallel<S: Send + Sync + 'static>(
    iters: u64,
    threads: u64,
    shared: Arc<S>,
    op: fn(&S, u64),
) -> Duration {
    let per = iters.div_ceil(threads);
    let start_line = Arc::new(std::sync::Barrier::new(threads as usize + 1));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (shared, start_line) = (shared.clone(), start_line.clone());
            thread::spawn(move || {
                start_line.wait();
                op(&shared, per);
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed()
}

fn mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    let weft = weft_sync::Mutex::new(0u64);
    g.bench_function("weft", |b| b.iter(|| *black_box(&weft).lock() += 1));
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot", |b| b.iter(|| *black_box(&pl).lock() += 1));
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std", |b| {
        b.iter(|| *black_box(&std_m).lock().unwrap() += 1)
    });
    g.finish();
}

fn mutex_contended(c: &mut Criterion, threads: u64) {
    let mut g = c.benchmark_group(format!("mutex_contended_{threads}_threads"));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                threads,
                Arc::new(weft_sync::Mutex::new(0u64)),
                |m, n| {
                    for _ in 0..n {
                        *m.lock() += 1;
                    }
                },
            )
        })
    });
    g.bench_function("parking_lot", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                threads,
                Arc::new(parking_lot::Mutex::new(0u64)),
                |m, n| {
                    for _ in 0..n {
                        *m.lock() += 1;
                    }
                },
            )
        })
    });
    g.bench_function("std", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                threads,
                Arc::new(std::sync::Mutex::new(0u64)),
                |m, n| {
                    for _ in 0..n {
                        *m.lock().unwrap() += 1;
                    }
                },
            )
        })
    });
    g.finish();
}

fn mutex_contended_2(c: &mut Criterion) {
    mutex_contended(c, 2);
}

fn mutex_contended_4(c: &mut Criterion) {
    mutex_contended(c, 4);
}

/// One lock held while another is taken: the work deadlock detection adds
/// to (an ordering edge per nested acquisition), measured here without it.
fn mutex_nested(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_nested");
    let (a, b) = (weft_sync::Mutex::new(0u64), weft_sync::Mutex::new(0u64));
    g.bench_function("weft", |bench| {
        bench.iter(|| {
            let _a = black_box(&a).lock();
            *black_box(&b).lock() += 1;
        })
    });
    let (a, b) = (parking_lot::Mutex::new(0u64), parking_lot::Mutex::new(0u64));
    g.bench_function("parking_lot", |bench| {
        bench.iter(|| {
            let _a = black_box(&a).lock();
            *black_box(&b).lock() += 1;
        })
    });
    g.finish();
}

fn semaphore_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_acquire_release");
    let weft = weft_sync::Semaphore::new(1);
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&weft).acquire_async().await);
                }
                start.elapsed()
            })
        })
    });
    let tokio_sem = tokio::sync::Semaphore::new(1);
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&tokio_sem).acquire().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let al = async_lock::Semaphore::new(1);
    g.bench_function("async-lock", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&al).acquire().await);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn semaphore_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_contended_4_threads_2_permits");
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            parallel(iters, 4, Arc::new(weft_sync::Semaphore::new(2)), |s, n| {
                block_on(async {
                    for _ in 0..n {
                        drop(s.acquire_async().await);
                    }
                })
            })
        })
    });
    g.bench_function("tokio (fair FIFO policy)", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                4,
                Arc::new(tokio::sync::Semaphore::new(2)),
                |s, n| {
                    block_on(async {
                        for _ in 0..n {
                            drop(s.acquire().await.unwrap());
                        }
                    })
                },
            )
        })
    });
    g.bench_function("async-lock", |b| {
        b.iter_custom(|iters| {
            parallel(iters, 4, Arc::new(async_lock::Semaphore::new(2)), |s, n| {
                block_on(async {
                    for _ in 0..n {
                        drop(s.acquire().await);
                    }
                })
            })
        })
    });
    g.finish();
}

/// One producer thread puts `iters` items through a bounded channel of 64
/// slots to the measuring thread.
fn queue_bounded(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_bounded_spsc");
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(weft_sync::Queue::bounded(64));
            let q2 = q.clone();
            let start = Instant::now();
            let p = thread::spawn(move || {
                for i in 0..iters {
                    q2.put(i).unwrap();
                }
            });
            for _ in 0..iters {
                black_box(q.get().unwrap());
            }
            p.join().unwrap();
            start.elapsed()
        })
    });
    g.bench_function("crossbeam-channel", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = crossbeam_channel::bounded(64);
            let start = Instant::now();
            let p = thread::spawn(move || {
                for i in 0..iters {
                    tx.send(i).unwrap();
                }
            });
            for _ in 0..iters {
                black_box(rx.recv().unwrap());
            }
            p.join().unwrap();
            start.elapsed()
        })
    });
    g.bench_function("std", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = std::sync::mpsc::sync_channel(64);
            let start = Instant::now();
            let p = thread::spawn(move || {
                for i in 0..iters {
                    tx.send(i).unwrap();
                }
            });
            for _ in 0..iters {
                black_box(rx.recv().unwrap());
            }
            p.join().unwrap();
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mutex_uncontended, mutex_nested, mutex_contended_2, mutex_contended_4,
        semaphore_uncontended, semaphore_contended, queue_bounded
}
criterion_main!(benches);
