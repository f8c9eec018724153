//! The process pool across machines, on one machine: counts the primes
//! below 3,000,000 across two worker processes coordinated by NATS
//! JetStream, with a progress line.
//!
//! ```text
//! cargo run -p weft --features cluster --example cluster
//! ```
//!
//! It starts a `nats-server -js` of its own on a free port when one is on
//! the PATH (Debian/Ubuntu: `apt-get install nats-server`), or uses the
//! server in `WEFT_NATS_URL` (`nats://host:4222`). The workers are this
//! same program re-run as `cluster worker <url>`; on other machines you
//! would start them the same way, pointing at the shared server.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft::cluster::{Cluster, Worker};

const LIMIT: u64 = 3_000_000;
const RANGE: u64 = 30_000;

fn count_primes((lo, hi): (u64, u64)) -> u64 {
    (lo..hi)
        .filter(|&n| n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}
weft::process::register!(count_primes);

/// A child process killed and reaped when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("worker") {
        let url = args.get(2).ok_or("usage: cluster worker <nats-url>")?;
        Worker::builder().url(url.as_str()).processes(2).run()?;
        return Ok(());
    }

    // The server: WEFT_NATS_URL, or a nats-server of our own.
    let store = std::env::temp_dir().join(format!("weft-cluster-example-{}", std::process::id()));
    let (url, _server) = match std::env::var("WEFT_NATS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let server = match Command::new("nats-server")
                .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
                .arg(&store)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => Reaped(child),
                Err(_) => {
                    eprintln!(
                        "this example needs a NATS server with JetStream: install one \
                         (`apt-get install nats-server`, or a release from \
                         https://github.com/nats-io/nats-server/releases) so that \
                         `nats-server` is on the PATH, or point WEFT_NATS_URL at a running \
                         `nats-server -js`"
                    );
                    std::process::exit(2);
                }
            };
            let started = Instant::now();
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if started.elapsed() > Duration::from_secs(10) {
                    return Err("nats-server did not start listening within 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("started nats-server -js on port {port}");
            (format!("nats://127.0.0.1:{port}"), Some(server))
        }
    };

    // Two workers: this program, re-run.
    let exe = std::env::current_exe()?;
    let _workers: Vec<Reaped> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["worker", &url])
                .stdin(Stdio::null())
                .spawn()
                .map(Reaped)
        })
        .collect::<Result<_, _>>()?;
    println!("started 2 worker processes (2 local processes each)");

    let cluster = Cluster::builder().url(url.as_str()).build()?;
    let started = Instant::now();
    let ranges: Vec<(u64, u64)> = (0..LIMIT / RANGE)
        .map(|i| (i * RANGE, (i + 1) * RANGE))
        .collect();
    let total = ranges.len();
    let mut primes = 0;
    for (done, count) in cluster
        .map_unordered_chunked(count_primes, ranges, 1)
        .enumerate()
    {
        primes += count?;
        print!(
            "\r{:>3}/{total} ranges done, {primes} primes so far, {:.1} s",
            done + 1,
            started.elapsed().as_secs_f64()
        );
        std::io::stdout().flush()?;
    }
    println!();
    println!(
        "{primes} primes below {LIMIT}, counted across the cluster in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&store);
    Ok(())
}
