//! The spare worker (`ProcessPoolBuilder::spare_worker`): a lost worker's
//! slot takes the spare, the next spare starts, and every failure rule of
//! the pool holds for spares too (crashes, timeouts, recycling, the
//! initializer, no zombies, no leaked descriptors, death with the parent).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use weft_process::{Error, ProcessPool, TaskError, WorkerExit};

fn square(x: u64) -> u64 {
    x * x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn do_abort(_: ()) {
    std::process::abort()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

static INIT: AtomicU64 = AtomicU64::new(0);

fn init(value: u64) {
    INIT.store(value, Ordering::SeqCst);
}

fn read_init(_: ()) -> u64 {
    INIT.load(Ordering::SeqCst)
}

fn bad_init(_: ()) {
    panic!("the initializer refuses")
}

weft_process::register!(square, pid, do_abort, sleep_ms, init, read_init, bad_init);

const LIMIT: Duration = Duration::from_secs(60);

fn spare_pool(processes: usize) -> ProcessPool {
    ProcessPool::builder()
        .processes(processes)
        .spare_worker(true)
        .build()
        .unwrap()
}

/// Waits until the pool has a spare ready other than the ones in `not`,
/// and returns its pid.
fn next_spare(pool: &ProcessPool, not: &[u32]) -> u32 {
    let t = Instant::now();
    loop {
        if let Some(p) = pool.spare_pid().filter(|p| !not.contains(p)) {
            return p;
        }
        assert!(t.elapsed() < LIMIT, "no new spare within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits (up to `LIMIT`) until `pid` is gone from /proc: exited and reaped.
fn reaped(pid: u32) -> bool {
    let t = Instant::now();
    while exists(pid) && t.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    !exists(pid)
}

fn sigkill(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is a live,
    // unreaped child of this process (the pool reaps it only once it dies).
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
}

#[test]
fn without_the_option_there_is_no_spare() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    assert_eq!(pool.apply(square, 3), Ok(9));
    assert_eq!(pool.spare_pid(), None);
    assert_eq!(pool.workers_started(), 1);
}

#[test]
fn a_crashed_worker_is_replaced_by_the_spare_and_a_new_spare_starts() {
    let pool = spare_pool(1);
    let worker = pool.pids()[0];
    let spare = next_spare(&pool, &[]);
    assert_ne!(spare, worker);
    assert!(alive(spare));
    assert!(
        !pool.pids().contains(&spare),
        "the spare is not a slot's worker"
    );
    assert_eq!(
        pool.apply(do_abort, ()),
        Err(TaskError::WorkerLost {
            exit: WorkerExit::Signal(libc::SIGABRT)
        })
    );
    // The next task runs on the spare, now the slot's worker.
    assert_eq!(pool.apply(pid, ()), Ok(spare));
    assert_eq!(pool.pids(), vec![spare]);
    assert!(reaped(worker), "the crashed worker {worker} was not reaped");
    // And a new spare is started in the background.
    let spare2 = next_spare(&pool, &[spare]);
    assert_ne!(spare2, worker);
    assert!(alive(spare2));
    assert_eq!(pool.workers_started(), 3);
    let pids = [spare, spare2];
    drop(pool);
    for p in pids {
        assert!(!exists(p), "{p} was not reaped at shutdown");
    }
}

#[test]
fn the_slot_keeps_the_pid_of_the_spare_it_took() {
    // The keeper starts the next spare as soon as one is taken; the slot
    // must still know (and `terminate` still kill) the one it took.
    let pool = spare_pool(1);
    let mut seen = Vec::new();
    for _ in 0..10 {
        let spare = next_spare(&pool, &seen);
        seen.push(spare);
        assert!(pool.apply(do_abort, ()).is_err());
        assert_eq!(pool.apply(pid, ()), Ok(spare));
        assert_eq!(pool.pids(), vec![spare]);
    }
    let last = *seen.last().unwrap();
    let next = next_spare(&pool, &seen);
    pool.terminate();
    assert!(reaped(last) && reaped(next), "terminate missed a worker");
}

#[test]
fn two_crashes_in_a_row_both_fail_alone_and_the_pool_goes_on() {
    let pool = spare_pool(1);
    next_spare(&pool, &[]);
    // The second crash comes while the next spare may still be starting:
    // the slot waits for it (or starts its own), never fails a task that
    // did not crash.
    for _ in 0..2 {
        assert_eq!(
            pool.apply(do_abort, ()),
            Err(TaskError::WorkerLost {
                exit: WorkerExit::Signal(libc::SIGABRT)
            })
        );
    }
    // Queued tasks around a crash, on the supervisor's path.
    let before: Vec<_> = (0..3).map(|i| pool.submit(square, i)).collect();
    let crashed = pool.submit(do_abort, ());
    let after: Vec<_> = (3..6).map(|i| pool.submit(square, i)).collect();
    assert!(matches!(
        crashed.join_timeout(LIMIT).expect("hung"),
        Err(TaskError::WorkerLost { .. })
    ));
    for (i, h) in before.into_iter().chain(after).enumerate() {
        assert_eq!(h.join_timeout(LIMIT).expect("hung"), Ok((i * i) as u64));
    }
    let pids: HashSet<u32> = (0..3).map(|_| pool.apply(pid, ()).unwrap()).collect();
    assert_eq!(pids.len(), 1);
    assert_eq!(pool.apply(square, 5), Ok(25));
}

#[test]
fn a_spare_that_dies_while_idle_is_reaped_and_replaced() {
    let pool = spare_pool(1);
    let worker = pool.pids()[0];
    let spare = next_spare(&pool, &[]);
    sigkill(spare);
    assert!(reaped(spare), "the killed spare {spare} was not reaped");
    let spare2 = next_spare(&pool, &[spare]);
    assert!(alive(spare2));
    // The slot's worker was not disturbed, and the new spare serves the
    // next loss.
    assert_eq!(pool.apply(pid, ()), Ok(worker));
    assert!(pool.apply(do_abort, ()).is_err());
    assert_eq!(pool.apply(pid, ()), Ok(spare2));
}

#[test]
fn a_spare_killed_just_before_it_is_taken_costs_only_the_task_sent_to_it() {
    // The spare is killed from outside just before a slot takes it. Its
    // death may not be visible yet (SIGKILL is delivered asynchronously):
    // then the one task sent to it fails as any task of a worker killed
    // from outside does, and nothing else; the next task runs.
    let pool = spare_pool(1);
    for _ in 0..3 {
        let spare = next_spare(&pool, &[]);
        sigkill(spare);
        assert!(pool.apply(do_abort, ()).is_err());
        match pool.apply(square, 4) {
            Ok(16) => {}
            Err(TaskError::WorkerLost {
                exit: WorkerExit::Signal(libc::SIGKILL),
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pool.apply(square, 5), Ok(25));
        let h = pool.submit(square, 6);
        assert_eq!(h.join_timeout(LIMIT).expect("hung"), Ok(36));
        assert!(reaped(spare), "the killed spare {spare} was not reaped");
    }
}

#[test]
fn timeouts_and_recycling_use_the_spare() {
    let pool = ProcessPool::builder()
        .processes(1)
        .spare_worker(true)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let spare = next_spare(&pool, &[]);
    assert_eq!(
        pool.apply(sleep_ms, 60_000),
        Err(TaskError::TimedOut {
            timeout: Duration::from_millis(300)
        })
    );
    assert_eq!(pool.apply(pid, ()), Ok(spare));

    let pool = ProcessPool::builder()
        .processes(1)
        .spare_worker(true)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let first = pool.pids()[0];
    let spare = next_spare(&pool, &[]);
    let run = |pool: &ProcessPool| {
        pool.submit(pid, ())
            .join_timeout(LIMIT)
            .expect("hung")
            .unwrap()
    };
    assert_eq!(run(&pool), first);
    assert_eq!(run(&pool), first);
    // Retired after two tasks: the spare takes over.
    assert_eq!(run(&pool), spare);
    assert!(reaped(first), "the retired worker was not reaped");
}

#[test]
fn the_spare_runs_the_initializer_and_a_failing_one_still_fails_build() {
    let pool = ProcessPool::builder()
        .processes(1)
        .spare_worker(true)
        .initializer(init, 41)
        .build()
        .unwrap();
    let spare = next_spare(&pool, &[]);
    assert!(pool.apply(do_abort, ()).is_err());
    assert_eq!(pool.apply(pid, ()), Ok(spare));
    assert_eq!(pool.apply(read_init, ()), Ok(41));

    let err = ProcessPool::builder()
        .processes(1)
        .spare_worker(true)
        .initializer(bad_init, ())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Initializer(m) if m.contains("the initializer refuses")),
        "{err:?}"
    );
}

#[test]
fn shutdown_close_and_terminate_reap_the_spare() {
    // (Descriptors across pool cycles with a spare: tests/lifecycle.rs.)
    let mut pids = Vec::new();
    for round in 0..9 {
        let pool = spare_pool(2);
        let spare = next_spare(&pool, &[]);
        pids.push(spare);
        pids.extend(pool.pids());
        assert_eq!(pool.apply(square, 3), Ok(9));
        match round % 3 {
            0 => pool.shutdown(),
            1 => {
                // Queued work still finishes after close, on workers the
                // keeper may have started.
                let h = pool.submit(sleep_ms, 50);
                assert!(pool.apply(do_abort, ()).is_err());
                pool.close();
                assert_eq!(h.join_timeout(LIMIT).expect("hung"), Ok(50));
                assert!(reaped(spare), "close did not retire the spare");
                drop(pool);
            }
            _ => pool.terminate(),
        }
        for &p in &pids {
            assert!(!exists(p), "{p} left running or a zombie (round {round})");
        }
    }
}

/// Kills (and reaps) the helper even if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn workers_and_spares_die_with_their_parent() {
    let mut helper = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "spare_parent_death_helper",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("WEFT_PROCESS_TEST_HELPER", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = helper.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some((_, rest)) = line.split_once("PIDS ") {
                let pids: Vec<u32> = rest.split(',').map(|p| p.parse().unwrap()).collect();
                let _ = tx.send(pids);
                return;
            }
        }
    });
    let pids = rx.recv_timeout(LIMIT).expect("the helper did not report");
    // The slot's worker (a former spare) and the current spare.
    assert_eq!(pids.len(), 2);
    assert!(pids.iter().all(|&p| alive(p)));
    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    let t = Instant::now();
    while pids.iter().any(|&p| alive(p)) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for p in pids {
        assert!(!alive(p), "{p} outlived its killed parent");
    }
}

/// Run only by the test above, in a child process: a pool whose slot runs
/// on a former spare, with a new spare ready; reports both pids and waits
/// to be killed.
#[test]
#[ignore = "helper process for workers_and_spares_die_with_their_parent"]
fn spare_parent_death_helper() {
    if std::env::var_os("WEFT_PROCESS_TEST_HELPER").is_none() {
        return;
    }
    let pool = spare_pool(1);
    let spare = next_spare(&pool, &[]);
    assert!(pool.apply(do_abort, ()).is_err());
    assert_eq!(pool.apply(pid, ()), Ok(spare));
    let spare2 = next_spare(&pool, &[spare]);
    println!("PIDS {spare},{spare2}");
    std::thread::sleep(Duration::from_secs(120));
}
