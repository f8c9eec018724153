//! Integration tests that really spawn worker processes (this test binary,
//! re-run in worker mode by the init hook).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use weft_process::{Error, ProcessPool, TaskError, TaskHandle, WorkerExit};

// ---- functions the workers run -------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn fail(message: String) -> u64 {
    panic!("{message}")
}

fn fail_on_seven(x: u64) -> u64 {
    assert_ne!(x, 7, "seven is not allowed");
    x
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn do_abort(_: ()) {
    std::process::abort()
}

fn do_segfault(_: ()) {
    // SAFETY: raise(3) has no memory-safety preconditions; the default
    // SIGSEGV action kills this (worker) process, which is the point.
    unsafe {
        libc::raise(libc::SIGSEGV);
    }
}

fn undumpable_bytes(len: usize) -> Vec<u8> {
    // SAFETY: PR_SET_DUMPABLE takes no pointers. A non-dumpable process's
    // memory cannot be read by its parent.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    vec![3; len]
}

fn do_exit(code: i32) {
    std::process::exit(code)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn env_var(key: String) -> Option<String> {
    std::env::var(key).ok()
}

fn read_stdin(_: ()) -> Result<usize, String> {
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut all).map_err(|e| e.to_string())?;
    Ok(all.len())
}

fn reverse(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.reverse();
    bytes
}

static INIT: AtomicU64 = AtomicU64::new(0);

fn init(value: u64) {
    INIT.store(value, Ordering::SeqCst);
}

fn read_init(_: ()) -> u64 {
    INIT.load(Ordering::SeqCst)
}

fn init_big(bytes: Vec<u8>) {
    INIT.store(bytes.iter().map(|&b| u64::from(b)).sum(), Ordering::SeqCst);
}

fn bad_init(_: ()) {
    panic!("the initializer refuses")
}

/// Serializing this always fails.
#[derive(Debug, Deserialize)]
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("Unserializable refuses"))
    }
}

fn take_unserializable(_: Unserializable) -> u32 {
    1
}

fn make_unserializable(_: ()) -> Unserializable {
    Unserializable
}

weft_process::register!(
    square,
    fail,
    fail_on_seven,
    pid,
    do_abort,
    do_segfault,
    do_exit,
    sleep_ms,
    env_var,
    reverse,
    read_stdin,
    undumpable_bytes,
    init,
    read_init,
    init_big,
    bad_init,
    take_unserializable,
    make_unserializable,
);

// ---- helpers ---------------------------------------------------------------

const LIMIT: Duration = Duration::from_secs(60);

/// Joins with a generous timeout, so that a bug fails the test instead of
/// hanging it.
fn get<T>(handle: TaskHandle<T>) -> Result<T, TaskError> {
    match handle.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(_) => panic!("a task did not finish within {LIMIT:?}"),
    }
}

/// Runs `f` on a thread and fails the test if it takes longer than `LIMIT`.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT).expect("the operation hung")
}

/// A pool shared by the tests that do not kill workers.
fn shared() -> &'static ProcessPool {
    static POOL: OnceLock<ProcessPool> = OnceLock::new();
    POOL.get_or_init(|| ProcessPool::builder().processes(2).build().unwrap())
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry, with state Z.
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

// ---- results ---------------------------------------------------------------

#[test]
fn submit_apply_and_await() {
    let pool = shared();
    assert_eq!(get(pool.submit(square, 12)), Ok(144));
    assert_eq!(pool.apply(square, 3), Ok(9));
    let handle = pool.submit(square, 5);
    let value = within(move || futures_lite::future::block_on(handle));
    assert_eq!(value, Ok(25));
    let handles: Vec<_> = (0..20).map(|i| pool.submit(square, i)).collect();
    let values: Vec<u64> = handles.into_iter().map(|h| get(h).unwrap()).collect();
    assert_eq!(values, (0..20).map(|i| i * i).collect::<Vec<_>>());
}

#[test]
fn a_task_reading_stdin_cannot_see_the_pool_channel() {
    // The worker's channel arrives as its stdin, then moves off it: stdin
    // is /dev/null.
    assert_eq!(get(shared().submit(read_stdin, ())), Ok(Ok(0)));
    assert_eq!(get(shared().submit(square, 3)), Ok(9));
}

#[test]
fn map_in_order_and_unordered() {
    let pool = shared();
    within(move || {
        let got: Vec<u64> = pool.map(square, 1..=100).map(Result::unwrap).collect();
        assert_eq!(got, (1..=100).map(|x| x * x).collect::<Vec<_>>());

        let got: Vec<u64> = pool
            .map_chunked(square, 1..=10, 3)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (1..=10).map(|x| x * x).collect::<Vec<_>>());

        let mut got: Vec<u64> = pool
            .map_unordered_chunked(square, 1..=50, 4)
            .map(Result::unwrap)
            .collect();
        got.sort_unstable();
        assert_eq!(got, (1..=50).map(|x| x * x).collect::<Vec<_>>());

        let results = pool.map(square, Vec::<u64>::new());
        assert_eq!(results.len(), 0);
        assert_eq!(results.count(), 0);
    });
}

#[test]
fn chunked_map_of_100_000_items() {
    let pool = shared();
    within(move || {
        let results = pool.map_chunked(square, 0..100_000u64, 5_000);
        assert_eq!(results.len(), 100_000);
        let mut count = 0u64;
        for (i, r) in results.enumerate() {
            assert_eq!(r, Ok((i as u64) * (i as u64)));
            count += 1;
        }
        assert_eq!(count, 100_000);
        let sum: u64 = pool
            .map_unordered(square, 0..100_000u64)
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, (0..100_000u64).map(|x| x * x).sum());
    });
}

#[test]
fn large_byte_payloads_round_trip() {
    let pool = shared();
    let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut expected = big.clone();
    expected.reverse();
    assert_eq!(get(pool.submit(reverse, big)), Ok(expected));
    assert_eq!(get(pool.submit(reverse, vec![1, 2, 3])), Ok(vec![3, 2, 1]));
    assert_eq!(get(pool.submit(reverse, Vec::new())), Ok(Vec::new()));
}

#[test]
fn shared_memory_regions_are_reused_grown_and_never_mixed_up() {
    // Large arguments and results travel in ipc-channel shared memory: in
    // each side's reusable region when it is free, else in shared memory of
    // their own.
    large_payloads_on(ProcessPool::builder().processes(1).build().unwrap());
}

fn large_payloads_on(pool: ProcessPool) {
    let payload = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let reversed = |mut v: Vec<u8>| {
        v.reverse();
        v
    };
    // A chunk whose status list and results both travel out of the
    // message, before the worker has a region (regression: the worker
    // wrapped them out of field order, and every such chunk failed).
    let squares: Vec<_> = pool.map_chunked(square, 0..20_000u64, 20_000).collect();
    assert!(
        squares
            .iter()
            .enumerate()
            .all(|(i, r)| *r == Ok((i * i) as u64))
    );
    // One at a time: the regions are created, reused (smaller and equal
    // sizes) and replaced by larger ones.
    for (len, seed) in [
        (100_000, 1),
        (8 << 20, 2),
        (3 << 20, 3),
        (8 << 20, 4),
        (20 << 20, 5),
    ] {
        let p = payload(len, seed);
        assert_eq!(pool.apply(reverse, p.clone()), Ok(reversed(p)), "{len}");
    }
    // Several in flight on one worker: while a region is in use, payloads
    // travel in memfds of their own; every task gets its own bytes back.
    let inputs: Vec<Vec<u8>> = (0..6)
        .map(|i| payload((2 << 20) + i * 4099, i as u8))
        .collect();
    let handles: Vec<_> = inputs
        .iter()
        .map(|p| pool.submit(reverse, p.clone()))
        .collect();
    for (h, p) in handles.into_iter().zip(&inputs) {
        assert_eq!(get(h), Ok(reversed(p.clone())));
    }
    let back: Vec<_> = pool.map_chunked(reverse, inputs.clone(), 2).collect();
    let expected: Vec<_> = inputs.into_iter().map(|p| Ok(reversed(p))).collect();
    assert_eq!(back, expected);
    // Task code that makes the worker non-dumpable changes nothing: results
    // come back through shared memory.
    assert_eq!(pool.apply(undumpable_bytes, 3 << 20), Ok(vec![3; 3 << 20]));
    let p = payload(1 << 20, 9);
    assert_eq!(pool.apply(reverse, p.clone()), Ok(reversed(p)));
}

// ---- per-task failures (the worker survives) -----------------------------

#[test]
fn a_panic_fails_its_task_and_the_worker_survives() {
    let pool = shared();
    let started = pool.workers_started();
    let err = get(pool.submit(fail, "boom 42".to_string())).unwrap_err();
    assert_eq!(
        err,
        TaskError::Panicked {
            message: "boom 42".into()
        }
    );
    assert_eq!(get(pool.submit(square, 4)), Ok(16));
    let results: Vec<_> = within(move || pool.map_chunked(fail_on_seven, 0..10, 3).collect());
    for (i, r) in results.into_iter().enumerate() {
        if i == 7 {
            assert!(matches!(r, Err(TaskError::Panicked { message }) if message.contains("seven")));
        } else {
            assert_eq!(r, Ok(i as u64));
        }
    }
    // Many long panic messages in one chunk: cut to what the parent
    // accepts, never a refused reply.
    let long = "x".repeat(10_000);
    let results: Vec<_> = within(move || pool.map_chunked(fail, vec![long; 300], 300).collect());
    assert_eq!(results.len(), 300);
    for r in results {
        assert!(matches!(r, Err(TaskError::Panicked { message }) if message.len() <= 4096));
    }
    assert_eq!(
        pool.workers_started(),
        started,
        "a panic must not cost a worker"
    );
}

#[test]
fn serialization_errors_fail_only_their_task() {
    let pool = shared();
    let err = get(pool.submit(take_unserializable, Unserializable)).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("argument could not be serialized")),
        "{err:?}"
    );
    let err = get(pool.submit(make_unserializable, ())).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("result")),
        "{err:?}"
    );
    // A closure is not a registered function: a clear error, not a crash.
    let err = get(pool.submit(|x: u64| x + 1, 1)).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("register!")),
        "{err:?}"
    );
    assert_eq!(get(pool.submit(square, 6)), Ok(36));
}

// ---- lost and hung workers -------------------------------------------------

/// What a crash test does, how it submits the crashing task, and the exit
/// the task must report.
type CrashCase = (
    &'static str,
    Box<dyn Fn(&ProcessPool) -> TaskHandle<()>>,
    WorkerExit,
);

#[test]
fn crashes_exits_and_hangs_fail_only_their_task() {
    let pool = ProcessPool::builder().processes(2).build().unwrap();
    let cases: Vec<CrashCase> = vec![
        (
            "abort",
            Box::new(|p| p.submit(do_abort, ())),
            WorkerExit::Signal(libc::SIGABRT),
        ),
        (
            "segfault",
            Box::new(|p| p.submit(do_segfault, ())),
            WorkerExit::Signal(libc::SIGSEGV),
        ),
        (
            "exit(3)",
            Box::new(|p| p.submit(do_exit, 3)),
            WorkerExit::Code(3),
        ),
    ];
    for (what, crash, exit) in cases {
        let before: Vec<_> = (0..4).map(|i| pool.submit(square, i)).collect();
        let crashed = crash(&pool);
        let after: Vec<_> = (0..4).map(|i| pool.submit(square, i)).collect();
        assert_eq!(get(crashed), Err(TaskError::WorkerLost { exit }), "{what}");
        for (i, h) in before.into_iter().chain(after).enumerate() {
            let i = (i % 4) as u64;
            assert_eq!(get(h), Ok(i * i), "a bystander task failed after {what}");
        }
    }
    // A hung task times out; its worker is killed and replaced.
    let started = pool.workers_started();
    let hung = pool.submit_with_timeout(sleep_ms, 60_000, Duration::from_millis(200));
    let other = pool.submit(square, 9);
    assert_eq!(
        get(hung),
        Err(TaskError::TimedOut {
            timeout: Duration::from_millis(200)
        })
    );
    assert_eq!(get(other), Ok(81));
    assert_eq!(get(pool.submit(square, 10)), Ok(100));
    // The replacement starts right after the hung task is failed.
    let t = std::time::Instant::now();
    while pool.workers_started() == started && t.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        pool.workers_started() > started,
        "the hung worker was not replaced"
    );
    // A task that finishes within its timeout is not affected.
    assert_eq!(
        get(pool.submit_with_timeout(sleep_ms, 1, Duration::from_secs(30))),
        Ok(1)
    );
    assert_eq!(
        get(pool.submit_with_timeout(square, 1, Duration::ZERO)),
        Err(TaskError::TimedOut {
            timeout: Duration::ZERO
        })
    );
    // Everything the pool started, it reaped.
    let pids = pool.pids();
    drop(pool);
    for pid in pids {
        assert!(!exists(pid), "worker {pid} was not reaped");
    }
}

#[test]
fn a_worker_killed_mid_map_fails_only_its_chunk() {
    let pool = Arc::new(ProcessPool::builder().processes(2).build().unwrap());
    let victim = pool.pids()[0];
    let results: Vec<_> = within({
        let pool = pool.clone();
        move || {
            let mut results = pool.map_chunked(sleep_ms, vec![20u64; 40], 1);
            // Once results flow, both workers are busy with the rest.
            let mut got: Vec<_> = results.by_ref().take(3).collect();
            // SAFETY: kill(2) has no memory-safety preconditions; `victim`
            // is a live child of this process.
            unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
            got.extend(results);
            got
        }
    });
    assert_eq!(results.len(), 40);
    let lost: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert_eq!(
        lost,
        vec![&Err(TaskError::WorkerLost {
            exit: WorkerExit::Signal(libc::SIGKILL)
        })],
        "exactly the killed worker's chunk fails"
    );
    assert!(!pool.pids().contains(&victim));
    assert_eq!(get(pool.submit(square, 3)), Ok(9));
}

// ---- settings ----------------------------------------------------------------

#[test]
fn max_tasks_per_child_recycles_workers() {
    let pool = ProcessPool::builder()
        .processes(1)
        .max_tasks_per_child(2)
        .build()
        .unwrap();
    let pids: Vec<u32> = (0..6).map(|_| get(pool.submit(pid, ())).unwrap()).collect();
    assert_eq!(pids[0], pids[1]);
    assert_eq!(pids[2], pids[3]);
    assert_eq!(pids[4], pids[5]);
    assert_eq!(pids.iter().collect::<HashSet<_>>().len(), 3, "{pids:?}");
    assert!(!pids.contains(&std::process::id()));
    drop(pool);
    for p in pids {
        assert!(!exists(p), "retired worker {p} was not reaped");
    }
}

#[test]
fn initializer_and_environment_reach_the_workers() {
    let pool = ProcessPool::builder()
        .processes(1)
        .initializer(init, 42)
        .env("WEFT_PROCESS_TEST_VAR", "hello")
        .build()
        .unwrap();
    assert_eq!(get(pool.submit(read_init, ())), Ok(42));
    assert_eq!(
        get(pool.submit(env_var, "WEFT_PROCESS_TEST_VAR".to_string())),
        Ok(Some("hello".to_string()))
    );
    // The worker marker is not left in the worker's environment.
    assert_eq!(
        get(pool.submit(env_var, "WEFT_PROCESS_WORKER".to_string())),
        Ok(None)
    );
    // The parent is not a worker and did not run the initializer.
    assert_eq!(INIT.load(Ordering::SeqCst), 0);
    assert!(!weft_process::is_worker());
    // A large initializer argument travels in shared memory, which is then
    // free for the tasks' arguments.
    let pool = ProcessPool::builder()
        .processes(1)
        .initializer(init_big, vec![1u8; 100_000])
        .build()
        .unwrap();
    assert_eq!(pool.apply(read_init, ()), Ok(100_000));
    for seed in 0..3u8 {
        let p: Vec<u8> = (0..200_000u32).map(|i| (i as u8) ^ seed).collect();
        let mut expected = p.clone();
        expected.reverse();
        assert_eq!(pool.apply(reverse, p), Ok(expected));
    }
}

#[test]
fn bad_settings_are_clear_errors() {
    assert!(matches!(
        ProcessPool::builder().processes(0).build(),
        Err(Error::NoProcesses)
    ));
    assert!(matches!(
        ProcessPool::builder().max_tasks_per_child(0).build(),
        Err(Error::ZeroMaxTasks)
    ));
    assert!(matches!(
        ProcessPool::builder().task_timeout(Duration::ZERO).build(),
        Err(Error::InvalidDuration { .. })
    ));
    assert!(matches!(
        ProcessPool::builder().initializer(|_: u8| (), 1).build(),
        Err(Error::Unregistered(_))
    ));
    let err = ProcessPool::builder()
        .processes(1)
        .initializer(bad_init, ())
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Initializer(m) if m.contains("refuses")),
        "{err}"
    );
}

#[test]
fn results_over_the_size_limit_are_refused() {
    // Results in the worker's shared-memory region, refused before they
    // are copied.
    over_the_limit_on(
        ProcessPool::builder()
            .processes(1)
            .max_result_bytes(1 << 20)
            .build()
            .unwrap(),
    );
}

fn over_the_limit_on(pool: ProcessPool) {
    let err = get(pool.submit(reverse, vec![0u8; 2 << 20])).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("max_result_bytes")),
        "{err:?}"
    );
    assert_eq!(
        get(pool.submit(reverse, vec![0u8; 1 << 20])).map(|v| v.len()),
        Ok(1 << 20)
    );
    // The refused result was never read; the worker goes on serving large
    // results (in payloads of their own) and small ones.
    for _ in 0..3 {
        let p: Vec<u8> = (0..(1 << 20) - 7).map(|i: u32| i as u8).collect();
        let mut expected = p.clone();
        expected.reverse();
        assert_eq!(pool.apply(reverse, p), Ok(expected));
    }
    assert_eq!(pool.apply(square, 9), Ok(81));
}

// ---- lifecycle -----------------------------------------------------------------

#[test]
fn shutdown_finishes_queued_work_then_refuses_new_work() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let handles: Vec<_> = (0..5).map(|_| pool.submit(sleep_ms, 10)).collect();
    let pids = pool.pids();
    within({
        // SAFETY of the 'static borrow: the pool outlives this closure,
        // which `within` joins.
        let pool: &'static ProcessPool = Box::leak(Box::new(pool));
        move || {
            pool.shutdown();
            assert_eq!(get(pool.submit(square, 1)), Err(TaskError::Abandoned));
            pool.shutdown();
        }
    });
    for h in handles {
        assert_eq!(get(h), Ok(10));
    }
    for p in pids {
        assert!(!exists(p));
    }
}

#[test]
fn terminate_cancels_running_and_pending_tasks() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let running = pool.submit(sleep_ms, 60_000);
    let pending: Vec<_> = (0..5).map(|i| pool.submit(square, i)).collect();
    let cancelled_by_user = pool.submit(square, 99);
    assert!(cancelled_by_user.cancel());
    // Wait until the worker has the long task.
    let t = std::time::Instant::now();
    while !running.is_running() && t.elapsed() < LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(running.is_running());
    let pids = pool.pids();
    within({
        let pool: &'static ProcessPool = Box::leak(Box::new(pool));
        move || {
            pool.terminate();
            pool.terminate();
            assert!(pool.pids().is_empty());
            assert_eq!(get(pool.submit(square, 1)), Err(TaskError::Abandoned));
        }
    });
    assert_eq!(get(running), Err(TaskError::Cancelled));
    for h in pending {
        assert_eq!(get(h), Err(TaskError::Cancelled));
    }
    assert_eq!(get(cancelled_by_user), Err(TaskError::Cancelled));
    for p in pids {
        assert!(!alive(p) && !exists(p), "worker {p} survived terminate");
    }
}

#[test]
fn apply_runs_on_an_idle_worker_directly_and_handles_every_failure() {
    let pool = ProcessPool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(1000))
        .max_result_bytes(1 << 20)
        // Printing a panic's backtrace can take longer than the timeout.
        .env("RUST_BACKTRACE", "0")
        .build()
        .unwrap();
    let pool = Arc::new(pool);
    within({
        let p = pool.clone();
        move || {
            assert_eq!(p.apply(square, 11), Ok(121));
            assert_eq!(
                p.apply(fail, "direct".to_string()),
                Err(TaskError::Panicked {
                    message: "direct".into()
                })
            );
            assert_eq!(
                p.apply(do_abort, ()),
                Err(TaskError::WorkerLost {
                    exit: WorkerExit::Signal(libc::SIGABRT)
                })
            );
            assert_eq!(p.apply(square, 12), Ok(144));
            assert_eq!(
                p.apply(do_exit, 5),
                Err(TaskError::WorkerLost {
                    exit: WorkerExit::Code(5)
                })
            );
            assert_eq!(
                p.apply(sleep_ms, 60_000),
                Err(TaskError::TimedOut {
                    timeout: Duration::from_millis(1000)
                })
            );
            assert_eq!(p.apply(square, 13), Ok(169));
            assert!(matches!(
                p.apply(reverse, vec![0u8; 2 << 20]),
                Err(TaskError::Serialization { .. })
            ));
            assert_eq!(p.apply(reverse, vec![1, 2]), Ok(vec![2, 1]));
            assert!(matches!(
                p.apply(|x: u8| x, 1),
                Err(TaskError::Serialization { .. })
            ));
            // Direct calls and queued tasks mix.
            let queued = p.submit(square, 2);
            assert_eq!(p.apply(square, 3), Ok(9));
            assert_eq!(get(queued), Ok(4));
        }
    });
    let pids = pool.pids();
    drop(Arc::into_inner(pool));
    for p in pids {
        assert!(!exists(p));
    }
}

// ---- the authenticated bootstrap -----------------------------------------

/// Builds a one-process pool whose worker breaks its handshake as `how`
/// says (the worker's `WEFT_PROCESS_TEST_HELLO` test hook).
fn misbehaving(how: &str, start_timeout: Duration) -> Result<ProcessPool, Error> {
    within({
        let how = how.to_string();
        move || {
            ProcessPool::builder()
                .processes(1)
                .env("WEFT_PROCESS_TEST_HELLO", how)
                .start_timeout(start_timeout)
                .build()
        }
    })
}

fn handshake_error(how: &str, start_timeout: Duration) -> String {
    match misbehaving(how, start_timeout) {
        Err(Error::Handshake { reason }) => reason,
        Err(other) => panic!("{how}: expected a handshake error, got {other}"),
        Ok(_) => panic!("{how}: a misbehaving worker was accepted"),
    }
}

#[test]
fn a_bad_reply_fails_its_task_and_the_next_one_gets_its_own_error() {
    // The worker's second reply is invalid. The first task takes a while,
    // so that the second and third are queued and then in flight together:
    // the second fails for its reply, the third (which the worker was
    // running when the pool killed it) as lost with the worker, not with
    // the second's message.
    let pool = misbehaving("bad-second-reply", LIMIT).unwrap();
    let first = pool.submit(sleep_ms, 300);
    std::thread::sleep(Duration::from_millis(50));
    let second = pool.submit(square, 2);
    let third = pool.submit(square, 3);
    assert_eq!(get(first), Ok(300));
    let err = get(second).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("9 results")),
        "{err}"
    );
    let err = get(third).unwrap_err();
    assert!(
        matches!(&err, TaskError::WorkerLost { exit } if exit.to_string().contains("another task")),
        "{err}"
    );
    // The replacement works.
    assert_eq!(pool.apply(square, 4), Ok(16));
}

#[test]
fn a_worker_whose_own_code_panics_exits_instead_of_running_main() {
    // The worker panics in weft's own serving code, before its handshake.
    // The panic must end the worker with its own status (70), not unwind
    // into the init hook and on into `main` (here, the test harness).
    let reason = handshake_error("panic", LIMIT);
    assert!(reason.contains("70"), "{reason}");
}

#[test]
fn only_processes_that_know_the_secret_can_join() {
    // A worker that presents a wrong secret, or answers for another pid,
    // is refused before any task.
    assert!(handshake_error("wrong-secret", LIMIT).contains("secret"));
    assert!(handshake_error("wrong-pid", LIMIT).contains("not the worker started"));
    // The same hook with nothing to break joins normally.
    let pool = misbehaving("none", LIMIT).unwrap();
    assert_eq!(pool.apply(square, 5), Ok(25));
}

#[test]
fn a_bad_handshake_is_refused_without_hanging_or_allocating() {
    // Each is refused with a clear error, within the start timeout: a
    // greeting that is not one, a secret over its size, a greeting whose
    // descriptors are not the channel it must carry.
    let garbage = handshake_error("garbage", LIMIT);
    assert!(garbage.contains("decoded"), "{garbage}");
    let oversized = handshake_error("oversized", LIMIT);
    assert!(oversized.contains("limit"), "{oversized}");
    let fds = handshake_error("fds", LIMIT);
    assert!(fds.contains("descriptors"), "{fds}");
    // Alive and connected but silent: the start timeout fires.
    let started = std::time::Instant::now();
    let silent = handshake_error("silent", Duration::from_millis(300));
    assert!(silent.contains("did not connect"), "{silent}");
    assert!(started.elapsed() < LIMIT);
}

#[test]
fn a_worker_that_never_connects_is_a_clear_error_not_a_hang() {
    // Dies before its handshake.
    let err = ProcessPool::builder()
        .processes(1)
        .executable("/bin/true")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Handshake { reason } if reason.contains("exited")),
        "{err}"
    );
    // Lives but never connects: the start timeout fires.
    let started = std::time::Instant::now();
    let script = std::env::temp_dir().join(format!("weft-silent-{}.sh", std::process::id()));
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let err = ProcessPool::builder()
        .processes(1)
        .executable(&script)
        .start_timeout(Duration::from_millis(300))
        .build()
        .unwrap_err();
    let _ = std::fs::remove_file(&script);
    assert!(
        matches!(&err, Error::Handshake { reason } if reason.contains("did not connect")),
        "{err}"
    );
    assert!(started.elapsed() < LIMIT);
    // Not a program at all.
    assert!(matches!(
        ProcessPool::builder()
            .processes(1)
            .executable("/nonexistent/weft-worker")
            .build(),
        Err(Error::Spawn { .. })
    ));
}
