//! The seed's threading snippet, in Rust: several threads "download" pages
//! at once (each download is a sleep, as I/O would be), a `Semaphore` caps how
//! many run at the same time, and a `Mutex` keeps the shared tally correct.
//!
//! Run it: `cargo run -p weft --example threads`

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use weft::sync::{Mutex, Semaphore};

fn download(site: &str) -> usize {
    // Stand-in for network I/O: the thread waits, the CPU is free.
    thread::sleep(Duration::from_millis(100));
    site.len() * 100
}

fn main() {
    let sites: Vec<String> = (0..8)
        .map(|i| format!("https://example.org/page/{i}"))
        .collect();

    let start = Instant::now();
    let total = sites.iter().map(|s| download(s)).sum::<usize>();
    let sequential = start.elapsed();
    println!(
        "sequential: {} sites, {total} bytes in {sequential:.2?}",
        sites.len()
    );

    let start = Instant::now();
    let tally = Arc::new(Mutex::new(0usize));
    let at_most_four = Arc::new(Semaphore::new(4));
    let workers: Vec<_> = sites
        .iter()
        .cloned()
        .map(|site| {
            let (tally, limit) = (tally.clone(), at_most_four.clone());
            thread::spawn(move || {
                let _slot = limit.acquire(); // at most 4 downloads at once
                let bytes = download(&site);
                *tally.lock() += bytes; // the lock makes the update atomic
                println!("  read {bytes} bytes from {site}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a download thread panicked");
    }
    let threaded = start.elapsed();
    let total_threaded = *tally.lock();
    println!(
        "threads:    {} sites, {total_threaded} bytes in {threaded:.2?} ({:.1}x faster)",
        sites.len(),
        sequential.as_secs_f64() / threaded.as_secs_f64()
    );
    assert_eq!(total, total_threaded, "every byte counted exactly once");
}
