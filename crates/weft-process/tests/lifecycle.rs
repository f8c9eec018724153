//! Process-wide checks: open file descriptors and zombies across pool
//! create/drop cycles, and workers dying with their parent. Kept in their
//! own test binary, and in one test, because they count this process's
//! file descriptors and children.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weft_process::ProcessPool;

fn square(x: u64) -> u64 {
    x * x
}

fn crash(_: ()) {
    std::process::abort()
}

weft_process::register!(square, crash);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
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

const CYCLES: usize = 50;

/// Kills (and reaps) the helper even if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn no_fd_leaks_no_zombies_and_children_die_with_their_parent() {
    // Warm up lazily created process-wide state.
    drop(ProcessPool::builder().processes(1).build().unwrap());
    let before = open_fds();
    let mut pids = Vec::new();
    for i in 0..CYCLES {
        let pool = ProcessPool::builder().processes(1).build().unwrap();
        assert_eq!(pool.apply(square, i as u64), Ok((i * i) as u64));
        pids.extend(pool.pids());
        drop(pool);
    }
    assert_eq!(
        open_fds(),
        before,
        "file descriptors leaked across {CYCLES} pool cycles"
    );
    assert_eq!(pids.len(), CYCLES);
    // The same with a spare worker, which a crash makes a slot take (the
    // keeper then starts another): nothing of either is left behind.
    for i in 0..CYCLES / 5 {
        let pool = ProcessPool::builder()
            .processes(1)
            .spare_worker(true)
            .build()
            .unwrap();
        let t = Instant::now();
        while pool.spare_pid().is_none() && t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(2));
        }
        pids.extend(pool.spare_pid());
        pids.extend(pool.pids());
        assert!(pool.apply(crash, ()).is_err());
        assert_eq!(pool.apply(square, i as u64), Ok((i * i) as u64));
        pids.extend(pool.spare_pid());
        drop(pool);
    }
    assert_eq!(
        open_fds(),
        before,
        "file descriptors leaked across pool cycles with a spare"
    );
    for pid in &pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} was left as a zombie or is still running"
        );
    }

    // Parent killed -> children gone. The parent is this test binary,
    // re-run to execute the helper below, which prints its workers' pids.
    let mut helper = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "parent_death_helper",
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
            if let Some((_, rest)) = line.split_once("WORKERS ") {
                let pids: Vec<u32> = rest.split(',').map(|p| p.parse().unwrap()).collect();
                let _ = tx.send(pids);
                return;
            }
        }
    });
    let workers = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the helper did not report its workers");
    assert_eq!(workers.len(), 2);
    assert!(workers.iter().all(|&p| alive(p)));
    helper.0.kill().unwrap();
    helper.0.wait().unwrap();
    let t = Instant::now();
    while workers.iter().any(|&p| alive(p)) && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for p in workers {
        assert!(!alive(p), "worker {p} outlived its killed parent");
    }
}

/// Run only by the test above, in a child process: builds a pool, reports
/// its workers' pids and waits to be killed.
#[test]
#[ignore = "helper process for no_fd_leaks_no_zombies_and_children_die_with_their_parent"]
fn parent_death_helper() {
    if std::env::var_os("WEFT_PROCESS_TEST_HELPER").is_none() {
        return;
    }
    let pool = ProcessPool::builder().processes(2).build().unwrap();
    assert_eq!(pool.apply(square, 2), Ok(4));
    let pids: Vec<String> = pool.pids().iter().map(u32::to_string).collect();
    println!("WORKERS {}", pids.join(","));
    std::thread::sleep(Duration::from_secs(120));
}
