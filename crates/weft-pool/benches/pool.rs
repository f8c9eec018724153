//! weft-pool against rayon, chili and `std::thread::scope`, each workload
//! one criterion group with one function per implementation (`weft`,
//! `rayon`, `chili`, `std`). All pools get the same number of threads: the
//! machine's available parallelism.
//!
//! Quick run: `cargo bench -p weft-pool --bench pool -- --warm-up-time 0.5
//! --measurement-time 1 --sample-size 10`

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rayon::prelude::*;

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

    {
        const N: usize = 1_000_000;
        let mut g = c.benchmark_group("spawn_wait_1m_empty");
        {
            let weft = weft_pool();
            g.bench_function("weft", |b| {
                b.iter(|| {
                    let hs: Vec<_> = (0..N).map(|_| weft.spawn(|| ()).unwrap()).collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                })
            });
        }
        // rayon has no task handle: give it weft's, so both pay the same
        // for the handle and the comparison is about the pools.
        {
            let rayon = rayon_pool();
            g.bench_function("rayon", |b| {
                b.iter(|| {
                    let hs: Vec<_> = (0..N)
                        .map(|_| {
                            let (c, h) = weft_sync::TaskHandle::<()>::pair();
                            rayon.spawn(move || {
                                c.run(|| ());
                            });
                            h
                        })
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                })
            });
        }
        g.finish();
    }

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
    targets = benches
}
criterion_main!(pool_benches);
