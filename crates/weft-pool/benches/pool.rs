//! weft-pool against rayon, chili and `std::thread::scope`, each workload
//! one criterion group with one function per implementation (`weft`,
//! `rayon`, `chili`, `std`). All pools get the same number of threads: the
//! machine's available parallelism.
//!
//! The `ThreadPoolExecutor` path (work submitted from outside the pool,
//! one handle per task) has rows per task (criterion's `Throughput`, which
//! `cargo xtask bench` divides by): `spawn_join_1m_1thread_per_task` (1M empty
//! submits from one thread, then 1M joins), `spawn_join_1m_4threads_per_task` (the
//! same split over 4 submitting threads at once, 250k each),
//! `as_completed_100k_finished_per_handle` (draining `as_completed` over 100k finished
//! handles), and `spawn_join_1m_1thread_64b_capture_per_task` (one
//! thread, each task capturing 64 bytes: more than the three words weft
//! keeps in its queue slot, so weft boxes the closure as rayon does). rayon has no task handle: it is given weft's, so both pay the
//! same for the handle. `spawn_to_start_idle_p50`/`_p99` are not criterion
//! rows: [`latency`] times single submits into an idle pool itself and
//! writes the percentiles to `target/weft-bench/extra/weft-pool.json`,
//! which the xtask merges. `benches/python_peers.py` runs the same
//! workloads on Python's `ThreadPoolExecutor`.
//!
//! Quick run: `cargo bench -p weft-pool --bench pool -- --warm-up-time 0.5
//! --measurement-time 1 --sample-size 10`

use std::hint::black_box;

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use weft_sync::TaskHandle;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

// ---------------------------------------------------------------- fib(30)

fn fib_weft(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = weft_pool::join(|| fib_weft(n - 1), || fib_weft(n - 2));
    a + b
}

fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn fib_chili(s: &mut chili::Scope<'_>, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = s.join(|s| fib_chili(s, n - 1), |s| fib_chili(s, n - 2));
    a + b
}

// ------------------------------------------------------------ binary tree

struct Node {
    val: u64,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

impl Node {
    fn tree(layers: usize) -> Node {
        Node {
            val: 1,
            left: (layers > 1).then(|| Box::new(Node::tree(layers - 1))),
            right: (layers > 1).then(|| Box::new(Node::tree(layers - 1))),
        }
    }
}

// Every implementation visits the nodes in the same order: right subtree
// first. The tree is allocated in post-order (children before their parent,
// left before right), so a right-first walk reads memory in one descending
// sweep and a left-first walk jumps about: on one thread a plain sequential
// left-first recursion takes ~1.5x as long as a right-first one. chili's
// `join` runs its *second* closure inline and offers the first, so it walks
// right-first; weft and rayon run the *first* closure inline and offer the
// second, so they are given the right child first. The comparison is then
// about the schedulers, not the visiting order.

fn tree_weft(n: &Node) -> u64 {
    let (r, l) = weft_pool::join(
        || n.right.as_deref().map_or(0, tree_weft),
        || n.left.as_deref().map_or(0, tree_weft),
    );
    n.val + l + r
}

fn tree_rayon(n: &Node) -> u64 {
    let (r, l) = rayon::join(
        || n.right.as_deref().map_or(0, tree_rayon),
        || n.left.as_deref().map_or(0, tree_rayon),
    );
    n.val + l + r
}

fn tree_chili(s: &mut chili::Scope<'_>, n: &Node) -> u64 {
    let (l, r) = s.join(
        |s| n.left.as_deref().map_or(0, |c| tree_chili(s, c)),
        |s| n.right.as_deref().map_or(0, |c| tree_chili(s, c)),
    );
    n.val + l + r
}

// -------------------------------------------------------------- quicksort

const SORT_CUTOFF: usize = 2048;

/// Never inlined, so that every implementation runs the very same machine
/// code for the sequential part and only the scheduling differs: inlined
/// into each quicksort, its code layout alone moved the rows by a few per
/// cent either way.
#[inline(never)]
fn partition(v: &mut [u32]) -> usize {
    let last = v.len() - 1;
    v.swap(v.len() / 2, last);
    let pivot = v[last];
    let mut store = 0;
    for i in 0..last {
        if v[i] < pivot {
            v.swap(i, store);
            store += 1;
        }
    }
    v.swap(store, last);
    store
}

fn qsort_with(v: &mut [u32], join: &(impl Fn(&mut dyn FnMut(), &mut dyn FnMut()) + Sync)) {
    if v.len() <= SORT_CUTOFF {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    let hi = &mut hi[1..];
    join(&mut || qsort_with(lo, join), &mut || qsort_with(hi, join));
}

fn qsort_weft(v: &mut [u32]) {
    if v.len() <= SORT_CUTOFF {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    weft_pool::join(|| qsort_weft(lo), || qsort_weft(&mut hi[1..]));
}

fn qsort_rayon(v: &mut [u32]) {
    if v.len() <= SORT_CUTOFF {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    rayon::join(|| qsort_rayon(lo), || qsort_rayon(&mut hi[1..]));
}

fn qsort_chili(s: &mut chili::Scope<'_>, v: &mut [u32]) {
    if v.len() <= SORT_CUTOFF {
        v.sort_unstable();
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    s.join(|s| qsort_chili(s, lo), |s| qsort_chili(s, &mut hi[1..]));
}

/// `std::thread::scope`: a new thread for each half down to a depth that
/// gives every core a part, then sequential quicksort.
fn qsort_std(v: &mut [u32], depth: u32) {
    if depth == 0 || v.len() <= SORT_CUTOFF {
        qsort_with(v, &|a: &mut dyn FnMut(), b: &mut dyn FnMut()| {
            a();
            b();
        });
        return;
    }
    let mid = partition(v);
    let (lo, hi) = v.split_at_mut(mid);
    std::thread::scope(|s| {
        s.spawn(|| qsort_std(lo, depth - 1));
        qsort_std(&mut hi[1..], depth - 1);
    });
}

fn random_u32s(n: usize) -> Vec<u32> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u32
        })
        .collect()
}

// ------------------------------------------- the ThreadPoolExecutor path

/// How an implementation is submitted to from outside: `submit(f)` gives a
/// handle. weft's own `spawn`; rayon's `spawn` with weft's handle.
trait Submit: Sync {
    fn submit<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> TaskHandle<T>;
}

impl Submit for weft_pool::ThreadPool {
    #[inline]
    fn submit<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> TaskHandle<T> {
        self.spawn(f).unwrap()
    }
}

impl Submit for rayon::ThreadPool {
    #[inline]
    fn submit<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> TaskHandle<T> {
        let (c, h) = TaskHandle::pair();
        self.spawn(move || {
            c.run(f);
        });
        h
    }
}

/// `per_thread` empty submits from this thread, then their joins.
fn spawn_join(pool: &impl Submit, per_thread: usize) {
    let hs: Vec<_> = (0..per_thread).map(|_| pool.submit(|| ())).collect();
    for h in hs {
        h.join().unwrap();
    }
}

/// `total` empty submits split over `threads` submitting threads at once,
/// each joining its own handles.
fn spawn_join_threads(pool: &impl Submit, total: usize, threads: usize) {
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| spawn_join(pool, total / threads));
        }
    });
}

/// 100k handles of empty tasks that have all finished.
fn finished_handles(pool: &impl Submit, n: usize) -> Vec<TaskHandle<()>> {
    let hs: Vec<_> = (0..n).map(|_| pool.submit(|| ())).collect();
    for h in &hs {
        h.wait();
    }
    hs
}

fn spawn_benches(c: &mut Criterion, n: usize) {
    const N: usize = 1_000_000;
    const AS_COMPLETED: usize = 100_000;
    let weft = || weft_pool::ThreadPool::new(n).unwrap();
    let rayon = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    for (name, threads) in [
        ("spawn_join_1m_1thread_per_task", 1),
        ("spawn_join_1m_4threads_per_task", 4),
    ] {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(N as u64));
        {
            let pool = weft();
            g.bench_function("weft", |b| b.iter(|| spawn_join_threads(&pool, N, threads)));
        }
        {
            let pool = rayon();
            g.bench_function("rayon", |b| {
                b.iter(|| spawn_join_threads(&pool, N, threads))
            });
        }
        g.finish();
    }
    {
        // The same from one thread, each task capturing 64 bytes: too big
        // for weft's queue slot, so weft boxes it as rayon does.
        let mut g = c.benchmark_group("spawn_join_1m_1thread_64b_capture_per_task");
        g.throughput(Throughput::Elements(N as u64));
        fn run(pool: &impl Submit) {
            let hs: Vec<_> = (0..N as u64)
                .map(|i| {
                    let data = [i; 8];
                    pool.submit(move || {
                        black_box(data);
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        }
        {
            let pool = weft();
            g.bench_function("weft", |b| b.iter(|| run(&pool)));
        }
        {
            let pool = rayon();
            g.bench_function("rayon", |b| b.iter(|| run(&pool)));
        }
        g.finish();
    }
    {
        let mut g = c.benchmark_group("as_completed_100k_finished_per_handle");
        g.throughput(Throughput::Elements(AS_COMPLETED as u64));
        let pool = weft();
        g.bench_function("weft", |b| {
            b.iter_batched(
                || finished_handles(&pool, AS_COMPLETED),
                |hs| {
                    let mut k = 0;
                    for (_, r) in weft_sync::as_completed(hs) {
                        r.unwrap();
                        k += 1;
                    }
                    assert_eq!(k, AS_COMPLETED);
                },
                BatchSize::PerIteration,
            )
        });
        g.finish();
    }
}

/// p50 and p99 of the time from just before a submit into an idle pool to
/// the moment its task starts (the task reads the clock first thing).
fn idle_latency(pool: &impl Submit, samples: usize) -> (f64, f64) {
    let mut lat: Vec<u64> = Vec::with_capacity(samples);
    for i in 0..samples + samples / 10 {
        // Long enough for every worker to give up spinning and park.
        std::thread::sleep(Duration::from_millis(2));
        let t0 = Instant::now();
        let started = pool.submit(Instant::now).join().unwrap();
        // The first tenth warms up (and is dropped).
        if i >= samples / 10 {
            lat.push(started.saturating_duration_since(t0).as_nanos() as u64);
        }
    }
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)] as f64;
    (at(0.50), at(0.99))
}

/// The idle-pool latency rows (see the module docs); honours a criterion
/// name filter given on the command line.
fn latency(_c: &mut Criterion) {
    const NAME: &str = "spawn_to_start_idle";
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    // A filter is a regex; its alternatives are enough for a name filter.
    let wanted = |f: &String| f.split('|').any(|part| NAME.contains(part));
    if !filters.is_empty() && !filters.iter().any(wanted) {
        return;
    }
    let n = threads();
    let samples = 2000;
    let mut rows = Vec::new();
    {
        let pool = weft_pool::ThreadPool::new(n).unwrap();
        let (p50, p99) = idle_latency(&pool, samples);
        rows.push(("weft", p50, p99));
    }
    {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap();
        let (p50, p99) = idle_latency(&pool, samples);
        rows.push(("rayon", p50, p99));
    }
    let mut json = Vec::new();
    for (imp, p50, p99) in rows {
        println!("{NAME}/{imp}: p50 {p50:.0} ns, p99 {p99:.0} ns ({samples} samples)");
        json.push(format!(
            r#"{{"bench": "{NAME}_p50", "impl": "{imp}", "ns_per_iter": {p50}}}"#
        ));
        json.push(format!(
            r#"{{"bench": "{NAME}_p99", "impl": "{imp}", "ns_per_iter": {p99}}}"#
        ));
    }
    // target/release/deps/pool-<hash> -> target/weft-bench/extra/
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.ancestors().nth(3)?.to_path_buf()));
    if let Some(dir) = target.map(|t| t.join("weft-bench/extra")) {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            dir.join("weft-pool.json"),
            format!("[\n{}\n]\n", json.join(",\n")),
        );
    }
}

// --------------------------------------------------------------- the runs

fn benches(c: &mut Criterion) {
    let n = threads();
    // Each implementation runs with only its own pool alive (chili's
    // heartbeat thread, for one, would otherwise take CPU from the others).
    let weft_pool = || weft_pool::ThreadPool::new(n).unwrap();
    let rayon_pool = || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let chili_pool = || {
        chili::ThreadPool::with_config(chili::Config {
            thread_count: std::num::NonZero::new(n),
            ..Default::default()
        })
    };

    {
        let mut g = c.benchmark_group("fib_30_join");
        {
            let weft = weft_pool();
            g.bench_function("weft", |b| {
                b.iter(|| weft.install(|| fib_weft(black_box(30))))
            });
        }
        {
            let rayon = rayon_pool();
            g.bench_function("rayon", |b| {
                b.iter(|| rayon.install(|| fib_rayon(black_box(30))))
            });
        }
        {
            let chili_pool = chili_pool();
            g.bench_function("chili", |b| {
                b.iter(|| fib_chili(&mut chili_pool.scope(), black_box(30)))
            });
        }
        g.finish();
    }

    {
        let tree = Node::tree(24); // 16,777,215 nodes
        let mut g = c.benchmark_group("tree_sum_16m_join");
        {
            let weft = weft_pool();
            g.bench_function("weft", |b| {
                b.iter(|| assert_eq!(weft.install(|| tree_weft(&tree)), 16_777_215))
            });
        }
        {
            let rayon = rayon_pool();
            g.bench_function("rayon", |b| {
                b.iter(|| assert_eq!(rayon.install(|| tree_rayon(&tree)), 16_777_215))
            });
        }
        {
            let chili_pool = chili_pool();
            g.bench_function("chili", |b| {
                b.iter(|| assert_eq!(tree_chili(&mut chili_pool.scope(), &tree), 16_777_215))
            });
        }
        g.finish();
    }

    spawn_benches(c, n);

    {
        let input: Vec<u64> = (0..10_000_000u64).collect();
        let f = |x: &u64| x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
        let expect: u64 = input.iter().map(f).fold(0u64, u64::wrapping_add);
        let mut g = c.benchmark_group("map_10m_u64_sum");
        {
            let weft = weft_pool();
            g.bench_function("weft", |b| {
                b.iter(|| {
                    let out = weft.map_slice(f, &input, 0);
                    assert_eq!(out.iter().fold(0u64, |a, &x| a.wrapping_add(x)), expect);
                })
            });
        }
        {
            let rayon = rayon_pool();
            g.bench_function("rayon", |b| {
                b.iter(|| {
                    let out: Vec<u64> = rayon.install(|| input.par_iter().map(f).collect());
                    assert_eq!(out.iter().fold(0u64, |a, &x| a.wrapping_add(x)), expect);
                })
            });
        }
        g.bench_function("std", |b| {
            b.iter(|| {
                let mut out = vec![0u64; input.len()];
                let per = input.len().div_ceil(n);
                std::thread::scope(|s| {
                    for (i, o) in input.chunks(per).zip(out.chunks_mut(per)) {
                        s.spawn(move || {
                            for (x, y) in i.iter().zip(o) {
                                *y = f(x);
                            }
                        });
                    }
                });
                assert_eq!(out.iter().fold(0u64, |a, &x| a.wrapping_add(x)), expect);
            })
        });
        g.finish();
    }

    {
        let input = random_u32s(10_000_000);
        let depth = (n as f64).log2().ceil() as u32 + 1;
        let mut g = c.benchmark_group("quicksort_10m_u32");
        {
            let weft = weft_pool();
            g.bench_function("weft", |b| {
                b.iter_batched_ref(
                    || input.clone(),
                    |v| weft.install(|| qsort_weft(v)),
                    BatchSize::LargeInput,
                )
            });
        }
        {
            let rayon = rayon_pool();
            g.bench_function("rayon", |b| {
                b.iter_batched_ref(
                    || input.clone(),
                    |v| rayon.install(|| qsort_rayon(v)),
                    BatchSize::LargeInput,
                )
            });
        }
        {
            let chili_pool = chili_pool();
            g.bench_function("chili", |b| {
                b.iter_batched_ref(
                    || input.clone(),
                    |v| qsort_chili(&mut chili_pool.scope(), v),
                    BatchSize::LargeInput,
                )
            });
        }
        g.bench_function("std", |b| {
            b.iter_batched_ref(
                || input.clone(),
                |v| qsort_std(v, depth),
                BatchSize::LargeInput,
            )
        });
        g.finish();
    }
}

criterion_group! {
    name = pool_benches;
    config = Criterion::default().sample_size(10);
    targets = benches, latency
}
criterion_main!(pool_benches);
