//! User code that misbehaves where the pool runs it (a `Deserialize` or
//! `Serialize` that panics or fails, a `Drop` that panics), absurd
//! settings, and workers that die while idle: each fails only what it
//! belongs to, and the pool goes on.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::de::{Deserializer, Error as _};
use serde::ser::{Error as _, Serializer};
use serde::{Deserialize, Serialize};
use weft_process::{Error, ProcessPool, TaskError, TaskHandle};

// ---- types whose serde code misbehaves -----------------------------------

/// Its `Deserialize` panics on 13 (in any process).
#[derive(Debug, PartialEq, Serialize)]
struct PanicOn13(u32);

impl<'de> Deserialize<'de> for PanicOn13 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        assert_ne!(n, 13, "PanicOn13 will not deserialize 13");
        Ok(PanicOn13(n))
    }
}

/// Its `Deserialize` fails on 13 with a message of its own, and its
/// `Serialize` on 14.
#[derive(Debug, Clone, PartialEq)]
struct Picky(u32);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 14 {
            return Err(S::Error::custom("Picky will not serialize 14"));
        }
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n == 13 {
            return Err(D::Error::custom("Picky will not deserialize 13"));
        }
        Ok(Picky(n))
    }
}

/// Its `Serialize` panics on 14.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SerPanic(u32);

impl Serialize for SerPanic {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert_ne!(self.0, 14, "SerPanic will not serialize 14");
        s.serialize_u32(self.0)
    }
}

/// Panics when dropped in the parent (never in a worker).
#[derive(Debug, Serialize, Deserialize)]
struct DropBomb(u32);

impl Drop for DropBomb {
    fn drop(&mut self) {
        if !weft_process::is_worker() && !std::thread::panicking() {
            panic!("DropBomb dropped in the parent");
        }
    }
}

/// A panic payload that panics again when dropped (in the parent).
struct PayloadBomb;

impl Drop for PayloadBomb {
    fn drop(&mut self) {
        if !weft_process::is_worker() && !std::thread::panicking() {
            panic!("PayloadBomb dropped in the parent");
        }
    }
}

/// Its `Deserialize` panics with a [`PayloadBomb`] on 13.
#[derive(Debug, PartialEq, Serialize)]
struct BombOn13(u32);

impl<'de> Deserialize<'de> for BombOn13 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        if n == 13 {
            std::panic::panic_any(PayloadBomb);
        }
        Ok(BombOn13(n))
    }
}

// ---- functions the workers run -------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn mk(x: u32) -> PanicOn13 {
    PanicOn13(x)
}

fn mk_payload_bomb(x: u32) -> BombOn13 {
    BombOn13(x)
}

fn take_panicky(x: PanicOn13) -> u32 {
    x.0
}

fn mk_picky(x: u32) -> Picky {
    Picky(x)
}

fn take_picky(x: Picky) -> u32 {
    x.0
}

fn mk_ser_panic(x: u32) -> SerPanic {
    SerPanic(x)
}

fn take_ser_panic(x: SerPanic) -> u32 {
    x.0
}

fn mk_bomb(ms: u64) -> DropBomb {
    std::thread::sleep(Duration::from_millis(ms));
    DropBomb(1)
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn init_nothing(_: SerPanic) {}

weft_process::register!(
    square,
    mk,
    mk_payload_bomb,
    take_panicky,
    mk_picky,
    take_picky,
    mk_ser_panic,
    take_ser_panic,
    mk_bomb,
    sleep_ms,
    pid,
    init_nothing,
);

// ---- helpers ---------------------------------------------------------------

const LIMIT: Duration = Duration::from_secs(30);

/// Runs `f` on a thread and fails the test if it takes longer than `LIMIT`
/// (a hang fails, it does not hang the test run).
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT).expect("the operation hung")
}

fn get<T>(handle: TaskHandle<T>) -> Result<T, TaskError> {
    match handle.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(_) => panic!("a task did not finish within {LIMIT:?}"),
    }
}

fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn serialization_message<T: std::fmt::Debug>(r: Result<T, TaskError>) -> String {
    match r {
        Err(TaskError::Serialization { message }) => message,
        other => panic!("expected a serialization error, got {other:?}"),
    }
}

/// One worker that must survive everything the test does: the pool's
/// `pids()` and `workers_started()` must not change.
fn single() -> Arc<ProcessPool> {
    Arc::new(ProcessPool::builder().processes(1).build().unwrap())
}

fn assert_same_worker(pool: &ProcessPool, pids: &[u32], started: u64) {
    assert_eq!(pool.pids(), pids, "the worker was lost");
    assert_eq!(pool.workers_started(), started, "the worker was replaced");
}

// ---- 1. a result whose Deserialize panics in the parent --------------------

#[test]
fn a_result_whose_deserialize_panics_fails_its_task_and_the_pool_goes_on() {
    let pool = single();
    let (pids, started) = (pool.pids(), pool.workers_started());
    let p = pool.clone();
    within(move || {
        let message = serialization_message(get(p.submit(mk, 13)));
        assert!(
            message.contains("PanicOn13") && message.contains("will not deserialize 13"),
            "{message}"
        );
        assert_eq!(get(p.submit(square, 3)), Ok(9));
        // The direct path of `apply` decodes on the caller's thread.
        let message = serialization_message(p.apply(mk, 13));
        assert!(message.contains("will not deserialize 13"), "{message}");
        assert_eq!(p.apply(square, 4), Ok(16));
        assert_eq!(get(p.submit(mk, 12)), Ok(PanicOn13(12)));
        // A panic payload that panics again when dropped.
        let message = serialization_message(get(p.submit(mk_payload_bomb, 13)));
        assert!(message.contains("BombOn13"), "{message}");
        assert_eq!(get(p.submit(mk_payload_bomb, 12)), Ok(BombOn13(12)));
    });
    assert_same_worker(&pool, &pids, started);
}

// ---- 2. the same panic inside map ------------------------------------------

#[test]
fn a_panicking_deserialize_in_map_fails_only_its_item() {
    let pool = ProcessPool::builder().processes(2).build().unwrap();
    let results = within(move || {
        let mut out = Vec::new();
        for ordered in [true, false] {
            let items = vec![1, 13, 2, 3, 4, 5];
            let results = if ordered {
                pool.map_chunked(mk, items, 1)
            } else {
                pool.map_unordered_chunked(mk, items, 1)
            };
            assert_eq!(results.len(), 6);
            out.push(results.collect::<Vec<_>>());
            // Several items per chunk: the others in the chunk still decode.
            out.push(pool.map_chunked(mk, vec![1, 13, 2, 3, 4, 5], 3).collect());
        }
        assert_eq!(pool.apply(square, 5), Ok(25));
        out
    });
    for got in results {
        assert_eq!(got.len(), 6, "{got:?}");
        let failed: Vec<_> = got.iter().filter(|r| r.is_err()).collect();
        assert_eq!(failed.len(), 1, "{got:?}");
        assert!(
            matches!(failed[0], Err(TaskError::Serialization { message }) if message.contains("13")),
            "{failed:?}"
        );
        let mut ok: Vec<u32> = got
            .into_iter()
            .filter_map(|r| r.ok())
            .map(|v| v.0)
            .collect();
        ok.sort_unstable();
        assert_eq!(ok, [1, 2, 3, 4, 5]);
    }
}

// ---- 3. huge durations -------------------------------------------------------

#[test]
fn huge_durations_mean_no_limit() {
    within(|| {
        let pool = ProcessPool::builder()
            .processes(1)
            .task_timeout(Duration::MAX)
            .start_timeout(Duration::MAX)
            .shutdown_grace(Duration::MAX)
            .build()
            .unwrap();
        let pids = pool.pids();
        assert_eq!(pids.len(), 1);
        assert_eq!(get(pool.submit(square, 3)), Ok(9));
        assert_eq!(pool.apply(square, 4), Ok(16));
        assert_eq!(
            get(pool.submit_with_timeout(sleep_ms, 1, Duration::MAX)),
            Ok(1)
        );
        let huge = Duration::from_secs(u64::MAX / 2);
        assert_eq!(get(pool.submit_with_timeout(square, 6, huge)), Ok(36));
        let mapped: Vec<_> = pool.map_chunked(square, 0..4, 1).collect();
        assert_eq!(mapped, [Ok(0), Ok(1), Ok(4), Ok(9)]);
        assert_eq!(pool.pids(), pids, "the worker was lost");
        drop(pool);
        for p in pids {
            assert!(!exists(p), "worker {p} was not reaped");
        }
        // A huge start timeout where a worker never connects: the worker's
        // death is still noticed.
        let err = ProcessPool::builder()
            .processes(1)
            .executable("/bin/true")
            .start_timeout(Duration::MAX)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Handshake { .. }), "{err}");
    });
}

// ---- 5. an idle worker killed from outside ---------------------------------

#[test]
fn an_idle_worker_killed_from_outside_is_reaped_and_replaced() {
    for max_tasks in [None, Some(1_000)] {
        let mut builder = ProcessPool::builder().processes(1);
        if let Some(n) = max_tasks {
            builder = builder.max_tasks_per_child(n);
        }
        let pool = builder.build().unwrap();
        assert_eq!(get(pool.submit(square, 2)), Ok(4));
        let victim = pool.pids()[0];
        // SAFETY: kill(2) has no memory-safety preconditions; `victim` is a
        // live child of this process.
        unsafe { libc::kill(victim as libc::pid_t, libc::SIGKILL) };
        let t = Instant::now();
        while (exists(victim) || pool.pids().len() != 1) && t.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!exists(victim), "the killed worker was left a zombie");
        let pids = pool.pids();
        assert_eq!(pids.len(), 1, "the killed worker was not replaced");
        assert!(!pids.contains(&victim));
        assert_eq!(get(pool.submit(pid, ())), Ok(pids[0]));
    }
}

// ---- 6. serde's error text ---------------------------------------------------

#[test]
fn serde_error_messages_reach_the_user() {
    let pool = single();
    let (pids, started) = (pool.pids(), pool.workers_started());
    let p = pool.clone();
    within(move || {
        // The result's Deserialize, in the parent.
        let m = serialization_message(get(p.submit(mk_picky, 13)));
        assert!(
            m.contains("Picky") && m.contains("will not deserialize 13"),
            "{m}"
        );
        // The result's Serialize, in the worker.
        let m = serialization_message(get(p.submit(mk_picky, 14)));
        assert!(
            m.contains("Picky") && m.contains("will not serialize 14"),
            "{m}"
        );
        // The argument's Serialize, in the parent.
        let m = serialization_message(get(p.submit(take_picky, Picky(14))));
        assert!(
            m.contains("Picky") && m.contains("will not serialize 14"),
            "{m}"
        );
        // The argument's Deserialize, in the worker.
        let m = serialization_message(get(p.submit(take_picky, Picky(13))));
        assert!(
            m.contains("Picky") && m.contains("will not deserialize 13"),
            "{m}"
        );
        // Inside a map, per item.
        let got: Vec<_> = p.map_chunked(mk_picky, [12, 13, 14], 3).collect();
        assert_eq!(got[0], Ok(Picky(12)));
        assert!(serialization_message(got[1].clone()).contains("will not deserialize 13"));
        assert!(serialization_message(got[2].clone()).contains("will not serialize 14"));
        // Nested in other types, the message survives too.
        let got: Vec<_> = p.map(take_picky, [Picky(1), Picky(13)]).collect();
        assert_eq!(got[0], Ok(1));
        assert!(serialization_message(got[1].clone()).contains("will not deserialize 13"));
        assert_eq!(p.apply(square, 7), Ok(49));
    });
    assert_same_worker(&pool, &pids, started);
}

// ---- 7. and the builder sweep: absurd settings --------------------------------

#[test]
fn absurd_settings_are_errors_not_panics() {
    let err = ProcessPool::builder()
        .processes(usize::MAX)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::TooManyProcesses { .. }), "{err}");
    assert!(err.to_string().contains("processes"), "{err}");
    assert!(matches!(
        ProcessPool::builder().processes(0).build(),
        Err(Error::NoProcesses)
    ));
    assert!(matches!(
        ProcessPool::builder().start_timeout(Duration::ZERO).build(),
        Err(Error::InvalidDuration { .. })
    ));
    assert!(matches!(
        ProcessPool::builder().task_timeout(Duration::ZERO).build(),
        Err(Error::InvalidDuration { .. })
    ));
    // Huge values that are not absurd work.
    let pool = ProcessPool::builder()
        .processes(1)
        .max_tasks_per_child(u64::MAX)
        .max_result_bytes(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(pool.apply(square, 8), Ok(64));
    // An initializer whose argument's Serialize fails or panics.
    let err = ProcessPool::builder()
        .processes(1)
        .initializer(init_nothing, SerPanic(14))
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InitializerArgument(m) if m.contains("will not serialize 14")),
        "{err}"
    );
}

// ---- the sweep: user code on threads the pool owns ---------------------------

#[test]
fn serde_panics_in_the_worker_fail_only_their_task() {
    let pool = single();
    let (pids, started) = (pool.pids(), pool.workers_started());
    let p = pool.clone();
    within(move || {
        // The result's Serialize panics in the worker.
        let m = serialization_message(get(p.submit(mk_ser_panic, 14)));
        assert!(
            m.contains("SerPanic") && m.contains("will not serialize 14"),
            "{m}"
        );
        assert_eq!(get(p.submit(mk_ser_panic, 15)), Ok(SerPanic(15)));
        // The argument's Deserialize panics in the worker.
        let m = serialization_message(get(p.submit(take_panicky, PanicOn13(13))));
        assert!(
            m.contains("PanicOn13") && m.contains("will not deserialize 13"),
            "{m}"
        );
        // The argument's Serialize panics in the parent.
        let m = serialization_message(get(p.submit(take_ser_panic, SerPanic(14))));
        assert!(m.contains("will not serialize 14"), "{m}");
        let m = serialization_message(p.apply(take_ser_panic, SerPanic(14)));
        assert!(m.contains("will not serialize 14"), "{m}");
        let got: Vec<_> = p
            .map(take_ser_panic, [SerPanic(1), SerPanic(14), SerPanic(2)])
            .collect();
        assert_eq!(got[0], Ok(1));
        assert!(serialization_message(got[1].clone()).contains("will not serialize 14"));
        assert_eq!(got[2], Ok(2));
        assert_eq!(p.apply(square, 9), Ok(81));
    });
    assert_same_worker(&pool, &pids, started);
}

#[test]
fn a_result_that_panics_when_dropped_by_the_pool_breaks_nothing() {
    let pool = single();
    let (pids, started) = (pool.pids(), pool.workers_started());
    let p = pool.clone();
    within(move || {
        // The handle is gone when the result arrives: the pool's thread
        // drops the value.
        drop(p.submit(mk_bomb, 200));
        // The map's iterator is gone when the results arrive: the second
        // chunk runs (it starts at the latest when the first one's result
        // is in) while the iterator is dropped.
        let mut results = p.map_chunked(mk_bomb, [50, 300], 1);
        std::mem::forget(results.next());
        std::thread::sleep(Duration::from_millis(100));
        drop(results);
        assert_eq!(get(p.submit(square, 3)), Ok(9));
        assert_eq!(get(p.submit(square, 4)), Ok(16));
    });
    assert_same_worker(&pool, &pids, started);
}
