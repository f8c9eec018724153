//! The `par_iter` bench's workloads, timed weft and rayon *interleaved*
//! (weft, rayon, weft, rayon, ...) with the best of N kept for each: on a
//! machine shared with other work, criterion's rows (all of weft's samples,
//! then all of rayon's) see different load, and their ratio swings; taking
//! turns, both see the same. No statistics beyond the minimum: a quick check
//! of a criterion ratio, not a replacement for it.
//!
//! `cargo run --release -p weft-pool --example par_iter_interleaved -- [THREADS] [ROUNDS]`

use std::hint::black_box;
use std::num::Wrapping;
use std::time::{Duration, Instant};

const SUM_N: u64 = 100_000_000;
const N: usize = 10_000_000;
const FINE_N: usize = 1_000_000;
const MANDEL_W: usize = 1024;
const MANDEL_H: usize = 512;

#[inline(never)]
fn mandel_row(y: usize) -> u64 {
    let ci = -0.4 + 1.6 * y as f64 / MANDEL_H as f64;
    let mut total = 0u64;
    for x in 0..MANDEL_W {
        let cr = -2.2 + 3.0 * x as f64 / MANDEL_W as f64;
        let (mut zr, mut zi, mut k) = (0.0f64, 0.0f64, 0u32);
        while k < 400 && zr * zr + zi * zi <= 4.0 {
            let t = zr * zr - zi * zi + cr;
            zi = 2.0 * zr * zi + ci;
            zr = t;
            k += 1;
        }
        total += u64::from(k);
    }
    total
}

#[inline]
fn work(mut x: u64) -> u64 {
    for _ in 0..26 {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23) ^ 0x5bd1;
    }
    x
}

fn keep(x: &&u64) -> bool {
    !(**x).is_multiple_of(3)
}

/// The bench's workloads, one text for both preludes.
macro_rules! workloads {
    () => {
        use super::*;
        pub fn sum_squares(n: u64) -> u64 {
            (0..n)
                .into_par_iter()
                .map(|x| Wrapping(x * x))
                .sum::<Wrapping<u64>>()
                .0
        }
        pub fn filter_collect(v: &[u64]) -> usize {
            v.par_iter()
                .filter(keep)
                .copied()
                .collect::<Vec<u64>>()
                .len()
        }
        pub fn mandelbrot() -> u64 {
            (0..MANDEL_H).into_par_iter().map(mandel_row).sum()
        }
        pub fn fine_grained(v: &[u64]) -> u64 {
            v.par_iter()
                .map(|&x| Wrapping(work(x)))
                .sum::<Wrapping<u64>>()
                .0
        }
        pub fn sort_unstable(v: &mut [u32]) {
            v.par_sort_unstable()
        }
        pub fn sort_stable(v: &mut [u32]) {
            v.par_sort()
        }
    };
}

mod w {
    use weft_pool::iter::prelude::*;
    workloads!();
}

mod r {
    use rayon::prelude::*;
    workloads!();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let rounds: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let wp = weft_pool::ThreadPool::new(threads).unwrap();
    let rp = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let v: Vec<u64> = (0..N).map(|_| next()).collect();
    let fine: Vec<u64> = (0..FINE_N).map(|_| next()).collect();
    let unsorted: Vec<u32> = (0..N).map(|_| next() as u32).collect();

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
    fn time<R>(f: impl FnOnce() -> R) -> Duration {
        let t = Instant::now();
        black_box(f());
        t.elapsed()
    }
    row(
        "par_iter_sum_squares_100m_u64",
        &mut || time(|| wp.install(|| w::sum_squares(black_box(SUM_N)))),
        &mut || time(|| rp.install(|| r::sum_squares(black_box(SUM_N)))),
    );
    row(
        "par_iter_filter_collect_10m_u64",
        &mut || time(|| wp.install(|| w::filter_collect(&v))),
        &mut || time(|| rp.install(|| r::filter_collect(&v))),
    );
    row(
        "par_iter_mandelbrot_1024x512_rows",
        &mut || time(|| wp.install(w::mandelbrot)),
        &mut || time(|| rp.install(r::mandelbrot)),
    );
    row(
        "par_iter_fine_grained_1m_20ns",
        &mut || time(|| wp.install(|| w::fine_grained(&fine))),
        &mut || time(|| rp.install(|| r::fine_grained(&fine))),
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
