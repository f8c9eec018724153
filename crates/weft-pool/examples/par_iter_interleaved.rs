//! The `par_iter` bench's workloads, timed weft and rayon *interleaved*
//! (weft, rayon, weft, rayon, ...) with the best of N kept for each: on a
//! machine shared with other work, criterion's rows (all of weft's samples,
//! then all of rayon's) see different load, and their ratio swings; taking
//! turns, both see the same. No statistics beyond the minimum: a quick check
//! of a criterion ratio, not a replacement for it.
//!
//! `cargo run --release -p weft-pool --example par_iter_interleaved -- [THREADS] [ROUNDS]`

use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "../benches/shared/par_iter_workloads.rs"]
mod workloads;

use workloads::{FILTER_N, FINE_N, Rng, SORT_N, SUM_N, expected, rayon_rows as r, weft_rows as w};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let wp = weft_pool::ThreadPool::new(threads).unwrap();
    let rp = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    // The bench's inputs, drawn in the bench's order.
    let mut rng = Rng::default();
    let v: Vec<u64> = (0..FILTER_N).map(|_| rng.next_u64()).collect();
    let fine: Vec<u64> = (0..FINE_N).map(|_| rng.next_u64()).collect();
    let unsorted: Vec<u32> = (0..SORT_N).map(|_| rng.next_u64() as u32).collect();
    // Results are checked (off the clock) as in the bench.
    let (sum_expect, filter_expect) = (expected::sum_squares(SUM_N), expected::filter_count(&v));
    let (mandel_expect, fine_expect) = (expected::mandelbrot(), expected::fine_grained(&fine));

    println!("{threads} threads, best of {rounds}, weft and rayon taking turns");
    println!("{:36} {:>12} {:>12} {:>6}", "row", "weft", "rayon", "ratio");
    let row =
        |name: &str, weft: &mut dyn FnMut() -> Duration, rayon: &mut dyn FnMut() -> Duration| {
            let (mut bw, mut br) = (Duration::MAX, Duration::MAX);
            for _ in 0..rounds {
                bw = bw.min(weft());
                br = br.min(rayon());
            }
            println!(
                "{name:36} {:>10.3}ms {:>10.3}ms {:>6.2}",
                bw.as_secs_f64() * 1e3,
                br.as_secs_f64() * 1e3,
                bw.as_secs_f64() / br.as_secs_f64()
            );
        };
    /// Times `f`, then checks its result (off the clock).
    fn time<R: PartialEq + std::fmt::Debug>(expect: R, f: impl FnOnce() -> R) -> Duration {
        let t = Instant::now();
        let got = black_box(f());
        let d = t.elapsed();
        assert_eq!(got, expect);
        d
    }
    row(
        "par_iter_sum_squares_100m_u64",
        &mut || {
            time(sum_expect, || {
                wp.install(|| w::sum_squares(black_box(SUM_N)))
            })
        },
        &mut || {
            time(sum_expect, || {
                rp.install(|| r::sum_squares(black_box(SUM_N)))
            })
        },
    );
    row(
        "par_iter_filter_collect_10m_u64",
        &mut || time(filter_expect, || wp.install(|| w::filter_collect(&v).len())),
        &mut || time(filter_expect, || rp.install(|| r::filter_collect(&v).len())),
    );
    row(
        "par_iter_mandelbrot_1024x512_rows",
        &mut || time(mandel_expect, || wp.install(w::mandelbrot)),
        &mut || time(mandel_expect, || rp.install(r::mandelbrot)),
    );
    row(
        "par_iter_fine_grained_1m_20ns",
        &mut || time(fine_expect, || wp.install(|| w::fine_grained(&fine))),
        &mut || time(fine_expect, || rp.install(|| r::fine_grained(&fine))),
    );
    let sorted = |f: &dyn Fn(&mut Vec<u32>)| {
        let mut u = unsorted.clone();
        let t = Instant::now();
        f(&mut u);
        let d = t.elapsed();
        assert!(u.windows(2).all(|p| p[0] <= p[1]));
        d
    };
    row(
        "par_sort_unstable_10m_u32",
        &mut || sorted(&|u| wp.install(|| w::sort_unstable(u))),
        &mut || sorted(&|u| rp.install(|| r::sort_unstable(u))),
    );
    row(
        "par_sort_10m_u32",
        &mut || sorted(&|u| wp.install(|| w::sort_stable(u))),
        &mut || sorted(&|u| rp.install(|| r::sort_stable(u))),
    );
}
