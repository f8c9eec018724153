//! The parallel iterators against their sequential results, on empty,
//! one-item and large inputs; panics inside closures; running inside a
//! custom pool; `Vec` by value and `collect` dropping what they own exactly
//! once. Miri (`cargo xtask miri weft-pool`) runs the tests that go through
//! the unsafe paths (`collect`, `Vec` by value), with small inputs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_pool::ThreadPool;
use weft_pool::iter::prelude::*;

/// Large enough to split many times; small under Miri.
const LARGE: usize = if cfg!(miri) { 24 } else { 100_000 };
const SIZES: &[usize] = if cfg!(miri) {
    &[0, 1, LARGE]
} else {
    &[0, 1, 7, LARGE]
};

fn input(n: usize) -> Vec<u64> {
    // xorshift64: deterministic, unordered.
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ n as u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % 1000
        })
        .collect()
}

fn pool(n: usize) -> ThreadPool {
    ThreadPool::new(n).unwrap()
}

#[test]
fn map_collect_keeps_order() {
    for &n in SIZES {
        let v = input(n);
        let got: Vec<u64> = v.par_iter().map(|x| x * 3 + 1).collect();
        let want: Vec<u64> = v.iter().map(|x| x * 3 + 1).collect();
        assert_eq!(got, want, "n = {n}");
    }
}

#[test]
fn filter_filter_map_flat_map_iter_collect() {
    for &n in SIZES {
        let v = input(n);
        let got: Vec<&u64> = v.par_iter().filter(|x| **x % 3 == 0).collect();
        let want: Vec<&u64> = v.iter().filter(|x| **x % 3 == 0).collect();
        assert_eq!(got, want, "filter, n = {n}");

        let got: Vec<u64> = v
            .par_iter()
            .filter_map(|&x| (x % 2 == 1).then_some(x / 2))
            .collect();
        let want: Vec<u64> = v
            .iter()
            .filter_map(|&x| (x % 2 == 1).then_some(x / 2))
            .collect();
        assert_eq!(got, want, "filter_map, n = {n}");

        let got: Vec<u64> = v.par_iter().flat_map_iter(|&x| 0..x % 4).collect();
        let want: Vec<u64> = v.iter().flat_map(|&x| 0..x % 4).collect();
        assert_eq!(got, want, "flat_map_iter, n = {n}");
    }
}

#[test]
fn enumerate_zip_chunks_with_min_len() {
    for &n in SIZES {
        let v = input(n);
        let w: Vec<u64> = (0..n as u64).collect();
        let got: Vec<(usize, &u64)> = v.par_iter().enumerate().collect();
        let want: Vec<(usize, &u64)> = v.iter().enumerate().collect();
        assert_eq!(got, want, "enumerate, n = {n}");

        let got: Vec<u64> = v.par_iter().zip(&w).map(|(a, b)| a * b).collect();
        let want: Vec<u64> = v.iter().zip(&w).map(|(a, b)| a * b).collect();
        assert_eq!(got, want, "zip, n = {n}");

        // Unequal lengths: as far as the shorter goes, from either side.
        let short = &w[..n / 2];
        let got: Vec<(&u64, &u64)> = v.par_iter().zip(short).collect();
        assert_eq!(got, v.iter().zip(short).collect::<Vec<_>>());
        let got: Vec<(&u64, &u64)> = short.par_iter().zip(&v).collect();
        assert_eq!(got, short.iter().zip(&v).collect::<Vec<_>>());

        for size in [1, 3, 64] {
            let got: Vec<Vec<u64>> = v.par_iter().copied().chunks(size).collect();
            let want: Vec<Vec<u64>> = v.chunks(size).map(<[u64]>::to_vec).collect();
            assert_eq!(got, want, "chunks({size}), n = {n}");
            let got: Vec<u64> = v.par_chunks(size).map(|c| c.iter().sum()).collect();
            let want: Vec<u64> = v.chunks(size).map(|c| c.iter().sum()).collect();
            assert_eq!(got, want, "par_chunks({size}), n = {n}");
        }

        let got: u64 = v.par_iter().with_min_len(1000).sum();
        assert_eq!(got, v.iter().sum::<u64>());
        // A floor above the length: one piece, the same answer.
        let got: Vec<u64> = v.par_iter().copied().with_min_len(usize::MAX).collect();
        assert_eq!(got, v);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn with_min_len_bounds_the_pieces() {
    let pool = pool(2);
    let n: usize = if cfg!(miri) { 64 } else { 10_000 };
    let pieces = AtomicUsize::new(0);
    pool.install(|| {
        (0..n)
            .into_par_iter()
            .with_min_len(n / 4)
            .fold(
                || {
                    pieces.fetch_add(1, Ordering::Relaxed);
                    0usize
                },
                |a, _| a + 1,
            )
            .for_each(|len| assert!(len >= n / 4, "a piece of {len} items"));
    });
    assert!(pieces.into_inner() <= 4);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn sum_product_reduce_fold_count() {
    for &n in SIZES {
        let v = input(n);
        assert_eq!(v.par_iter().sum::<u64>(), v.iter().sum::<u64>());
        assert_eq!(
            v.par_iter().map(|x| x * x).sum::<u64>(),
            v.iter().map(|x| x * x).sum::<u64>()
        );
        let small: Vec<u64> = v.iter().map(|x| x % 3 + 1).take(30).collect();
        assert_eq!(
            small.par_iter().product::<u64>(),
            small.iter().product::<u64>()
        );
        assert_eq!(
            v.par_iter().copied().reduce(|| 0, |a, b| a.max(b)),
            v.iter().copied().fold(0, u64::max)
        );
        assert_eq!(
            v.par_iter().copied().reduce_with(|a, b| a + b),
            v.iter().copied().reduce(|a, b| a + b)
        );
        let folded: Vec<u64> = v.par_iter().fold(|| 0u64, |a, &x| a + x).collect();
        assert_eq!(folded.iter().sum::<u64>(), v.iter().sum::<u64>());
        assert_eq!(
            v.par_iter().filter(|x| **x > 500).count(),
            v.iter().filter(|x| **x > 500).count()
        );
        assert_eq!(v.par_iter().count(), n);
    }
    // Integer ranges of every kind, half-open and closed.
    assert_eq!((0..1000u64).into_par_iter().sum::<u64>(), 499_500);
    assert_eq!(
        (-500..500i32).into_par_iter().map(i64::from).sum::<i64>(),
        -500
    );
    assert_eq!((1..=100usize).into_par_iter().sum::<usize>(), 5050);
    assert_eq!((0..=255u8).into_par_iter().count(), 256);
    assert_eq!(
        (-128..=127i8).into_par_iter().map(i32::from).sum::<i32>(),
        -128
    );
    assert_eq!((u64::MAX - 9..=u64::MAX).into_par_iter().count(), 10);
    let (lo, hi) = (std::hint::black_box(10u32), std::hint::black_box(0u32));
    assert_eq!((lo..hi).into_par_iter().count(), 0);
    assert_eq!((i64::from(lo)..=i64::from(hi)).into_par_iter().count(), 0);
    // An untyped range infers its integer type as a sequential one does.
    assert_eq!((0..100).into_par_iter().map(|x| x * 2).sum::<i32>(), 9900);
    let r: Vec<i16> = (-3..3i16).into_par_iter().collect();
    assert_eq!(r, [-3, -2, -1, 0, 1, 2]);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn min_max_and_by_key_match_std_on_ties() {
    for &n in SIZES {
        // Keyed records with many equal keys: which of equal ones comes
        // back is observable.
        let v: Vec<(u64, usize)> = input(n).into_iter().map(|x| x % 10).zip(0..).collect();
        assert_eq!(v.par_iter().min(), v.iter().min());
        assert_eq!(v.par_iter().max(), v.iter().max());
        assert_eq!(
            v.par_iter().min_by_key(|p| p.0),
            v.iter().min_by_key(|p| p.0)
        );
        assert_eq!(
            v.par_iter().max_by_key(|p| p.0),
            v.iter().max_by_key(|p| p.0)
        );
        assert_eq!(
            v.par_iter().min_by(|a, b| a.0.cmp(&b.0)),
            v.iter().min_by(|a, b| a.0.cmp(&b.0))
        );
        assert_eq!(
            v.par_iter().max_by(|a, b| a.0.cmp(&b.0)),
            v.iter().max_by(|a, b| a.0.cmp(&b.0))
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn any_all_find() {
    for &n in SIZES {
        let v = input(n);
        let targets: &[u64] = if cfg!(miri) {
            &[0, 1000]
        } else {
            &[0, 500, 998, 999, 1000]
        };
        for &t in targets {
            assert_eq!(v.par_iter().any(|&x| x == t), v.contains(&t), "any {t}");
            assert_eq!(
                v.par_iter().all(|&x| x < t),
                v.iter().all(|&x| x < t),
                "all {t}"
            );
            assert_eq!(
                v.par_iter().enumerate().find_first(|(_, x)| **x == t),
                v.iter().enumerate().find(|(_, x)| **x == t),
                "find_first {t}"
            );
            let got = v.par_iter().find_any(|x| **x == t);
            assert_eq!(got.is_some(), v.contains(&t));
            assert!(got.is_none_or(|x| *x == t));
            // find_first after an adapter that changes the count.
            assert_eq!(
                v.par_iter().filter(|x| **x % 2 == 0).position_among(t),
                v.iter().filter(|x| **x % 2 == 0).position(|x| *x == t)
            );
        }
    }
}

/// `find_first` through a filter, giving the position among the filtered.
trait PositionFirst {
    fn position_among(self, t: u64) -> Option<usize>;
}
impl<'a, I: ParallelIterator<Item = &'a u64>> PositionFirst for I {
    fn position_among(self, t: u64) -> Option<usize> {
        let items: Vec<&u64> = self.collect();
        items
            .par_iter()
            .enumerate()
            .find_first(|(_, x)| ***x == t)
            .map(|(i, _)| i)
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn find_first_returns_the_first_of_many_matches() {
    let n: usize = if cfg!(miri) { 64 } else { 200_000 };
    let pool = pool(2);
    let got = pool.install(|| {
        (0..n)
            .into_par_iter()
            .find_first(|x| x % 97 == 96 && *x > n / 3)
    });
    assert_eq!(got, (0..n).find(|x| x % 97 == 96 && *x > n / 3));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn for_each_and_par_iter_mut_visit_every_item_once() {
    for &n in SIZES {
        let mut v = input(n);
        let want: Vec<u64> = v.iter().map(|x| x + 1).collect();
        v.par_iter_mut().for_each(|x| *x += 1);
        assert_eq!(v, want);
        let mut arr = [1u8; 17];
        arr.par_iter_mut()
            .enumerate()
            .for_each(|(i, x)| *x += i as u8);
        assert_eq!(arr.to_vec(), (1..=17).collect::<Vec<u8>>());
        v.par_chunks_mut(10)
            .enumerate()
            .for_each(|(i, c)| c.iter_mut().for_each(|x| *x = i as u64));
        assert_eq!(v, (0..n).map(|i| (i / 10) as u64).collect::<Vec<_>>());
        let seen = AtomicUsize::new(0);
        (0..n).into_par_iter().for_each(|_| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(seen.into_inner(), n);
    }
}

#[test]
fn cloned_copied_into_par_iter_of_vec() {
    for &n in SIZES {
        let v: Vec<String> = input(n).iter().map(u64::to_string).collect();
        let got: Vec<String> = v.par_iter().cloned().collect();
        assert_eq!(got, v);
        let lens: Vec<usize> = v.clone().into_par_iter().map(|s| s.len()).collect();
        assert_eq!(lens, v.iter().map(String::len).collect::<Vec<_>>());
        let got: Vec<String> = v.clone().into_par_iter().collect();
        assert_eq!(got, v);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn runs_inside_install_on_a_custom_pool() {
    let pool = pool(3);
    let workers = std::sync::Mutex::new(std::collections::HashSet::new());
    let n: usize = if cfg!(miri) { 64 } else { 100_000 };
    let sum: u64 = pool.install(|| {
        (0..n as u64)
            .into_par_iter()
            .map(|x| {
                let i = weft_pool::current_thread_index().expect("runs on a worker");
                workers.lock().unwrap().insert(i);
                x
            })
            .sum()
    });
    assert_eq!(sum, (0..n as u64).sum());
    // Every piece ran on this pool's workers (indices 0..3).
    assert!(workers.into_inner().unwrap().iter().all(|&i| i < 3));
    assert_eq!(pool.install(weft_pool::current_num_threads), 3);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn runs_from_outside_any_pool_on_the_global_pool() {
    let on_worker = (0..10u32)
        .into_par_iter()
        .all(|_| weft_pool::current_thread_index().is_some());
    assert!(on_worker);
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn panics_in_closures_reach_the_caller() {
    let n: usize = if cfg!(miri) { 40 } else { 10_000 };
    let pool = pool(2);
    type Case<'a> = Box<dyn Fn() + Sync + 'a>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "map",
            Box::new(|| {
                std::hint::black_box(
                    (0..n)
                        .into_par_iter()
                        .map(|x| if x == n / 2 { panic!("boom") } else { x })
                        .sum::<usize>(),
                );
            }),
        ),
        (
            "filter",
            Box::new(|| {
                std::hint::black_box(
                    (0..n)
                        .into_par_iter()
                        .filter(|&x| if x == n - 1 { panic!("boom") } else { true })
                        .count(),
                );
            }),
        ),
        (
            "for_each",
            Box::new(|| (0..n).into_par_iter().for_each(|x| assert!(x != 3, "boom"))),
        ),
        (
            "reduce",
            Box::new(|| {
                std::hint::black_box(
                    (0..n)
                        .into_par_iter()
                        .reduce(|| 0, |a, b| if b == 7 { panic!("boom") } else { a + b }),
                );
            }),
        ),
        (
            "find_first",
            Box::new(|| {
                std::hint::black_box(
                    (0..n)
                        .into_par_iter()
                        .find_first(|&x| if x == n / 3 { panic!("boom") } else { false }),
                );
            }),
        ),
        (
            "collect",
            Box::new(|| {
                std::hint::black_box(
                    (0..n)
                        .into_par_iter()
                        .map(|x| {
                            if x == n - 2 {
                                panic!("boom")
                            } else {
                                x.to_string()
                            }
                        })
                        .collect::<Vec<_>>(),
                );
            }),
        ),
    ];
    for (name, case) in &cases {
        let outside = catch_unwind(AssertUnwindSafe(case)).expect_err(name);
        assert!(panic_message(outside).contains("boom"), "{name}");
        let inside = catch_unwind(AssertUnwindSafe(|| pool.install(case))).expect_err(name);
        assert!(panic_message(inside).contains("boom"), "{name}");
    }
    // The pool is fine afterwards.
    assert_eq!(
        pool.install(|| (0..100u32).into_par_iter().sum::<u32>()),
        4950
    );
}

/// Counts its drops.
struct Tracked<'a>(u32, &'a AtomicUsize);

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn vec_into_par_iter_drops_every_item_once() {
    let n: usize = if cfg!(miri) { 30 } else { 10_000 };
    let drops = AtomicUsize::new(0);
    let make = || {
        (0..n as u32)
            .map(|i| Tracked(i, &drops))
            .collect::<Vec<_>>()
    };

    // Consumed whole.
    make().into_par_iter().for_each(drop);
    assert_eq!(drops.swap(0, Ordering::Relaxed), n);

    // A search that stops early: the items never yielded are dropped too.
    let found = make().into_par_iter().find_any(|t| t.0 == 3).map(|t| t.0);
    assert_eq!(found, Some(3));
    assert_eq!(drops.swap(0, Ordering::Relaxed), n);

    // A panic half way.
    let r = catch_unwind(AssertUnwindSafe(|| {
        make()
            .into_par_iter()
            .for_each(|t| assert!(t.0 != n as u32 / 2, "boom"));
    }));
    assert!(r.is_err());
    assert_eq!(drops.swap(0, Ordering::Relaxed), n);

    // Collected: moved, not dropped, until the result is.
    let v: Vec<Tracked> = make().into_par_iter().collect();
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    assert!(v.iter().enumerate().all(|(i, t)| t.0 == i as u32));
    drop(v);
    assert_eq!(drops.swap(0, Ordering::Relaxed), n);
}

#[test]
fn collect_drops_the_written_items_when_a_piece_panics() {
    let n: usize = if cfg!(miri) { 30 } else { 10_000 };
    let made = AtomicUsize::new(0);
    let drops = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        (0..n)
            .into_par_iter()
            .map(|i| {
                assert!(i != n - 5, "boom");
                made.fetch_add(1, Ordering::Relaxed);
                Tracked(i as u32, &drops)
            })
            .collect::<Vec<_>>()
    }));
    assert!(r.is_err());
    // Every item made was dropped exactly once (Miri checks the "once").
    assert_eq!(drops.load(Ordering::Relaxed), made.load(Ordering::Relaxed));
}

#[test]
fn collect_of_unknown_length_keeps_order() {
    let n: usize = if cfg!(miri) { 50 } else { 100_000 };
    let pool = pool(4);
    let got: Vec<usize> = pool.install(|| (0..n).into_par_iter().filter(|x| x % 7 != 0).collect());
    assert_eq!(got, (0..n).filter(|x| x % 7 != 0).collect::<Vec<_>>());
    // Items that own memory, moved piece by piece into the result (Miri
    // checks each is moved once and freed once).
    let got: Vec<String> = pool.install(|| {
        (0..n)
            .into_par_iter()
            .filter(|x| x % 3 != 0)
            .map(|x| x.to_string())
            .collect()
    });
    let want: Vec<String> = (0..n)
        .filter(|x| x % 3 != 0)
        .map(|x| x.to_string())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn chunks_of_zero_panics() {
    let v = [1, 2, 3];
    assert!(catch_unwind(|| v.par_chunks(0).count()).is_err());
    assert!(catch_unwind(|| v.par_iter().chunks(0).count()).is_err());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn randomized_pipelines_match_sequential() {
    // A hand-rolled property test: random lengths, pool sizes and
    // thresholds.
    let rounds = if cfg!(miri) { 2 } else { 60 };
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let pools: Vec<ThreadPool> = [1, 2, 3].into_iter().map(pool).collect();
    for _ in 0..rounds {
        let n = (next() % if cfg!(miri) { 40 } else { 5000 }) as usize;
        let v = input(n);
        let k = next() % 7 + 1;
        let min = (next() % 100) as usize + 1;
        let p = &pools[(next() % 3) as usize];
        let (got, want) = p.install(|| {
            let got: Vec<(usize, u64)> = v
                .par_iter()
                .with_min_len(min)
                .enumerate()
                .filter(|(_, x)| **x % k != 0)
                .map(|(i, x)| (i, x * k))
                .collect();
            let want: Vec<(usize, u64)> = v
                .iter()
                .enumerate()
                .filter(|(_, x)| **x % k != 0)
                .map(|(i, x)| (i, x * k))
                .collect();
            (got, want)
        });
        assert_eq!(got, want, "n = {n}, k = {k}, min = {min}");
        let s: u64 = v
            .par_iter()
            .zip(v.par_iter().skip_none())
            .map(|(a, b)| a ^ b)
            .sum();
        assert_eq!(s, 0);
    }
}

/// Zips a slice iterator with itself (a no-op adapter for the test).
trait SkipNone: Sized {
    fn skip_none(self) -> Self {
        self
    }
}
impl<T> SkipNone for T {}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code over the Vec collect, which other tests run under Miri"
)]
fn collect_into_maps_sets_and_strings() {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
    for &n in SIZES {
        let v = input(n);
        let got: HashMap<u64, usize> = v.par_iter().enumerate().map(|(i, &x)| (x, i)).collect();
        let want: HashMap<u64, usize> = v.iter().enumerate().map(|(i, &x)| (x, i)).collect();
        assert_eq!(got, want, "duplicate keys keep the last value, n = {n}");
        let got: BTreeMap<u64, usize> = v.par_iter().enumerate().map(|(i, &x)| (x, i)).collect();
        assert_eq!(got, want.into_iter().collect());
        let got: HashSet<u64> = v.par_iter().copied().collect();
        assert_eq!(got, v.iter().copied().collect());
        let got: BTreeSet<u64> = v.par_iter().copied().collect();
        assert_eq!(got, v.iter().copied().collect());
        let got: String = v
            .par_iter()
            .map(|x| char::from(b'a' + (x % 26) as u8))
            .collect();
        assert_eq!(
            got,
            v.iter()
                .map(|x| char::from(b'a' + (x % 26) as u8))
                .collect::<String>()
        );
        let got: String = v.par_iter().map(|x| x.to_string()).collect();
        assert_eq!(got, v.iter().map(|x| x.to_string()).collect::<String>());
        let words = ["a", "bc", "", "def"];
        let got: String = words.par_iter().copied().collect();
        assert_eq!(got, "abcdef");
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn inspect_take_skip_positions_and_find_map() {
    for &n in SIZES {
        let v = input(n);
        let seen = AtomicUsize::new(0);
        let got: Vec<u64> = v
            .par_iter()
            .copied()
            .inspect(|_| {
                seen.fetch_add(1, Ordering::Relaxed);
            })
            .collect();
        assert_eq!((got, seen.into_inner()), (v.clone(), n));
        for k in [0, 1, n / 2, n, n + 3] {
            let got: Vec<u64> = v.par_iter().copied().take(k).collect();
            assert_eq!(
                got,
                v.iter().copied().take(k).collect::<Vec<_>>(),
                "take({k})"
            );
            let got: Vec<u64> = v.par_iter().copied().skip(k).collect();
            assert_eq!(
                got,
                v.iter().copied().skip(k).collect::<Vec<_>>(),
                "skip({k})"
            );
            let got: Vec<(usize, u64)> =
                v.par_iter().copied().skip(k).take(5).enumerate().collect();
            assert_eq!(
                got,
                v.iter()
                    .copied()
                    .skip(k)
                    .take(5)
                    .enumerate()
                    .collect::<Vec<_>>()
            );
        }
        for t in [0, 999, 1000] {
            assert_eq!(
                v.par_iter().position_first(|&x| x == t),
                v.iter().position(|&x| x == t)
            );
            let any = v.par_iter().position_any(|&x| x == t);
            assert_eq!(any.is_some(), v.contains(&t));
            assert!(any.is_none_or(|i| v[i] == t));
            assert_eq!(
                v.par_iter().find_map_first(|&x| (x == t).then_some(x * 2)),
                v.iter().find_map(|&x| (x == t).then_some(x * 2))
            );
            assert_eq!(
                v.par_iter().find_map_any(|&x| (x == t).then_some(x * 2)),
                v.contains(&t).then_some(t * 2)
            );
        }
    }
}

#[test]
fn skip_and_take_of_a_vec_by_value_drop_what_they_cut_off() {
    let n: usize = if cfg!(miri) { 20 } else { 1000 };
    let drops = AtomicUsize::new(0);
    let v: Vec<Tracked> = (0..n as u32).map(|i| Tracked(i, &drops)).collect();
    let kept: Vec<Tracked> = v.into_par_iter().skip(3).take(n / 2).collect();
    assert_eq!(
        drops.load(Ordering::Relaxed),
        n - n / 2,
        "cut-off items dropped once"
    );
    assert!(kept.iter().enumerate().all(|(i, t)| t.0 == i as u32 + 3));
    drop(kept);
    assert_eq!(drops.into_inner(), n);
}

#[test]
fn collect_into_vec_replaces_the_items_and_reuses_the_buffer() {
    let n: usize = if cfg!(miri) { 24 } else { 10_000 };
    let drops = AtomicUsize::new(0);
    let mut out: Vec<Tracked> = (0..5).map(|i| Tracked(i, &drops)).collect();
    (0..n as u32)
        .into_par_iter()
        .map(|i| Tracked(i, &drops))
        .collect_into_vec(&mut out);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        5,
        "the old items were dropped"
    );
    assert!(out.iter().enumerate().all(|(i, t)| t.0 == i as u32));
    let (cap, ptr) = (out.capacity(), out.as_ptr());
    // Fewer items: the same buffer, refilled.
    (0..n as u32 / 2)
        .into_par_iter()
        .map(|i| Tracked(i + 1, &drops))
        .collect_into_vec(&mut out);
    assert_eq!((out.capacity(), out.as_ptr()), (cap, ptr));
    assert_eq!(out.len(), n / 2);
    assert!(out.iter().enumerate().all(|(i, t)| t.0 == i as u32 + 1));
    drop(out);
    assert_eq!(drops.into_inner(), 5 + n + n / 2);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests of the unsafe paths (collect, Vec by value)"
)]
fn map_init_map_with_and_for_each_init_keep_one_state_per_piece() {
    let pool = pool(2);
    for &n in SIZES {
        let v = input(n);
        let inits = AtomicUsize::new(0);
        let got: Vec<(usize, u64)> = pool.install(|| {
            v.par_iter()
                .map_init(
                    || {
                        inits.fetch_add(1, Ordering::Relaxed);
                        Vec::<u64>::new()
                    },
                    |seen, &x| {
                        // The state persists across the items of a piece.
                        seen.push(x);
                        x + 1
                    },
                )
                .enumerate()
                .collect()
        });
        let want: Vec<(usize, u64)> = v.iter().map(|x| x + 1).enumerate().collect();
        assert_eq!(got, want, "n = {n}");
        let inits = inits.into_inner();
        assert!(inits <= n.max(1), "{inits} states for {n} items");
        if n == LARGE {
            assert!(inits * 100 < n, "a state per piece, not per item: {inits}");
        }

        // Unindexed (after a filter): the consumer side.
        let got: Vec<u64> = v
            .par_iter()
            .filter(|x| **x % 2 == 0)
            .map_with(10u64, |k, &x| {
                *k += 1;
                x
            })
            .collect();
        assert_eq!(
            got,
            v.iter()
                .filter(|x| **x % 2 == 0)
                .copied()
                .collect::<Vec<_>>()
        );

        let sum = AtomicUsize::new(0);
        v.par_iter().for_each_init(
            || 0usize,
            |count, &x| {
                *count += 1;
                sum.fetch_add(x as usize, Ordering::Relaxed);
            },
        );
        assert_eq!(sum.into_inner() as u64, v.iter().sum::<u64>());
        let seen = AtomicUsize::new(0);
        v.par_iter().for_each_with(5usize, |five, _| {
            assert_eq!(*five, 5);
            seen.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(seen.into_inner(), n);
    }
}
