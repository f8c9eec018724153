//! weft-pool against rayon, chili and `std::thread::scope`, each workload
//! one criterion group with one function per implementation (`weft`,
//! `rayon`, `chili`, `std`). Every pool gets the same number of threads:
//! `WEFT_BENCH_THREADS` when set (so a scaling run can drive 1, 2, 4, ...
//! threads), else the machine's available parallelism. Each implementation
//! runs with only its own pool alive, does exactly the same work, and has
//! its result checked on every iteration; where the check costs more than
//! a comparison, it runs off the clock (`timed`).
//!
//! # The fork/join rows
//!
//! weft and rayon run a `join`'s first closure inline and offer the second;
//! chili's `Scope::join` runs its *second* inline and offers the first, so
//! chili is always given the two closures swapped: every implementation
//! visits the same side first.
//!
//! - `*_join_no_cutoff`: one `join` per call of the recursion, down to the
//!   leaves, with no user cutoff: the cost of a join. The pools differ in
//!   what they do when nobody is hungry: weft's `join` is a plain call below
//!   the four outermost pending `join`s of a worker; chili's is a plain call
//!   for 63 of 64 joins once 3 jobs are queued on the thread; rayon pushes
//!   and pops every job on its deque. These rows measure that design, not
//!   the scheduling of useful parallel work.
//! - `*_join_cutoff_*`: the same recursion with the *same user cutoff* for
//!   every pool (`fib` below n = 15 and trees below subtrees of 1024 nodes
//!   run one shared, never-inlined sequential function), as a user of any
//!   of them would write it.
//! - `tree_sum_16m_*`: a balanced tree allocated in post-order (children
//!   first, left before right), walked right child first by everyone, so
//!   the walk reads memory in one descending sweep. `tree_sum_2m_random_order_*`
//!   and `skewed_tree_2m_random_order_*`: trees whose nodes are allocated in
//!   a random order, so no traversal direction matches the memory order;
//!   the skewed tree gives 7/8 of each subtree to the left child (109
//!   levels deep), unbalanced work for the schedulers to spread.
//! - `quicksort_10m_u32`: the same never-inlined partition and the same
//!   cutoff (2048) for all; the lower part runs inline first everywhere; the
//!   output is checked sorted off the clock.
//! - `mandelbrot_1024x512_rows`: one row per leaf (rows cost from 1024 to
//!   ~200k iterations: unbalanced); weft and chili split the row range by
//!   `join` down to one row, rayon runs `(0..512).into_par_iter().map(row).sum()`.
//!
//! # The map rows (10M `u64`, `f(x) = x * K >> 40`)
//!
//! weft has no parallel iterators: its rows use what a weft user has,
//! `ThreadPool::map_slice` or a `join`-based recursive split down to 1024
//! elements (the chunk `map_slice` picks here); chili gets the same split.
//! - `map_10m_u64_fresh_vec`: a new output `Vec` each iteration, allocated
//!   (and freed) on the calling thread by every implementation: weft's
//!   `map_slice`; rayon's `collect_into_vec` into a `Vec::with_capacity`
//!   made by the caller; std fills the spare capacity from scoped threads.
//!   The 80 MB buffer is above glibc's mmap threshold, so every
//!   implementation pays the same fresh pages. Timed: allocate, map, free.
//! - `map_10m_u64_reused_buf`: one caller-owned buffer, warm, rewritten each
//!   iteration: rayon's `collect_into_vec` into it, weft and chili the `join`
//!   split, std chunks. Checked (summed) off the clock.
//! - `map_reduce_10m_u64_sum`: no output buffer: rayon's
//!   `par_iter().map(f).sum()`, weft and chili a `join` split summing the
//!   leaves, std one chunk per thread.
//!
//! # The ThreadPoolExecutor and scope rows
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
//! same for the handle. `scope_spawn_100k_per_task`: one `scope` (weft's,
//! rayon's: chili has none) spawning 100k tasks that each write one slot.
//! `spawn_to_start_idle_p50`/`_p99` are not criterion
//! rows: [`latency`] times single submits into an idle pool itself and
//! writes the percentiles to `target/weft-bench/extra/weft-pool.json`,
//! which the xtask merges. `benches/python_peers.py` runs the same
//! workloads on Python's `ThreadPoolExecutor`.
//!
//! Quick run: `cargo bench -p weft-pool --bench pool -- --warm-up-time 0.5
//! --measurement-time 1.5 --sample-size 10` (a criterion name filter, such
//! as `fib_30`, runs only the matching rows).

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Bencher, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;
use weft_sync::TaskHandle;

/// The threads every pool gets: `WEFT_BENCH_THREADS`, else all cores.
fn threads() -> usize {
    std::env::var("WEFT_BENCH_THREADS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Times only what `one` reports: `one` runs one iteration, sets up and
/// checks off the clock, and returns the time of the work itself.
fn timed(b: &mut Bencher<'_>, mut one: impl FnMut() -> Duration) {
    b.iter_custom(|iters| (0..iters).map(|_| one()).sum());
}

/// A small deterministic generator (xorshift64), shared by all inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------- fib(30)

const FIB_30: u64 = 832_040;
const FIB_CUTOFF: u64 = 15;

/// The sequential leaf of the cutoff rows, one copy for every pool.
#[inline(never)]
fn fib_seq(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    fib_seq(n - 1) + fib_seq(n - 2)
}

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
    // chili runs its second closure inline: n - 1 first, as above.
    let (b, a) = s.join(|s| fib_chili(s, n - 2), |s| fib_chili(s, n - 1));
    a + b
}

fn fib_cut_weft(n: u64) -> u64 {
    if n <= FIB_CUTOFF {
        return fib_seq(n);
    }
    let (a, b) = weft_pool::join(|| fib_cut_weft(n - 1), || fib_cut_weft(n - 2));
    a + b
}

fn fib_cut_rayon(n: u64) -> u64 {
    if n <= FIB_CUTOFF {
        return fib_seq(n);
    }
    let (a, b) = rayon::join(|| fib_cut_rayon(n - 1), || fib_cut_rayon(n - 2));
    a + b
}

fn fib_cut_chili(s: &mut chili::Scope<'_>, n: u64) -> u64 {
    if n <= FIB_CUTOFF {
        return fib_seq(n);
    }
    let (b, a) = s.join(|s| fib_cut_chili(s, n - 2), |s| fib_cut_chili(s, n - 1));
    a + b
}

// ------------------------------------------------------------------ trees

struct Node {
    val: u64,
    left: Option<Box<Node>>,
    right: Option<Box<Node>>,
}

impl Node {
    /// A balanced tree of `layers` layers, allocated in post-order.
    fn tree(layers: usize) -> Node {
        Node {
            val: 1,
            left: (layers > 1).then(|| Box::new(Node::tree(layers - 1))),
            right: (layers > 1).then(|| Box::new(Node::tree(layers - 1))),
        }
    }

    /// A tree of `size` nodes of the given shape whose nodes are allocated
    /// in a random order (glibc hands out same-sized blocks in order, so
    /// the memory order is that random order).
    fn random_order(size: usize, shape: Shape) -> Box<Node> {
        // The children of each node, nodes numbered in pre-order.
        let mut kids = vec![(0usize, 0usize); size];
        fn number(kids: &mut [(usize, usize)], id: usize, size: usize, shape: Shape) {
            let (ls, rs) = shape.split(size);
            let (l, r) = (id + 1, id + 1 + ls);
            kids[id] = (if ls > 0 { l } else { 0 }, if rs > 0 { r } else { 0 });
            if ls > 0 {
                number(kids, l, ls, shape);
            }
            if rs > 0 {
                number(kids, r, rs, shape);
            }
        }
        number(&mut kids, 0, size, shape);
        let mut order: Vec<usize> = (0..size).collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for i in (1..size).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let mut slots: Vec<Option<Box<Node>>> = (0..size).map(|_| None).collect();
        for id in order {
            slots[id] = Some(Box::new(Node {
                val: 1,
                left: None,
                right: None,
            }));
        }
        // Children have higher numbers than their parent: link bottom-up.
        // Moving a `Box` does not move its node.
        for id in (0..size).rev() {
            let (l, r) = kids[id];
            let left = (l != 0).then(|| slots[l].take().unwrap());
            let right = (r != 0).then(|| slots[r].take().unwrap());
            let n = slots[id].as_mut().unwrap();
            n.left = left;
            n.right = right;
        }
        slots[0].take().unwrap()
    }
}

/// How a subtree of `size` nodes splits its `size - 1` descendants.
#[derive(Clone, Copy)]
enum Shape {
    Balanced,
    /// 7/8 to the left child, 1/8 to the right.
    Skewed,
}

impl Shape {
    fn split(self, size: usize) -> (usize, usize) {
        let below = size.saturating_sub(1);
        match self {
            Shape::Balanced => (below - below / 2, below / 2),
            Shape::Skewed => (below - below / 8, below / 8),
        }
    }
}

/// Subtrees of at most this many nodes are summed sequentially in the
/// cutoff rows.
const TREE_CUTOFF: usize = 1024;

/// The sequential leaf of the cutoff rows, one copy for every pool; right
/// child first, as the parallel walks.
#[inline(never)]
fn tree_seq(n: &Node) -> u64 {
    let r = n.right.as_deref().map_or(0, tree_seq);
    let l = n.left.as_deref().map_or(0, tree_seq);
    n.val + l + r
}

// Every implementation visits the right subtree first. The balanced tree is
// allocated in post-order (children before their parent, left before
// right), so a right-first walk reads memory in one descending sweep and a
// left-first walk jumps about: on one thread a plain sequential left-first
// recursion takes ~1.5x as long as a right-first one. The comparison is
// then about the schedulers, not the visiting order.

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

fn tree_cut_weft(n: &Node, size: usize, shape: Shape) -> u64 {
    if size <= TREE_CUTOFF {
        return tree_seq(n);
    }
    let (ls, rs) = shape.split(size);
    let (r, l) = weft_pool::join(
        || {
            n.right
                .as_deref()
                .map_or(0, |c| tree_cut_weft(c, rs, shape))
        },
        || n.left.as_deref().map_or(0, |c| tree_cut_weft(c, ls, shape)),
    );
    n.val + l + r
}

fn tree_cut_rayon(n: &Node, size: usize, shape: Shape) -> u64 {
    if size <= TREE_CUTOFF {
        return tree_seq(n);
    }
    let (ls, rs) = shape.split(size);
    let (r, l) = rayon::join(
        || {
            n.right
                .as_deref()
                .map_or(0, |c| tree_cut_rayon(c, rs, shape))
        },
        || {
            n.left
                .as_deref()
                .map_or(0, |c| tree_cut_rayon(c, ls, shape))
        },
    );
    n.val + l + r
}

fn tree_cut_chili(s: &mut chili::Scope<'_>, n: &Node, size: usize, shape: Shape) -> u64 {
    if size <= TREE_CUTOFF {
        return tree_seq(n);
    }
    let (ls, rs) = shape.split(size);
    let (l, r) = s.join(
        |s| {
            n.left
                .as_deref()
                .map_or(0, |c| tree_cut_chili(s, c, ls, shape))
        },
        |s| {
            n.right
                .as_deref()
                .map_or(0, |c| tree_cut_chili(s, c, rs, shape))
        },
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
    // chili runs its second closure inline: the lower part first, as above.
    s.join(|s| qsort_chili(s, &mut hi[1..]), |s| qsort_chili(s, lo));
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
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    (0..n).map(|_| (rng.next() >> 32) as u32).collect()
}

/// Sorts a fresh copy of `input` with `sort`; times the sort alone and
/// checks the result (sorted, same sum) off the clock.
fn sort_checked(input: &[u32], expect: u64, mut sort: impl FnMut(&mut [u32])) -> Duration {
    let mut v = input.to_vec();
    let t = Instant::now();
    sort(&mut v);
    let d = t.elapsed();
    assert!(v.is_sorted());
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), expect);
    d
}

// ------------------------------------------------------------- mandelbrot

const MANDEL_W: usize = 1024;
const MANDEL_H: usize = 512;
const MANDEL_MAX: u32 = 400;

/// The escape iterations of one row, summed; one copy for every pool. The
/// window is not symmetric about the real axis, so the two halves of the
/// rows differ in cost too.
#[inline(never)]
fn mandel_row(y: usize) -> u64 {
    let ci = -0.4 + 1.6 * y as f64 / MANDEL_H as f64;
    let mut total = 0u64;
    for x in 0..MANDEL_W {
        let cr = -2.2 + 3.0 * x as f64 / MANDEL_W as f64;
        let (mut zr, mut zi, mut k) = (0.0f64, 0.0f64, 0u32);
        while k < MANDEL_MAX && zr * zr + zi * zi <= 4.0 {
            let t = zr * zr - zi * zi + cr;
            zi = 2.0 * zr * zi + ci;
            zr = t;
            k += 1;
        }
        total += k as u64;
    }
    total
}

fn mandel_weft(lo: usize, hi: usize) -> u64 {
    if hi - lo == 1 {
        return mandel_row(lo);
    }
    let mid = lo + (hi - lo) / 2;
    let (a, b) = weft_pool::join(|| mandel_weft(lo, mid), || mandel_weft(mid, hi));
    a + b
}

fn mandel_chili(s: &mut chili::Scope<'_>, lo: usize, hi: usize) -> u64 {
    if hi - lo == 1 {
        return mandel_row(lo);
    }
    let mid = lo + (hi - lo) / 2;
    let (b, a) = s.join(|s| mandel_chili(s, mid, hi), |s| mandel_chili(s, lo, mid));
    a + b
}

// -------------------------------------------------------------------- map

/// The map of the map rows: cheap, so these rows are about memory traffic
/// and splitting; results under 2^24, so 10M of them sum without overflow.
fn map_f(x: &u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40
}

/// The leaf size of the `join` splits (weft, chili): what `map_slice`
/// picks for 10M items.
const MAP_GRAIN: usize = 1024;

/// The leaves of the map rows, one copy of the machine code for weft,
/// chili and std (rayon runs its own iterator code). Inlined into a
/// `join`'s closures, the very same loop ran twice as slow on this machine,
/// under weft's `join` and under `rayon::join` alike: a code-layout effect
/// that no scheduler should be credited or blamed for.
#[inline(never)]
fn map_leaf_into(input: &[u64], out: &mut [MaybeUninit<u64>]) {
    for (x, y) in input.iter().zip(out) {
        y.write(map_f(x));
    }
}

/// `out` as slots to write, for the leaves: only initialised values are
/// written to them.
fn slots(out: &mut [u64]) -> &mut [MaybeUninit<u64>] {
    // SAFETY: `MaybeUninit<u64>` has the layout of `u64`, and every value
    // written through the result is an initialised `u64`.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), out.len()) }
}

/// See [`map_leaf_into`].
#[inline(never)]
fn map_leaf_sum(input: &[u64]) -> u64 {
    input.iter().map(map_f).sum()
}

fn map_into_weft(input: &[u64], out: &mut [MaybeUninit<u64>]) {
    if input.len() <= MAP_GRAIN {
        return map_leaf_into(input, out);
    }
    let mid = input.len() / 2;
    let (il, ir) = input.split_at(mid);
    let (ol, or) = out.split_at_mut(mid);
    weft_pool::join(|| map_into_weft(il, ol), || map_into_weft(ir, or));
}

fn map_into_chili(s: &mut chili::Scope<'_>, input: &[u64], out: &mut [MaybeUninit<u64>]) {
    if input.len() <= MAP_GRAIN {
        return map_leaf_into(input, out);
    }
    let mid = input.len() / 2;
    let (il, ir) = input.split_at(mid);
    let (ol, or) = out.split_at_mut(mid);
    s.join(|s| map_into_chili(s, ir, or), |s| map_into_chili(s, il, ol));
}

fn map_sum_weft(input: &[u64]) -> u64 {
    if input.len() <= MAP_GRAIN {
        return map_leaf_sum(input);
    }
    let (l, r) = input.split_at(input.len() / 2);
    let (a, b) = weft_pool::join(|| map_sum_weft(l), || map_sum_weft(r));
    a + b
}

fn map_sum_chili(s: &mut chili::Scope<'_>, input: &[u64]) -> u64 {
    if input.len() <= MAP_GRAIN {
        return map_leaf_sum(input);
    }
    let (l, r) = input.split_at(input.len() / 2);
    let (b, a) = s.join(|s| map_sum_chili(s, r), |s| map_sum_chili(s, l));
    a + b
}

/// std: one chunk of `input` per thread, each writing its part of `out`.
fn map_into_std(input: &[u64], out: &mut [MaybeUninit<u64>], n: usize) {
    let per = input.len().div_ceil(n);
    std::thread::scope(|s| {
        for (i, o) in input.chunks(per).zip(out.chunks_mut(per)) {
            s.spawn(move || map_leaf_into(i, o));
        }
    });
}

fn sum(v: &[u64]) -> u64 {
    v.iter().sum()
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
    if !wanted(&[NAME]) {
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

/// The three pools, each built only while its rows run (chili's heartbeat
/// thread, for one, would otherwise take CPU from the others).
struct Pools {
    n: usize,
}

impl Pools {
    fn weft(&self) -> weft_pool::ThreadPool {
        weft_pool::ThreadPool::new(self.n).unwrap()
    }

    fn rayon(&self) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.n)
            .build()
            .unwrap()
    }

    fn chili(&self) -> chili::ThreadPool {
        chili::ThreadPool::with_config(chili::Config {
            thread_count: std::num::NonZero::new(self.n),
            ..Default::default()
        })
    }
}

fn fib_benches(c: &mut Criterion, p: &Pools) {
    let mut g = c.benchmark_group("fib_30_join_no_cutoff");
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            b.iter(|| assert_eq!(weft.install(|| fib_weft(black_box(30))), FIB_30))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(rayon.install(|| fib_rayon(black_box(30))), FIB_30))
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            b.iter(|| assert_eq!(fib_chili(&mut chili.scope(), black_box(30)), FIB_30))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("fib_30_join_cutoff_15");
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            b.iter(|| assert_eq!(weft.install(|| fib_cut_weft(black_box(30))), FIB_30))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(rayon.install(|| fib_cut_rayon(black_box(30))), FIB_30))
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            b.iter(|| assert_eq!(fib_cut_chili(&mut chili.scope(), black_box(30)), FIB_30))
        });
    }
    g.finish();
}

/// The no-cutoff and cutoff rows on one tree of `size` nodes.
fn tree_rows(c: &mut Criterion, p: &Pools, name: &str, tree: &Node, size: usize, shape: Shape) {
    let expect = size as u64;
    let mut g = c.benchmark_group(format!("{name}_join_no_cutoff"));
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            b.iter(|| assert_eq!(weft.install(|| tree_weft(tree)), expect))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(rayon.install(|| tree_rayon(tree)), expect))
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            b.iter(|| assert_eq!(tree_chili(&mut chili.scope(), tree), expect))
        });
    }
    g.finish();

    let mut g = c.benchmark_group(format!("{name}_join_cutoff_1024"));
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            b.iter(|| assert_eq!(weft.install(|| tree_cut_weft(tree, size, shape)), expect))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            b.iter(|| assert_eq!(rayon.install(|| tree_cut_rayon(tree, size, shape)), expect))
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            b.iter(|| {
                assert_eq!(
                    tree_cut_chili(&mut chili.scope(), tree, size, shape),
                    expect
                )
            })
        });
    }
    g.finish();
}

/// Whether a criterion name filter on the command line can match one of
/// the groups `names` (so big inputs are built only when needed).
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

/// Whether either row of `tree_rows` for `name` is wanted.
fn tree_wanted(name: &str) -> bool {
    wanted(&[
        &format!("{name}_join_no_cutoff"),
        &format!("{name}_join_cutoff_1024"),
    ])
}

fn tree_benches(c: &mut Criterion, p: &Pools) {
    if tree_wanted("tree_sum_16m") {
        let size = (1 << 24) - 1;
        let tree = Node::tree(24);
        tree_rows(c, p, "tree_sum_16m", &tree, size, Shape::Balanced);
    }
    if tree_wanted("tree_sum_2m_random_order") {
        let size = (1 << 21) - 1;
        let tree = Node::random_order(size, Shape::Balanced);
        tree_rows(
            c,
            p,
            "tree_sum_2m_random_order",
            &tree,
            size,
            Shape::Balanced,
        );
    }
    if tree_wanted("skewed_tree_2m_random_order") {
        let size = (1 << 21) - 1;
        let tree = Node::random_order(size, Shape::Skewed);
        tree_rows(
            c,
            p,
            "skewed_tree_2m_random_order",
            &tree,
            size,
            Shape::Skewed,
        );
    }
}

fn mandelbrot_benches(c: &mut Criterion, p: &Pools) {
    let expect: u64 = (0..MANDEL_H).map(mandel_row).sum();
    let mut g = c.benchmark_group("mandelbrot_1024x512_rows");
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            b.iter(|| assert_eq!(weft.install(|| mandel_weft(0, MANDEL_H)), expect))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            b.iter(|| {
                let total: u64 =
                    rayon.install(|| (0..MANDEL_H).into_par_iter().map(mandel_row).sum());
                assert_eq!(total, expect)
            })
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            b.iter(|| assert_eq!(mandel_chili(&mut chili.scope(), 0, MANDEL_H), expect))
        });
    }
    g.finish();
}

fn map_benches(c: &mut Criterion, p: &Pools) {
    let n = p.n;
    let input: Vec<u64> = (0..10_000_000u64).collect();
    let len = input.len();
    let expect: u64 = input.iter().map(map_f).sum();

    // A new output Vec per iteration, allocated and freed by the caller.
    let mut g = c.benchmark_group("map_10m_u64_fresh_vec");
    // Times `run` and the free of its output; checks it off the clock.
    let fresh = |run: &mut dyn FnMut() -> Vec<u64>| {
        let t = Instant::now();
        let out = run();
        let d = t.elapsed();
        assert_eq!((out.len(), sum(&out)), (len, expect));
        let t = Instant::now();
        drop(out);
        d + t.elapsed()
    };
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            timed(b, || fresh(&mut || weft.map_slice(map_f, &input, 0)))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            timed(b, || {
                fresh(&mut || {
                    let mut out = Vec::with_capacity(len);
                    rayon.install(|| input.par_iter().map(map_f).collect_into_vec(&mut out));
                    out
                })
            })
        });
    }
    g.bench_function("std", |b| {
        timed(b, || {
            fresh(&mut || {
                let mut out = Vec::with_capacity(len);
                map_into_std(&input, &mut out.spare_capacity_mut()[..len], n);
                // SAFETY: `map_into_std` wrote all `len` slots.
                unsafe { out.set_len(len) };
                out
            })
        })
    });
    g.finish();

    // One warm caller-owned buffer, rewritten every iteration.
    let mut g = c.benchmark_group("map_10m_u64_reused_buf");
    let mut out = vec![0u64; len];
    // Times `run` writing `out`; checks and clears it off the clock.
    let reused = |out: &mut Vec<u64>, run: &mut dyn FnMut(&mut Vec<u64>)| {
        let t = Instant::now();
        run(out);
        let d = t.elapsed();
        assert_eq!((out.len(), sum(out)), (len, expect));
        out[0] = u64::MAX; // a skipped write would fail the next check
        d
    };
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            timed(b, || {
                reused(&mut out, &mut |o| {
                    weft.install(|| map_into_weft(&input, slots(o)))
                })
            })
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            timed(b, || {
                reused(&mut out, &mut |o| {
                    rayon.install(|| input.par_iter().map(map_f).collect_into_vec(o))
                })
            })
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            timed(b, || {
                reused(&mut out, &mut |o| {
                    map_into_chili(&mut chili.scope(), &input, slots(o))
                })
            })
        });
    }
    g.bench_function("std", |b| {
        timed(b, || {
            reused(&mut out, &mut |o| map_into_std(&input, slots(o), n))
        })
    });
    g.finish();

    // No output buffer: map and sum.
    let mut g = c.benchmark_group("map_reduce_10m_u64_sum");
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            b.iter(|| assert_eq!(weft.install(|| map_sum_weft(&input)), expect))
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            b.iter(|| {
                let total: u64 = rayon.install(|| input.par_iter().map(map_f).sum());
                assert_eq!(total, expect)
            })
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            b.iter(|| assert_eq!(map_sum_chili(&mut chili.scope(), &input), expect))
        });
    }
    g.bench_function("std", |b| {
        b.iter(|| {
            let per = len.div_ceil(n);
            let total: u64 = std::thread::scope(|s| {
                let parts: Vec<_> = input
                    .chunks(per)
                    .map(|i| s.spawn(move || map_leaf_sum(i)))
                    .collect();
                parts.into_iter().map(|h| h.join().unwrap()).sum()
            });
            assert_eq!(total, expect)
        })
    });
    g.finish();
}

fn quicksort_benches(c: &mut Criterion, p: &Pools) {
    let input = random_u32s(10_000_000);
    let expect: u64 = input.iter().map(|&x| x as u64).sum();
    let depth = (p.n as f64).log2().ceil() as u32 + 1;
    let mut g = c.benchmark_group("quicksort_10m_u32");
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            timed(b, || {
                sort_checked(&input, expect, |v| weft.install(|| qsort_weft(v)))
            })
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            timed(b, || {
                sort_checked(&input, expect, |v| rayon.install(|| qsort_rayon(v)))
            })
        });
    }
    {
        let chili = p.chili();
        g.bench_function("chili", |b| {
            timed(b, || {
                sort_checked(&input, expect, |v| qsort_chili(&mut chili.scope(), v))
            })
        });
    }
    g.bench_function("std", |b| {
        timed(b, || sort_checked(&input, expect, |v| qsort_std(v, depth)))
    });
    g.finish();
}

/// One `scope` spawning 100k tasks, each writing its own slot; the slots
/// are cleared before and checked after each iteration, off the clock.
fn scope_benches(c: &mut Criterion, p: &Pools) {
    const TASKS: usize = 100_000;
    let slots: Vec<AtomicU64> = (0..TASKS).map(|_| AtomicU64::new(0)).collect();
    let val = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let expect = (0..TASKS).map(val).fold(0u64, u64::wrapping_add);
    let one = |run: &dyn Fn()| {
        for s in &slots {
            s.store(0, Ordering::Relaxed);
        }
        let t = Instant::now();
        run();
        let d = t.elapsed();
        let got = slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add);
        assert_eq!(got, expect);
        d
    };
    let mut g = c.benchmark_group("scope_spawn_100k_per_task");
    g.throughput(Throughput::Elements(TASKS as u64));
    {
        let weft = p.weft();
        g.bench_function("weft", |b| {
            timed(b, || {
                one(&|| {
                    weft.scope(|s| {
                        for (i, slot) in slots.iter().enumerate() {
                            s.spawn(move |_| slot.store(val(i), Ordering::Relaxed));
                        }
                    })
                })
            })
        });
    }
    {
        let rayon = p.rayon();
        g.bench_function("rayon", |b| {
            timed(b, || {
                one(&|| {
                    rayon.scope(|s| {
                        for (i, slot) in slots.iter().enumerate() {
                            s.spawn(move |_| slot.store(val(i), Ordering::Relaxed));
                        }
                    })
                })
            })
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let p = Pools { n: threads() };
    fib_benches(c, &p);
    tree_benches(c, &p);
    mandelbrot_benches(c, &p);
    scope_benches(c, &p);
    spawn_benches(c, p.n);
    map_benches(c, &p);
    quicksort_benches(c, &p);
}

criterion_group! {
    name = pool_benches;
    config = Criterion::default().sample_size(10);
    targets = benches, latency
}
criterion_main!(pool_benches);
