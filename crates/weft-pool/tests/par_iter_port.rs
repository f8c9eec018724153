//! The rayon surface that ports reach for beyond the basics: `rev`, `step_by`,
//! `chain`, `flat_map`/`flatten`/`flatten_iter`, `unzip`, `partition`,
//! `par_extend`, `try_for_each`/`try_reduce`, `par_bridge`,
//! `with_max_len`, `par_windows`, `par_chunks_exact`. Each against its
//! sequential result on empty, one-item and large inputs, inside a
//! two-thread pool; panics in closures reach the caller.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_pool::ThreadPool;
use weft_pool::iter::prelude::*;

/// Large enough to split many times; small under Miri.
const LARGE: usize = if cfg!(miri) { 24 } else { 100_000 };
const SIZES: &[usize] = if cfg!(miri) {
    &[0, 1, LARGE]
} else {
    &[0, 1, 2, 7, LARGE]
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

/// Runs `f` in a fresh two-thread pool (so pieces really are stolen).
fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    ThreadPool::new(2).unwrap().install(f)
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests that collect in place or move items out of a Vec"
)]
fn step_by_matches_std() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            for step in [1, 2, 3, 1000, n.max(1), n + 1] {
                let got: Vec<u64> = v.par_iter().copied().step_by(step).collect();
                let want: Vec<u64> = v.iter().copied().step_by(step).collect();
                assert_eq!(got, want, "n = {n}, step = {step}");
                // Indexed: enumerate sees the stepped positions.
                let got: Vec<(usize, u64)> =
                    v.par_iter().copied().step_by(step).enumerate().collect();
                let want: Vec<(usize, u64)> = v.iter().copied().step_by(step).enumerate().collect();
                assert_eq!(got, want, "n = {n}, step = {step}");
            }
            let got: u64 = (0..n as u64)
                .into_par_iter()
                .step_by(7)
                .with_max_len(3)
                .sum();
            assert_eq!(got, (0..n as u64).step_by(7).sum::<u64>());
        }
    });
}

#[test]
fn rev_matches_std() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let want: Vec<u64> = v.iter().rev().map(|x| x * 3).collect();
            let got: Vec<u64> = v.par_iter().rev().map(|x| x * 3).collect();
            assert_eq!(got, want, "n = {n}");
            let got: Vec<u64> = v.par_iter().map(|x| x * 3).rev().collect();
            assert_eq!(got, want, "map then rev, n = {n}");
            // By value, through the default (gathering) path.
            let got: Vec<String> = v
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .into_par_iter()
                .rev()
                .collect();
            let want_s: Vec<String> = v.iter().rev().map(u64::to_string).collect();
            assert_eq!(got, want_s, "Vec by value, n = {n}");
            // Positions: enumerate before and after, zip, rev of rev.
            let got: Vec<(usize, &u64)> = v.par_iter().enumerate().rev().collect();
            let want: Vec<(usize, &u64)> = v.iter().enumerate().rev().collect();
            assert_eq!(got, want, "n = {n}");
            let got: Vec<(usize, &u64)> = v.par_iter().rev().enumerate().collect();
            let want: Vec<(usize, &u64)> = v.iter().rev().enumerate().collect();
            assert_eq!(got, want, "n = {n}");
            let got: Vec<(&u64, &u64)> = v.par_iter().rev().zip(&v).collect();
            let want: Vec<(&u64, &u64)> = v.iter().rev().zip(&v).collect();
            assert_eq!(got, want, "n = {n}");
            let got: Vec<&u64> = v.par_iter().rev().rev().with_max_len(5).collect();
            assert_eq!(got, v.iter().collect::<Vec<_>>(), "n = {n}");
            // The first match of the reversed order is the last one.
            let got = v.par_iter().rev().position_first(|&x| x < 100);
            assert_eq!(got, v.iter().rev().position(|&x| x < 100), "n = {n}");
            // Mutable, ranges (up to the type's maximum).
            let mut m = v.clone();
            m.par_iter_mut()
                .rev()
                .enumerate()
                .for_each(|(i, x)| *x = i as u64);
            let want: Vec<u64> = (0..n as u64).rev().collect();
            assert_eq!(m, want, "n = {n}");
            let got: Vec<u64> = (0..n as u64).into_par_iter().rev().collect();
            assert_eq!(got, want, "n = {n}");
        }
        let top = u8::MAX - 9;
        let got: Vec<u8> = (top..=u8::MAX).into_par_iter().rev().collect();
        assert_eq!(got, (top..=u8::MAX).rev().collect::<Vec<_>>());
    });
}

#[test]
fn step_by_zero_panics() {
    let r = catch_unwind(|| (0..10u32).into_par_iter().step_by(0));
    assert!(panic_message(r.unwrap_err()).contains("step must not be zero"));
}

#[test]
fn chain_keeps_order_and_length() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let w = input(n / 2 + 1);
            // Both lengths known: collected in place.
            let it = v.par_iter().chain(w.par_iter());
            assert_eq!(it.opt_len(), Some(v.len() + w.len()));
            let got: Vec<&u64> = it.collect();
            let want: Vec<&u64> = v.iter().chain(w.iter()).collect();
            assert_eq!(got, want, "n = {n}");
            // One side of unknown length.
            let got: Vec<u64> = v
                .par_iter()
                .copied()
                .filter(|x| x % 2 == 0)
                .chain(w.par_iter().copied())
                .collect();
            let want: Vec<u64> = v
                .iter()
                .copied()
                .filter(|x| x % 2 == 0)
                .chain(w.iter().copied())
                .collect();
            assert_eq!(got, want, "n = {n}");
            let got: u64 = v.par_iter().chain(&w).chain(&v).sum();
            assert_eq!(
                got,
                v.iter().sum::<u64>() * 2 + w.iter().sum::<u64>(),
                "n = {n}"
            );
        }
    });
}

#[test]
fn flat_map_flatten_and_flatten_iter_keep_order() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let want: Vec<u64> = v.iter().flat_map(|&x| 0..x % 5).collect();
            let got: Vec<u64> = v
                .par_iter()
                .flat_map(|&x| (0..x % 5).into_par_iter())
                .collect();
            assert_eq!(got, want, "flat_map, n = {n}");
            let nested: Vec<Vec<u64>> = v.iter().map(|&x| (0..x % 5).collect()).collect();
            let got: Vec<u64> = nested.clone().into_par_iter().flatten().collect();
            assert_eq!(got, want, "flatten, n = {n}");
            let got: Vec<u64> = nested.into_par_iter().flatten_iter().collect();
            assert_eq!(got, want, "flatten_iter, n = {n}");
            // Large inner iterators, themselves split.
            let got: u64 = (0..n.min(50) as u64)
                .into_par_iter()
                .flat_map(|i| (0..i * 1000).into_par_iter())
                .sum();
            let want: u64 = (0..n.min(50) as u64).flat_map(|i| 0..i * 1000).sum();
            assert_eq!(got, want, "n = {n}");
            // A search stops early through the inner iterators too.
            let hit = v
                .par_iter()
                .flat_map(|&x| vec![x, x + 1000])
                .find_first(|&y| y >= 1000);
            assert_eq!(hit, v.first().map(|&x| x + 1000), "n = {n}");
        }
    });
}

#[test]
fn unzip_and_partition_keep_order() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let (a, b): (Vec<u64>, Vec<String>) = v.par_iter().map(|&x| (x, x.to_string())).unzip();
            let (wa, wb): (Vec<u64>, Vec<String>) = v.iter().map(|&x| (x, x.to_string())).unzip();
            assert_eq!((a, b), (wa, wb), "unzip, n = {n}");
            let (even, odd): (Vec<u64>, Vec<u64>) = v.par_iter().partition(|&&x| x % 2 == 0);
            let (we, wo): (Vec<u64>, Vec<u64>) = v.iter().partition(|&&x| x % 2 == 0);
            assert_eq!((even, odd), (we, wo), "partition, n = {n}");
            // Into other collections.
            let (small, big): (HashSet<u64>, BTreeSet<u64>) =
                v.par_iter().copied().partition(|&x| x < 500);
            assert_eq!(small, v.iter().copied().filter(|&x| x < 500).collect());
            assert_eq!(big, v.iter().copied().filter(|&x| x >= 500).collect());
        }
    });
}

#[test]
fn par_extend_matches_extend() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let mut got = vec![1u64, 2];
            got.par_extend(v.par_iter().map(|x| x * 2));
            let mut want = vec![1u64, 2];
            want.extend(v.iter().map(|x| x * 2));
            assert_eq!(got, want, "Vec, n = {n}");

            let mut got: HashMap<u64, usize> = HashMap::new();
            got.par_extend(v.par_iter().enumerate().map(|(i, &x)| (x, i)));
            let mut want = HashMap::new();
            want.extend(v.iter().enumerate().map(|(i, &x)| (x, i)));
            assert_eq!(got, want, "HashMap (the last index wins), n = {n}");

            let mut got = BTreeMap::new();
            got.par_extend(v.par_iter().map(|&x| (x, ())));
            assert_eq!(got.len(), v.iter().collect::<BTreeSet<_>>().len());

            let mut got = String::from(">");
            got.par_extend(v.par_iter().map(|x| x.to_string()));
            let want: String = std::iter::once(">".to_string())
                .chain(v.iter().map(|x| x.to_string()))
                .collect();
            assert_eq!(got, want, "String, n = {n}");
        }
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests that collect in place or move items out of a Vec"
)]
fn try_for_each_stops_at_a_failure() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let ok: Result<(), u64> = v.par_iter().try_for_each(|_| Ok(()));
            assert_eq!(ok, Ok(()));
            // Fails on 999s: some 999 is returned, iff there is one.
            let r = v
                .par_iter()
                .try_for_each(|&x| if x == 999 { Err(x) } else { Ok(()) });
            assert_eq!(r.is_err(), v.contains(&999), "n = {n}");
            let r = v.par_iter().try_for_each(|&x| (x < 990).then_some(()));
            assert_eq!(r.is_none(), v.iter().any(|&x| x >= 990), "n = {n}");
        }
        // Stops early: far fewer calls than items.
        let calls = AtomicUsize::new(0);
        let r = (0..1_000_000u32).into_par_iter().try_for_each(|x| {
            calls.fetch_add(1, Ordering::Relaxed);
            if x >= 10 { Err(x) } else { Ok(()) }
        });
        assert!(r.unwrap_err() >= 10);
        assert!(calls.into_inner() < 1_000_000);
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests that collect in place or move items out of a Vec"
)]
fn try_reduce_matches_sequential_and_stops_early() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let got = v
                .par_iter()
                .map(|&x| Some(x))
                .try_reduce(|| 0, |a, b| a.checked_add(b));
            assert_eq!(got, Some(v.iter().sum()), "n = {n}");
            // An item that fails.
            let got: Result<u64, String> = v
                .par_iter()
                .map(|&x| {
                    if x == 0 {
                        Err("zero".to_string())
                    } else {
                        Ok(x)
                    }
                })
                .try_reduce(|| 0, |a, b| Ok(a.max(b)));
            let want = if v.contains(&0) {
                Err("zero".to_string())
            } else {
                Ok(v.iter().copied().max().unwrap_or(0))
            };
            assert_eq!(got, want, "n = {n}");
        }
        // `op` that fails: u8 overflows long before the end.
        let calls = AtomicUsize::new(0);
        let r: Result<u8, &str> = (0..1_000_000u32)
            .into_par_iter()
            .map(|_| Ok(1u8))
            .try_reduce(
                || 0,
                |a, b| {
                    calls.fetch_add(1, Ordering::Relaxed);
                    a.checked_add(b).ok_or("overflow")
                },
            );
        assert_eq!(r, Err("overflow"));
        assert!(calls.into_inner() < 1_000_000);
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests that collect in place or move items out of a Vec"
)]
fn par_bridge_sees_every_item_once() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            let mut got: Vec<u64> = v.clone().into_iter().par_bridge().map(|x| x + 1).collect();
            got.sort_unstable();
            let mut want: Vec<u64> = v.iter().map(|x| x + 1).collect();
            want.sort_unstable();
            assert_eq!(got, want, "n = {n}");
            let (tx, rx) = std::sync::mpsc::channel();
            for &x in &v {
                tx.send(x).unwrap();
            }
            drop(tx);
            assert_eq!(rx.into_iter().par_bridge().count(), n);
            // A search stops the bridge.
            let found = (0..).par_bridge().find_any(|&x: &u64| x >= n as u64);
            assert!(found.is_some_and(|x| x >= n as u64));
        }
    });
    // Outside any pool: on the global pool.
    let s: u32 = (0..100u32).par_bridge().sum();
    assert_eq!(s, 4950);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "safe code only: Miri runs the tests that collect in place or move items out of a Vec"
)]
fn with_max_len_bounds_the_pieces() {
    in_pool(|| {
        for &n in SIZES {
            for max in [1, 3, 100] {
                let got: Vec<usize> = (0..n)
                    .into_par_iter()
                    .with_max_len(max)
                    .fold(Vec::new, |mut piece, i| {
                        piece.push(i);
                        piece
                    })
                    .map(|piece| {
                        assert!(piece.len() <= max, "a piece of {} > {max}", piece.len());
                        piece
                    })
                    .flatten_iter()
                    .collect();
                assert_eq!(got, (0..n).collect::<Vec<_>>(), "n = {n}, max = {max}");
            }
            // `with_min_len` wins where they disagree.
            let pieces = AtomicUsize::new(0);
            (0..n)
                .into_par_iter()
                .with_max_len(1)
                .with_min_len(n / 2 + 1)
                .fold(|| pieces.fetch_add(1, Ordering::Relaxed), |a, _| a)
                .for_each(drop);
            assert!(pieces.into_inner() <= 1, "n = {n}");
        }
    });
}

#[test]
fn par_windows_and_par_chunks_exact_match_std() {
    in_pool(|| {
        for &n in SIZES {
            let v = input(n);
            for size in [1, 2, 3, 64, n.max(1), n + 1] {
                let got: Vec<&[u64]> = v.par_windows(size).collect();
                let want: Vec<&[u64]> = v.windows(size).collect();
                assert_eq!(got, want, "windows, n = {n}, size = {size}");
                let got: u64 = v
                    .par_windows(size)
                    .with_max_len(2)
                    .map(|w| w[0] + w[w.len() - 1])
                    .sum();
                assert_eq!(got, v.windows(size).map(|w| w[0] + w[w.len() - 1]).sum());

                let exact = v.par_chunks_exact(size);
                assert_eq!(exact.remainder(), v.chunks_exact(size).remainder());
                let got: Vec<&[u64]> = exact.collect();
                let want: Vec<&[u64]> = v.chunks_exact(size).collect();
                assert_eq!(got, want, "chunks_exact, n = {n}, size = {size}");
                let got: Vec<(usize, u64)> = v
                    .par_chunks_exact(size)
                    .enumerate()
                    .map(|(i, c)| (i, c.iter().sum()))
                    .collect();
                let want: Vec<(usize, u64)> = v
                    .chunks_exact(size)
                    .enumerate()
                    .map(|(i, c)| (i, c.iter().sum()))
                    .collect();
                assert_eq!(got, want);
            }
        }
    });
}

#[test]
fn zero_sizes_panic() {
    let v = [1, 2, 3];
    let r = catch_unwind(|| v.par_windows(0));
    assert!(panic_message(r.unwrap_err()).contains("window_size must not be zero"));
    let r = catch_unwind(|| v.par_chunks_exact(0));
    assert!(panic_message(r.unwrap_err()).contains("chunk_size must not be zero"));
}

#[test]
fn panics_in_closures_reach_the_caller() {
    let n: usize = if cfg!(miri) { 40 } else { 10_000 };
    let boom = |i: usize| {
        if i == n / 2 {
            panic!("boom at {i}");
        }
    };
    type Case<'a> = Box<dyn Fn() + Sync + 'a>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "rev",
            Box::new(|| (0..n).into_par_iter().rev().for_each(boom)),
        ),
        (
            "rev by value",
            Box::new(|| {
                let v: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                v.into_par_iter()
                    .rev()
                    .for_each(|s| boom(s.parse().unwrap()))
            }),
        ),
        (
            "step_by",
            Box::new(|| (0..n).into_par_iter().step_by(1).for_each(boom)),
        ),
        (
            "chain",
            Box::new(|| (0..1usize).into_par_iter().chain(0..n).for_each(boom)),
        ),
        (
            "flat_map",
            Box::new(|| {
                (0..n)
                    .into_par_iter()
                    .flat_map(|i| {
                        boom(i);
                        0..1
                    })
                    .for_each(drop)
            }),
        ),
        (
            "flat_map inner",
            Box::new(|| {
                (0..2)
                    .into_par_iter()
                    .flat_map(|_| (0..n).into_par_iter())
                    .for_each(boom)
            }),
        ),
        (
            "unzip",
            Box::new(|| {
                let _: (Vec<usize>, Vec<usize>) = (0..n)
                    .into_par_iter()
                    .map(|i| {
                        boom(i);
                        (i, i)
                    })
                    .unzip();
            }),
        ),
        (
            "partition",
            Box::new(|| {
                let _: (Vec<usize>, Vec<usize>) = (0..n).into_par_iter().partition(|&i| {
                    boom(i);
                    true
                });
            }),
        ),
        (
            "par_extend",
            Box::new(|| {
                let mut v = Vec::new();
                v.par_extend((0..n).into_par_iter().inspect(|&i| boom(i)));
            }),
        ),
        (
            "try_for_each",
            Box::new(|| {
                let _: Result<(), ()> = (0..n).into_par_iter().try_for_each(|i| {
                    boom(i);
                    Ok(())
                });
            }),
        ),
        (
            "try_reduce",
            Box::new(|| {
                let _ = (0..n).into_par_iter().map(Some).try_reduce(
                    || 0,
                    |a, b| {
                        boom(b);
                        Some(a + b)
                    },
                );
            }),
        ),
        (
            "par_bridge",
            Box::new(|| (0..n).par_bridge().for_each(boom)),
        ),
        (
            "par_bridge next",
            Box::new(|| (0..n).inspect(|&i| boom(i)).par_bridge().for_each(drop)),
        ),
        (
            "with_max_len",
            Box::new(|| (0..n).into_par_iter().with_max_len(7).for_each(boom)),
        ),
        (
            "par_windows",
            Box::new(|| {
                let v: Vec<usize> = (0..n + 1).collect();
                v.par_windows(2).for_each(|w| boom(w[0]))
            }),
        ),
        (
            "par_chunks_exact",
            Box::new(|| {
                let v: Vec<usize> = (0..n).collect();
                v.par_chunks_exact(1).for_each(|c| boom(c[0]))
            }),
        ),
    ];
    let pool = ThreadPool::new(2).unwrap();
    for (name, case) in &cases {
        // Under Miri (hundreds of times slower) only the case through an
        // unsafe path: items moved out of a `Vec` by value, dropped on panic.
        if cfg!(miri) && *name != "rev by value" {
            continue;
        }
        let r = pool.install(|| catch_unwind(AssertUnwindSafe(case)));
        let message = panic_message(r.expect_err(name));
        assert_eq!(message, format!("boom at {}", n / 2), "{name}");
    }
}
