//! `cargo xtask bench`'s report: the rows a run measured (median and the
//! 95% confidence interval of that median), the ratios weft/peer with
//! their own interval (parity when it contains 1.0), the goals, the tables
//! of `docs/benchmarks.md` and a ratio chart per crate (SVG, plotters).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use plotters::prelude::*;
use serde_json::{Value, json};

/// One measured row: a workload (`bench`) on one implementation (`imp`),
/// the median time per iteration (per element for `*_per_task` rows, a
/// percentile for `*_p50`/`*_p99` rows) and, when the source gives one, the
/// 95% confidence interval of that median.
#[derive(Debug, Clone)]
pub struct Row {
    pub bench: String,
    pub imp: String,
    pub ns: f64,
    pub ci: Option<(f64, f64)>,
}

impl Row {
    /// The results.json form: `{"bench", "impl", "ns_per_iter", "lo", "hi"}`
    /// (`lo`/`hi` only when the interval is known).
    pub fn to_json(&self) -> Value {
        let mut v = json!({"bench": self.bench, "impl": self.imp, "ns_per_iter": self.ns});
        if let Some((lo, hi)) = self.ci {
            v["lo"] = json!(lo);
            v["hi"] = json!(hi);
        }
        v
    }

    pub fn from_json(v: &Value) -> Option<Row> {
        let ns = v["ns_per_iter"].as_f64()?;
        Some(Row {
            bench: v["bench"].as_str()?.to_owned(),
            imp: v["impl"].as_str()?.to_owned(),
            ns,
            ci: v["lo"].as_f64().zip(v["hi"].as_f64()),
        })
    }

    /// The interval, or the point itself when none was measured.
    fn bounds(&self) -> (f64, f64) {
        self.ci.unwrap_or((self.ns, self.ns))
    }
}

/// weft's time over a peer's, with the interval the two rows' intervals
/// allow: `[weft.lo / peer.hi, weft.hi / peer.lo]`.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    mid: f64,
    lo: f64,
    hi: f64,
    /// Both rows came with an interval.
    known: bool,
}

impl Ratio {
    fn of(weft: &Row, peer: &Row) -> Ratio {
        let ((wl, wh), (pl, ph)) = (weft.bounds(), peer.bounds());
        Ratio {
            mid: weft.ns / peer.ns,
            lo: wl / ph,
            hi: wh / pl,
            known: weft.ci.is_some() && peer.ci.is_some(),
        }
    }

    /// "faster", "slower" or "parity" (the interval contains 1.0).
    fn verdict(&self, faster: &str, slower: &str) -> String {
        if !self.known {
            "no spread measured".into()
        } else if self.lo <= 1.0 && self.hi >= 1.0 {
            "parity".into()
        } else if self.hi < 1.0 {
            faster.into()
        } else {
            slower.into()
        }
    }

    fn cell(&self) -> String {
        if self.known {
            format!("{:.2}x [{:.2}, {:.2}]", self.mid, self.lo, self.hi)
        } else {
            format!("{:.2}x", self.mid)
        }
    }
}

/// `(bench, impl, median, interval)` for every criterion estimate written
/// since `since`: `median.point_estimate` and `median.confidence_interval`
/// of `new/estimates.json`, per element when the group declares
/// `Throughput::Elements(n)`.
pub fn read_criterion(dir: &Path, since: SystemTime) -> Vec<Row> {
    let mut out = Vec::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return out;
    };
    for group in groups.flatten() {
        let Ok(funcs) = std::fs::read_dir(group.path()) else {
            continue;
        };
        for func in funcs.flatten() {
            let new = func.path().join("new");
            let est = new.join("estimates.json");
            let fresh = std::fs::metadata(&est)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= since);
            if !fresh {
                continue;
            }
            let (Some(est), Some(meta)) = (read_json(&est), read_json(&new.join("benchmark.json")))
            else {
                continue;
            };
            let median = &est["median"];
            let ci = &median["confidence_interval"];
            let (Some(bench), Some(imp), Some(ns)) = (
                meta["group_id"].as_str(),
                meta["function_id"].as_str(),
                median["point_estimate"].as_f64(),
            ) else {
                continue;
            };
            // A group that declares `Throughput::Elements(n)` is reported
            // per element (per task, per handle): its name says so.
            let per = meta["throughput"]["Elements"]
                .as_f64()
                .unwrap_or(1.0)
                .max(1.0);
            out.push(Row {
                bench: bench.to_owned(),
                imp: imp.to_owned(),
                ns: ns / per,
                ci: ci["lower_bound"]
                    .as_f64()
                    .zip(ci["upper_bound"].as_f64())
                    .map(|(lo, hi)| (lo / per, hi / per)),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.bench, a.imp != "weft", &a.imp).cmp(&(&b.bench, b.imp != "weft", &b.imp))
    });
    out
}

pub fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

/// A time with its interval: `14.8 ns [14.7, 15.0]`.
fn fmt_row(r: &Row) -> String {
    match r.ci {
        Some((lo, hi)) => format!("{} [{}, {}]", fmt_ns(r.ns), fmt_ns(lo), fmt_ns(hi)),
        None => fmt_ns(r.ns),
    }
}

/// Rows named `<workload>_detection_on` are the `deadlock-detection`
/// feature's build of `<workload>`: a cost table, not a race.
const DETECTION_ON: &str = "_detection_on";

/// A goal an issue set on a row: weft's time at most `at_most` times the
/// peer's (`peer: Some`), or at most `at_most` nanoseconds (`peer: None`).
struct Goal {
    krate: &'static str,
    bench: &'static str,
    peer: Option<&'static str>,
    at_most: f64,
    issue: u32,
}

const GOALS: &[Goal] = &[
    Goal {
        krate: "weft-sync",
        bench: "mutex_critical_section_100ns_2_threads",
        peer: Some("parking_lot"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "mutex_critical_section_100ns_4_threads",
        peer: Some("parking_lot"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "mutex_critical_section_100ns_4_threads_wait_p99",
        peer: Some("parking_lot"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "mutex_critical_section_100ns_4_threads_wait_p999",
        peer: Some("parking_lot"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "rlock_critical_section_100ns_2_threads",
        peer: Some("parking_lot"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "rlock_critical_section_100ns_4_threads",
        peer: Some("parking_lot"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "queue_mpmc_4p_4c_bounded_1024",
        peer: Some("async-channel"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "async_mutex_uncontended",
        peer: Some("async-lock"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "async_mutex_contended_4_tasks",
        peer: Some("async-lock"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "async_mutex_held_across_yield_4_tasks",
        peer: Some("async-lock"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "event_ping_pong_round_trip",
        peer: Some("parking_lot (Condvar)"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "event_wake_parked_p50",
        peer: Some("parking_lot (Condvar)"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "condition_ping_pong_round_trip",
        peer: Some("parking_lot (Condvar)"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-sync",
        bench: "condition_wake_parked_p50",
        peer: Some("parking_lot (Condvar)"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-cluster",
        bench: "throughput_1k_tiny_tasks",
        peer: Some("celery-5-redis"),
        at_most: 0.1,
        issue: 15,
    },
    Goal {
        krate: "weft-cluster",
        bench: "round_trip_tiny_task_p50",
        peer: Some("celery-5-redis"),
        at_most: 0.2,
        issue: 15,
    },
    Goal {
        krate: "weft-pool",
        bench: "map_10m_u64_fresh_vec",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "map_10m_u64_reused_buf",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "map_reduce_10m_u64_sum",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "fib_30_join_cutoff_15",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "fib_30_join_cutoff_15",
        peer: Some("chili"),
        at_most: 1.1,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "tree_sum_16m_join_cutoff_1024",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "tree_sum_16m_join_cutoff_1024",
        peer: Some("chili"),
        at_most: 1.1,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "tree_sum_2m_random_order_join_cutoff_1024",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "tree_sum_2m_random_order_join_cutoff_1024",
        peer: Some("chili"),
        at_most: 1.1,
        issue: 16,
    },
    Goal {
        krate: "weft-pool",
        bench: "par_iter_sum_squares_100m_u64",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 18,
    },
    Goal {
        krate: "weft-pool",
        bench: "par_iter_filter_collect_10m_u64",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 18,
    },
    Goal {
        krate: "weft-pool",
        bench: "par_iter_mandelbrot_1024x512_rows",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 18,
    },
    Goal {
        krate: "weft-pool",
        bench: "par_sort_unstable_10m_u32",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 18,
    },
    Goal {
        krate: "weft-pool",
        bench: "par_sort_10m_u32",
        peer: Some("rayon"),
        at_most: 1.0,
        issue: 18,
    },
    Goal {
        krate: "weft-pool",
        bench: "par_iter_fine_grained_1m_20ns",
        peer: Some("rayon"),
        at_most: 0.7,
        issue: 18,
    },
    Goal {
        krate: "weft-async",
        bench: "spawn_await",
        peer: Some("tokio"),
        at_most: 0.5,
        issue: 16,
    },
    Goal {
        krate: "weft-process",
        bench: "round_trip_tiny_task",
        peer: Some("raw-unix-seqpacket (floor)"),
        at_most: 2.0,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "round_trip_tiny_task",
        peer: Some("ipc-channel"),
        at_most: 1.0,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "round_trip_tiny_task_one_cpu",
        peer: Some("raw-unix-seqpacket (floor)"),
        at_most: 2.0,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "round_trip_tiny_task_one_cpu",
        peer: Some("ipc-channel"),
        at_most: 1.0,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "submit_10k_tiny_tasks",
        peer: Some("python-process-pool-executor"),
        at_most: 0.1,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "map_1m_tiny_tasks",
        peer: Some("python-mp-pool"),
        at_most: 1.0,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "bytes_64mib_round_trip",
        peer: None,
        at_most: 50e6,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "crash_to_replacement",
        peer: None,
        at_most: 5e6,
        issue: 5,
    },
    Goal {
        krate: "weft-process",
        bench: "process_start_join",
        peer: Some("python-process-fork"),
        at_most: 0.5,
        issue: 14,
    },
    Goal {
        krate: "weft-process",
        bench: "queue_100k_items",
        peer: Some("python-mp-queue"),
        at_most: 0.2,
        issue: 14,
    },
];

/// Whether `(mid, lo, hi)` meets "at most `goal`": met when the whole
/// interval is at or under it, missed when the whole interval is over it,
/// and otherwise said as it is (a goal of 1.0x inside the interval is
/// parity, which meets "no slower than").
fn judge(mid: f64, lo: f64, hi: f64, known: bool, goal: f64) -> &'static str {
    if !known {
        if mid <= goal {
            "met (median only: no spread measured)"
        } else {
            "**missed** (median only)"
        }
    } else if hi <= goal {
        "met"
    } else if lo > goal {
        "**missed**"
    } else if goal == 1.0 {
        "met (parity)"
    } else if mid <= goal {
        "not settled: the median meets it, the interval reaches past it"
    } else {
        "not settled: the median misses it, the interval reaches under it"
    }
}

/// The rows of one crate's record entry.
fn entry_rows(entry: &Value) -> Vec<Row> {
    entry["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Row::from_json)
        .collect()
}

/// `docs/benchmarks.md`'s text before the first crate section.
const HEADER: &str = "\
# Benchmarks

Generated by `cargo xtask bench` from criterion's estimates (do not edit by hand;
the data is in `docs/benchmarks.json`). Each workload runs on weft and on its peers
in the same process. Every time is the **median** of the samples with the **95%
confidence interval of that median** in brackets (criterion's
`median.confidence_interval`; the Python peers and the percentile rows compute the
same from their own runs). Times are per iteration of the workload, except rows
named `*_per_task` / `*_per_handle` (time per task or handle) and `*_p50` / `*_p99` /
`*_p999` (percentiles of single measurements; `timers_lateness_p99`: the median over runs of
each run's 99th-percentile lateness).

The ratio is weft's time divided by the peer's, so **below 1.00 means weft is
faster**; its interval runs from weft's low bound over the peer's high bound to
weft's high bound over the peer's low bound. A ratio whose interval contains 1.00 is
reported as **parity**, not as a win or a loss. Each crate's chart shows the same
ratios (dot: median; bar: interval; grey: parity).

A `--quick` run takes 10 samples per row, so its intervals are wide. On a shared
2-core machine the rows that hinge on threads waking each other
(`queue_bounded_spsc`, `*_contended_*`) vary several-fold from run to run: compare
a few runs before drawing conclusions. The last section, `scaling`, is written by
`cargo xtask bench --scaling`: weft-pool against rayon and chili at each thread
count up to the machine's cores (its curves: `benchmarks/scaling.svg`).

<!-- tables -->
";

/// What a reader must know to read a crate's rows fairly (peers' policies,
/// rows that are not races).
const NOTES: &[(&str, &str)] = &[
    (
        "weft-cluster",
        "One client and two workers on this machine: weft-cluster through a `nats-server \
         -js` of the bench's own (file storage, every task and result stored and \
         acknowledged), two worker processes of one local process each; Celery 5 with a \
         Redis broker and result backend, one `celery worker -c 2` (prefork), its defaults \
         otherwise (early acks, prefetch 4). `weft-process (local pool)` is the same task \
         on a 2-process local pool: what going through NATS costs, not a peer. \
         `throughput_1k_tiny_tasks` is one batch of 1,000 submits then joins (tasks/s = \
         1e12 / ns); the `_p50`/`_p99` rows are percentiles of single round trips.",
    ),
    (
        "weft-pool",
        "`*_join_no_cutoff` rows are the cost of a `join` with no user cutoff, not a race \
         of schedulers: weft's `join` is a plain call below a worker's four outermost \
         pending joins, chili's for 63 of 64 joins once 3 jobs are queued, rayon pushes \
         and pops every job. The `*_join_cutoff_*` rows give every pool the same user \
         cutoff and the same never-inlined sequential leaf. The `map_*` rows (bench \
         `pool`) use `map_slice` (`fresh_vec`) or a `join` split to 1024 items (chili the \
         same split) where rayon uses `par_iter` (`collect_into_vec`, `sum`); every output \
         buffer is allocated on the calling thread. The `par_iter_*` and `par_sort*` rows \
         (bench `par_iter`) are one source text compiled twice, under weft's and under \
         rayon's prelude, each in its own pool's `install`; LLVM turns each leaf of \
         `par_iter_sum_squares_100m_u64` into a closed form for both, so that row times \
         the dispatch and splitting around nearly empty leaves (wake-up latency, which \
         swings with the machine's load). On a shared machine, check their ratios with \
         `cargo run --release -p weft-pool --example par_iter_interleaved` (weft and \
         rayon taking turns). chili has only `join`. \
         Threads: `WEFT_BENCH_THREADS` (default: all cores).",
    ),
    (
        "weft-sync",
        "`semaphore_contended_4_threads_2_permits` compares like with like against \
         `async-lock`, whose `Semaphore` has weft's policy (a free permit goes to whoever \
         takes it first, \"barging\"; waiters are woken in order). `tokio (fair FIFO \
         policy)` hands a released permit to the oldest waiter: that row compares \
         policies, not implementations; so do the `tokio (fair FIFO policy)` rows of \
         `async_mutex_contended_4_tasks` and `async_mutex_held_across_yield_4_tasks` \
         (async-lock's `Mutex` barges as weft's does, with eventual fairness: a lock \
         starved for 0.5 ms is handed over). The async mutex rows run 4 tasks on a \
         multi-threaded tokio runtime with a worker per core (the uncontended row on \
         `futures_lite::block_on`); the second yields to the runtime with the lock \
         held.\n\n\
         `*_critical_section_100ns_*`: N threads take the lock back to back and do ~100 ns \
         of dependent arithmetic on one shared cache line inside it (one never-inlined \
         function for every lock; the reentrant rows put a `RefCell` in both locks, as \
         their docs do). The row is the time per acquisition, all threads together. \
         `*_wait_p50`/`_p99`/`_p999` are percentiles of each acquisition's wait (from \
         just before `lock` to the first instruction inside; median over 11 runs of 100k \
         acquisitions per thread, the locks taking turns). All three locks let a running \
         thread take a free lock ahead of parked ones, so most acquisitions are the \
         holder relocking at once: p50 and usually p99 are the two clock reads (~30-40 \
         ns), and the waits of threads that queued show in p99.9. parking_lot adds \
         eventual fairness (a fair hand-over when a waiter has waited 0.5 ms); weft and \
         std have none.\n\n\
         `queue_mpmc_4p_4c_bounded_1024`: 4 producers and 4 consumers, blocking put/get; \
         `async-channel` (through `send_blocking`/`recv_blocking`) is built on the same \
         concurrent-queue and event-listener as weft's `Queue`. std's `sync_channel` has \
         one receiver: its consumers share it behind a `Mutex`, as the Rust book's \
         thread pool does, and the row is named so.\n\n\
         `event_*` and `condition_*`: weft's `Event` (`wait` then `clear`, Python's \
         idiom) and `Condition` over a weft `Mutex<bool>` (notifying after the guard \
         drops, as its docs do) against parking_lot's and std's `Condvar` with a \
         `Mutex<bool>` (notifying with the guard held, as their docs do; parking_lot \
         requeues the waiter onto the mutex for it). `*_ping_pong_round_trip`: two \
         threads hand a flag back and forth. `*_wake_parked_p50`/`_p99`: the notifier \
         waits 200 µs (the waiter is parked, past any spinning), reads the clock and \
         notifies; the row is the time until the waiter runs (median over 7 runs of 400 \
         wake-ups). The peers' `wake_parked` rows come from the same runs under both \
         names. No peer shares the primitive under weft's `Event` (event-listener, \
         whose blocking waiters park through the `parking` crate) or its `Condition` \
         (its own FIFO queue of threads and tasks, woken outside its lock); their goals \
         are set against parking_lot, the crate weft-sync is built on. `Event` spins \
         and yields briefly before it parks, so a prompt `set` rarely costs a sleep \
         (and costs more when other processes hog the cores). `Condition` parks at \
         once: before its own queue it went through event-listener, which wakes the \
         waiter while holding the list lock the waiter takes first (strace, 20k round \
         trips: 7.6-8.5 futex calls per round trip; now 2.1, parking_lot's 2.0-2.2), \
         and its ping-pong now ties parking_lot's within this machine's noise \
         (4-33 µs against 4-31 µs in the same runs).",
    ),
    (
        "weft-async",
        "`tokio (LocalSet)` rows run tokio's `spawn_local` in a fresh `LocalSet` per \
         iteration (the workloads' tasks hold `Rc`s); the `tokio` row of `spawn_await` is \
         tokio's main path, `Runtime::block_on` with `tokio::spawn` on the current-thread \
         runtime. `timers_lateness_p99` is how late the sleeps end, not a duration of \
         work.",
    ),
    (
        "weft-process",
        "`raw-unix-seqpacket (floor)` is an 8-byte ping-pong between two processes over a \
         `SOCK_SEQPACKET` socket pair (the socket type of weft's pool and ipc-channel), \
         blocking send then blocking receive, as weft's `apply` does. Unpinned, a round \
         trip on a VM costs what the scheduler's placement costs (a cross-CPU wake-up \
         is several times a same-CPU switch), and each row gets the placement it drew; \
         `round_trip_tiny_task_one_cpu` puts every process of every row (Python's too) \
         on one CPU, so the rows differ only by their own code. `pool_startup` is a \
         2-process pool's whole life on every row: start, first tiny task, teardown with \
         the workers reaped. Python runs with its default start method (fork).",
    ),
];

/// One crate's section: heading, provenance, chart, the race table, the
/// cost-of-detection table, goals and notes.
pub fn render_section(krate: &str, entry: &Value, chart: Option<&str>) -> String {
    let load = entry["load"]
        .as_str()
        .map(|l| {
            format!(
                " 1-minute load average as this crate's benches started: {l} (earlier \
                 crates of the same command count in it)."
            )
        })
        .unwrap_or_default();
    let mut md = format!(
        "\n## {krate}\n\nMachine: {}. Command: `{}` ({}).{load}\n\n",
        entry["machine"].as_str().unwrap_or("?"),
        entry["command"].as_str().unwrap_or("?"),
        entry["date"].as_str().unwrap_or("?"),
    );
    if let Some(chart) = chart {
        md.push_str(&format!("![{krate}: weft time / peer time]({chart})\n\n"));
    }
    let rows = entry_rows(entry);
    let mut by_bench: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        by_bench.entry(r.bench.as_str()).or_default().push(r);
    }
    let weft_of = |bench: &str| {
        by_bench
            .get(bench)
            .and_then(|rs| rs.iter().find(|r| r.imp == "weft").copied())
    };
    md.push_str(
        "| workload | weft | peer | peer's time | weft/peer | verdict |\n|---|---|---|---|---|---|\n",
    );
    for (bench, impls) in &by_bench {
        if bench.ends_with(DETECTION_ON) {
            continue;
        }
        let weft = weft_of(bench);
        let peers: Vec<&&Row> = impls.iter().filter(|r| r.imp != "weft").collect();
        let weft_cell = weft.map_or("-".into(), fmt_row);
        if peers.is_empty() {
            md.push_str(&format!("| {bench} | {weft_cell} | - | - | - | - |\n"));
        }
        for (k, p) in peers.iter().enumerate() {
            let (b, w) = if k == 0 {
                (*bench, weft_cell.as_str())
            } else {
                ("", "")
            };
            let (ratio, verdict) = match weft {
                Some(w) => {
                    let r = Ratio::of(w, p);
                    (r.cell(), r.verdict("weft faster", "weft slower"))
                }
                None => ("-".into(), "-".into()),
            };
            md.push_str(&format!(
                "| {b} | {w} | {} | {} | {ratio} | {verdict} |\n",
                p.imp,
                fmt_row(p)
            ));
        }
    }
    // The cost of a feature: the same workload built with it and without.
    let costs: Vec<(&str, &Row, &Row)> = by_bench
        .keys()
        .filter_map(|b| {
            let base = b.strip_suffix(DETECTION_ON)?;
            Some((base, weft_of(base)?, weft_of(b)?))
        })
        .collect();
    if !costs.is_empty() {
        md.push_str(
            "\n### Cost of deadlock detection\n\n\
             The same workload on weft built without and with the `deadlock-detection` \
             feature (same run): the price of the feature, not a race against a peer.\n\n\
             | workload | detection off | detection on | on/off | verdict |\n|---|---|---|---|---|\n",
        );
        for (base, off, on) in costs {
            let r = Ratio::of(on, off);
            md.push_str(&format!(
                "| {base} | {} | {} | {} | {} |\n",
                fmt_row(off),
                fmt_row(on),
                r.cell(),
                r.verdict("cheaper with detection", "costs more with detection")
                    .replace("parity", "no measurable cost")
            ));
        }
    }
    let goals: Vec<&Goal> = GOALS.iter().filter(|g| g.krate == krate).collect();
    if !goals.is_empty() {
        md.push_str("\n### Goals\n\n| goal | this run | verdict |\n|---|---|---|\n");
        for g in goals {
            let Some(w) = weft_of(g.bench) else {
                continue;
            };
            let (goal, result, verdict) = match g.peer {
                Some(peer) => {
                    let Some(p) = by_bench
                        .get(g.bench)
                        .and_then(|rs| rs.iter().find(|r| r.imp == peer))
                    else {
                        continue;
                    };
                    let r = Ratio::of(w, p);
                    (
                        format!(
                            "`{}` ≤ {:.2}x {peer} (issue {})",
                            g.bench, g.at_most, g.issue
                        ),
                        r.cell(),
                        judge(r.mid, r.lo, r.hi, r.known, g.at_most),
                    )
                }
                None => {
                    let (lo, hi) = w.bounds();
                    (
                        format!(
                            "`{}` under {} (issue {})",
                            g.bench,
                            fmt_ns(g.at_most),
                            g.issue
                        ),
                        fmt_row(w),
                        judge(w.ns, lo, hi, w.ci.is_some(), g.at_most),
                    )
                }
            };
            md.push_str(&format!("| {goal} | {result} | {verdict} |\n"));
        }
    }
    if let Some((_, note)) = NOTES.iter().find(|(c, _)| *c == krate) {
        md.push_str(&format!("\n{note}\n"));
    }
    md
}

/// `old` (the current `docs/benchmarks.md`) with the header and the
/// sections of `fresh` replaced; other crates' sections are kept as they
/// are, byte for byte; a crate in neither gets `missing(crate)`. Sections
/// are in `order`.
pub fn splice_sections(
    old: &str,
    fresh: &BTreeMap<String, String>,
    order: &[&str],
    missing: impl Fn(&str) -> Option<String>,
) -> String {
    let body = old.split_once("<!-- tables -->\n").map_or("", |(_, b)| b);
    // Existing sections, keyed by crate: each runs from its "## <crate>"
    // line to the next crate's.
    let mut kept: BTreeMap<&str, String> = BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in body.split_inclusive('\n') {
        if let Some(c) = line.strip_prefix("## ").map(str::trim)
            && let Some(c) = order.iter().find(|o| **o == c)
        {
            current = Some(c);
            kept.insert(c, "\n".into());
        }
        if let Some(c) = current {
            kept.get_mut(c).unwrap().push_str(line);
        }
    }
    let mut md = String::from(HEADER);
    for c in order {
        if let Some(s) = fresh.get(*c) {
            md.push_str(s);
        } else if let Some(s) = kept.get(c) {
            // Drop the blank line the previous section ended with.
            md.push_str(s.trim_end_matches('\n'));
            md.push('\n');
        } else if let Some(s) = missing(c) {
            // In the record but not in the file yet.
            md.push_str(&s);
        }
    }
    md
}

/// One line of a ratio chart.
struct Bar {
    label: String,
    ratio: Ratio,
}

/// Draws `krate`'s ratios weft/peer (one line per workload and peer; the
/// cost-of-detection rows are not races and are left out) to `path` as
/// SVG. Returns false when there is nothing to draw.
pub fn ratio_chart(path: &Path, krate: &str, entry: &Value) -> Result<bool, String> {
    let rows = entry_rows(entry);
    let bars: Vec<Bar> = rows
        .iter()
        .filter(|w| w.imp == "weft" && !w.bench.ends_with(DETECTION_ON))
        .flat_map(|w| {
            rows.iter()
                .filter(move |p| p.bench == w.bench && p.imp != "weft")
                .map(move |p| Bar {
                    label: format!("{} vs {}", w.bench, p.imp),
                    ratio: Ratio::of(w, p),
                })
        })
        .collect();
    if bars.is_empty() {
        return Ok(false);
    }
    draw_bars(path, &format!("{krate}: weft time / peer time"), &bars)
        .map_err(|e| format!("drawing {}: {e}", path.display()))?;
    Ok(true)
}

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

fn draw_bars(path: &Path, title: &str, bars: &[Bar]) -> DrawResult<()> {
    let n = bars.len();
    let root = SVGBackend::new(path, (960, 90 + 22 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    // A linear axis in log2 space, labelled with the ratios (1/4x, 1/2x,
    // 1x, 2x...), wide enough for every interval and for 1/2x..2x.
    let (min, max) = bars.iter().fold((0.5f64, 2.0f64), |(a, b), bar| {
        (a.min(bar.ratio.lo), b.max(bar.ratio.hi))
    });
    let (min, max) = ((min.log2() - 0.2).floor(), (max.log2() + 0.2).ceil());
    let label = |i: i32| {
        usize::try_from(n as i32 - 1 - i)
            .ok()
            .and_then(|k| bars.get(k))
            .map_or(String::new(), |b| b.label.clone())
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(400)
        .build_cartesian_2d(min..max, (0..n as i32).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => label(*i),
            _ => String::new(),
        })
        .x_labels((max - min) as usize + 1)
        .x_label_formatter(&|x| {
            let r = x.exp2();
            if r >= 1.0 {
                format!("{r:.0}x")
            } else {
                format!("1/{:.0}x", 1.0 / r)
            }
        })
        .x_desc("weft time / peer time (log scale): left of 1x, weft is faster")
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Last)],
        BLACK.stroke_width(1),
    )))?;
    for (k, b) in bars.iter().enumerate() {
        let y = SegmentValue::CenterOf((n - 1 - k) as i32);
        let r = b.ratio;
        let colour = if !r.known || (r.lo <= 1.0 && r.hi >= 1.0) {
            RGBColor(120, 120, 120)
        } else if r.hi < 1.0 {
            RGBColor(0, 120, 60)
        } else {
            RGBColor(200, 40, 40)
        };
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(r.lo.log2(), y.clone()), (r.hi.log2(), y.clone())],
            colour.stroke_width(3),
        )))?;
        chart.draw_series(std::iter::once(Circle::new(
            (r.mid.log2(), y),
            4,
            colour.filled(),
        )))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bench: &str, imp: &str, ns: f64, lo: f64, hi: f64) -> Row {
        Row {
            bench: bench.into(),
            imp: imp.into(),
            ns,
            ci: Some((lo, hi)),
        }
    }

    #[test]
    fn a_ratio_whose_interval_contains_one_is_parity() {
        let w = row("b", "weft", 10.0, 9.0, 11.0);
        let p = row("b", "peer", 10.5, 10.0, 11.0);
        let r = Ratio::of(&w, &p);
        assert!((r.lo - 9.0 / 11.0).abs() < 1e-9 && (r.hi - 1.1).abs() < 1e-9);
        assert_eq!(r.verdict("faster", "slower"), "parity");
        let p = row("b", "peer", 20.0, 19.0, 21.0);
        assert_eq!(Ratio::of(&w, &p).verdict("faster", "slower"), "faster");
        assert_eq!(Ratio::of(&p, &w).verdict("faster", "slower"), "slower");
    }

    #[test]
    fn goals_are_judged_on_the_interval() {
        assert_eq!(judge(0.4, 0.3, 0.45, true, 0.5), "met");
        assert_eq!(judge(0.6, 0.55, 0.7, true, 0.5), "**missed**");
        assert!(judge(0.45, 0.4, 0.55, true, 0.5).starts_with("not settled: the median meets"));
        assert_eq!(judge(1.01, 0.9, 1.1, true, 1.0), "met (parity)");
    }

    #[test]
    fn only_the_fresh_sections_are_rewritten() {
        let old = "# old header\n\n<!-- tables -->\n\n## weft-sync\n\nold sync\n\n## weft-pool\n\nPOOL, kept | as is |\n\n## weft-async\n\nold async\n";
        let fresh: BTreeMap<String, String> = [
            (
                "weft-sync".to_owned(),
                "\n## weft-sync\n\nnew sync\n".to_owned(),
            ),
            (
                "weft-process".to_owned(),
                "\n## weft-process\n\nnew process\n".to_owned(),
            ),
        ]
        .into();
        let md = splice_sections(
            old,
            &fresh,
            &[
                "weft-sync",
                "weft-pool",
                "weft-async",
                "weft-process",
                "weft",
            ],
            |c| (c == "weft").then(|| "\n## weft\n\nfrom the record\n".to_owned()),
        );
        let tables = md.split_once("<!-- tables -->\n").unwrap().1;
        assert_eq!(
            tables,
            "\n## weft-sync\n\nnew sync\n\n## weft-pool\n\nPOOL, kept | as is |\n\n## weft-async\n\nold async\n\n## weft-process\n\nnew process\n\n## weft\n\nfrom the record\n"
        );
        assert!(md.starts_with(HEADER));
    }
}
