//! The CPU time one thread spends on `par_iter_fine_grained_1m_20ns`
//! (`v.par_iter().map(work).sum()`, 1M items of ~20 ns): a plain
//! sequential `iter().map(work).sum()`, then weft's and rayon's, each run
//! inside its own one-thread pool (so every split, leaf and reduction runs
//! on the thread measured), taking turns; the best of N of each.
//!
//! Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: on a
//! machine shared with other work, a thread that is descheduled does not
//! count the time it waits, so the per-item cost of each library's leaves
//! and splitting shows even where wall times swing by tens of percent.
//! Where the parallel rows match the sequential one, the libraries add
//! nothing per item; a two-thread difference is then one of scheduling.
//!
//! `cargo run --release -p weft-pool --example par_iter_leaf_cost -- [ROUNDS]`

use std::hint::black_box;
use std::time::Duration;

#[path = "../benches/shared/par_iter_workloads.rs"]
mod workloads;

use workloads::{FINE_N, Rng, expected, rayon_rows, weft_rows};

/// The CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`; the clock id is a
    // constant Linux and the BSDs define.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The thread CPU time `f` takes on the calling thread, and its result.
fn cpu_of<R>(f: impl FnOnce() -> R) -> (Duration, R) {
    let t = thread_cpu();
    let r = black_box(f());
    (thread_cpu() - t, r)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let wp = weft_pool::ThreadPool::new(1).unwrap();
    let rp = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut rng = Rng::default();
    // The bench draws the filter row's input first: skip as many numbers.
    for _ in 0..workloads::FILTER_N {
        rng.next_u64();
    }
    let fine: Vec<u64> = (0..FINE_N).map(|_| rng.next_u64()).collect();
    let expect = expected::fine_grained(&fine);

    let mut best = [Duration::MAX; 3];
    for _ in 0..rounds {
        let runs = [
            cpu_of(|| expected::fine_grained(black_box(&fine))),
            wp.install(|| cpu_of(|| weft_rows::fine_grained(&fine))),
            rp.install(|| cpu_of(|| rayon_rows::fine_grained(&fine))),
        ];
        for (b, (d, got)) in best.iter_mut().zip(runs) {
            assert_eq!(got, expect);
            *b = (*b).min(d);
        }
    }
    println!("par_iter_fine_grained_1m_20ns, one thread, thread CPU time, best of {rounds}");
    for (name, d) in [
        "sequential iter()",
        "weft (1-thread pool)",
        "rayon (1-thread pool)",
    ]
    .iter()
    .zip(best)
    {
        println!(
            "{name:24} {:8.3} ms  {:5.2} ns/item  {:5.2}x sequential",
            d.as_secs_f64() * 1e3,
            d.as_secs_f64() * 1e9 / FINE_N as f64,
            d.as_secs_f64() / best[0].as_secs_f64()
        );
    }
}
