//! `par_sort` (stable) and `par_sort_unstable` on random, sorted, reversed,
//! all-equal and few-distinct inputs, against the standard library's sorts;
//! a panicking comparator leaves every item in the slice exactly once.
//! Runs under Miri (`cargo xtask miri weft-pool`) with small inputs.

use std::cmp::Ordering;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use weft_pool::ThreadPool;
use weft_pool::iter::prelude::*;

/// Above the sorts' split threshold (4096) several times over, so that
/// they split and merge in parallel; small under Miri (whose threshold is 8).
const LARGE: usize = if cfg!(miri) { 64 } else { 20_000 };

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// The inputs every sort is checked on, named.
fn inputs(n: usize) -> Vec<(&'static str, Vec<u32>)> {
    let mut r = xorshift(n as u64 + 1);
    let random: Vec<u32> = (0..n).map(|_| r() as u32).collect();
    let few: Vec<u32> = (0..n).map(|_| (r() % 4) as u32).collect();
    let sorted: Vec<u32> = (0..n as u32).collect();
    let reversed: Vec<u32> = (0..n as u32).rev().collect();
    let mut saw: Vec<u32> = (0..n as u32).map(|i| i % 100).collect();
    saw.extend((0..n as u32 / 10).rev());
    let mut nearly = sorted.clone();
    if n > 10 {
        nearly.swap(3, n - 4);
    }
    let mut all = vec![
        ("random", random),
        ("few distinct", few),
        ("sorted", sorted),
        ("reversed", reversed),
        ("all equal", vec![7; n]),
    ];
    if !cfg!(miri) {
        all.push(("sawtooth", saw));
        all.push(("nearly sorted", nearly));
    }
    all
}

const SIZES: &[usize] = if cfg!(miri) {
    &[0, 1, 17, LARGE]
} else {
    &[0, 1, 2, 17, LARGE]
};

#[test]
fn par_sort_unstable_sorts() {
    for &n in SIZES {
        for (name, v) in inputs(n) {
            let mut want = v.clone();
            want.sort_unstable();
            let mut got = v.clone();
            got.par_sort_unstable();
            assert_eq!(got, want, "{name}, n = {n}");
            let mut got = v.clone();
            got.par_sort_unstable_by(|a, b| b.cmp(a));
            want.reverse();
            assert_eq!(got, want, "{name} descending, n = {n}");
            let mut got = v.clone();
            got.par_sort_unstable_by_key(|&x| x % 1000);
            assert!(
                got.windows(2).all(|w| w[0] % 1000 <= w[1] % 1000),
                "{name} by key"
            );
        }
    }
}

/// Keyed records: the key has few values, the tag is the input position,
/// so a stable sort's output is the standard stable sort's exactly.
fn records(v: &[u32]) -> Vec<(u32, usize)> {
    v.iter().map(|&x| x % 64).zip(0..).collect()
}

#[test]
fn par_sort_is_stable() {
    for &n in SIZES {
        for (name, v) in inputs(n) {
            let recs = records(&v);
            let mut want = recs.clone();
            want.sort_by_key(|r| r.0);
            let mut got = recs.clone();
            got.par_sort_by_key(|r| r.0);
            assert_eq!(got, want, "{name}, n = {n}: by_key");
            let mut got = recs.clone();
            got.par_sort_by(|a, b| b.0.cmp(&a.0));
            let mut want_desc = recs.clone();
            want_desc.sort_by_key(|r| std::cmp::Reverse(r.0));
            assert_eq!(got, want_desc, "{name}, n = {n}: by, descending");
            let mut got = v.clone();
            got.par_sort();
            let mut want = v.clone();
            want.sort();
            assert_eq!(got, want, "{name}, n = {n}: plain");
        }
    }
}

#[test]
fn sorts_owned_heap_items() {
    let n = if cfg!(miri) { 60 } else { 20_000 };
    let mut r = xorshift(5);
    let v: Vec<String> = (0..n).map(|_| format!("{:x}", r() % 5000)).collect();
    let mut want = v.clone();
    want.sort();
    let mut got = v.clone();
    got.par_sort();
    assert_eq!(got, want);
    let mut got = v;
    got.par_sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn sorts_inside_a_custom_pool_of_any_size() {
    let threads: &[usize] = if cfg!(miri) { &[1, 2] } else { &[1, 2, 3] };
    for &threads in threads {
        let pool = ThreadPool::new(threads).unwrap();
        for (name, v) in inputs(LARGE) {
            let mut want = records(&v);
            want.sort_by_key(|r| r.0);
            let mut got = records(&v);
            pool.install(|| got.par_sort_by_key(|r| r.0));
            assert_eq!(got, want, "{name} on {threads} threads");
            let mut got = v.clone();
            pool.install(|| got.par_sort_unstable());
            assert!(
                got.windows(2).all(|w| w[0] <= w[1]),
                "{name} on {threads} threads"
            );
        }
    }
}

/// Counts its drops; compared by `key`.
struct Tracked<'a> {
    key: u32,
    drops: &'a AtomicUsize,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, AtomicOrdering::Relaxed);
    }
}

#[test]
fn a_panicking_comparator_leaves_every_item_once() {
    let n = if cfg!(miri) { 64 } else { 30_000 };
    let drops = AtomicUsize::new(0);
    let mut r = xorshift(9);
    let keys: Vec<u32> = (0..n).map(|_| (r() % 1000) as u32).collect();
    for stable in [true, false] {
        for panic_after in [0usize, 10, n, 3 * n] {
            let mut v: Vec<Tracked> = keys
                .iter()
                .map(|&key| Tracked { key, drops: &drops })
                .collect();
            let calls = AtomicUsize::new(0);
            let cmp = |a: &Tracked, b: &Tracked| -> Ordering {
                if calls.fetch_add(1, AtomicOrdering::Relaxed) == panic_after {
                    panic!("comparator gave up");
                }
                a.key.cmp(&b.key)
            };
            let r = catch_unwind(AssertUnwindSafe(|| {
                if stable {
                    v.par_sort_by(cmp);
                } else {
                    v.par_sort_unstable_by(cmp);
                }
            }));
            assert!(
                r.is_err(),
                "the comparator panicked (after {panic_after} calls)"
            );
            assert_eq!(
                drops.load(AtomicOrdering::Relaxed),
                0,
                "nothing dropped yet"
            );
            // The same multiset of items, each once.
            let mut got: Vec<u32> = v.iter().map(|t| t.key).collect();
            got.sort_unstable();
            let mut want = keys.clone();
            want.sort_unstable();
            assert_eq!(got, want, "stable = {stable}, after {panic_after} calls");
            drop(v);
            assert_eq!(drops.swap(0, AtomicOrdering::Relaxed), n);
        }
    }
}

#[test]
fn sorting_zero_sized_items() {
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let mut v: Vec<()> = std::iter::repeat_n((), n).collect();
    v.par_sort();
    assert_eq!(v.len(), n);
    v.par_sort_unstable();
    assert_eq!(v.len(), n);
}
