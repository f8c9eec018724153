//! The seed's last lesson, in Rust: race conditions and deadlocks, and the
//! weft primitives that prevent them.
//!
//! 1. A lost update: two threads do `read; add; write` on a shared counter
//!    without a lock and lose increments; a `Lock` fixes it.
//! 2. Producer/consumer, twice: with a `Condition` over a `Mutex`, and with a
//!    `Queue` (which does the same bookkeeping for you, `task_done`/`join`
//!    included).
//! 3. A `Semaphore` keeping at most three workers in a section at once.
//! 4. A deadlock avoided: two threads need the same two locks; taking them in
//!    one global order (and, as a safety net, with a timeout) means neither
//!    waits for the other forever.
//!
//! Run it: `cargo run -p weft --example race_conditions`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use weft::sync::{Condition, GetError, Mutex, Queue, Semaphore};

const THREADS: u64 = 4;
const INCREMENTS: u64 = 100_000;

fn lost_update() {
    // Rust will not compile a plain data race, so the race is spelled out:
    // an atomic load, then a separate atomic store. Each step is atomic; the
    // read-modify-write as a whole is not, exactly like `counter += 1` in
    // Python threads.
    let counter = Arc::new(AtomicU64::new(0));
    let racers: Vec<_> = (0..THREADS)
        .map(|_| {
            let counter = counter.clone();
            thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    let v = counter.load(Ordering::Relaxed);
                    std::hint::spin_loop(); // widen the window, as a GIL switch would
                    counter.store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for r in racers {
        r.join().unwrap();
    }
    let racy = counter.load(Ordering::Relaxed);

    let locked = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let locked = locked.clone();
            thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    *locked.lock() += 1; // read, add and write under the lock
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let safe = *locked.lock();
    println!("1. lost update: expected {}", THREADS * INCREMENTS);
    println!(
        "   without a lock: {racy} ({} increments lost)",
        THREADS * INCREMENTS - racy
    );
    println!("   with a Lock:    {safe}");
    assert_eq!(safe, THREADS * INCREMENTS);
}

fn producer_consumer_with_condition() -> u64 {
    let shared = Arc::new((Mutex::new((Vec::<u64>::new(), false)), Condition::new()));
    let consumer = {
        let shared = shared.clone();
        thread::spawn(move || {
            let (state, ready) = &*shared;
            let mut sum = 0;
            let mut guard = state.lock();
            loop {
                // Wait until there is an item or the producer is finished.
                ready.wait_for(&mut guard, |(items, done)| !items.is_empty() || *done);
                match guard.0.pop() {
                    Some(item) => sum += item,
                    None => return sum, // empty and done
                }
            }
        })
    };
    let (state, ready) = &*shared;
    for item in 1..=100 {
        state.lock().0.push(item);
        ready.notify_one();
    }
    state.lock().1 = true;
    ready.notify_all();
    consumer.join().unwrap()
}

fn producer_consumer_with_queue() -> u64 {
    let queue = Arc::new(Queue::bounded(8));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let queue = queue.clone();
            thread::spawn(move || {
                let mut sum = 0;
                loop {
                    match queue.get() {
                        Ok(item) => {
                            sum += item;
                            queue.task_done().unwrap();
                        }
                        Err(GetError::ShutDown) => return sum,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for item in 1..=100u64 {
        queue.put(item).unwrap(); // waits while the consumers are behind
    }
    queue.join(); // every item processed
    queue.shutdown(false); // consumers drain and stop
    consumers.into_iter().map(|c| c.join().unwrap()).sum()
}

fn semaphore_limit() -> usize {
    let slots = Arc::new(Semaphore::new(3));
    let inside = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let (slots, inside, peak) = (slots.clone(), inside.clone(), peak.clone());
            thread::spawn(move || {
                let _permit = slots.acquire();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    peak.load(Ordering::SeqCst)
}

fn deadlock_avoided() -> (u64, u64) {
    // Two accounts, two transfers in opposite directions at the same time.
    // Locking "from" then "to" would deadlock (A waits for B's lock, B for
    // A's). Locking in one global order (by account number) cannot.
    let accounts = Arc::new([Mutex::new(10_000u64), Mutex::new(10_000u64)]);
    let transfer = |accounts: Arc<[Mutex<u64>; 2]>, from: usize, to: usize, times: u64| {
        thread::spawn(move || {
            for _ in 0..times {
                let (first, second) = (from.min(to), from.max(to));
                let mut a = accounts[first].lock();
                // The timeout is a safety net: a wrong lock order would show
                // up as an error here instead of a hang.
                let mut b = accounts[second]
                    .try_lock_for(Duration::from_secs(5))
                    .expect("lock order violated: this would have deadlocked");
                let (src, dst) = if from == first {
                    (&mut *a, &mut *b)
                } else {
                    (&mut *b, &mut *a)
                };
                *src -= 1;
                *dst += 1;
            }
        })
    };
    let t1 = transfer(accounts.clone(), 0, 1, 10_000);
    let t2 = transfer(accounts.clone(), 1, 0, 10_000);
    t1.join().unwrap();
    t2.join().unwrap();
    (*accounts[0].lock(), *accounts[1].lock())
}

fn main() {
    lost_update();

    let cond_sum = producer_consumer_with_condition();
    let queue_sum = producer_consumer_with_queue();
    println!(
        "2. producer/consumer: Condition sum {cond_sum}, Queue sum {queue_sum} (expected 5050)"
    );
    assert_eq!((cond_sum, queue_sum), (5050, 5050));

    let peak = semaphore_limit();
    println!("3. semaphore: 10 workers, at most {peak} inside at once (limit 3)");
    assert!(peak <= 3);

    let (a, b) = deadlock_avoided();
    println!(
        "4. deadlock avoided: 20000 opposite transfers, balances {a} + {b} = {}",
        a + b
    );
    assert_eq!(a + b, 20_000);
}
