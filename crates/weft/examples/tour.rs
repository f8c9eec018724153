//! The weft tour: one I/O-bound and one CPU-bound workload, each run
//! sequentially, on threads (weft-pool), on processes (weft-process) and on
//! async (weft-async), with a table of wall times and speed-ups.
//!
//! ```text
//! cargo run --release -p weft --example tour            # the full tour (< 1 min on 2 cores)
//! cargo run --release -p weft --example tour -- --json  # the same, as JSON
//! cargo run -p weft --example tour -- --quick           # small sizes, for a quick look
//! ```
//!
//! The I/O-bound workload sends requests to a local TCP server that answers
//! each after a fixed delay (a stand-in for a slow web service); the
//! CPU-bound one counts the primes below a limit, split into chunks.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt};
use weft::aio;
use weft::pool::ThreadPool;
use weft::process::ProcessPool;

const USAGE: &str = "\
usage: tour [--quick] [--json] [--requests N] [--latency-ms N] [--primes-below N]

  --quick            small sizes (20 requests, primes below 200000)
  --json             print the results as JSON instead of a table
  --requests N       I/O-bound: number of requests (default 100)
  --latency-ms N     I/O-bound: the server's delay per request (default 20)
  --primes-below N   CPU-bound: count the primes below N (default 3000000)
";

#[derive(Debug, Clone)]
struct Config {
    requests: u64,
    latency: Duration,
    primes_below: u64,
    json: bool,
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut cfg = Config {
        requests: 100,
        latency: Duration::from_millis(20),
        primes_below: 3_000_000,
        json: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or(format!("{name} needs a positive whole number, got '{v}'"))
        };
        match arg.as_str() {
            "--quick" => {
                cfg.requests = 20;
                cfg.primes_below = 200_000;
            }
            "--json" => cfg.json = true,
            "--requests" => cfg.requests = number("--requests")?,
            "--latency-ms" => cfg.latency = Duration::from_millis(number("--latency-ms")?),
            "--primes-below" => cfg.primes_below = number("--primes-below")?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    Ok(cfg)
}

// ---------------------------------------------------------------- workloads

/// A server that answers each line `n` with `2n`, after `latency`.
fn start_server(latency: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut writer = conn;
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    std::thread::sleep(latency);
                    let n: u64 = line.trim().parse().unwrap_or(0);
                    if writeln!(writer, "{}", 2 * n).is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    });
    addr
}

/// One blocking request.
fn fetch((addr, n): (String, u64)) -> u64 {
    let mut conn = TcpStream::connect(&addr).expect("connect to the tour server");
    writeln!(conn, "{n}").unwrap();
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).unwrap();
    line.trim().parse().expect("the server answers a number")
}
weft::process::register!(fetch);

/// One request, without blocking the thread.
async fn fetch_async(addr: SocketAddr, n: u64) -> u64 {
    let mut conn = async_net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(format!("{n}\n").as_bytes()).await.unwrap();
    let mut line = String::new();
    futures_lite::io::BufReader::new(conn)
        .read_line(&mut line)
        .await
        .unwrap();
    line.trim().parse().expect("the server answers a number")
}

/// The primes in `lo..hi`, by trial division (deliberately CPU-heavy).
fn count_primes((lo, hi): (u64, u64)) -> u64 {
    (lo..hi)
        .filter(|&n| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count() as u64
}
weft::process::register!(count_primes);

fn chunks(limit: u64, parts: u64) -> Vec<(u64, u64)> {
    let step = limit.div_ceil(parts);
    (0..parts)
        .map(|i| (i * step, ((i + 1) * step).min(limit)))
        .filter(|(lo, hi)| lo < hi)
        .collect()
}

// ---------------------------------------------------------------- the tour

struct Row {
    workload: &'static str,
    model: &'static str,
    seconds: f64,
    speedup: f64,
    /// The workload's result (a checksum), the same for every model.
    answer: u64,
}

/// The measurements so far, and the progress shown on stderr.
struct Tour {
    rows: Vec<Row>,
    done: usize,
    total: usize,
}

impl Tour {
    /// Runs one model of a workload and records its row. The first model of
    /// each workload is the sequential baseline: the others must give the
    /// same answer, and their speed-up is measured against it.
    fn model(
        &mut self,
        workload: &'static str,
        model: &'static str,
        f: impl FnOnce() -> u64,
    ) -> u64 {
        self.done += 1;
        eprint!(
            "[{}/{}] {workload:<10} {model:<28} ... ",
            self.done, self.total
        );
        let start = Instant::now();
        let answer = f();
        let seconds = start.elapsed().as_secs_f64();
        eprintln!("{seconds:.2} s");
        let baseline = self.rows.iter().find(|r| r.workload == workload);
        if let Some(b) = baseline {
            assert_eq!(
                answer, b.answer,
                "{model} disagrees with {} on the {workload} workload",
                b.model
            );
        }
        self.rows.push(Row {
            workload,
            model,
            seconds,
            speedup: baseline.map_or(1.0, |b| b.seconds / seconds),
            answer,
        });
        answer
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(cfg) => cfg,
        Err(msg) => {
            if msg.is_empty() {
                print!("{USAGE}");
                return;
            }
            eprintln!("tour: {msg}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut tour = Tour {
        rows: Vec::new(),
        done: 0,
        total: 8,
    };

    // Pools are started before the clock runs; their start-up is reported
    // separately below.
    let start = Instant::now();
    let io_threads = ThreadPool::new(cfg.requests.min(64) as usize).expect("thread pool");
    let cpu_threads = ThreadPool::new(cores).expect("thread pool");
    let threads_startup = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let processes = ProcessPool::builder()
        .processes(cores.max(2) * 2)
        .build()
        .expect("process pool");
    let processes_startup = start.elapsed().as_secs_f64();

    // I/O-bound: many requests, each mostly waiting.
    let addr = start_server(cfg.latency);
    let requests: Vec<u64> = (1..=cfg.requests).collect();
    let expected: u64 = requests.iter().map(|n| 2 * n).sum();
    let io = "I/O-bound";
    let sum = tour.model(io, "sequential", || {
        requests
            .iter()
            .map(|&n| fetch((addr.to_string(), n)))
            .sum::<u64>()
    });
    assert_eq!(sum, expected);
    tour.model(io, "threads (weft-pool)", || {
        io_threads
            .map(|n| fetch((addr.to_string(), n)), requests.clone(), 1)
            .into_iter()
            .sum::<u64>()
    });
    tour.model(io, "processes (weft-process)", || {
        let args = requests.iter().map(|&n| (addr.to_string(), n));
        processes
            .map(fetch, args)
            .map(|r| r.expect("request on a worker"))
            .sum::<u64>()
    });
    tour.model(io, "async (weft-async)", || {
        aio::run(async {
            aio::join_all(requests.iter().map(|&n| fetch_async(addr, n)))
                .await
                .into_iter()
                .sum::<u64>()
        })
    });

    // CPU-bound: all computation, no waiting.
    let parts = chunks(cfg.primes_below, 32);
    let cpu = "CPU-bound";
    let primes = tour.model(cpu, "sequential", || {
        parts.iter().map(|&c| count_primes(c)).sum::<u64>()
    });
    tour.model(cpu, "threads (weft-pool)", || {
        cpu_threads
            .map(count_primes, parts.clone(), 1)
            .into_iter()
            .sum::<u64>()
    });
    tour.model(cpu, "processes (weft-process)", || {
        processes
            .map(count_primes, parts.clone())
            .map(|r| r.expect("chunk on a worker"))
            .sum::<u64>()
    });
    tour.model(cpu, "async (weft-async)", || {
        aio::run(async {
            let tasks = parts.iter().map(|&c| async move {
                aio::yield_now().await; // tasks interleave, but on one thread
                count_primes(c)
            });
            aio::join_all(tasks).await.into_iter().sum::<u64>()
        })
    });
    let rows = tour.rows;

    if cfg.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "workload": r.workload, "model": r.model,
                    "seconds": r.seconds, "speedup": r.speedup,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "cores": cores,
            "io": {"requests": cfg.requests, "latency_ms": cfg.latency.as_millis() as u64},
            "cpu": {"primes_below": cfg.primes_below, "primes": primes},
            "startup_seconds": {"threads": threads_startup, "processes": processes_startup},
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap());
        return;
    }

    println!(
        "\nweft tour on {cores} cores: {} requests with {} ms latency; {primes} primes below {}\n",
        cfg.requests,
        cfg.latency.as_millis(),
        cfg.primes_below
    );
    println!(
        "{:<10}  {:<26}  {:>10}  {:>8}",
        "workload", "model", "wall time", "speed-up"
    );
    for r in &rows {
        println!(
            "{:<10}  {:<26}  {:>8.3} s  {:>7.1}x",
            r.workload, r.model, r.seconds, r.speedup
        );
    }
    println!(
        "\n(pool start-up, not in the times above: threads {:.3} s, processes {:.3} s)",
        threads_startup, processes_startup
    );
    println!(
        "\nWhat it means: for I/O-bound work the winners are the models that wait concurrently — \
         async does it on one thread, threads with one thread per request, processes only as many \
         at a time as there are workers. For CPU-bound work only threads and processes help, up to \
         the {cores} cores; async runs on one thread and gains nothing. Unlike Python, Rust threads \
         are not held back by a GIL, so a thread pool is the first choice for CPU work; use \
         processes when you need isolation from crashes and hangs."
    );
}
