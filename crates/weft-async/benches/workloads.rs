//! Issue 16's async workloads, each on weft and on tokio held the way its
//! authors show it (`tokio::net`, `tokio::spawn`, `tokio::time`,
//! `tokio::sync`): the single-threaded runtime against tokio's
//! current-thread runtime (rows without a prefix), the multi-threaded
//! flavour (`weft_async::multi`, 2 workers) against tokio's multi-thread
//! runtime with 2 workers (rows `mt_*`).
//!
//! * `tcp_1000_conns_{4kib,64kib}`: an echo server with 1,000 open
//!   connections whose clients live in **another process**: this bench
//!   binary re-run as a load generator (the same program, one tokio
//!   current-thread runtime, for every server). Each iteration is one round:
//!   every connection sends 10 messages of 4 KiB (2 of 64 KiB), each after
//!   the previous one came back. The row is the round's wall time
//!   (throughput: 10,000 x 4 KiB or 2,000 x 64 KiB each way);
//!   `_p50`/`_p99` are percentiles of single requests' round trips (write
//!   to last byte back) as the clients measure them, per round, median over
//!   the rounds. Servers: weft's own `net` sockets (single-threaded),
//!   `async-net` (multi: async-io's reactor), `tokio::net`; both echo with
//!   a 16 KiB buffer.
//! * `foreign_wake_per_round_trip`: a thread outside the runtime sends a
//!   message to a task of the runtime, which answers on a std channel; 2,000
//!   round trips per iteration, reported per round trip.
//!   `foreign_wake_latency_p50`/`_p99`: the time from the send on the
//!   foreign thread to the task running with the message (per iteration,
//!   median over iterations). `foreign_wake_stream_per_item`: 100,000
//!   messages sent back to back, per message. weft: `weft_sync::Queue`
//!   (`put` / `get_async`); tokio: `tokio::sync::mpsc::unbounded_channel`
//!   (`send` / `recv().await`). The `weft+tokio-mpsc` rows run weft's
//!   runtime with tokio's channel: the runtime's share of the wake-up.
//! * `timeout_churn_100k`: `timeout(1 s, yield_now())` 100,000 times in one
//!   task: every timer is armed (the future is pending once) and cancelled
//!   long before it fires.
//! * `idle_task_memory_bytes`: the resident memory (`VmRSS` in `/proc/self/status`)
//!   that 100,000 idle tasks (each awaiting a future that never completes,
//!   detached, every one polled once) add, per task, in bytes, measured in a
//!   fresh process for each run (5 runs, median). Not a time: the xtask
//!   shows it as a number of "ns".

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use weft_async::multi;

mod common;
use common::{median_ci, quantile, selected, write_extra_rows};

const THREADS: usize = 2;
const CONNS: usize = 1_000;
/// (message length, messages per connection per round, row name).
const TCP_SIZES: [(usize, usize, &str); 2] = [
    (4 * 1024, 10, "tcp_1000_conns_4kib"),
    (64 * 1024, 2, "tcp_1000_conns_64kib"),
];
const ECHO_BUF: usize = 16 * 1024;
const WAKE_ROUND_TRIPS: usize = 2_000;
const WAKE_STREAM: usize = 100_000;
const TIMEOUTS: usize = 100_000;
const IDLE_TASKS: usize = 100_000;
const MEMORY_RUNS: usize = 5;

/// Set in the environment of a re-run of this binary as the TCP load
/// generator: `<server address> <message length> <messages per round>`.
const CLIENT_ENV: &str = "WEFT_BENCH_TCP_CLIENT";
/// Set in the environment of a re-run of this binary that measures idle
/// task memory for one runtime (`weft`, `tokio`, `mt-weft`, `mt-tokio`).
const MEMORY_ENV: &str = "WEFT_BENCH_IDLE_MEMORY";

fn main() {
    if let Ok(args) = std::env::var(CLIENT_ENV) {
        tcp_client_main(&args);
        return;
    }
    if let Ok(imp) = std::env::var(MEMORY_ENV) {
        memory_child_main(&imp);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

fn tokio_current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn tokio_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .unwrap()
}

fn weft_multi() -> multi::Runtime {
    multi::Runtime::builder().threads(THREADS).build().unwrap()
}

// ------------------------------------------------------------------- TCP

/// The load generator (a process of its own): opens `CONNS` connections,
/// then on each `go` line from stdin runs one round and answers
/// `<round ns> <p50 ns> <p99 ns>`; ends at end of input.
fn tcp_client_main(args: &str) {
    let mut parts = args.split_whitespace();
    let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
    let len: usize = parts.next().unwrap().parse().unwrap();
    let per_round: usize = parts.next().unwrap().parse().unwrap();
    let rt = tokio_current();
    rt.block_on(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut conns = Vec::with_capacity(CONNS);
        for _ in 0..CONNS {
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            conns.push((s, vec![7u8; len], vec![0u8; len]));
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            // Blocking is fine here: between rounds the clients are idle.
            if std::io::stdin().read_line(&mut line).unwrap() == 0 {
                break;
            }
            let start = Instant::now();
            let tasks: Vec<_> = conns
                .drain(..)
                .map(|(mut s, msg, mut back)| {
                    tokio::spawn(async move {
                        let mut took = Vec::with_capacity(per_round);
                        for _ in 0..per_round {
                            let t = Instant::now();
                            s.write_all(&msg).await.unwrap();
                            s.read_exact(&mut back).await.unwrap();
                            took.push(t.elapsed().as_nanos() as u64);
                        }
                        assert_eq!(back, msg);
                        (s, msg, back, took)
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(CONNS * per_round);
            for t in tasks {
                let (s, msg, back, took) = t.await.unwrap();
                conns.push((s, msg, back));
                all.extend(took);
            }
            let round = start.elapsed().as_nanos();
            let p50 = quantile(&mut all, 0.50);
            let p99 = quantile(&mut all, 0.99);
            writeln!(out, "{round} {p50} {p99}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// The load generator process, connected to `addr`.
struct Clients {
    child: Child,
    to: Option<ChildStdin>,
    from: BufReader<ChildStdout>,
}

impl Clients {
    fn start(addr: SocketAddr, len: usize, per_round: usize) -> Clients {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CLIENT_ENV, format!("{addr} {len} {per_round}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let mut from = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        from.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the load generator did not start");
        Clients {
            child,
            to: Some(to),
            from,
        }
    }

    /// One round: (wall time seen here, p50, p99 of the requests).
    fn round(&mut self) -> (Duration, f64, f64) {
        let start = Instant::now();
        let to = self.to.as_mut().unwrap();
        writeln!(to, "go").unwrap();
        to.flush().unwrap();
        let mut line = String::new();
        self.from.read_line(&mut line).unwrap();
        let took = start.elapsed();
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (took, v[1], v[2])
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        // End of input: the generator closes its connections and exits.
        drop(self.to.take());
        let _ = self.child.wait();
    }
}

/// weft's echo (its own sockets, single-threaded runtime).
async fn echo_weft(mut s: weft_async::net::TcpStream) {
    s.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; ECHO_BUF];
    while let Ok(n @ 1..) = s.read(&mut buf).await {
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// The multi flavour's echo (async-net).
async fn echo_async_net(mut s: async_net::TcpStream) {
    s.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; ECHO_BUF];
    while let Ok(n @ 1..) = s.read(&mut buf).await {
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// tokio's echo, as its examples write it.
async fn echo_tokio(mut s: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.set_nodelay(true).unwrap();
    let mut buf = vec![0u8; ECHO_BUF];
    while let Ok(n @ 1..) = s.read(&mut buf).await {
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// A server running somewhere until dropped: its address and how to stop it.
struct Server {
    addr: SocketAddr,
    stop: Option<Box<dyn FnOnce()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

fn server_weft() -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Arc::new(weft_sync::Event::new());
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        weft_async::run(async move {
            let l = weft_async::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let accept = async {
                loop {
                    let (c, _) = l.accept().await.unwrap();
                    weft_async::spawn(echo_weft(c)).detach();
                }
            };
            weft_async::race(accept, s.wait_async()).await;
        })
    });
    Server {
        addr: rx.recv().unwrap(),
        stop: Some(Box::new(move || {
            stop.set();
            thread.join().unwrap();
        })),
    }
}

fn server_tokio_current() -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        tokio_current().block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let accept = async {
                loop {
                    let (c, _) = l.accept().await.unwrap();
                    tokio::spawn(echo_tokio(c));
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = stopped => {}
            }
        })
    });
    Server {
        addr: rx.recv().unwrap(),
        stop: Some(Box::new(move || {
            let _ = stop.send(());
            thread.join().unwrap();
        })),
    }
}

fn server_weft_multi() -> Server {
    let rt = weft_multi();
    let l = rt.block_on(async { async_net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let addr = l.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (c, _) = l.accept().await.unwrap();
            multi::spawn(echo_async_net(c)).detach();
        }
    })
    .detach();
    Server {
        addr,
        stop: Some(Box::new(move || drop(rt))),
    }
}

fn server_tokio_multi() -> Server {
    let rt = tokio_multi();
    let l = rt.block_on(async { tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap() });
    let addr = l.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let (c, _) = l.accept().await.unwrap();
            tokio::spawn(echo_tokio(c));
        }
    });
    Server {
        addr,
        stop: Some(Box::new(move || drop(rt))),
    }
}

/// A runtime's name in the rows and how to start its side of a workload.
type Peer<T> = (&'static str, fn() -> T);

fn tcp_group(c: &mut Criterion, prefix: &str, servers: &[Peer<Server>]) {
    for (len, per_round, name) in TCP_SIZES {
        let group = format!("{prefix}{name}");
        if !selected(&group) {
            continue;
        }
        let mut g = c.benchmark_group(&group);
        g.sampling_mode(SamplingMode::Flat);
        let mut pct: Vec<(String, String, (f64, f64, f64))> = Vec::new();
        for (imp, start) in servers {
            let server = start();
            let mut clients = Clients::start(server.addr, len, per_round);
            let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
            g.bench_function(*imp, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (took, p50, p99) = clients.round();
                        total += took;
                        p50s.push(p50);
                        p99s.push(p99);
                    }
                    total
                })
            });
            drop(clients);
            drop(server);
            if !p50s.is_empty() {
                pct.push((format!("{group}_p50"), imp.to_string(), median_ci(p50s)));
                pct.push((format!("{group}_p99"), imp.to_string(), median_ci(p99s)));
            }
        }
        g.finish();
        for (bench, imp, (mid, lo, hi)) in &pct {
            eprintln!(
                "{bench}/{imp}: {:?} [{:?}, {:?}]",
                Duration::from_nanos(*mid as u64),
                Duration::from_nanos(*lo as u64),
                Duration::from_nanos(*hi as u64)
            );
        }
        if !pct.is_empty() {
            write_extra_rows(&pct);
        }
    }
}

fn tcp(c: &mut Criterion) {
    tcp_group(
        c,
        "",
        &[("weft", server_weft), ("tokio", server_tokio_current)],
    );
    tcp_group(
        c,
        "mt_",
        &[("weft", server_weft_multi), ("tokio", server_tokio_multi)],
    );
}

// ------------------------------------------------- wake-ups from a thread

/// What the foreign thread sends to the runtime's task.
#[derive(Debug, Clone, Copy)]
enum Msg {
    /// Answer with how long ago this was sent (ns).
    Ping(Instant),
    /// Count it; answer after the last one.
    Stream { last: bool },
    /// End the task.
    Stop,
}

/// The foreign thread's half: send a message, and get the task's answers.
struct Foreign {
    send: Box<dyn Fn(Msg)>,
    answers: std::sync::mpsc::Receiver<u64>,
    stop: Option<Box<dyn FnOnce()>>,
}

impl Drop for Foreign {
    fn drop(&mut self) {
        (self.send)(Msg::Stop);
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// The task's half: what it does with each message; `false` to end.
fn answer(msg: Msg, to: &std::sync::mpsc::Sender<u64>) -> bool {
    match msg {
        Msg::Ping(sent) => to.send(sent.elapsed().as_nanos() as u64).unwrap(),
        Msg::Stream { last: true } => to.send(0).unwrap(),
        Msg::Stream { last: false } => {}
        Msg::Stop => return false,
    }
    true
}

fn foreign_weft() -> Foreign {
    let q = Arc::new(weft_sync::Queue::<Msg>::unbounded());
    let (to, answers) = std::sync::mpsc::channel();
    let q2 = q.clone();
    let thread = std::thread::spawn(move || {
        weft_async::run(async move {
            weft_async::spawn(async move {
                while let Ok(msg) = q2.get_async().await {
                    if !answer(msg, &to) {
                        break;
                    }
                }
            })
            .await
            .unwrap();
        })
    });
    Foreign {
        send: Box::new(move |m| q.put(m).unwrap()),
        answers,
        stop: Some(Box::new(move || thread.join().unwrap())),
    }
}

/// weft's runtime with tokio's channel: the `weft+tokio-mpsc` row, which
/// splits the runtime's share of a foreign wake-up from the channel's.
fn foreign_weft_tokio_chan() -> Foreign {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let (to, answers) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        weft_async::run(async move {
            weft_async::spawn(async move {
                while let Some(msg) = rx.recv().await {
                    if !answer(msg, &to) {
                        break;
                    }
                }
            })
            .await
            .unwrap();
        })
    });
    Foreign {
        send: Box::new(move |m| tx.send(m).unwrap()),
        answers,
        stop: Some(Box::new(move || thread.join().unwrap())),
    }
}

fn foreign_tokio_current() -> Foreign {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let (to, answers) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        tokio_current().block_on(async move {
            tokio::spawn(async move {
                while let Some(msg) = rx.recv().await {
                    if !answer(msg, &to) {
                        break;
                    }
                }
            })
            .await
            .unwrap();
        })
    });
    Foreign {
        send: Box::new(move |m| tx.send(m).unwrap()),
        answers,
        stop: Some(Box::new(move || thread.join().unwrap())),
    }
}

fn foreign_weft_multi() -> Foreign {
    let rt = weft_multi();
    let q = Arc::new(weft_sync::Queue::<Msg>::unbounded());
    let (to, answers) = std::sync::mpsc::channel();
    let q2 = q.clone();
    let task = rt.spawn(async move {
        while let Ok(msg) = q2.get_async().await {
            if !answer(msg, &to) {
                break;
            }
        }
    });
    Foreign {
        send: Box::new(move |m| q.put(m).unwrap()),
        answers,
        stop: Some(Box::new(move || {
            task.join().unwrap();
            drop(rt);
        })),
    }
}

/// The multi flavour with tokio's channel (`weft+tokio-mpsc`).
fn foreign_weft_multi_tokio_chan() -> Foreign {
    let rt = weft_multi();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let (to, answers) = std::sync::mpsc::channel();
    let task = rt.spawn(async move {
        while let Some(msg) = rx.recv().await {
            if !answer(msg, &to) {
                break;
            }
        }
    });
    Foreign {
        send: Box::new(move |m| tx.send(m).unwrap()),
        answers,
        stop: Some(Box::new(move || {
            task.join().unwrap();
            drop(rt);
        })),
    }
}

fn foreign_tokio_multi() -> Foreign {
    let rt = tokio_multi();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Msg>();
    let (to, answers) = std::sync::mpsc::channel();
    let task = rt.spawn(async move {
        while let Some(msg) = rx.recv().await {
            if !answer(msg, &to) {
                break;
            }
        }
    });
    Foreign {
        send: Box::new(move |m| tx.send(m).unwrap()),
        answers,
        stop: Some(Box::new(move || {
            rt.block_on(task).unwrap();
            drop(rt);
        })),
    }
}

fn foreign_group(c: &mut Criterion, prefix: &str, peers: &[Peer<Foreign>]) {
    let trips = format!("{prefix}foreign_wake_per_round_trip");
    if selected(&trips) {
        let mut g = c.benchmark_group(&trips);
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Elements(WAKE_ROUND_TRIPS as u64));
        let mut pct = Vec::new();
        for (imp, start) in peers {
            let f = start();
            let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
            g.bench_function(*imp, |b| {
                b.iter(|| {
                    let mut lat = Vec::with_capacity(WAKE_ROUND_TRIPS);
                    for _ in 0..WAKE_ROUND_TRIPS {
                        (f.send)(Msg::Ping(Instant::now()));
                        lat.push(f.answers.recv().unwrap());
                    }
                    p50s.push(quantile(&mut lat, 0.50) as f64);
                    p99s.push(quantile(&mut lat, 0.99) as f64);
                })
            });
            drop(f);
            if !p50s.is_empty() {
                let latency = format!("{prefix}foreign_wake_latency");
                pct.push((format!("{latency}_p50"), imp.to_string(), median_ci(p50s)));
                pct.push((format!("{latency}_p99"), imp.to_string(), median_ci(p99s)));
            }
        }
        g.finish();
        for (bench, imp, (mid, lo, hi)) in &pct {
            eprintln!("{bench}/{imp}: {mid:.0} ns [{lo:.0}, {hi:.0}]");
        }
        if !pct.is_empty() {
            write_extra_rows(&pct);
        }
    }
    let stream = format!("{prefix}foreign_wake_stream_per_item");
    if selected(&stream) {
        let mut g = c.benchmark_group(&stream);
        g.sampling_mode(SamplingMode::Flat);
        g.throughput(Throughput::Elements(WAKE_STREAM as u64));
        for (imp, start) in peers {
            let f = start();
            g.bench_function(*imp, |b| {
                b.iter(|| {
                    for i in 0..WAKE_STREAM {
                        (f.send)(Msg::Stream {
                            last: i + 1 == WAKE_STREAM,
                        });
                    }
                    f.answers.recv().unwrap();
                })
            });
        }
        g.finish();
    }
}

fn foreign_wakes(c: &mut Criterion) {
    foreign_group(
        c,
        "",
        &[
            ("weft", foreign_weft),
            ("tokio", foreign_tokio_current),
            ("weft+tokio-mpsc", foreign_weft_tokio_chan),
        ],
    );
    foreign_group(
        c,
        "mt_",
        &[
            ("weft", foreign_weft_multi),
            ("tokio", foreign_tokio_multi),
            ("weft+tokio-mpsc", foreign_weft_multi_tokio_chan),
        ],
    );
}

// --------------------------------------------------------- timeout churn

async fn churn_weft() {
    for _ in 0..TIMEOUTS {
        weft_async::timeout(Duration::from_secs(1), weft_async::yield_now())
            .await
            .unwrap();
    }
}

async fn churn_weft_multi() {
    for _ in 0..TIMEOUTS {
        multi::timeout(Duration::from_secs(1), multi::yield_now())
            .await
            .unwrap();
    }
}

async fn churn_tokio() {
    for _ in 0..TIMEOUTS {
        tokio::time::timeout(Duration::from_secs(1), tokio::task::yield_now())
            .await
            .unwrap();
    }
}

fn timeout_churn(c: &mut Criterion) {
    if selected("timeout_churn_100k") {
        let mut g = c.benchmark_group("timeout_churn_100k");
        g.sampling_mode(SamplingMode::Flat);
        g.bench_function("weft", |b| {
            b.iter(|| weft_async::run(async { weft_async::spawn(churn_weft()).await.unwrap() }))
        });
        let tk = tokio_current();
        g.bench_function("tokio", |b| {
            b.iter(|| tk.block_on(async { tokio::spawn(churn_tokio()).await.unwrap() }))
        });
        g.finish();
    }
    if selected("mt_timeout_churn_100k") {
        let mut g = c.benchmark_group("mt_timeout_churn_100k");
        g.sampling_mode(SamplingMode::Flat);
        let rt = weft_multi();
        g.bench_function("weft", |b| {
            b.iter(|| rt.block_on(async { multi::spawn(churn_weft_multi()).await.unwrap() }))
        });
        let tk = tokio_multi();
        g.bench_function("tokio", |b| {
            b.iter(|| tk.block_on(async { tokio::spawn(churn_tokio()).await.unwrap() }))
        });
        g.finish();
    }
}

// ------------------------------------------------------ idle task memory

/// Resident memory of this process, in bytes (`VmRSS` of
/// `/proc/self/status`: `statm`'s resident pages, in kB).
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Spawns `IDLE_TASKS` idle tasks with `spawn` (each bumps `started` on its
/// first poll, then never completes), waits with `settle` until all have
/// started, and returns the growth of resident memory per task.
async fn idle_tasks<S, Y, YF>(spawn: S, settle: Y, started: Arc<AtomicUsize>) -> f64
where
    S: Fn(Arc<AtomicUsize>),
    Y: Fn() -> YF,
    YF: Future<Output = ()>,
{
    // One task first, so that what a runtime allocates once is not counted.
    spawn(started.clone());
    while started.load(Ordering::Acquire) < 1 {
        settle().await;
    }
    let before = rss();
    for _ in 0..IDLE_TASKS {
        spawn(started.clone());
    }
    while started.load(Ordering::Acquire) < IDLE_TASKS + 1 {
        settle().await;
    }
    (rss() as f64 - before as f64) / IDLE_TASKS as f64
}

/// The body of an idle task.
async fn idle(started: Arc<AtomicUsize>) {
    started.fetch_add(1, Ordering::AcqRel);
    std::future::pending::<()>().await;
}

fn memory_child_main(imp: &str) {
    let started = Arc::new(AtomicUsize::new(0));
    let per_task = match imp {
        "weft" => weft_async::run(idle_tasks(
            |s| weft_async::spawn(idle(s)).detach(),
            weft_async::yield_now,
            started,
        )),
        "tokio" => tokio_current().block_on(idle_tasks(
            |s| drop(tokio::spawn(idle(s))),
            tokio::task::yield_now,
            started,
        )),
        "mt-weft" => weft_multi().block_on(idle_tasks(
            |s| multi::spawn(idle(s)).detach(),
            || async { std::thread::sleep(Duration::from_micros(100)) },
            started,
        )),
        "mt-tokio" => tokio_multi().block_on(idle_tasks(
            |s| drop(tokio::spawn(idle(s))),
            || async { std::thread::sleep(Duration::from_micros(100)) },
            started,
        )),
        other => panic!("unknown runtime {other}"),
    };
    println!("{per_task}");
    // The runtimes' teardown (cancelling 100,000 tasks) is not measured.
    std::process::exit(0);
}

fn idle_task_memory(_: &mut Criterion) {
    for (bench, imps) in [
        (
            "idle_task_memory_bytes",
            [("weft", "weft"), ("tokio", "tokio")],
        ),
        (
            "mt_idle_task_memory_bytes",
            [("weft", "mt-weft"), ("tokio", "mt-tokio")],
        ),
    ] {
        if !selected(bench) {
            continue;
        }
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); imps.len()];
        // Interleaved: the machine's state changes alike for both.
        for _ in 0..MEMORY_RUNS {
            for (k, (_, mode)) in imps.iter().enumerate() {
                let out = Command::new(std::env::current_exe().unwrap())
                    .env(MEMORY_ENV, mode)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "the memory run of {mode} failed");
                let bytes: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                runs[k].push(bytes);
            }
        }
        let rows: Vec<_> = imps
            .iter()
            .zip(runs)
            .map(|((imp, _), v)| {
                let (mid, lo, hi) = median_ci(v);
                eprintln!("{bench}/{imp}: {mid:.0} bytes per idle task [{lo:.0}, {hi:.0}]");
                (bench.to_owned(), imp.to_string(), (mid, lo, hi))
            })
            .collect();
        write_extra_rows(&rows);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = tcp, foreign_wakes, timeout_churn, idle_task_memory
}
