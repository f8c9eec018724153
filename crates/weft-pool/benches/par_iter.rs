//! weft-pool's parallel iterators and parallel sorts against rayon's, in
//! the same run. Every workload is *one* piece of source text, expanded
//! twice (in `benches/shared/par_iter_workloads.rs`, which the interleaved
//! example includes too): once under `use weft_pool::iter::prelude::*` and
//! once under `use rayon::prelude::*`, so both do exactly the same work,
//! written as a rayon user writes it (no chunk sizes, no cutoffs). Each runs inside its
//! own pool's `install` (both pools get `WEFT_BENCH_THREADS` threads, else
//! all cores), with only that pool alive; results are checked every
//! iteration, inputs made and sort outputs checked off the clock.
//!
//! - `par_iter_sum_squares_100m_u64`: `(0..100M).into_par_iter().map(x²).sum()`.
//! - `par_iter_filter_collect_10m_u64`: `v.par_iter().filter(..).copied().collect::<Vec<_>>()`
//!   over 10M random `u64`, keeping about two thirds (an unindexed collect).
//! - `par_iter_mandelbrot_1024x512_rows`: `(0..512).into_par_iter().map(row).sum()`,
//!   rows costing from 1024 to ~200k iterations (unbalanced).
//! - `par_sort_unstable_10m_u32`, `par_sort_10m_u32`: 10M random `u32`.
//! - `par_iter_fine_grained_1m_20ns`: `v.par_iter().map(work).sum()` over 1M
//!   items, `work` a chain of dependent multiply-rotates of about 20 ns.
//!
//! Quick run: `cargo bench -p weft-pool --bench par_iter -- --warm-up-time 1
//! --measurement-time 3` (a criterion name filter, such as `par_sort`, runs
//! only the matching rows). On a machine shared with other work, where the
//! load changes between weft's samples and rayon's, check a ratio with
//! `cargo run --release -p weft-pool --example par_iter_interleaved`, which
//! times the same workloads taking turns.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

#[path = "shared/par_iter_workloads.rs"]
mod workloads;

use workloads::{FILTER_N, FINE_N, Rng, SORT_N, SUM_N, expected, rayon_rows, weft_rows};

/// The threads every pool gets: `WEFT_BENCH_THREADS`, else all cores.
fn threads() -> usize {
    std::env::var("WEFT_BENCH_THREADS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Runs `f` inside a fresh pool of each implementation, in turn.
trait Install {
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R;
}

impl Install for weft_pool::ThreadPool {
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.install(f)
    }
}

impl Install for rayon::ThreadPool {
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.install(f)
    }
}

fn weft_pool_of(n: usize) -> weft_pool::ThreadPool {
    weft_pool::ThreadPool::new(n).unwrap()
}

fn rayon_pool_of(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

/// One group: the weft row, then the rayon row, each with its own pool.
fn group(
    c: &mut Criterion,
    name: &str,
    mut row: impl FnMut(&mut criterion::Bencher<'_>, &dyn Fn(&mut (dyn FnMut() + Send)), bool),
) {
    let n = threads();
    let mut g = c.benchmark_group(name);
    {
        let pool = weft_pool_of(n);
        g.bench_function("weft", |b| row(b, &|f| pool.run(&mut *f), true));
    }
    {
        let pool = rayon_pool_of(n);
        g.bench_function("rayon", |b| row(b, &|f| pool.run(&mut *f), false));
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let sum_expect = expected::sum_squares(SUM_N);
    group(c, "par_iter_sum_squares_100m_u64", |b, install, weft| {
        b.iter(|| {
            let mut got = 0;
            install(&mut || {
                got = if weft {
                    weft_rows::sum_squares(black_box(SUM_N))
                } else {
                    rayon_rows::sum_squares(black_box(SUM_N))
                }
            });
            assert_eq!(got, sum_expect);
        })
    });

    let mut rng = Rng::default();
    let input: Vec<u64> = (0..FILTER_N).map(|_| rng.next_u64()).collect();
    let filter_expect = expected::filter_count(&input);
    group(c, "par_iter_filter_collect_10m_u64", |b, install, weft| {
        b.iter(|| {
            let mut got = Vec::new();
            install(&mut || {
                got = if weft {
                    weft_rows::filter_collect(&input)
                } else {
                    rayon_rows::filter_collect(&input)
                }
            });
            assert_eq!(got.len(), filter_expect);
        })
    });
    drop(input);

    let mandel_expect = expected::mandelbrot();
    group(
        c,
        "par_iter_mandelbrot_1024x512_rows",
        |b, install, weft| {
            b.iter(|| {
                let mut got = 0;
                install(&mut || {
                    got = if weft {
                        weft_rows::mandelbrot()
                    } else {
                        rayon_rows::mandelbrot()
                    }
                });
                assert_eq!(got, mandel_expect);
            })
        },
    );

    let fine: Vec<u64> = (0..FINE_N).map(|_| rng.next_u64()).collect();
    let fine_expect = expected::fine_grained(&fine);
    group(c, "par_iter_fine_grained_1m_20ns", |b, install, weft| {
        b.iter(|| {
            let mut got = 0;
            install(&mut || {
                got = if weft {
                    weft_rows::fine_grained(&fine)
                } else {
                    rayon_rows::fine_grained(&fine)
                }
            });
            assert_eq!(got, fine_expect);
        })
    });
    drop(fine);

    let unsorted: Vec<u32> = (0..SORT_N).map(|_| rng.next_u64() as u32).collect();
    let mut sorted = unsorted.clone();
    sorted.sort_unstable();
    for (name, stable) in [
        ("par_sort_unstable_10m_u32", false),
        ("par_sort_10m_u32", true),
    ] {
        group(c, name, |b, install, weft| {
            let sort = |v: &mut Vec<u32>| {
                install(&mut || match (weft, stable) {
                    (true, false) => weft_rows::sort_unstable(v),
                    (true, true) => weft_rows::sort_stable(v),
                    (false, false) => rayon_rows::sort_unstable(v),
                    (false, true) => rayon_rows::sort_stable(v),
                })
            };
            // Checked once, off the clock.
            let mut v = unsorted.clone();
            sort(&mut v);
            assert!(v == sorted);
            b.iter_batched_ref(|| unsorted.clone(), sort, BatchSize::LargeInput)
        });
    }
}

criterion_group! {
    name = par_iter_benches;
    config = Criterion::default().sample_size(10);
    targets = benches
}
criterion_main!(par_iter_benches);
