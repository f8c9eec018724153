//! The seed's asyncio snippet, in Rust: a few coroutines that sleep (as they
//! would on I/O) and print, run concurrently with `gather!`, on one thread.
//!
//! Python:
//!
//! ```python
//! import asyncio, time
//!
//! async def fetch(name, delay):
//!     print(f"{name}: start")
//!     await asyncio.sleep(delay)
//!     print(f"{name}: done after {delay}s")
//!     return f"{name} data"
//!
//! async def main():
//!     start = time.perf_counter()
//!     results = await asyncio.gather(fetch("A", 0.3), fetch("B", 0.1), fetch("C", 0.2))
//!     print(results, f"in {time.perf_counter() - start:.2f}s")
//!
//! asyncio.run(main())
//! ```
//!
//! Run it: `cargo run -p weft --example asyncio`

use std::time::{Duration, Instant};

use weft::aio::{gather, sleep};

async fn fetch(name: &str, delay: Duration) -> String {
    println!("{name}: start");
    sleep(delay).await;
    println!("{name}: done after {delay:?}");
    format!("{name} data")
}

fn main() {
    weft::aio::run(async {
        let start = Instant::now();
        // The three sleeps overlap: the whole takes about as long as the
        // longest one, not the sum.
        let (a, b, c) = gather!(
            fetch("A", Duration::from_millis(300)),
            fetch("B", Duration::from_millis(100)),
            fetch("C", Duration::from_millis(200)),
        )
        .await;
        println!("{:?} in {:.2?}", [a, b, c], start.elapsed());
    });
}
