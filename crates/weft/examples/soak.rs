//! The soak test behind `cargo xtask soak`: every engine under sustained,
//! mixed load at once, with invariants checked after every round.
//!
//! ```text
//! cargo run --release -p weft --example soak -- --seconds 30
//! cargo run --release -p weft --example soak -- --minutes 10
//! ```
//!
//! Three threads run rounds concurrently until the time is up:
//!
//! - **weft-pool**: `spawn` (values, panics, nested `join` and `scope`),
//!   cancel before start, `join` and `scope` from outside the pool, and every
//!   few rounds a second pool shut down with `CancelPending` while work is
//!   queued.
//! - **weft-async**: `spawn`, `cancel`, `timeout`s that fire, panics,
//!   `TaskGroup`s whose failing child cancels its siblings, and thread-pool
//!   handles awaited through `to_thread`.
//! - **weft-process**: tasks, panics, timeouts that kill a hung worker,
//!   workers that crash with `std::process::abort`, cancel before start, and
//!   every few rounds a second pool `terminate`d with work in flight.
//!
//! Invariants, checked continuously:
//!
//! - every submitted task is reported exactly once (its done-callback or
//!   its await runs once), with the outcome its kind calls for;
//! - no thread or process leaks: `/proc/self/task` and this process's
//!   children are counted after a warm-up and again at the end, and the
//!   children stay within the pools' sizes during the run;
//! - memory stays flat: RSS (`/proc/self/status`) is sampled; the run fails
//!   if it grows past a generous bound after the warm-up or keeps climbing.
//!
//! It ends with `soak: N tasks, 0 lost, 0 duplicated, peak RSS X MiB` and
//! exits non-zero if any invariant failed.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use weft::aio::{GroupError, TaskGroup};
use weft::pool::{ShutdownMode, ThreadPool};
use weft::process::{ProcessPool, WorkerExit};
use weft::sync::{TaskError, TaskHandle};

/// Every deliberate panic carries this text, so that the panic hook can
/// keep them off stderr and the checks can recognise them.
const INTENDED: &str = "soak: intended panic";

/// How long any one task may take to be reported before it counts as lost.
const REPORT_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Functions the process workers run.

fn echo(x: u64) -> u64 {
    x.wrapping_mul(3)
}

fn boom(x: u64) -> u64 {
    quiet_panics();
    panic!("{INTENDED} {x}")
}

fn hang(x: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(3600));
    x
}

fn crash(_: u64) -> u64 {
    std::process::abort()
}

weft::process::register!(echo, boom, hang, crash);

// ---------------------------------------------------------------------------
// Bookkeeping.

/// Totals over the whole run, shared by the engine threads.
#[derive(Default)]
struct Stats {
    tasks: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
    ok: AtomicU64,
    panicked: AtomicU64,
    cancelled: AtomicU64,
    timed_out: AtomicU64,
    worker_lost: AtomicU64,
    other: AtomicU64,
    rounds: [AtomicU64; 3],
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn fail(&self, engine: &str, what: String) {
        eprintln!("soak: FAILED [{engine}] {what}");
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.push(format!("[{engine}] {what}"));
    }

    fn failed(&self) -> bool {
        !self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    fn count<T>(&self, outcome: &Result<T, TaskError>) {
        let counter = match outcome {
            Ok(_) => &self.ok,
            Err(TaskError::Panicked { .. }) => &self.panicked,
            Err(TaskError::Cancelled) => &self.cancelled,
            Err(TaskError::TimedOut { .. }) => &self.timed_out,
            Err(TaskError::WorkerLost { .. }) => &self.worker_lost,
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// One round's per-task record: how often each task ran and how often its
/// outcome was reported.
struct Ledger {
    ran: Vec<AtomicU32>,
    reports: Vec<AtomicU32>,
}

impl Ledger {
    fn new(n: usize) -> Arc<Ledger> {
        Arc::new(Ledger {
            ran: (0..n).map(|_| AtomicU32::new(0)).collect(),
            reports: (0..n).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    fn ran(&self, i: usize) -> u32 {
        self.ran[i].load(Relaxed)
    }

    /// Checks that every task was reported exactly once.
    fn settle(&self, stats: &Stats, engine: &str, round: u64) {
        for (i, r) in self.reports.iter().enumerate() {
            match r.load(Relaxed) {
                1 => {}
                0 => {
                    stats.lost.fetch_add(1, Relaxed);
                    stats.fail(
                        engine,
                        format!("round {round}: task {i} was never reported"),
                    );
                }
                n => {
                    stats.duplicated.fetch_add(u64::from(n - 1), Relaxed);
                    stats.fail(
                        engine,
                        format!("round {round}: task {i} reported {n} times"),
                    );
                }
            }
        }
    }
}

fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = weft::sync::panic_message(info.payload());
            if !msg.contains(INTENDED) {
                default(info);
            }
        }));
    });
}

fn fib(n: u64) -> u64 {
    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }
}

/// Joins `h`, counting a handle that never finishes as lost.
fn report<T>(
    h: TaskHandle<T>,
    stats: &Stats,
    engine: &str,
    what: &str,
) -> Option<Result<T, TaskError>> {
    match h.join_timeout(REPORT_LIMIT) {
        Ok(outcome) => {
            stats.count(&outcome);
            Some(outcome)
        }
        Err(_) => {
            stats.lost.fetch_add(1, Relaxed);
            stats.fail(
                engine,
                format!("{what}: not finished after {REPORT_LIMIT:?}"),
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------
// weft-pool.

fn pool_body(kind: usize, i: u64) -> u64 {
    match kind {
        4 => panic!("{INTENDED} {i}"),
        6 => {
            let (a, b) = weft::pool::join(|| fib(12), || fib(11));
            a + b + i
        }
        7 => {
            let hits = AtomicU64::new(0);
            weft::pool::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|_| {
                        hits.fetch_add(1, Relaxed);
                    });
                }
            });
            hits.into_inner() + i
        }
        _ => i * 2,
    }
}

fn pool_expected(kind: usize, i: u64) -> u64 {
    match kind {
        6 => fib(13) + i,
        7 => 4 + i,
        _ => i * 2,
    }
}

fn pool_round(pool: &ThreadPool, round: u64, stats: &Stats) {
    const N: usize = 256;
    let ledger = Ledger::new(N);
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let kind = i % 8;
        let l = ledger.clone();
        let h = match pool.spawn(move || {
            l.ran[i].fetch_add(1, Relaxed);
            pool_body(kind, i as u64)
        }) {
            Ok(h) => h,
            Err(e) => {
                stats.fail("pool", format!("round {round}: spawn failed: {e}"));
                ledger.reports[i].store(1, Relaxed);
                continue;
            }
        };
        stats.tasks.fetch_add(1, Relaxed);
        let l = ledger.clone();
        h.add_done_callback(move |_| {
            l.reports[i].fetch_add(1, Relaxed);
        });
        let cancelled = kind == 5 && h.cancel();
        handles.push((i, kind, cancelled, h));
    }

    // Fork/join from outside the pool while the spawned work runs.
    let (a, b) = pool.join(|| fib(15), || fib(14));
    if a + b != fib(16) {
        stats.fail("pool", format!("round {round}: join returned {a} + {b}"));
    }
    let hits = AtomicU64::new(0);
    pool.scope(|s| {
        for _ in 0..16 {
            s.spawn(|s| {
                s.spawn(|_| {
                    hits.fetch_add(1, Relaxed);
                });
            });
        }
    });
    if hits.load(Relaxed) != 16 {
        stats.fail("pool", format!("round {round}: scope ran {hits:?} of 16"));
    }

    for (i, kind, cancelled, h) in handles {
        let Some(outcome) = report(h, stats, "pool", &format!("round {round}: task {i}")) else {
            continue;
        };
        let ran = ledger.ran(i);
        let good = match (&outcome, cancelled) {
            (Err(TaskError::Cancelled), true) => ran == 0,
            (Err(TaskError::Panicked { message }), false) => {
                kind == 4 && message.contains(INTENDED) && ran == 1
            }
            (Ok(v), false) => *v == pool_expected(kind, i as u64) && ran == 1,
            _ => false,
        };
        if !good {
            stats.fail(
                "pool",
                format!("round {round}: task {i} (kind {kind}, cancelled {cancelled}, ran {ran}) ended {outcome:?}"),
            );
        }
    }
    ledger.settle(stats, "pool", round);

    if round % 8 == 7 {
        pool_shutdown_round(round, stats);
    }
}

/// A second pool shut down with `CancelPending` while work is queued: each
/// task either ran and returned, or never ran and was cancelled.
fn pool_shutdown_round(round: u64, stats: &Stats) {
    const N: usize = 64;
    let pool = match ThreadPool::new(2) {
        Ok(p) => p,
        Err(e) => return stats.fail("pool", format!("round {round}: ThreadPool::new(2): {e}")),
    };
    let ledger = Ledger::new(N);
    let mut handles = Vec::new();
    for i in 0..N {
        let l = ledger.clone();
        let Ok(h) = pool.spawn(move || {
            l.ran[i].fetch_add(1, Relaxed);
            if i < 2 {
                std::thread::sleep(Duration::from_millis(5));
            }
            i
        }) else {
            stats.fail(
                "pool",
                format!("round {round}: spawn on a live pool failed"),
            );
            ledger.reports[i].store(1, Relaxed);
            continue;
        };
        stats.tasks.fetch_add(1, Relaxed);
        let l = ledger.clone();
        h.add_done_callback(move |_| {
            l.reports[i].fetch_add(1, Relaxed);
        });
        handles.push((i, h));
    }
    pool.shutdown(ShutdownMode::CancelPending);
    for (i, h) in handles {
        let Some(outcome) = report(
            h,
            stats,
            "pool",
            &format!("round {round}: shutdown task {i}"),
        ) else {
            continue;
        };
        let ran = ledger.ran(i);
        let good = match &outcome {
            Ok(v) => *v == i && ran == 1,
            Err(TaskError::Cancelled) => ran == 0,
            _ => false,
        };
        if !good {
            stats.fail(
                "pool",
                format!("round {round}: shutdown task {i} (ran {ran}) ended {outcome:?}"),
            );
        }
    }
    ledger.settle(stats, "pool", round);
    if pool.spawn(|| ()).is_ok() {
        stats.fail(
            "pool",
            format!("round {round}: spawn after shutdown succeeded"),
        );
    }
}

// ---------------------------------------------------------------------------
// weft-async.

/// Counts when dropped: shows that a cancelled task's future was dropped.
struct DropFlag(Arc<AtomicU32>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Relaxed);
    }
}

async fn async_body(kind: usize, i: u64, ledger: Arc<Ledger>) -> u64 {
    use weft::aio::{sleep, timeout, yield_now};
    let idx = i as usize;
    let v = match kind {
        0 | 1 => {
            yield_now().await;
            i * 2
        }
        2 => {
            sleep(Duration::from_micros(200)).await;
            i * 2
        }
        3 => {
            yield_now().await;
            panic!("{INTENDED} {i}")
        }
        4 => {
            // Cancelled by the round before it can finish.
            sleep(Duration::from_secs(3600)).await;
            u64::MAX
        }
        5 => match timeout(Duration::from_millis(1), sleep(Duration::from_secs(3600))).await {
            Err(_) => i * 2,
            Ok(()) => u64::MAX,
        },
        6 => {
            // The failing child must cancel (drop) its sleeping sibling.
            let dropped = Arc::new(AtomicU32::new(0));
            let group: TaskGroup<'_, u64, String> = TaskGroup::new();
            group.spawn(async {
                yield_now().await;
                Ok(1)
            });
            group.spawn(async {
                yield_now().await;
                Err("soak: intended failure".to_string())
            });
            let flag = DropFlag(dropped.clone());
            group.spawn(async move {
                let _flag = flag;
                sleep(Duration::from_secs(3600)).await;
                Ok(2)
            });
            match group.join().await {
                Err(GroupError::Failed { index: 1, .. }) if dropped.load(Relaxed) == 1 => i * 2,
                _ => u64::MAX,
            }
        }
        _ => weft::aio::to_thread(move || i * 2)
            .await
            .unwrap_or(u64::MAX),
    };
    ledger.ran[idx].fetch_add(1, Relaxed);
    v
}

fn async_round(round: u64, stats: &Stats) {
    const N: usize = 128;
    let ledger = Ledger::new(N);
    let finished = weft::aio::run(weft::aio::timeout(REPORT_LIMIT, async {
        let mut tasks = Vec::with_capacity(N);
        for i in 0..N {
            let kind = i % 8;
            tasks.push((
                i,
                kind,
                weft::aio::spawn(async_body(kind, i as u64, ledger.clone())),
            ));
            stats.tasks.fetch_add(1, Relaxed);
        }
        for (i, kind, task) in tasks {
            let outcome = if kind == 4 {
                match task.cancel().await {
                    None => Err(TaskError::Cancelled),
                    Some(done) => done,
                }
            } else {
                task.await
            };
            ledger.reports[i].fetch_add(1, Relaxed);
            stats.count(&outcome);
            let ran = ledger.ran(i);
            let good = match (&outcome, kind) {
                (Err(TaskError::Cancelled), 4) => ran == 0,
                (Err(TaskError::Panicked { message }), 3) => message.contains(INTENDED) && ran == 0,
                (Ok(v), k) if k != 3 && k != 4 => *v == i as u64 * 2 && ran == 1,
                _ => false,
            };
            if !good {
                stats.fail(
                    "async",
                    format!("round {round}: task {i} (kind {kind}, ran {ran}) ended {outcome:?}"),
                );
            }
        }
    }));
    if finished.is_err() {
        stats.fail(
            "async",
            format!("round {round}: not finished after {REPORT_LIMIT:?}"),
        );
    }
    ledger.settle(stats, "async", round);
}

// ---------------------------------------------------------------------------
// weft-process.

#[derive(Clone, Copy, Debug, PartialEq)]
enum ProcKind {
    Echo,
    Cancel,
    Boom,
    Crash,
    Hang,
}

fn process_round(pool: &ProcessPool, round: u64, stats: &Stats) {
    const N: usize = 24;
    let ledger = Ledger::new(N);
    let mut handles = Vec::with_capacity(N);
    for i in 0..N {
        let kind = match i {
            3 => ProcKind::Boom,
            7 => ProcKind::Crash,
            11 => ProcKind::Hang,
            _ if i % 6 == 5 => ProcKind::Cancel,
            _ => ProcKind::Echo,
        };
        let x = round * 1000 + i as u64;
        let h = match kind {
            ProcKind::Echo | ProcKind::Cancel => pool.submit(echo, x),
            ProcKind::Boom => pool.submit(boom, x),
            ProcKind::Crash => pool.submit(crash, x),
            ProcKind::Hang => pool.submit_with_timeout(hang, x, Duration::from_millis(200)),
        };
        stats.tasks.fetch_add(1, Relaxed);
        let l = ledger.clone();
        h.add_done_callback(move |_| {
            l.reports[i].fetch_add(1, Relaxed);
        });
        let cancelled = kind == ProcKind::Cancel && h.cancel();
        handles.push((i, x, kind, cancelled, h));
    }
    for (i, x, kind, cancelled, h) in handles {
        let Some(outcome) = report(h, stats, "process", &format!("round {round}: task {i}")) else {
            continue;
        };
        let good = match (&outcome, kind) {
            (Err(TaskError::Cancelled), _) => cancelled,
            (Ok(v), ProcKind::Echo | ProcKind::Cancel) => *v == echo(x) && !cancelled,
            (Err(TaskError::Panicked { message }), ProcKind::Boom) => message.contains(INTENDED),
            (
                Err(TaskError::WorkerLost {
                    exit: WorkerExit::Signal(6),
                }),
                ProcKind::Crash,
            ) => true,
            (Err(TaskError::TimedOut { .. }), ProcKind::Hang) => true,
            _ => false,
        };
        if !good {
            stats.fail(
                "process",
                format!(
                    "round {round}: task {i} ({kind:?}, cancelled {cancelled}) ended {outcome:?}"
                ),
            );
        }
    }
    ledger.settle(stats, "process", round);

    let children = children_of_self();
    // Two workers, plus one being replaced after the crash or the timeout.
    if children > pool.processes() + 2 {
        stats.fail(
            "process",
            format!(
                "round {round}: {children} child processes for a pool of {}",
                pool.processes()
            ),
        );
    }

    if round % 10 == 9 {
        process_terminate_round(round, stats);
    }
}

/// A second pool `terminate`d with work in flight: every task ends, as a
/// value or as cancelled, and no worker outlives the pool.
fn process_terminate_round(round: u64, stats: &Stats) {
    const N: usize = 12;
    let pool = match ProcessPool::builder().processes(2).build() {
        Ok(p) => p,
        Err(e) => return stats.fail("process", format!("round {round}: ProcessPool::build: {e}")),
    };
    let ledger = Ledger::new(N);
    let mut handles = Vec::new();
    for i in 0..N {
        let h = if i < 2 {
            pool.submit(hang, i as u64)
        } else {
            pool.submit(echo, i as u64)
        };
        stats.tasks.fetch_add(1, Relaxed);
        let l = ledger.clone();
        h.add_done_callback(move |_| {
            l.reports[i].fetch_add(1, Relaxed);
        });
        handles.push((i, h));
    }
    std::thread::sleep(Duration::from_millis(20));
    pool.terminate();
    for (i, h) in handles {
        let Some(outcome) = report(
            h,
            stats,
            "process",
            &format!("round {round}: terminate task {i}"),
        ) else {
            continue;
        };
        let good = match &outcome {
            Ok(v) => i >= 2 && *v == echo(i as u64),
            Err(TaskError::Cancelled) => true,
            _ => false,
        };
        if !good {
            stats.fail(
                "process",
                format!("round {round}: terminate task {i} ended {outcome:?}"),
            );
        }
    }
    ledger.settle(stats, "process", round);
}

// ---------------------------------------------------------------------------
// The process: threads, children, memory.

fn threads_of_self() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Children of this process, zombies included.
fn children_of_self() -> usize {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                // `pid (comm) state ppid ...`; comm may contain spaces.
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                    .unwrap_or(false)
            })
        })
        .count()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Waits up to `limit` for `ok` to hold.
fn settles(limit: Duration, ok: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn parse_duration() -> Result<Duration, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut duration = Duration::from_secs(10);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let unit = match a.as_str() {
            "--seconds" => 1,
            "--minutes" => 60,
            other => {
                return Err(format!(
                    "unknown argument '{other}' (expected --seconds N or --minutes N)"
                ));
            }
        };
        let n: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{a} needs a positive whole number"))?;
        duration = Duration::from_secs(n * unit);
    }
    Ok(duration)
}

fn main() -> ExitCode {
    let duration = match parse_duration() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::from(2);
        }
    };
    quiet_panics();
    let stats = Arc::new(Stats::default());
    let started = Instant::now();

    // Warm-up: one round of each engine, so that what is started lazily and
    // kept (the global thread pool behind `to_thread` and nested
    // `join`/`scope`, async-io's reactor thread) exists before the baseline.
    {
        let pool = ThreadPool::new(4).expect("a thread pool of 4");
        pool_round(&pool, 0, &stats);
        async_round(0, &stats);
        let procs = ProcessPool::builder()
            .processes(2)
            .build()
            .expect("a process pool of 2");
        process_round(&procs, 0, &stats);
    }
    let base_threads = threads_of_self();
    let base_children = children_of_self();
    let base_rss = rss_mib();
    println!(
        "soak: running for {duration:?}: warm-up done ({} tasks, {base_threads} threads, {base_children} children, RSS {base_rss:.1} MiB)",
        stats.tasks.load(Relaxed)
    );

    let deadline = Instant::now() + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (e, name) in ["pool", "async", "process"].into_iter().enumerate() {
        let stats = stats.clone();
        let stop = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("soak-{name}"))
                .spawn(move || {
                    let pool = (e == 0).then(|| ThreadPool::new(4).expect("a thread pool of 4"));
                    let procs = (e == 2).then(|| {
                        ProcessPool::builder()
                            .processes(2)
                            .build()
                            .expect("a process pool of 2")
                    });
                    let mut round = 1;
                    while Instant::now() < deadline && !stop.load(Relaxed) {
                        match (&pool, &procs) {
                            (Some(p), _) => pool_round(p, round, &stats),
                            (_, Some(p)) => process_round(p, round, &stats),
                            _ => async_round(round, &stats),
                        }
                        stats.rounds[e].fetch_add(1, Relaxed);
                        round += 1;
                    }
                })
                .expect("spawn an engine thread"),
        );
    }

    // Sample memory while the engines run.
    let mut samples: Vec<(Duration, f64)> = Vec::new();
    let mut last_progress = Instant::now();
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        samples.push((started.elapsed(), rss_mib()));
        if last_progress.elapsed() >= Duration::from_secs(30) {
            last_progress = Instant::now();
            println!(
                "soak: {:?} elapsed, {} tasks, RSS {:.1} MiB",
                started.elapsed(),
                stats.tasks.load(Relaxed),
                rss_mib()
            );
        }
        if stats.failed() {
            stop.store(true, Relaxed);
        }
    }
    for t in threads {
        if t.join().is_err() {
            stats.fail("soak", "an engine thread panicked".into());
        }
    }

    // Leaks: every pool of the run is gone now.
    if !settles(Duration::from_secs(10), || {
        threads_of_self() <= base_threads
    }) {
        stats.fail(
            "soak",
            format!(
                "thread leak: {} threads at the end, {base_threads} after warm-up",
                threads_of_self()
            ),
        );
    }
    if !settles(Duration::from_secs(10), || {
        children_of_self() <= base_children
    }) {
        stats.fail(
            "soak",
            format!(
                "process leak: {} children at the end, {base_children} after warm-up",
                children_of_self()
            ),
        );
    }

    // Memory: a generous absolute bound over the warm-up, and no steady
    // climb (the last quarter of the run against the first quarter).
    let peak = samples.iter().map(|s| s.1).fold(base_rss, f64::max);
    let bound = (base_rss * 3.0).max(base_rss + 256.0);
    if peak > bound {
        stats.fail(
            "soak",
            format!("RSS grew to {peak:.1} MiB, over {bound:.1} MiB (warm-up: {base_rss:.1} MiB)"),
        );
    }
    let n = samples.len();
    if n >= 40 {
        let first = samples[..n / 4].iter().map(|s| s.1).fold(0.0, f64::max);
        let last = samples[n - n / 4..].iter().map(|s| s.1).fold(0.0, f64::max);
        if last > first * 1.5 + 64.0 {
            stats.fail(
                "soak",
                format!("RSS keeps growing: {first:.1} MiB in the first quarter, {last:.1} MiB in the last"),
            );
        }
    }

    let s = &stats;
    println!(
        "soak: {:.1?}; rounds: pool {}, async {}, process {}; outcomes: {} ok, {} panicked, {} cancelled, {} timed out, {} worker lost, {} other",
        started.elapsed(),
        s.rounds[0].load(Relaxed),
        s.rounds[1].load(Relaxed),
        s.rounds[2].load(Relaxed),
        s.ok.load(Relaxed),
        s.panicked.load(Relaxed),
        s.cancelled.load(Relaxed),
        s.timed_out.load(Relaxed),
        s.worker_lost.load(Relaxed),
        s.other.load(Relaxed),
    );
    println!(
        "soak: {} tasks, {} lost, {} duplicated, peak RSS {:.1} MiB",
        s.tasks.load(Relaxed),
        s.lost.load(Relaxed),
        s.duplicated.load(Relaxed),
        peak
    );
    let failures = s.failures.lock().unwrap_or_else(|e| e.into_inner());
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("soak: {} invariant failure(s); the first:", failures.len());
        for f in failures.iter().take(10) {
            eprintln!("  {f}");
        }
        ExitCode::FAILURE
    }
}
