//! Loom model of the sleep/wake protocol (`weft_pool::sleep`, compiled
//! against loom's types under `--cfg loom`): work pushed while a worker is
//! searching or going to sleep is always run, i.e. there is no lost
//! wake-up, also when producers skip the wake-up because a worker is
//! searching (the worker that finds work wakes the next); and the same
//! for `Waiters`, where workers blocked in a cross-pool `install` hear of
//! other pools' `install` jobs sent to theirs.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p weft-pool --test loom --release`
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use weft_pool::sleep::{Sleep, Waiters};

/// A queue of identical jobs, reduced to a counter.
struct Queue {
    jobs: AtomicUsize,
    done: AtomicUsize,
}

impl Queue {
    fn take(&self) -> bool {
        let mut n = self.jobs.load(Ordering::SeqCst);
        while n > 0 {
            match self
                .jobs
                .compare_exchange(n, n - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return true,
                Err(m) => n = m,
            }
        }
        false
    }
}

/// A worker, as `main_loop` runs one: run jobs while there are any; when
/// there are none, search (announced in `sleep`), then sleep; stop after
/// `want` jobs in total have run.
fn worker(sleep: &Sleep, index: usize, q: &Queue, want: usize) {
    let mut searching = false;
    loop {
        if q.done.load(Ordering::SeqCst) >= want {
            return;
        }
        if q.take() {
            if searching {
                searching = false;
                sleep.found_work(|| q.jobs.load(Ordering::SeqCst) > 0);
            }
            q.done.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        if q.done.load(Ordering::SeqCst) >= want {
            return;
        }
        if !searching {
            searching = true;
            sleep.start_searching();
            // The spin phase: look once more while searching.
            continue;
        }
        sleep.sleep(index, || q.jobs.load(Ordering::SeqCst) > 0);
    }
}

fn queue() -> Arc<Queue> {
    Arc::new(Queue {
        jobs: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    })
}

#[test]
fn one_worker_one_producer_no_lost_wakeup() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new(1));
        let q = queue();
        let (s, qq) = (sleep.clone(), q.clone());
        let w = thread::spawn(move || worker(&s, 0, &qq, 1));
        q.jobs.fetch_add(1, Ordering::SeqCst);
        sleep.notify_one();
        // If the wake-up were lost, loom would report a deadlock here.
        w.join().unwrap();
        assert_eq!(q.done.load(Ordering::SeqCst), 1);
        assert_eq!(sleep.sleepers(), 0);
    });
}

/// Two jobs pushed one after the other while two workers search and sleep:
/// a producer that skips the wake-up because a worker is searching relies on
/// that worker to take the job or to wake the other for it; both jobs run.
#[test]
fn two_workers_two_jobs_all_run() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let sleep = Arc::new(Sleep::new(2));
        let q = queue();
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (s, qq) = (sleep.clone(), q.clone());
                thread::spawn(move || {
                    worker(&s, i, &qq, 2);
                    // Whoever finishes wakes the other so it can see `done`.
                    s.terminate();
                })
            })
            .collect();
        for _ in 0..2 {
            q.jobs.fetch_add(1, Ordering::SeqCst);
            sleep.notify_one();
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(q.done.load(Ordering::SeqCst), 2);
    });
}

/// A burst: two jobs pushed at once (one notification each) to two
/// sleeping-or-searching workers, and each worker stops after its own
/// first job, so neither can run both: the second job needs the second
/// worker awake, which the chain (the first finder wakes the next) or a
/// producer's wake-up must provide. Nothing else wakes a worker here.
#[test]
fn burst_wakes_a_second_worker_for_the_second_job() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let sleep = Arc::new(Sleep::new(2));
        let q = queue();
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (s, qq) = (sleep.clone(), q.clone());
                thread::spawn(move || {
                    let mut searching = false;
                    loop {
                        if qq.take() {
                            if searching {
                                s.found_work(|| qq.jobs.load(Ordering::SeqCst) > 0);
                            }
                            qq.done.fetch_add(1, Ordering::SeqCst);
                            return;
                        }
                        if !searching {
                            searching = true;
                            s.start_searching();
                            continue;
                        }
                        s.sleep(i, || qq.jobs.load(Ordering::SeqCst) > 0);
                    }
                })
            })
            .collect();
        q.jobs.fetch_add(2, Ordering::SeqCst);
        sleep.notify_one();
        sleep.notify_one();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(q.done.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn terminate_wakes_every_sleeper() {
    loom::model(|| {
        let sleep = Arc::new(Sleep::new(1));
        let s = sleep.clone();
        let w = thread::spawn(move || {
            s.start_searching();
            s.sleep(0, || false);
        });
        sleep.terminate();
        w.join().unwrap();
    });
}

/// `notify_all` (used for broadcasts, where each worker has work of its
/// own) wakes every worker that was asleep, even if another worker takes a
/// pending single wake-up in between.
#[test]
fn notify_all_reaches_each_sleeper() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let sleep = Arc::new(Sleep::new(2));
        let mail: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let workers: Vec<_> = (0..2)
            .map(|i| {
                let (s, m) = (sleep.clone(), mail.clone());
                thread::spawn(move || {
                    s.start_searching();
                    while m[i].load(Ordering::SeqCst) == 0 {
                        s.sleep(i, || m[i].load(Ordering::SeqCst) > 0);
                    }
                })
            })
            .collect();
        sleep.notify_one(); // a stray single wake-up
        for m in mail.iter() {
            m.store(1, Ordering::SeqCst);
        }
        sleep.notify_all();
        for w in workers {
            w.join().unwrap();
        }
    });
}

/// A worker blocked in a cross-pool `install`: take a job if there is one,
/// else wait (announced in `waiters`) until woken; stop after one job.
fn cross_waiter(waiters: &Waiters, index: usize, q: &Queue) {
    loop {
        if q.take() {
            q.done.fetch_add(1, Ordering::SeqCst);
            return;
        }
        waiters.wait(index, || q.jobs.load(Ordering::SeqCst) > 0, thread::park);
    }
}

/// A job pushed while the waiter announces itself and parks is always seen
/// by its last look or followed by an unpark: never stranded.
#[test]
fn cross_waiter_hears_of_a_job_pushed_while_it_parks() {
    loom::model(|| {
        let waiters = Arc::new(Waiters::new(1));
        let q = Arc::new(Queue {
            jobs: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        });
        let (w, qq) = (waiters.clone(), q.clone());
        let waiter = thread::spawn(move || cross_waiter(&w, 0, &qq));
        let t = waiter.thread().clone();
        q.jobs.fetch_add(1, Ordering::SeqCst);
        waiters.notify(|_| t.unpark());
        // A lost wake-up would leave the waiter parked: loom reports it.
        waiter.join().unwrap();
        assert_eq!(q.done.load(Ordering::SeqCst), 1);
    });
}

/// Two waiters, two jobs pushed one after the other: each push wakes every
/// announced waiter, so both jobs run even when one waiter is slow.
#[test]
fn two_cross_waiters_two_jobs_all_run() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let waiters = Arc::new(Waiters::new(2));
        let q = Arc::new(Queue {
            jobs: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        });
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (w, qq) = (waiters.clone(), q.clone());
                thread::spawn(move || cross_waiter(&w, i, &qq))
            })
            .collect();
        let threads: Vec<_> = handles.iter().map(|h| h.thread().clone()).collect();
        for _ in 0..2 {
            q.jobs.fetch_add(1, Ordering::SeqCst);
            waiters.notify(|i| threads[i].unpark());
        }
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(q.done.load(Ordering::SeqCst), 2);
    });
}
