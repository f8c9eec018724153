//! LifoQueue, PriorityQueue and SimpleQueue: the orders of Python's `queue`
//! module, and the same timed, async and shutdown paths as `Queue` (the
//! protocol is shared; these tests check each wrapper reaches it).

mod common;

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{deadline, settle};
use futures_lite::future::{block_on, poll_once};
use weft_sync::{GetError, LifoQueue, PriorityQueue, PutError, SimpleQueue, TaskDoneError};

const PER_PRODUCER: usize = if cfg!(miri) { 20 } else { 500 };

#[test]
fn lifo_gives_the_newest_first() {
    let q = LifoQueue::bounded(4);
    for i in 0..4 {
        q.put(i).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(q.len(), 4);
    let got: Vec<_> = (0..4).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, vec![3, 2, 1, 0]);
    assert_eq!(q.try_get(), Err(GetError::Empty));
}

#[test]
fn priority_gives_the_smallest_first_and_fifo_among_equals() {
    /// Ordered by priority only: ids tell the arrival order apart.
    #[derive(Debug, PartialEq, Eq)]
    struct Job {
        priority: u8,
        id: u32,
    }
    impl Ord for Job {
        fn cmp(&self, other: &Self) -> CmpOrdering {
            self.priority.cmp(&other.priority)
        }
    }
    impl PartialOrd for Job {
        fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
            Some(self.cmp(other))
        }
    }
    let q = PriorityQueue::unbounded();
    for (id, priority) in [(0, 5), (1, 1), (2, 5), (3, 0), (4, 1), (5, 5)] {
        q.put(Job { priority, id }).unwrap();
    }
    let got: Vec<_> = (0..6).map(|_| q.get().unwrap()).map(|j| j.id).collect();
    assert_eq!(got, vec![3, 1, 4, 0, 2, 5]);

    let largest_first = PriorityQueue::unbounded();
    for v in [2, 9, 4] {
        largest_first.put(Reverse(v)).unwrap();
    }
    assert_eq!(largest_first.get(), Ok(Reverse(9)));
}

#[test]
fn priority_order_under_several_producers() {
    deadline(30, || {
        let q = Arc::new(PriorityQueue::unbounded());
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        // Interleaved values: (i * 7919 + p) mod a prime.
                        q.put(((i * 7919 + p * 31) % 10007, p)).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut got = Vec::new();
        while let Ok(v) = q.try_get() {
            got.push(v);
        }
        assert_eq!(got.len(), 4 * PER_PRODUCER);
        assert!(
            got.windows(2).all(|w| w[0] <= w[1]),
            "not in priority order"
        );
    });
}

#[test]
fn lifo_order_under_several_producers() {
    deadline(30, || {
        let q = Arc::new(LifoQueue::unbounded());
        let producers: Vec<_> = (0..4)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        q.put((p, i)).unwrap();
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut got = Vec::new();
        while let Ok(v) = q.try_get() {
            got.push(v);
        }
        assert_eq!(got.len(), 4 * PER_PRODUCER);
        // Each producer's items come out newest first.
        for p in 0..4 {
            let mine: Vec<_> = got
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, i)| *i)
                .collect();
            let expected: Vec<_> = (0..PER_PRODUCER).rev().collect();
            assert_eq!(mine, expected, "producer {p}");
        }
    });
}

#[test]
fn many_producers_and_consumers_lose_nothing() {
    deadline(30, || {
        let q = Arc::new(PriorityQueue::bounded(4));
        let consumers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || {
                    let mut sum = 0usize;
                    while let Ok(v) = q.get() {
                        sum += v;
                        q.task_done().unwrap();
                    }
                    sum
                })
            })
            .collect();
        let producers: Vec<_> = (0..3)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        if i % 2 == 0 {
                            q.put(p * PER_PRODUCER + i).unwrap();
                        } else {
                            block_on(q.put_async(p * PER_PRODUCER + i)).unwrap();
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        q.join();
        q.shutdown(false);
        let total: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        let n = 3 * PER_PRODUCER;
        assert_eq!(total, n * (n - 1) / 2);
    });
}

/// The timed, async, task and shutdown paths, once per queue type that has
/// `Queue`'s whole surface.
macro_rules! full_surface_tests {
    ($module:ident, $Q:ident) => {
        mod $module {
            use super::*;

            #[test]
            fn timeouts_fire_and_hand_the_item_back() {
                let q = $Q::bounded(1);
                let start = Instant::now();
                assert_eq!(
                    q.get_timeout(Duration::from_millis(20)),
                    Err(GetError::Empty)
                );
                assert!(start.elapsed() >= Duration::from_millis(20));
                q.put(1).unwrap();
                match q.put_timeout(2, Duration::from_millis(20)) {
                    Err(PutError::Full(v)) => assert_eq!(v, 2),
                    other => panic!("expected Full, got {other:?}"),
                }
                assert!(matches!(q.try_put(3), Err(PutError::Full(3))));
                assert_eq!(q.get_timeout(Duration::from_millis(20)), Ok(1));
                // Duration::MAX is no limit, not a panic.
                q.put_timeout(4, Duration::MAX).unwrap();
                assert_eq!(q.get_timeout(Duration::MAX), Ok(4));
            }

            #[test]
            fn blocked_put_and_get_wake_up() {
                deadline(10, || {
                    let q = Arc::new($Q::bounded(1));
                    q.put(1).unwrap();
                    let putter = {
                        let q = q.clone();
                        thread::spawn(move || q.put(2))
                    };
                    settle();
                    assert!(!putter.is_finished(), "put must wait while full");
                    assert_eq!(q.get(), Ok(1));
                    putter.join().unwrap().unwrap();
                    assert_eq!(q.get(), Ok(2));
                    let getter = {
                        let q = q.clone();
                        thread::spawn(move || q.get_timeout(Duration::from_secs(30)))
                    };
                    settle();
                    q.put(3).unwrap();
                    assert_eq!(getter.join().unwrap(), Ok(3));
                });
            }

            #[test]
            fn async_put_and_get_wait() {
                deadline(10, || {
                    let q = $Q::bounded(1);
                    q.put(1).unwrap();
                    let mut put = q.put_async(2);
                    assert!(
                        block_on(poll_once(&mut put)).is_none(),
                        "full: the put waits"
                    );
                    assert_eq!(q.try_get(), Ok(1));
                    block_on(put).unwrap();
                    assert_eq!(block_on(q.get_async()), Ok(2));
                    let mut get = q.get_async();
                    assert!(
                        block_on(poll_once(&mut get)).is_none(),
                        "empty: the get waits"
                    );
                    q.put(3).unwrap();
                    assert_eq!(block_on(get), Ok(3));
                });
            }

            #[test]
            fn dropped_futures_lose_no_item_and_keep_no_room() {
                let q = $Q::bounded(1);
                let mut get = q.get_async();
                assert!(block_on(poll_once(&mut get)).is_none());
                q.put(1).unwrap();
                drop(get);
                assert_eq!(q.try_get(), Ok(1), "the item stayed in the queue");
                q.put(2).unwrap();
                let mut put = q.put_async(3);
                assert!(block_on(poll_once(&mut put)).is_none());
                drop(put);
                assert_eq!(q.try_get(), Ok(2));
                assert_eq!(
                    q.try_get(),
                    Err(GetError::Empty),
                    "the dropped put put nothing"
                );
            }

            #[test]
            fn task_done_and_join() {
                deadline(10, || {
                    let q = Arc::new($Q::unbounded());
                    q.put(1).unwrap();
                    q.put(2).unwrap();
                    assert_eq!(q.unfinished_tasks(), 2);
                    assert!(q.join_timeout(Duration::from_millis(10)).is_err());
                    let worker = {
                        let q = q.clone();
                        thread::spawn(move || {
                            for _ in 0..2 {
                                q.get().unwrap();
                                q.task_done().unwrap();
                            }
                        })
                    };
                    q.join();
                    block_on(q.join_async());
                    worker.join().unwrap();
                    assert_eq!(q.task_done(), Err(TaskDoneError));
                });
            }

            #[test]
            fn shutdown_drains_then_fails() {
                let q = $Q::unbounded();
                q.put(1).unwrap();
                q.put(2).unwrap();
                q.shutdown(false);
                assert!(q.is_shut_down());
                assert!(matches!(q.put(3), Err(PutError::ShutDown(3))));
                assert!(matches!(q.try_put(3), Err(PutError::ShutDown(3))));
                assert!(matches!(
                    block_on(q.put_async(3)),
                    Err(PutError::ShutDown(3))
                ));
                let mut left = vec![q.get().unwrap(), block_on(q.get_async()).unwrap()];
                left.sort();
                assert_eq!(left, vec![1, 2]);
                assert_eq!(q.get(), Err(GetError::ShutDown));
                assert_eq!(q.try_get(), Err(GetError::ShutDown));
                assert_eq!(
                    q.get_timeout(Duration::from_secs(30)),
                    Err(GetError::ShutDown)
                );
                assert_eq!(block_on(q.get_async()), Err(GetError::ShutDown));
                assert_eq!(q.unfinished_tasks(), 2, "a plain shutdown keeps the count");
            }

            #[test]
            fn immediate_shutdown_discards_and_releases_join() {
                deadline(10, || {
                    let q = Arc::new($Q::unbounded());
                    q.put(1).unwrap();
                    q.put(2).unwrap();
                    let joiner = {
                        let q = q.clone();
                        thread::spawn(move || q.join())
                    };
                    settle();
                    assert!(!joiner.is_finished());
                    q.shutdown(true);
                    joiner.join().unwrap();
                    assert_eq!(q.len(), 0);
                    assert_eq!(q.unfinished_tasks(), 0);
                    assert_eq!(q.get(), Err(GetError::ShutDown));
                });
            }

            #[test]
            fn shutdown_wakes_blocked_getters_and_putters() {
                deadline(10, || {
                    let empty = Arc::new($Q::<u8>::unbounded());
                    let full = Arc::new($Q::bounded(1));
                    full.put(0u8).unwrap();
                    let getter = {
                        let q = empty.clone();
                        thread::spawn(move || q.get())
                    };
                    let async_getter = {
                        let q = empty.clone();
                        thread::spawn(move || block_on(q.get_async()))
                    };
                    let putter = {
                        let q = full.clone();
                        thread::spawn(move || q.put(1))
                    };
                    let async_putter = {
                        let q = full.clone();
                        thread::spawn(move || block_on(q.put_async(2)))
                    };
                    settle();
                    empty.shutdown(false);
                    full.shutdown(false);
                    assert_eq!(getter.join().unwrap(), Err(GetError::ShutDown));
                    assert_eq!(async_getter.join().unwrap(), Err(GetError::ShutDown));
                    assert!(matches!(putter.join().unwrap(), Err(PutError::ShutDown(1))));
                    assert!(matches!(
                        async_putter.join().unwrap(),
                        Err(PutError::ShutDown(2))
                    ));
                    assert_eq!(full.get(), Ok(0), "the item put before is still drained");
                });
            }

            #[test]
            #[should_panic(expected = "capacity of at least 1")]
            fn zero_capacity_is_refused() {
                let _ = $Q::<u8>::bounded(0);
            }

            #[test]
            fn huge_capacity_allocates_nothing_up_front() {
                let q = $Q::bounded(usize::MAX);
                assert_eq!(q.capacity(), Some(usize::MAX));
                q.put(1).unwrap();
                assert!(!q.is_full());
            }
        }
    };
}

full_surface_tests!(lifo, LifoQueue);
full_surface_tests!(priority, PriorityQueue);

#[test]
fn simple_queue_is_fifo_and_never_blocks_a_put() {
    let q = SimpleQueue::new();
    for i in 0..1000 {
        q.put(i).unwrap();
    }
    assert_eq!(q.len(), 1000);
    let got: Vec<_> = (0..1000).map(|_| q.get().unwrap()).collect();
    assert_eq!(got, (0..1000).collect::<Vec<_>>());
    assert!(q.is_empty());
}

#[test]
fn simple_queue_timed_async_and_shutdown() {
    deadline(10, || {
        let q = Arc::new(SimpleQueue::new());
        assert_eq!(
            q.get_timeout(Duration::from_millis(20)),
            Err(GetError::Empty)
        );
        let mut get = q.get_async();
        assert!(block_on(poll_once(&mut get)).is_none());
        q.put(1).unwrap();
        assert_eq!(block_on(get), Ok(1));

        let blocked = {
            let q = q.clone();
            thread::spawn(move || q.get())
        };
        let blocked_async = {
            let q = q.clone();
            thread::spawn(move || block_on(q.get_async()))
        };
        settle();
        q.put(2).unwrap();
        q.shutdown(false);
        let outcomes = [blocked.join().unwrap(), blocked_async.join().unwrap()];
        assert!(
            outcomes == [Ok(2), Err(GetError::ShutDown)]
                || outcomes == [Err(GetError::ShutDown), Ok(2)],
            "one getter gets the item, the other the shutdown: {outcomes:?}"
        );
        assert!(matches!(q.put(3), Err(PutError::ShutDown(3))));
        assert_eq!(
            q.get_timeout(Duration::from_secs(30)),
            Err(GetError::ShutDown)
        );

        let q = SimpleQueue::new();
        q.put("dropped").unwrap();
        q.shutdown(true);
        assert_eq!(q.try_get(), Err(GetError::ShutDown));
    });
}
