//! A port of Python's multiprocessing example, with CPU-bound work:
//!
//! ```python
//! from multiprocessing import Pool
//!
//! def count_primes(bounds):
//!     lo, hi = bounds
//!     return sum(1 for n in range(lo, hi) if is_prime(n))
//!
//! if __name__ == "__main__":
//!     with Pool() as pool:
//!         ranges = [(i * 250_000, (i + 1) * 250_000) for i in range(16)]
//!         print(sum(pool.map(count_primes, ranges)))
//! ```
//!
//! Run it with `cargo run --release -p weft --example multiprocessing`.
//! There is no `if __name__ == "__main__"` guard to write: the workers are
//! this executable re-run in worker mode, which weft-process starts before
//! `main`.

use std::time::Instant;

use weft::process::ProcessPool;

fn is_prime(n: u64) -> bool {
    n > 1
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// Counts the primes in `lo..hi`. Registered below, so that the pool's
/// workers can run it.
fn count_primes((lo, hi): (u64, u64)) -> usize {
    (lo..hi).filter(|&n| is_prime(n)).count()
}

weft::process::register!(count_primes);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Debug builds are ~30x slower: count below 400,000 there, 4,000,000 in release.
    let per: u64 = if cfg!(debug_assertions) {
        25_000
    } else {
        250_000
    };
    let ranges: Vec<(u64, u64)> = (0..16).map(|i| (i * per, (i + 1) * per)).collect();

    let start = Instant::now();
    let sequential: usize = ranges.iter().copied().map(count_primes).sum();
    let sequential_time = start.elapsed();

    let pool = ProcessPool::new()?;
    let start = Instant::now();
    // One chunk per range: each is a sizeable piece of work.
    let parallel: usize = pool
        .map_chunked(count_primes, ranges, 1)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    let parallel_time = start.elapsed();

    assert_eq!(sequential, parallel);
    println!("primes below {}: {parallel}", 16 * per);
    println!("sequential: {sequential_time:.2?}");
    println!("{} processes: {parallel_time:.2?}", pool.processes());
    Ok(())
}
