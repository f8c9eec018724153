//! weft-cluster against Celery 5 on a Redis broker (the peer, run by
//! `python_peers.py` in the same `cargo xtask bench weft-cluster`), and
//! against the local process pool (what going through NATS costs).
//!
//! One client and two workers on this machine: a `nats-server -js` of the
//! bench's own (free port, temp storage) and two worker processes (this
//! bench binary re-executed), one local process each — as Celery's peer
//! runs one `celery worker -c 2`.
//!
//! Rows:
//! - `throughput_1k_tiny_tasks`: 1,000 tiny tasks (`x * x`) submitted, then
//!   all joined; one iteration is the whole batch (tasks/s = 1e12 / ns).
//! - `round_trip_tiny_task`: one tiny task submitted and joined, one at a
//!   time; `round_trip_tiny_task_p50` / `_p99` are the percentiles of 400
//!   such round trips (written to `target/weft-bench/extra/weft-cluster.json`).
//!
//! Impls: `weft-cluster` (through NATS JetStream, file storage),
//! `weft-process (local pool)` (the same tasks on a 2-process local pool,
//! no network), and the peer's `celery-5-redis`.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use weft_cluster::{Cluster, Worker};
use weft_process::ProcessPool;

const WORKER_ENV: &str = "WEFT_CLUSTER_BENCH_WORKER";

fn square(x: u64) -> u64 {
    x * x
}
weft_process::register!(square);

struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    _server: Reaped,
    _workers: Vec<Reaped>,
    store: std::path::PathBuf,
    cluster: Option<Cluster>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        drop(self.cluster.take());
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

fn setup() -> Setup {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = std::env::temp_dir().join(format!("weft-cluster-bench-{}", std::process::id()));
    let server = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Reaped)
        .expect(
            "the weft-cluster bench needs nats-server on the PATH (apt-get install nats-server)",
        );
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "nats-server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let workers = (0..2)
        .map(|_| {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .env(WORKER_ENV, &url)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a worker");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(
                line.starts_with("ready"),
                "the worker did not start: {line}"
            );
            Reaped(child)
        })
        .collect();
    let cluster = Cluster::builder().url(url).build().expect("connect");
    // Warm up both workers.
    let warm: Vec<_> = (0..100).map(|x| cluster.submit(square, x)).collect();
    for h in warm {
        h.join().unwrap();
    }
    Setup {
        _server: server,
        _workers: workers,
        store,
        cluster: Some(cluster),
    }
}

fn percentiles(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.5), at(0.99))
}

fn write_extra_rows(rows: &[(&str, &str, f64)]) {
    let json: Vec<String> = rows
        .iter()
        .map(|(bench, imp, ns)| {
            format!(r#"{{"bench": "{bench}", "impl": "{imp}", "ns_per_iter": {ns}}}"#)
        })
        .collect();
    // target/release/deps/cluster-<hash> -> target/weft-bench/extra/
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.ancestors().nth(3)?.to_path_buf()));
    if let Some(dir) = target.map(|t| t.join("weft-bench/extra")) {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join("weft-cluster.json"),
            format!("[\n{}\n]\n", json.join(",\n")),
        );
    }
}

fn main() {
    if let Ok(url) = std::env::var(WORKER_ENV) {
        let worker = Worker::builder()
            .url(url)
            .processes(1)
            .start()
            .expect("the bench worker starts");
        println!("ready");
        worker.wait();
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let quick = std::env::args().any(|a| a == "--measurement-time");
    let setup = setup();
    let cluster = setup.cluster.as_ref().unwrap();
    let local = ProcessPool::builder().processes(2).build().unwrap();

    let mut g = c.benchmark_group("throughput_1k_tiny_tasks");
    g.sample_size(10);
    g.bench_function("weft", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..1000u64).map(|x| cluster.submit(square, x)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
    });
    g.bench_function("weft-process (local pool)", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..1000u64).map(|x| local.submit(square, x)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("round_trip_tiny_task");
    g.bench_function("weft", |b| {
        b.iter(|| cluster.submit(square, 3).join().unwrap())
    });
    g.bench_function("weft-process (local pool)", |b| {
        b.iter(|| local.submit(square, 3).join().unwrap())
    });
    g.finish();

    // Percentiles of single round trips (criterion gives means and medians
    // of iteration batches only).
    let n = if quick { 200 } else { 400 };
    let sample = |f: &dyn Fn() -> u64| {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed().as_nanos() as f64
            })
            .collect::<Vec<_>>()
    };
    let (c50, c99) = percentiles(sample(&|| cluster.submit(square, 3).join().unwrap()));
    let (l50, l99) = percentiles(sample(&|| local.submit(square, 3).join().unwrap()));
    println!(
        "round_trip_tiny_task: weft-cluster p50 {c50:.0} ns, p99 {c99:.0} ns; local pool p50 {l50:.0} ns, p99 {l99:.0} ns"
    );
    write_extra_rows(&[
        ("round_trip_tiny_task_p50", "weft", c50),
        ("round_trip_tiny_task_p99", "weft", c99),
        ("round_trip_tiny_task_p50", "weft-process (local pool)", l50),
        ("round_trip_tiny_task_p99", "weft-process (local pool)", l99),
    ]);
    drop(local);
    drop(setup);
    c.final_summary();
}
