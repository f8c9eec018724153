//! `Process`: the seed's `multiprocessing.Process` snippet, results,
//! panics, exit statuses and signals, `join_timeout`, `terminate`, `kill`,
//! and every way a start can fail without hanging.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weft_process::{Error, Process, TaskError, WorkerExit};

/// Long enough for a loaded CI machine; a hang fails the test instead.
const LIMIT: Duration = Duration::from_secs(120);

fn join<R>(p: Process<R>) -> Result<R, TaskError> {
    match p.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(p) => {
            p.kill();
            panic!("process {} did not finish within {LIMIT:?}", p.name());
        }
    }
}

fn task1(_: ()) {
    println!("Task 1");
}
fn task2(_: ()) {
    println!("Task 2");
}
fn square(x: u64) -> u64 {
    x * x
}
fn fail(why: String) -> u64 {
    panic!("{why}")
}
fn exit_with(code: i32) {
    std::process::exit(code);
}
fn abort(_: ()) {
    std::process::abort();
}
fn segfault(_: ()) {
    // SAFETY: raising a signal has no memory-safety preconditions; the
    // process dies of it.
    unsafe {
        libc::raise(libc::SIGSEGV);
    }
}
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}
fn my_pid(_: ()) -> u32 {
    std::process::id()
}
fn not_registered(_: ()) {}

/// Serializes only as `Good`.
#[derive(Debug, PartialEq)]
enum Picky {
    Good(u32),
    Bad,
    PanicOnDecode,
}

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Picky::Good(n) => s.serialize_u32(*n),
            Picky::Bad => Err(serde::ser::Error::custom("Picky::Bad refuses to travel")),
            Picky::PanicOnDecode => s.serialize_u32(u32::MAX),
        }
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            u32::MAX => panic!("Picky's Deserialize panicked on purpose"),
            n => Ok(Picky::Good(n)),
        }
    }
}

fn picky_echo(p: Picky) -> u32 {
    match p {
        Picky::Good(n) => n,
        _ => unreachable!(),
    }
}
fn picky_result(bad: bool) -> Picky {
    if bad {
        Picky::Bad
    } else {
        Picky::PanicOnDecode
    }
}

weft_process::register!(
    task1,
    task2,
    square,
    fail,
    exit_with,
    abort,
    segfault,
    sleep_ms,
    my_pid,
    picky_echo,
    picky_result
);

#[test]
fn the_seed_snippet_ports_one_to_one() {
    let mut p1 = Process::new(task1, ());
    let mut p2 = Process::new(task2, ());
    p1.start().unwrap();
    p2.start().unwrap();
    assert_eq!(join(p1), Ok(()));
    assert_eq!(join(p2), Ok(()));
}

#[test]
fn join_gives_the_result_and_the_child_is_a_separate_process() {
    let p = Process::spawn(square, 12).unwrap();
    assert_eq!(join(p), Ok(144));
    let p = Process::spawn(my_pid, ()).unwrap();
    let pid = p.pid().unwrap();
    assert_ne!(pid, std::process::id());
    assert_eq!(join(p), Ok(pid));
}

#[test]
fn a_panic_reaches_join_with_its_message_and_exit_code_1() {
    let p = Process::spawn(fail, "boom".to_string()).unwrap();
    assert!(p.wait_timeout(LIMIT));
    assert_eq!(p.exit_status(), Some(WorkerExit::Code(1)));
    assert!(!p.is_alive());
    assert_eq!(
        join(p),
        Err(TaskError::Panicked {
            message: "boom".into()
        })
    );
}

#[test]
fn exits_crashes_and_signals_are_reported_as_lost_workers() {
    let cases: Vec<(Process<()>, WorkerExit)> = vec![
        (Process::spawn(exit_with, 7).unwrap(), WorkerExit::Code(7)),
        (
            Process::spawn(abort, ()).unwrap(),
            WorkerExit::Signal(libc::SIGABRT),
        ),
        (
            Process::spawn(segfault, ()).unwrap(),
            WorkerExit::Signal(libc::SIGSEGV),
        ),
    ];
    for (p, exit) in cases {
        assert_eq!(join(p), Err(TaskError::WorkerLost { exit }));
    }
}

#[test]
fn terminate_kill_and_join_timeout() {
    let p = Process::spawn(sleep_ms, 600_000).unwrap();
    assert!(p.is_alive());
    assert_eq!(p.exit_status(), None);
    // Still running: the process comes back.
    let p = p.join_timeout(Duration::from_millis(50)).unwrap_err();
    assert!(p.is_alive());
    p.terminate();
    assert!(p.wait_timeout(LIMIT));
    assert!(!p.is_alive());
    assert_eq!(p.exit_status(), Some(WorkerExit::Signal(libc::SIGTERM)));
    // Signals after the exit are ignored (the pid may be reused).
    p.terminate();
    p.kill();
    assert_eq!(
        join(p),
        Err(TaskError::WorkerLost {
            exit: WorkerExit::Signal(libc::SIGTERM)
        })
    );

    let p = Process::spawn(sleep_ms, 600_000).unwrap();
    p.kill();
    assert_eq!(
        join(p),
        Err(TaskError::WorkerLost {
            exit: WorkerExit::Signal(libc::SIGKILL)
        })
    );
}

#[test]
fn a_process_is_a_future() {
    let p = Process::spawn(square, 9).unwrap();
    assert_eq!(futures_lite::future::block_on(p.into_future()), Ok(81));
}

#[test]
fn start_is_checked() {
    // Not registered: a clear error at start, no child.
    let mut p = Process::new(not_registered, ());
    let err = p.start().unwrap_err();
    assert!(
        matches!(&err, Error::UnregisteredTarget(m) if m.contains("register!")),
        "{err}"
    );
    assert_eq!(p.pid(), None);
    assert_eq!(p.join(), Err(TaskError::Cancelled));

    // Started once only; a never-started process joins as Cancelled.
    let mut p = Process::new(square, 2).with_name("twice");
    p.start().unwrap();
    assert!(matches!(p.start(), Err(Error::AlreadyStarted { name }) if name == "twice"));
    assert_eq!(join(p), Ok(4));
    let p = Process::new(square, 3);
    assert!(p.name().starts_with("Process-"));
    assert!(!p.is_alive());
    assert_eq!(p.join(), Err(TaskError::Cancelled));
}

#[test]
fn payloads_that_will_not_travel_fail_their_process_only() {
    // An argument that will not serialize: an error at start, with the
    // type's own message.
    let err = Process::spawn(picky_echo, Picky::Bad).unwrap_err();
    assert!(
        matches!(&err, Error::Argument { reason, .. } if reason.contains("refuses to travel")),
        "{err}"
    );
    // One whose Deserialize panics in the child.
    let p = Process::spawn(picky_echo, Picky::PanicOnDecode).unwrap();
    let err = join(p).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("panicked on purpose")),
        "{err}"
    );
    // A result that will not serialize in the child.
    let p = Process::spawn(picky_result, true).unwrap();
    let err = join(p).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("refuses to travel")),
        "{err}"
    );
    // A result whose Deserialize panics here, in the parent: only this
    // result fails.
    let p = Process::spawn(picky_result, false).unwrap();
    let err = join(p).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("panicked on purpose")),
        "{err}"
    );
    assert_eq!(join(Process::spawn(square, 5).unwrap()), Ok(25));
}

fn start_with_hook(hook: &str, timeout: Duration) -> Error {
    let mut p = Process::new(square, 1)
        .with_name(hook)
        .env("WEFT_PROCESS_TEST_CHILD", hook)
        .start_timeout(timeout);
    let started = std::time::Instant::now();
    let err = p.start().unwrap_err();
    assert!(
        started.elapsed() < LIMIT,
        "start took {:?}",
        started.elapsed()
    );
    err
}

#[test]
fn a_child_that_dies_or_hangs_before_connecting_does_not_hang_start() {
    let err = start_with_hook("exit-before-connect", LIMIT);
    assert!(
        matches!(
            &err,
            Error::ChildDied {
                exit: WorkerExit::Code(3),
                ..
            }
        ),
        "{err}"
    );
    let err = start_with_hook("abort-before-connect", LIMIT);
    assert!(
        matches!(
            &err,
            Error::ChildDied {
                exit: WorkerExit::Signal(libc::SIGABRT),
                ..
            }
        ),
        "{err}"
    );
    let err = start_with_hook("hang-before-connect", Duration::from_millis(300));
    assert!(matches!(&err, Error::StartTimeout { .. }), "{err}");
}

#[test]
fn a_child_that_does_not_know_the_secret_or_sends_garbage_is_refused() {
    let err = start_with_hook("wrong-secret", LIMIT);
    assert!(
        matches!(&err, Error::ProcessStart { reason, .. } if reason.contains("secret")),
        "{err}"
    );
    let err = start_with_hook("garbage-hello", LIMIT);
    assert!(matches!(&err, Error::ProcessStart { .. }), "{err}");
}

/// The state letter of `pid` in /proc, if it exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

#[test]
fn children_are_always_reaped_joined_or_not() {
    // Joined: gone at once.
    let p = Process::spawn(square, 1).unwrap();
    let pid = p.pid().unwrap();
    join(p).unwrap();
    assert_ne!(proc_state(pid), Some('Z'));
    // Dropped while running, then it exits: reaped by the parent anyway.
    let p = Process::spawn(sleep_ms, 10).unwrap();
    let pid = p.pid().unwrap();
    drop(p);
    let until = std::time::Instant::now() + LIMIT;
    while proc_state(pid).is_some() {
        assert!(std::time::Instant::now() < until, "pid {pid} never reaped");
        std::thread::sleep(Duration::from_millis(5));
    }
}
