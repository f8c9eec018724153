//! weft-sync against its peers, same workload, same run.
//!
//! Group name = workload, function name = implementation (`weft` or the
//! peer's crate name): `cargo xtask bench` turns these into the table in
//! docs/benchmarks.md.
//!
//! Semaphore policies: weft's `Semaphore` lets any caller take a free
//! permit (one compare-and-swap; a woken waiter can lose the permit to a
//! newcomer: "barging"), and wakes waiters in arrival order. async-lock's
//! `Semaphore` has the same policy (`try_acquire` is a CAS loop on the
//! count, a release adds to the count and notifies one event-listener
//! waiter, which must race for the permit again), so it is the like-for-like
//! peer on the contended row. tokio's `Semaphore` is fair: a released permit
//! goes to the oldest waiter (its batch semaphore queues acquirers FIFO and
//! a newcomer cannot take a permit while others wait). Fairness costs hand-
//! offs under contention, so its row is kept but named for its policy,
//! `tokio (fair FIFO policy)`: it compares policies, not implementations.
//!
//! `mutex_nested` (one lock held while another is taken) is the
//! detection-off twin of `benches/deadlock.rs`'s `mutex_nested_detection_on`.
//!
//! Issue 16's rows, each peer held as its own docs and benchmarks hold it:
//!
//! - `mutex_critical_section_100ns_{2,4}_threads` (and `rlock_...` against
//!   parking_lot's `ReentrantMutex`, a `RefCell` inside both, as their docs
//!   do): N threads take the lock back to back and do ~100 ns of dependent
//!   multiply-adds on one shared cache line inside it (one never-inlined
//!   function for every lock). The criterion row is the time per
//!   acquisition, all threads together; `_wait_p50`/`_wait_p99`/
//!   `_wait_p999` are percentiles of each acquisition's wait (from just
//!   before `lock` to the first instruction inside), measured in separate
//!   runs, the locks taking turns, median over runs with its interval, and
//!   written to `target/weft-bench/extra/weft-sync.json` for the xtask.
//! - `queue_mpmc_4p_4c_bounded_1024`: 4 producers, 4 consumers, 1024 slots,
//!   blocking put/get; peers crossbeam-channel, flume, async-channel (the
//!   same concurrent-queue + event-listener pair as weft's `Queue`, through
//!   its blocking calls) and std's `sync_channel`, which has one receiver:
//!   its consumers share it behind a `Mutex`, as the Rust book's thread
//!   pool does, and the row is named so.
//! - `async_mutex_uncontended` (on `futures_lite::block_on`, as the
//!   semaphore rows), `async_mutex_contended_4_tasks` and
//!   `async_mutex_held_across_yield_4_tasks` (4 tasks on a multi-threaded
//!   tokio runtime with a worker per core; the second yields to the
//!   runtime with the lock held): weft's `lock_async` against
//!   `tokio::sync::Mutex` and `async_lock::Mutex`. weft's lock lets any
//!   caller take a free lock (barging), as async-lock's does (which adds
//!   eventual fairness: a waiter starved for 0.5 ms gets the lock handed
//!   over); tokio's hands the lock to the oldest waiter, so its contended
//!   rows are named `tokio (fair FIFO policy)`: they compare policies.
//! - `event_ping_pong_round_trip` / `condition_ping_pong_round_trip`: two
//!   threads hand a flag back and forth (weft `Event`: `wait` then `clear`;
//!   weft `Condition` over a weft `Mutex<bool>`, notifying after the guard
//!   drops as its docs do; parking_lot's and std's `Condvar` with a
//!   `Mutex<bool>`, notifying with the guard held as their docs do).
//!   `event_wake_parked_p50`/`_p99` and `condition_wake_parked_*`: the
//!   notifier waits 200 µs (the waiter is parked, long past any spinning),
//!   reads the clock and sets; the row is the time until the waiter runs.

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use futures_lite::future::block_on;

/// Runs `threads` threads that each do `iters / threads` operations with
/// `op`, started together, and returns the wall time of the whole batch.
fn parallel<S: Send + Sync + 'static>(
    iters: u64,
    threads: u64,
    shared: Arc<S>,
    op: fn(&S, u64),
) -> Duration {
    let per = iters.div_ceil(threads);
    let start_line = Arc::new(std::sync::Barrier::new(threads as usize + 1));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (shared, start_line) = (shared.clone(), start_line.clone());
            thread::spawn(move || {
                start_line.wait();
                op(&shared, per);
            })
        })
        .collect();
    start_line.wait();
    let start = Instant::now();
    for h in hs {
        h.join().unwrap();
    }
    start.elapsed()
}

fn mutex_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended");
    let weft = weft_sync::Mutex::new(0u64);
    g.bench_function("weft", |b| b.iter(|| *black_box(&weft).lock() += 1));
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot", |b| b.iter(|| *black_box(&pl).lock() += 1));
    let std_m = std::sync::Mutex::new(0u64);
    g.bench_function("std", |b| {
        b.iter(|| *black_box(&std_m).lock().unwrap() += 1)
    });
    g.finish();
}

fn mutex_contended(c: &mut Criterion, threads: u64) {
    let mut g = c.benchmark_group(format!("mutex_contended_{threads}_threads"));
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                threads,
                Arc::new(weft_sync::Mutex::new(0u64)),
                |m, n| {
                    for _ in 0..n {
                        *m.lock() += 1;
                    }
                },
            )
        })
    });
    g.bench_function("parking_lot", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                threads,
                Arc::new(parking_lot::Mutex::new(0u64)),
                |m, n| {
                    for _ in 0..n {
                        *m.lock() += 1;
                    }
                },
            )
        })
    });
    g.bench_function("std", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                threads,
                Arc::new(std::sync::Mutex::new(0u64)),
                |m, n| {
                    for _ in 0..n {
                        *m.lock().unwrap() += 1;
                    }
                },
            )
        })
    });
    g.finish();
}

fn mutex_contended_2(c: &mut Criterion) {
    mutex_contended(c, 2);
}

fn mutex_contended_4(c: &mut Criterion) {
    mutex_contended(c, 4);
}

/// One lock held while another is taken: the work deadlock detection adds
/// to (an ordering edge per nested acquisition), measured here without it.
fn mutex_nested(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_nested");
    let (a, b) = (weft_sync::Mutex::new(0u64), weft_sync::Mutex::new(0u64));
    g.bench_function("weft", |bench| {
        bench.iter(|| {
            let _a = black_box(&a).lock();
            *black_box(&b).lock() += 1;
        })
    });
    let (a, b) = (parking_lot::Mutex::new(0u64), parking_lot::Mutex::new(0u64));
    g.bench_function("parking_lot", |bench| {
        bench.iter(|| {
            let _a = black_box(&a).lock();
            *black_box(&b).lock() += 1;
        })
    });
    g.finish();
}

fn semaphore_uncontended(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_acquire_release");
    let weft = weft_sync::Semaphore::new(1);
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&weft).acquire_async().await);
                }
                start.elapsed()
            })
        })
    });
    let tokio_sem = tokio::sync::Semaphore::new(1);
    g.bench_function("tokio", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&tokio_sem).acquire().await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let al = async_lock::Semaphore::new(1);
    g.bench_function("async-lock", |b| {
        b.iter_custom(|iters| {
            block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    drop(black_box(&al).acquire().await);
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn semaphore_contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("semaphore_contended_4_threads_2_permits");
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            parallel(iters, 4, Arc::new(weft_sync::Semaphore::new(2)), |s, n| {
                block_on(async {
                    for _ in 0..n {
                        drop(s.acquire_async().await);
                    }
                })
            })
        })
    });
    g.bench_function("tokio (fair FIFO policy)", |b| {
        b.iter_custom(|iters| {
            parallel(
                iters,
                4,
                Arc::new(tokio::sync::Semaphore::new(2)),
                |s, n| {
                    block_on(async {
                        for _ in 0..n {
                            drop(s.acquire().await.unwrap());
                        }
                    })
                },
            )
        })
    });
    g.bench_function("async-lock", |b| {
        b.iter_custom(|iters| {
            parallel(iters, 4, Arc::new(async_lock::Semaphore::new(2)), |s, n| {
                block_on(async {
                    for _ in 0..n {
                        drop(s.acquire().await);
                    }
                })
            })
        })
    });
    g.finish();
}

/// One producer thread puts `iters` items through a bounded channel of 64
/// slots to the measuring thread.
fn queue_bounded(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_bounded_spsc");
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(weft_sync::Queue::bounded(64));
            let q2 = q.clone();
            let start = Instant::now();
            let p = thread::spawn(move || {
                for i in 0..iters {
                    q2.put(i).unwrap();
                }
            });
            for _ in 0..iters {
                black_box(q.get().unwrap());
            }
            p.join().unwrap();
            start.elapsed()
        })
    });
    g.bench_function("crossbeam-channel", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = crossbeam_channel::bounded(64);
            let start = Instant::now();
            let p = thread::spawn(move || {
                for i in 0..iters {
                    tx.send(i).unwrap();
                }
            });
            for _ in 0..iters {
                black_box(rx.recv().unwrap());
            }
            p.join().unwrap();
            start.elapsed()
        })
    });
    g.bench_function("std", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = std::sync::mpsc::sync_channel(64);
            let start = Instant::now();
            let p = thread::spawn(move || {
                for i in 0..iters {
                    tx.send(i).unwrap();
                }
            });
            for _ in 0..iters {
                black_box(rx.recv().unwrap());
            }
            p.join().unwrap();
            start.elapsed()
        })
    });
    g.finish();
}

// ------------------------------------------------- rows measured by hand

/// Whether a criterion name filter given on the command line (if any)
/// matches one of `names`: the hand-measured percentile rows honour it as
/// criterion's own rows do.
fn wanted(names: &[&str]) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    // A filter is a regex; its alternatives, as substrings, are enough for
    // a name filter.
    filters.is_empty()
        || filters.iter().any(|f| {
            f.split('|').any(|part| {
                names
                    .iter()
                    .any(|name| name.contains(part) || part.contains(name))
            })
        })
}

/// The median of `v` with a 95% confidence interval of the median (order
/// statistics: ranks n/2 -+ 0.98 sqrt(n)); with few values the interval is
/// wide (min..max up to n = 5), as it should be.
fn median_ci(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let mid = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor().max(1.0) as usize).min(n) - 1;
    let hi = ((n as f64 / 2.0 + half).ceil() as usize).clamp(1, n) - 1;
    (mid, v[lo], v[hi])
}

/// The `q` quantile (0..1) of `v`, sorted in place.
fn quantile(v: &mut [u64], q: f64) -> f64 {
    v.sort_unstable();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)] as f64
}

/// The rows of this run that criterion does not give (percentiles), as
/// JSON objects; every addition rewrites
/// `target/weft-bench/extra/weft-sync.json`, which `cargo xtask bench`
/// merges into the table.
static EXTRA_ROWS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Records percentile rows: `(bench, impl, runs)`, where `runs` holds one
/// value per run; the row is the median over the runs with its interval.
fn add_extra_rows(rows: Vec<(String, &str, Vec<f64>)>) {
    let mut all = EXTRA_ROWS.lock().unwrap();
    for (bench, imp, runs) in rows {
        let n = runs.len();
        let (ns, lo, hi) = median_ci(runs);
        eprintln!("{bench}/{imp}: {ns:.0} ns [{lo:.0}, {hi:.0}] (median of {n} runs' percentiles)");
        all.push(format!(
            r#"{{"bench": "{bench}", "impl": "{imp}", "ns_per_iter": {ns}, "lo": {lo}, "hi": {hi}}}"#
        ));
    }
    // target/release/deps/sync-<hash> -> target/weft-bench/extra/
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.ancestors().nth(3)?.to_path_buf()));
    if let Some(dir) = target.map(|t| t.join("weft-bench/extra")) {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join("weft-sync.json"),
            format!("[\n{}\n]\n", all.join(",\n")),
        );
    }
}

/// `elapsed` for `done` operations, scaled to the `iters` criterion asked
/// for (the threads split the work evenly, which may round `iters` up).
fn scaled(elapsed: Duration, iters: u64, done: u64) -> Duration {
    elapsed.mul_f64(iters as f64 / done as f64)
}

// ------------------------------------- locks with a real critical section

/// The state the critical sections work on: one cache line.
type Shared = [u64; 8];

/// Steps of [`critical_work`]: a chain of dependent multiply-adds through
/// the shared line, about 100 ns on the 2-core bench machine (the bench
/// prints what it takes alone, first).
const CS_STEPS: usize = 44;

/// The work done inside the lock on the shared line: the same
/// never-inlined function for every lock.
#[inline(never)]
fn critical_work(s: &mut Shared, seed: u64) {
    let mut x = seed;
    for i in 0..CS_STEPS {
        x = x
            .wrapping_mul(0x5851_F42D_4C95_7F2D)
            .wrapping_add(s[i % 8] ^ (i as u64));
        s[i % 8] = x;
    }
}

/// A lock as its authors hold it: acquire, run `f` on the state, release.
trait CsLock: Send + Sync + 'static {
    fn new() -> Self;
    fn with(&self, f: impl FnOnce(&mut Shared));
}

impl CsLock for weft_sync::Mutex<Shared> {
    fn new() -> Self {
        weft_sync::Mutex::new([0; 8])
    }
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.lock())
    }
}

impl CsLock for parking_lot::Mutex<Shared> {
    fn new() -> Self {
        parking_lot::Mutex::new([0; 8])
    }
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.lock())
    }
}

impl CsLock for std::sync::Mutex<Shared> {
    fn new() -> Self {
        std::sync::Mutex::new([0; 8])
    }
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.lock().unwrap())
    }
}

// A reentrant lock hands out `&T`: both crates' docs put a `RefCell`
// inside for mutation.
impl CsLock for weft_sync::RLock<RefCell<Shared>> {
    fn new() -> Self {
        weft_sync::RLock::new(RefCell::new([0; 8]))
    }
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.lock().borrow_mut())
    }
}

impl CsLock for parking_lot::ReentrantMutex<RefCell<Shared>> {
    fn new() -> Self {
        parking_lot::ReentrantMutex::new(RefCell::new([0; 8]))
    }
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut self.lock().borrow_mut())
    }
}

/// `threads` threads, started together, each taking the lock `per` times
/// and doing [`critical_work`] on the shared line inside it, back to back
/// (no work between critical sections: with as much work outside as
/// inside, two threads fall into step, one inside while the other is out,
/// and never wait). Returns the wall time and, with `WAITS`, every
/// acquisition's wait: from just before the lock call to the first
/// instruction inside the critical section.
///
/// Each thread starts its loop only once every thread is running (a
/// thread woken first would otherwise run alone for a while), and a run
/// must last many scheduler time slices for the threads to meet at all:
/// the groups sample flat (every sample the same length) for that reason.
fn cs_run<L: CsLock, const WAITS: bool>(threads: usize, per: u64) -> (Duration, Vec<u64>) {
    let lock = Arc::new(L::new());
    let start_line = Arc::new((std::sync::Barrier::new(threads + 1), AtomicUsize::new(0)));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (lock, start_line) = (lock.clone(), start_line.clone());
            thread::spawn(move || {
                let mut waits = Vec::with_capacity(if WAITS { per as usize } else { 0 });
                start_line.0.wait();
                start_line.1.fetch_add(1, Ordering::SeqCst);
                while start_line.1.load(Ordering::SeqCst) < threads {
                    thread::yield_now();
                }
                for i in 0..per {
                    let asked = WAITS.then(Instant::now);
                    lock.with(|s| {
                        if let Some(asked) = asked {
                            waits.push(asked.elapsed().as_nanos() as u64);
                        }
                        critical_work(s, i);
                    });
                }
                waits
            })
        })
        .collect();
    start_line.0.wait();
    let start = Instant::now();
    let mut waits = Vec::new();
    for h in hs {
        waits.extend(h.join().unwrap());
    }
    let elapsed = start.elapsed();
    lock.with(|s| {
        black_box(s);
    });
    (elapsed, waits)
}

/// One lock of a critical-section group: its row name and its runs
/// (`cs_run::<L, false>` and `cs_run::<L, true>`).
type CsImpl = (
    &'static str,
    fn(usize, u64) -> (Duration, Vec<u64>),
    fn(usize, u64) -> (Duration, Vec<u64>),
);

fn cs_impl<L: CsLock>(name: &'static str) -> CsImpl {
    (name, cs_run::<L, false>, cs_run::<L, true>)
}

/// Runs a critical-section group: one criterion row per lock
/// (throughput: time per acquisition, all threads together), then the
/// `_wait_p50`/`_wait_p99`/`_wait_p999` rows (p99.9), measured in runs of
/// their own (timing every acquisition would slow the throughput rows),
/// the locks taking turns run by run so that a change in the machine's
/// load falls on all of them alike.
///
/// With the threads taking the lock back to back, most acquisitions are
/// the holder taking it again at once (every lock here lets a running
/// thread barge ahead of a parked one), so p50 and usually p99 are the
/// clock's own cost; the waits of threads that did queue are in the top
/// fraction of a percent, hence p99.9.
fn cs_group(c: &mut Criterion, name: &str, threads: usize, impls: &[CsImpl]) {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    for &(imp, run, _) in impls {
        g.bench_function(imp, |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(threads as u64);
                let (t, _) = run(threads, per);
                scaled(t, iters, per * threads as u64)
            })
        });
    }
    g.finish();
    let names = [50.0, 99.0, 99.9].map(|q: f64| {
        (
            format!("{name}_wait_p{}", q.to_string().replace('.', "")),
            q / 100.0,
        )
    });
    if !wanted(&names.each_ref().map(|(n, _)| n.as_str())) {
        return;
    }
    let mut runs: Vec<[Vec<f64>; 3]> = impls.iter().map(|_| Default::default()).collect();
    // One round to warm up, then the measured rounds.
    for round in 0..=CS_WAIT_RUNS {
        for (&(_, _, timed), runs) in impls.iter().zip(&mut runs) {
            let (_, mut w) = timed(threads, CS_WAIT_PER_THREAD);
            if round > 0 {
                for ((_, q), r) in names.iter().zip(runs) {
                    r.push(quantile(&mut w, *q));
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (&(imp, _, _), runs) in impls.iter().zip(runs) {
        for ((n, _), r) in names.iter().zip(runs) {
            rows.push((n.clone(), imp, r));
        }
    }
    add_extra_rows(rows);
}

/// Runs of the wait-percentile rows, and acquisitions per thread in each.
const CS_WAIT_RUNS: usize = 11;
const CS_WAIT_PER_THREAD: u64 = 100_000;

fn critical_section(c: &mut Criterion) {
    {
        let mut s: Shared = [1; 8];
        let n = 1_000_000;
        let t = Instant::now();
        for i in 0..n {
            critical_work(black_box(&mut s), i);
        }
        eprintln!(
            "critical_work alone: {:.1} ns ({CS_STEPS} steps)",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    for threads in [2, 4] {
        cs_group(
            c,
            &format!("mutex_critical_section_100ns_{threads}_threads"),
            threads,
            &[
                cs_impl::<weft_sync::Mutex<Shared>>("weft"),
                cs_impl::<parking_lot::Mutex<Shared>>("parking_lot"),
                cs_impl::<std::sync::Mutex<Shared>>("std"),
            ],
        );
        cs_group(
            c,
            &format!("rlock_critical_section_100ns_{threads}_threads"),
            threads,
            &[
                cs_impl::<weft_sync::RLock<RefCell<Shared>>>("weft"),
                cs_impl::<parking_lot::ReentrantMutex<RefCell<Shared>>>("parking_lot"),
            ],
        );
    }
}

// ------------------------------------------------------------ MPMC queue

/// Producers and consumers of the MPMC row.
const MPMC_SIDES: u64 = 4;

/// `MPMC_SIDES` producers each put `per` items (of `iters` in all) into a
/// channel of 1024 slots that `MPMC_SIDES` consumers each take `per` items
/// from (the shape of crossbeam-channel's and flume's own `mpmc`
/// benchmarks); all start together. Returns the time per item, scaled to
/// `iters`, and checks that every item arrived once.
fn mpmc<S, R>(iters: u64, (tx, rx): (S, R), send: fn(&S, u64), recv: fn(&R) -> u64) -> Duration
where
    S: Clone + Send + 'static,
    R: Clone + Send + 'static,
{
    let per = iters.div_ceil(MPMC_SIDES);
    let start_line = Arc::new(std::sync::Barrier::new(2 * MPMC_SIDES as usize + 1));
    let producers: Vec<_> = (0..MPMC_SIDES)
        .map(|_| {
            let (tx, start_line) = (tx.clone(), start_line.clone());
            thread::spawn(move || {
                start_line.wait();
                for i in 0..per {
                    send(&tx, i);
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..MPMC_SIDES)
        .map(|_| {
            let (rx, start_line) = (rx.clone(), start_line.clone());
            thread::spawn(move || {
                start_line.wait();
                let mut sum = 0u64;
                for _ in 0..per {
                    sum = sum.wrapping_add(recv(&rx));
                }
                sum
            })
        })
        .collect();
    drop((tx, rx));
    start_line.wait();
    let start = Instant::now();
    for p in producers {
        p.join().unwrap();
    }
    let sum = consumers
        .into_iter()
        .fold(0u64, |a, c| a.wrapping_add(c.join().unwrap()));
    let elapsed = start.elapsed();
    assert_eq!(sum, MPMC_SIDES * (per * per.saturating_sub(1) / 2));
    scaled(elapsed, iters, per * MPMC_SIDES)
}

fn queue_mpmc(c: &mut Criterion) {
    const CAP: usize = 1024;
    let mut g = c.benchmark_group("queue_mpmc_4p_4c_bounded_1024");
    // Every sample long enough for the eight threads to meet (see cs_run).
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(weft_sync::Queue::bounded(CAP));
            mpmc(
                iters,
                (q.clone(), q),
                |q, i| q.put(i).unwrap(),
                |q| q.get().unwrap(),
            )
        })
    });
    g.bench_function("crossbeam-channel", |b| {
        b.iter_custom(|iters| {
            mpmc(
                iters,
                crossbeam_channel::bounded(CAP),
                |tx, i| tx.send(i).unwrap(),
                |rx| rx.recv().unwrap(),
            )
        })
    });
    g.bench_function("flume", |b| {
        b.iter_custom(|iters| {
            mpmc(
                iters,
                flume::bounded(CAP),
                |tx, i| tx.send(i).unwrap(),
                |rx| rx.recv().unwrap(),
            )
        })
    });
    g.bench_function("async-channel", |b| {
        b.iter_custom(|iters| {
            mpmc(
                iters,
                async_channel::bounded(CAP),
                |tx, i| tx.send_blocking(i).unwrap(),
                |rx| rx.recv_blocking().unwrap(),
            )
        })
    });
    g.bench_function("std (sync_channel, Receiver in a Mutex)", |b| {
        b.iter_custom(|iters| {
            let (tx, rx) = std::sync::mpsc::sync_channel(CAP);
            mpmc(
                iters,
                (tx, Arc::new(std::sync::Mutex::new(rx))),
                |tx, i| tx.send(i).unwrap(),
                |rx| rx.lock().unwrap().recv().unwrap(),
            )
        })
    });
    g.finish();
}

// ------------------------------------------------------------ async Mutex

/// An async mutex as its authors hold it.
trait AsyncMutex: Send + Sync + 'static {
    fn new() -> Self;
    /// Lock, add one, unlock.
    fn bump(&self) -> impl Future<Output = ()> + Send + '_;
    /// Lock, add one, yield to the executor with the lock held, unlock:
    /// the reason to use an async mutex rather than a blocking one.
    fn bump_across_yield(&self) -> impl Future<Output = ()> + Send + '_;
}

impl AsyncMutex for weft_sync::Mutex<u64> {
    fn new() -> Self {
        weft_sync::Mutex::new(0)
    }
    async fn bump(&self) {
        *self.lock_async().await += 1
    }
    async fn bump_across_yield(&self) {
        let mut g = self.lock_async().await;
        *g += 1;
        tokio::task::yield_now().await;
    }
}

impl AsyncMutex for tokio::sync::Mutex<u64> {
    fn new() -> Self {
        tokio::sync::Mutex::new(0)
    }
    async fn bump(&self) {
        *self.lock().await += 1
    }
    async fn bump_across_yield(&self) {
        let mut g = self.lock().await;
        *g += 1;
        tokio::task::yield_now().await;
    }
}

impl AsyncMutex for async_lock::Mutex<u64> {
    fn new() -> Self {
        async_lock::Mutex::new(0)
    }
    async fn bump(&self) {
        *self.lock().await += 1
    }
    async fn bump_across_yield(&self) {
        let mut g = self.lock().await;
        *g += 1;
        tokio::task::yield_now().await;
    }
}

/// Tasks of the contended async rows.
const ASYNC_TASKS: u64 = 4;

/// `ASYNC_TASKS` tasks on a multi-threaded tokio runtime, each bumping
/// the mutex `per` times (of `iters` in all). Returns the time, scaled to
/// `iters`, and checks the count.
fn async_contended<M: AsyncMutex>(
    rt: &tokio::runtime::Runtime,
    iters: u64,
    across_yield: bool,
) -> Duration {
    let per = iters.div_ceil(ASYNC_TASKS);
    let m = Arc::new(M::new());
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let hs: Vec<_> = (0..ASYNC_TASKS)
            .map(|_| {
                let m = m.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        if across_yield {
                            m.bump_across_yield().await;
                        } else {
                            m.bump().await;
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
        start.elapsed()
    });
    scaled(elapsed, iters, per * ASYNC_TASKS)
}

fn async_mutex(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("async_mutex_uncontended");
        fn row<M: AsyncMutex>(b: &mut criterion::Bencher<'_>) {
            let m = M::new();
            b.iter_custom(|iters| {
                block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(&m).bump().await;
                    }
                    start.elapsed()
                })
            })
        }
        g.bench_function("weft", row::<weft_sync::Mutex<u64>>);
        g.bench_function("tokio", row::<tokio::sync::Mutex<u64>>);
        g.bench_function("async-lock", row::<async_lock::Mutex<u64>>);
        g.finish();
    }
    // The machine's cores as workers (tokio's default).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, across_yield) in [
        ("async_mutex_contended_4_tasks", false),
        ("async_mutex_held_across_yield_4_tasks", true),
    ] {
        let mut g = c.benchmark_group(name);
        g.sampling_mode(SamplingMode::Flat);
        g.bench_function("weft", |b| {
            b.iter_custom(|iters| {
                async_contended::<weft_sync::Mutex<u64>>(&rt, iters, across_yield)
            })
        });
        g.bench_function("tokio (fair FIFO policy)", |b| {
            b.iter_custom(|iters| {
                async_contended::<tokio::sync::Mutex<u64>>(&rt, iters, across_yield)
            })
        });
        g.bench_function("async-lock", |b| {
            b.iter_custom(|iters| {
                async_contended::<async_lock::Mutex<u64>>(&rt, iters, across_yield)
            })
        });
        g.finish();
    }
}

// ------------------------------------------- Event / Condition wake-ups

/// A one-waiter signal as its authors hold it: a flag the notifier sets
/// and the waiter waits for and clears.
trait Signal: Send + Sync + 'static {
    fn new() -> Self;
    fn set(&self);
    fn wait_clear(&self);
}

/// Python's idiom: `event.wait(); event.clear()`.
impl Signal for weft_sync::Event {
    fn new() -> Self {
        weft_sync::Event::new()
    }
    fn set(&self) {
        weft_sync::Event::set(self)
    }
    fn wait_clear(&self) {
        self.wait();
        self.clear();
    }
}

/// weft's `Condition` over a weft `Mutex<bool>`, as its docs use it
/// (notify after the guard is dropped).
struct WeftCondition(weft_sync::Mutex<bool>, weft_sync::Condition);

impl Signal for WeftCondition {
    fn new() -> Self {
        WeftCondition(weft_sync::Mutex::new(false), weft_sync::Condition::new())
    }
    fn set(&self) {
        *self.0.lock() = true;
        self.1.notify_one();
    }
    fn wait_clear(&self) {
        let mut g = self.0.lock();
        self.1.wait_for(&mut g, |set| *set);
        *g = false;
    }
}

/// parking_lot's `Condvar` and `Mutex<bool>`, as its docs use them
/// (notify with the guard held, which its requeueing is built for).
struct PlCondvar(parking_lot::Mutex<bool>, parking_lot::Condvar);

impl Signal for PlCondvar {
    fn new() -> Self {
        PlCondvar(parking_lot::Mutex::new(false), parking_lot::Condvar::new())
    }
    fn set(&self) {
        let mut g = self.0.lock();
        *g = true;
        self.1.notify_one();
    }
    fn wait_clear(&self) {
        let mut g = self.0.lock();
        while !*g {
            self.1.wait(&mut g);
        }
        *g = false;
    }
}

/// std's `Condvar` and `Mutex<bool>`, as its docs use them (notify with
/// the guard held, `wait_while`).
struct StdCondvar(std::sync::Mutex<bool>, std::sync::Condvar);

impl Signal for StdCondvar {
    fn new() -> Self {
        StdCondvar(std::sync::Mutex::new(false), std::sync::Condvar::new())
    }
    fn set(&self) {
        let mut g = self.0.lock().unwrap();
        *g = true;
        self.1.notify_one();
    }
    fn wait_clear(&self) {
        let mut g = self
            .1
            .wait_while(self.0.lock().unwrap(), |set| !*set)
            .unwrap();
        *g = false;
    }
}

/// `iters` round trips between this thread and another over two signals:
/// set `ping`, wait for `pong`; the other waits for `ping`, sets `pong`.
fn ping_pong<S: Signal>(iters: u64) -> Duration {
    let pair = Arc::new((S::new(), S::new()));
    let other = {
        let pair = pair.clone();
        thread::spawn(move || {
            for _ in 0..iters {
                pair.0.wait_clear();
                pair.1.set();
            }
        })
    };
    let start = Instant::now();
    for _ in 0..iters {
        pair.0.set();
        pair.1.wait_clear();
    }
    let elapsed = start.elapsed();
    other.join().unwrap();
    elapsed
}

/// Samples per run of the parked-waiter rows, runs, and how long the
/// notifier leaves the waiter before setting (long past any spinning).
const WAKE_SAMPLES: usize = 400;
const WAKE_RUNS: usize = 7;
const WAKE_PARKED_FOR: Duration = Duration::from_micros(200);

/// One run of the parked-waiter rows: the waiter thread waits; the
/// notifier sleeps [`WAKE_PARKED_FOR`], reads the clock and sets; the
/// waiter reads the clock as its wait returns. Returns each sample's
/// notify-to-running time.
fn wake_parked<S: Signal>() -> Vec<u64> {
    let base = Instant::now();
    let shared = Arc::new((S::new(), AtomicU64::new(0)));
    let waiter = {
        let shared = shared.clone();
        thread::spawn(move || {
            for _ in 0..WAKE_SAMPLES {
                shared.0.wait_clear();
                let now = base.elapsed().as_nanos() as u64;
                shared.1.store(now, Ordering::Release);
            }
        })
    };
    let mut lat = Vec::with_capacity(WAKE_SAMPLES);
    let mut last = 0;
    for _ in 0..WAKE_SAMPLES {
        thread::sleep(WAKE_PARKED_FOR);
        let set_at = base.elapsed().as_nanos() as u64;
        shared.0.set();
        let woke_at = loop {
            let t = shared.1.load(Ordering::Acquire);
            if t != last {
                break t;
            }
            thread::yield_now();
        };
        last = woke_at;
        lat.push(woke_at.saturating_sub(set_at));
    }
    waiter.join().unwrap();
    lat
}

fn wake_ups(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("event_ping_pong_round_trip");
        g.bench_function("weft", |b| b.iter_custom(ping_pong::<weft_sync::Event>));
        g.bench_function("parking_lot (Condvar)", |b| {
            b.iter_custom(ping_pong::<PlCondvar>)
        });
        g.bench_function("std (Condvar)", |b| b.iter_custom(ping_pong::<StdCondvar>));
        g.finish();
    }
    {
        let mut g = c.benchmark_group("condition_ping_pong_round_trip");
        g.bench_function("weft", |b| b.iter_custom(ping_pong::<WeftCondition>));
        g.bench_function("parking_lot (Condvar)", |b| {
            b.iter_custom(ping_pong::<PlCondvar>)
        });
        g.bench_function("std (Condvar)", |b| b.iter_custom(ping_pong::<StdCondvar>));
        g.finish();
    }
    let names = [
        "event_wake_parked_p50",
        "event_wake_parked_p99",
        "condition_wake_parked_p50",
        "condition_wake_parked_p99",
    ];
    if !wanted(&names) {
        return;
    }
    // Each round runs every implementation once, so that a change in the
    // machine's load falls on all alike; one round to warm up. The peers'
    // runs serve both the Event and the Condition rows (the same code
    // would be measured twice).
    type WakeImpl = (fn() -> Vec<u64>, &'static [(usize, &'static str)]);
    let impls: [WakeImpl; 4] = [
        (wake_parked::<weft_sync::Event>, &[(0, "weft")]),
        (wake_parked::<WeftCondition>, &[(2, "weft")]),
        (
            wake_parked::<PlCondvar>,
            &[(0, "parking_lot (Condvar)"), (2, "parking_lot (Condvar)")],
        ),
        (
            wake_parked::<StdCondvar>,
            &[(0, "std (Condvar)"), (2, "std (Condvar)")],
        ),
    ];
    let mut runs: Vec<[Vec<f64>; 2]> = impls.iter().map(|_| Default::default()).collect();
    for round in 0..=WAKE_RUNS {
        for ((run, _), runs) in impls.iter().zip(&mut runs) {
            let mut lat = run();
            if round > 0 {
                runs[0].push(quantile(&mut lat, 0.50));
                runs[1].push(quantile(&mut lat, 0.99));
            }
        }
    }
    let mut rows = Vec::new();
    for ((_, rows_of), [p50, p99]) in impls.iter().zip(runs) {
        for &(k, imp) in *rows_of {
            rows.push((names[k].to_owned(), imp, p50.clone()));
            rows.push((names[k + 1].to_owned(), imp, p99.clone()));
        }
    }
    add_extra_rows(rows);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mutex_uncontended, mutex_nested, mutex_contended_2, mutex_contended_4,
        semaphore_uncontended, semaphore_contended, queue_bounded,
        critical_section, queue_mpmc, async_mutex, wake_ups
}
criterion_main!(benches);
