//! `shutdown_on_ctrl_c`: a SIGINT to the parent terminates its pool (the
//! workers are killed and reaped, the tasks fail with `Cancelled`) and the
//! program goes on; a second SIGINT ends the program as by default. Run in
//! a child process (this test binary, re-run), which the test signals.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_process::{ProcessPool, TaskError};

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

weft_process::register!(nap);

/// Kills (and reaps) the helper even if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigint(pid: u32) {
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our
    // unreaped child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGINT);
    }
}

#[test]
fn ctrl_c_terminates_the_pool_then_a_second_one_ends_the_program() {
    let mut helper = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "ctrl_c_helper",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("WEFT_PROCESS_CTRL_C_HELPER", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = helper.0.id();
    let stdout = helper.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the helper did not print {what}"));
        if let Some((_, rest)) = line.split_once(what) {
            return rest.trim().to_string();
        }
    };
    next("RUNNING");
    sigint(pid);
    // It survived the first SIGINT: its tasks were cancelled and its
    // workers are gone (it checked, after dropping the pool).
    assert_eq!(next("CANCELLED"), "[true, true]");
    assert_eq!(next("WORKERS GONE"), "true");
    sigint(pid);
    let t = Instant::now();
    let status = loop {
        if let Some(status) = helper.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the second SIGINT did not end the helper"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

/// Run only by the test above, in a child process.
#[test]
#[ignore = "helper process for ctrl_c_terminates_the_pool_then_a_second_one_ends_the_program"]
fn ctrl_c_helper() {
    if std::env::var_os("WEFT_PROCESS_CTRL_C_HELPER").is_none() {
        return;
    }
    let pool = ProcessPool::builder()
        .processes(2)
        .shutdown_on_ctrl_c(true)
        .build()
        .unwrap();
    let pids = pool.pids();
    let tasks: Vec<_> = (0..2).map(|_| pool.submit(nap, 120_000)).collect();
    while pool.running() < 1 {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("RUNNING");
    let cancelled: Vec<bool> = tasks
        .into_iter()
        .map(|t| t.join() == Err(TaskError::Cancelled))
        .collect();
    println!("CANCELLED {cancelled:?}");
    // Dropping a terminated pool waits for its supervisors, which have
    // reaped the workers.
    drop(pool);
    let gone = pids
        .iter()
        .all(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
    println!("WORKERS GONE {gone}");
    std::thread::sleep(Duration::from_secs(120));
    println!("NOT ENDED");
}
