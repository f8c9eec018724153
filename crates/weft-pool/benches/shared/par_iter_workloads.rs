//! The workloads of the `par_iter` bench, one source text for the bench
//! (`benches/par_iter.rs`) and the interleaved check
//! (`examples/par_iter_interleaved.rs`), both of which include this file
//! with `#[path]`. Every workload is expanded twice by `workloads!`: once
//! in [`weft_rows`] under `use weft_pool::iter::prelude::*` and once in
//! [`rayon_rows`] under `use rayon::prelude::*`, so both do exactly the same
//! work, written as a rayon user writes it (no chunk sizes, no cutoffs).
//!
//! Not a bench target of its own: Cargo only picks up `benches/*.rs` and
//! `benches/*/main.rs`. A binary that includes it may use only some rows.

#![allow(dead_code)]

use std::num::Wrapping;

/// `par_iter_sum_squares_100m_u64`: the range summed.
pub const SUM_N: u64 = 100_000_000;
/// `par_iter_filter_collect_10m_u64`: the random `u64`s filtered.
pub const FILTER_N: usize = 10_000_000;
/// `par_sort*_10m_u32`: the random `u32`s sorted.
pub const SORT_N: usize = 10_000_000;
/// `par_iter_fine_grained_1m_20ns`: the items of about 20 ns each.
pub const FINE_N: usize = 1_000_000;
const MANDEL_W: usize = 1024;
/// `par_iter_mandelbrot_1024x512_rows`: the rows.
pub const MANDEL_H: usize = 512;
const MANDEL_MAX: u32 = 400;

/// A small deterministic generator (xorshift64); both binaries draw their
/// inputs from [`Rng::default`] in the same order (filter, fine, sort).
pub struct Rng(u64);

impl Default for Rng {
    fn default() -> Self {
        Rng(0x2545_F491_4F6C_DD1D)
    }
}

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The escape iterations of one row, summed (the pool bench's row).
#[inline(never)]
pub fn mandel_row(y: usize) -> u64 {
    let ci = -0.4 + 1.6 * y as f64 / MANDEL_H as f64;
    let mut total = 0u64;
    for x in 0..MANDEL_W {
        let cr = -2.2 + 3.0 * x as f64 / MANDEL_W as f64;
        let (mut zr, mut zi, mut k) = (0.0f64, 0.0f64, 0u32);
        while k < MANDEL_MAX && zr * zr + zi * zi <= 4.0 {
            let t = zr * zr - zi * zi + cr;
            zi = 2.0 * zr * zi + ci;
            zr = t;
            k += 1;
        }
        total += u64::from(k);
    }
    total
}

/// About 20 ns of dependent arithmetic (a multiply-rotate chain).
#[inline]
pub fn work(mut x: u64) -> u64 {
    for _ in 0..26 {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23) ^ 0x5bd1;
    }
    x
}

/// The filter of `par_iter_filter_collect_10m_u64` (keeps about 2/3).
pub fn keep(x: &&u64) -> bool {
    !(**x).is_multiple_of(3)
}

/// The sequential results the parallel ones are checked against.
pub mod expected {
    use super::*;

    /// `sum_squares(n)`.
    pub fn sum_squares(n: u64) -> u64 {
        (0..n).map(|x| Wrapping(x * x)).sum::<Wrapping<u64>>().0
    }

    /// `filter_collect(v).len()`.
    pub fn filter_count(v: &[u64]) -> usize {
        v.iter().filter(keep).count()
    }

    /// `mandelbrot()`.
    pub fn mandelbrot() -> u64 {
        (0..MANDEL_H).map(mandel_row).sum()
    }

    /// `fine_grained(v)`.
    pub fn fine_grained(v: &[u64]) -> u64 {
        v.iter()
            .map(|&x| Wrapping(work(x)))
            .sum::<Wrapping<u64>>()
            .0
    }
}

macro_rules! workloads {
    () => {
        use super::*;
        /// `(0..n).into_par_iter().map(x²).sum()`.
        pub fn sum_squares(n: u64) -> u64 {
            (0..n)
                .into_par_iter()
                .map(|x| Wrapping(x * x))
                .sum::<Wrapping<u64>>()
                .0
        }
        /// `v.par_iter().filter(keep).copied().collect()`: an unindexed
        /// collect.
        pub fn filter_collect(v: &[u64]) -> Vec<u64> {
            v.par_iter().filter(keep).copied().collect()
        }
        /// `(0..512).into_par_iter().map(mandel_row).sum()`: rows costing
        /// from 1024 to ~200k iterations (unbalanced).
        pub fn mandelbrot() -> u64 {
            (0..MANDEL_H).into_par_iter().map(mandel_row).sum()
        }
        /// `v.par_sort_unstable()`.
        pub fn sort_unstable(v: &mut [u32]) {
            v.par_sort_unstable()
        }
        /// `v.par_sort()`.
        pub fn sort_stable(v: &mut [u32]) {
            v.par_sort()
        }
        /// `v.par_iter().map(work).sum()`: fine-grained items.
        pub fn fine_grained(v: &[u64]) -> u64 {
            v.par_iter()
                .map(|&x| Wrapping(work(x)))
                .sum::<Wrapping<u64>>()
                .0
        }
    };
}

/// The workloads under weft's prelude.
pub mod weft_rows {
    use weft_pool::iter::prelude::*;
    workloads!();
}

/// The same text under rayon's prelude.
pub mod rayon_rows {
    use rayon::prelude::*;
    workloads!();
}
