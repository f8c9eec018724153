//! What a worker inherits from its parent, and what a failed `build()`
//! leaves behind. One test in its own binary, because it counts this
//! process's descriptors, threads and children.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;
use std::time::Duration;

use weft_process::{Error, ProcessPool};

fn square(x: u64) -> u64 {
    x * x
}

fn refuse(_: ()) {
    panic!("the initializer refuses")
}

weft_process::register!(square, refuse);

const LIMIT: Duration = Duration::from_secs(30);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// [`threads`] once it stops changing: a thread that was just joined may
/// still be listed for a moment while the kernel finishes its exit (a
/// leaked thread stays listed for good).
fn settled_threads() -> usize {
    let mut last = threads();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = threads();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// What `/proc/<pid>/fd` of a worker points at, one entry per descriptor.
fn fds_of(pid: u32) -> Vec<(u32, String)> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

/// A pipe that is not close-on-exec, as `libc::pipe` makes it.
fn inheritable_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are new descriptors that this function owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// No child of this process exists, alive or zombie.
fn no_children() -> bool {
    // SAFETY: waitpid with a null status pointer and WNOHANG only asks.
    let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
    r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

#[test]
fn workers_inherit_no_descriptor_and_failed_builds_leave_nothing_behind() {
    // ---- a worker holds only the descriptors it needs ----
    let (read, write) = inheritable_pipe();
    let pool = ProcessPool::builder().processes(2).build().unwrap();
    assert_eq!(pool.apply(square, 3), Ok(9));
    let pipe_name = std::fs::read_link(format!("/proc/self/fd/{}", write.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for pid in pool.pids() {
        let fds = fds_of(pid);
        assert!(
            fds.iter().all(|(_, target)| *target != pipe_name),
            "worker {pid} inherited the parent's pipe: {fds:?}"
        );
    }
    // The pipe's reader sees EOF once the parent closes its end, while the
    // pool lives.
    drop(write);
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::from(read);
        let mut all = Vec::new();
        let _ = tx.send(file.read_to_end(&mut all).map(|_| all.len()).ok());
    });
    assert_eq!(
        rx.recv_timeout(LIMIT)
            .expect("a worker holds the write end of the parent's pipe"),
        Some(0)
    );
    reader.join().unwrap();
    drop(pool);

    // ---- a failed build leaves no process, thread or descriptor ----
    // Warm up lazily created process-wide state.
    drop(ProcessPool::builder().processes(1).build().unwrap());
    assert!(no_children(), "a dropped pool left a child");
    let (fds_before, threads_before) = (open_fds(), settled_threads());
    for _ in 0..3 {
        let err = ProcessPool::builder()
            .processes(3)
            .initializer(refuse, ())
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Initializer(_)), "{err}");
        let err = ProcessPool::builder()
            .processes(2)
            .executable("/bin/true")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Handshake { .. }), "{err}");
        let err = ProcessPool::builder()
            .processes(2)
            .executable("/nonexistent/weft-worker")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
        let err = ProcessPool::builder()
            .processes(usize::MAX)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::TooManyProcesses { .. }), "{err}");
    }
    assert!(no_children(), "a failed build left a child process");
    assert_eq!(open_fds(), fds_before, "a failed build left a descriptor");
    assert_eq!(
        settled_threads(),
        threads_before,
        "a failed build left a thread"
    );
}
