//! The seed's `multiprocessing` snippet, one to one:
//!
//! ```python
//! from multiprocessing import Process
//!
//! def task1(): print("Task 1")
//! def task2(): print("Task 2")
//!
//! p1 = Process(target=task1); p2 = Process(target=task2)
//! p1.start(); p2.start(); p1.join(); p2.join()
//! ```
//!
//! then a port of Python's multiprocessing pool example, with CPU-bound
//! work:
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
//! then the same count by four `Process`es that share a `Queue` of ranges
//! to count and a `Queue` of results (Python's `multiprocessing.Queue`),
//! and last by pool tasks that put their counts into a `Queue` passed in
//! their argument (Python's pool tasks cannot take a `Queue` without a
//! `Manager`).
//!
//! Run it with `cargo run --release -p weft --example multiprocessing`.
//! There is no `if __name__ == "__main__"` guard to write: the workers are
//! this executable re-run in worker mode, which weft-process starts before
//! `main`.

use std::time::Instant;

use weft::process::{Process, ProcessPool, Queue, QueueGetError};

fn task1(_: ()) {
    println!("Task 1");
}

fn task2(_: ()) {
    println!("Task 2");
}

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

/// Takes ranges from `todo` until it is shut down and drained, and puts
/// each count into `done`.
fn count_worker((todo, done): (Queue<(u64, u64)>, Queue<usize>)) {
    loop {
        match todo.get() {
            Ok(range) => done
                .put(count_primes(range))
                .expect("the results queue is open"),
            Err(QueueGetError::ShutDown) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Counts one range and puts the count into `done`.
fn count_into((done, range): (Queue<usize>, (u64, u64))) {
    done.put(count_primes(range))
        .expect("the results queue is open");
}

weft::process::register!(task1, task2, count_primes, count_worker, count_into);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The seed's snippet.
    let start = Instant::now();
    let mut p1 = Process::new(task1, ());
    let mut p2 = Process::new(task2, ());
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    println!(
        "two processes started and joined in {:.2?}",
        start.elapsed()
    );

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
        .map_chunked(count_primes, ranges.clone(), 1)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    let parallel_time = start.elapsed();

    assert_eq!(sequential, parallel);
    println!("primes below {}: {parallel}", 16 * per);
    println!("sequential: {sequential_time:.2?}");
    println!("{} pool processes: {parallel_time:.2?}", pool.processes());

    // Four processes, a queue of work and a queue of results.
    let start = Instant::now();
    let todo = Queue::unbounded();
    let done = Queue::unbounded();
    for range in &ranges {
        todo.put(*range)?;
    }
    todo.shutdown(false);
    let workers = (0..4)
        .map(|_| Process::spawn(count_worker, (todo.clone(), done.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    let queued: usize = (0..ranges.len())
        .map(|_| done.get())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    for w in workers {
        w.join()?;
    }
    assert_eq!(queued, sequential);
    println!("4 processes and a Queue: {:.2?}", start.elapsed());

    // Pool tasks that report through a Queue in their argument.
    let start = Instant::now();
    let results = Queue::unbounded();
    let handles: Vec<_> = ranges
        .iter()
        .map(|range| pool.submit(count_into, (results.clone(), *range)))
        .collect();
    for h in handles {
        h.join()?;
    }
    let reported: usize = (0..ranges.len())
        .map(|_| results.get())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    assert_eq!(reported, sequential);
    println!("pool tasks and a Queue: {:.2?}", start.elapsed());
    Ok(())
}
