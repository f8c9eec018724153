//! The operating-system calls the pool needs, and the only `unsafe` code of
//! the crate: the process-constructor hook, `PR_SET_PDEATHSIG`, ignoring
//! `SIGPIPE`, removing the worker marker from the environment, sending a
//! signal to a child by pid, waiting for a child without reaping it,
//! closing descriptors inherited across `exec`, and writing into a
//! reusable ipc-channel shared-memory region.
#![allow(unsafe_code)]

use std::time::Duration;

/// The process constructor that starts worker mode before `main` (and
/// before libtest, in `cargo test` binaries). The registry it needs is a
/// link-time table, so it is complete before any constructor runs.
#[cfg(all(
    feature = "init-hook",
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
    )
))]
#[used]
// SAFETY: `.init_array` holds pointers to `extern "C" fn()` run once by the
// C runtime before `main`; `init_hook` has exactly that signature.
#[unsafe(link_section = ".init_array")]
static INIT_HOOK: extern "C" fn() = init_hook;

#[cfg(all(feature = "init-hook", target_vendor = "apple"))]
#[used]
// SAFETY: `__mod_init_func` holds pointers to `extern "C" fn()` run once by
// dyld before `main`; `init_hook` has exactly that signature.
#[unsafe(link_section = "__DATA,__mod_init_func,mod_init_funcs")]
static INIT_HOOK: extern "C" fn() = init_hook;

/// Whether this build starts worker mode from a process constructor.
pub(crate) const HAS_INIT_HOOK: bool = cfg!(all(
    feature = "init-hook",
    any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly",
        target_os = "illumos",
        target_vendor = "apple",
    )
));

#[cfg(feature = "init-hook")]
extern "C" fn init_hook() {
    // Nothing may unwind out of an `extern "C"` constructor.
    let _ = std::panic::catch_unwind(crate::worker::main_hook_from_constructor);
}

/// Removes an environment variable.
///
/// Only called by a worker, before `main` (single-threaded) or from
/// `main_hook`, which is documented to be the first thing `main` does.
pub(crate) fn remove_env(key: &str) {
    // SAFETY: no other thread of this process reads or writes the
    // environment at this point (see the function's documentation).
    unsafe { std::env::remove_var(key) }
}

/// Makes `SIGPIPE` ignored, as Rust's `main` would (a worker may start
/// before `main`): writing to a dead parent is then an error, not death.
pub(crate) fn ignore_sigpipe() {
    // SAFETY: installing SIG_IGN for SIGPIPE has no memory-safety
    // preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Arranges for this process to be killed when its parent dies, and checks
/// that the parent is still `parent` (it may have died before the call).
/// Returns `false` if the parent is already gone.
pub(crate) fn die_with_parent(parent: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: PR_SET_PDEATHSIG takes a signal number; no pointers.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
        }
    }
    std::os::unix::process::parent_id() == parent
}

/// Sends SIGKILL to `pid`. The caller guarantees `pid` is a child of this
/// process that has not been reaped yet (so the pid cannot have been reused).
pub(crate) fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Closes every descriptor from 3 up that this process inherited across
/// `exec` without close-on-exec (a `pipe()` the parent made for another
/// child, a file from C code), so that a worker or a `Process`'s child
/// holds only its stdin, stdout and stderr and never keeps another
/// child's pipe open. Called first thing in worker and child mode (from
/// the init hook, or `main_hook` at the top of `main`), before any code of
/// weft's or the user's opens a descriptor of its own.
///
/// The parent starts its children with `posix_spawn` (`vfork` semantics,
/// no `pre_exec` code), whose cost does not grow with the parent's memory,
/// where a `fork` copies the page tables of everything the parent maps
/// (a parent holding 1 GiB took 50-100 ms per start, against 2 ms): so
/// the descriptors are closed here, in the child, instead of being marked
/// between `fork` and `exec`.
pub(crate) fn close_inherited() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // Listed first, closed after: the listing's own descriptor is
        // close-on-exec, and gone once `dir` is dropped.
        let fds: Vec<libc::c_int> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= 3)
            .collect();
        fds.into_iter().for_each(close_if_inherited);
        return;
    }
    // Elsewhere, or without /proc: every number up to the limit.
    // SAFETY: an all-zero rlimit is valid for getrlimit to fill.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1024
    };
    (3..max).for_each(close_if_inherited);
}

/// Closes `fd` if it is open without close-on-exec.
fn close_if_inherited(fd: libc::c_int) {
    // SAFETY: fcntl on a descriptor number takes no pointers (a closed one
    // is EBADF). Closing is sound because nothing in this process owns a
    // descriptor without close-on-exec yet: this runs before weft's or the
    // user's code opens any (and Rust's standard library opens every one
    // close-on-exec), so such a descriptor can only have been inherited.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::close(fd);
        }
    }
}

/// Blocks until the child `pid` has exited, without reaping it (the
/// caller reaps it): `waitid(WEXITED | WNOWAIT)`. Returns at once if `pid`
/// is not (or no longer) a child of this process.
pub(crate) fn wait_exited(pid: u32) {
    // A pid fits an id_t on every platform this builds for.
    let id: libc::id_t = pid;
    loop {
        // SAFETY: an all-zero siginfo_t is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t for the call to fill.
        let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// How the child `pid` ended, if it has, without reaping it
/// (`waitid(WEXITED | WNOHANG | WNOWAIT)`): `Some((true, code))` for an
/// exit with `code`, `Some((false, signal))` for a death by `signal`,
/// `None` while it runs. A pid that is not (or no longer) a child of this
/// process reads as ended, with code `-1`.
pub(crate) fn peek_exit(pid: u32) -> Option<(bool, i32)> {
    let id: libc::id_t = pid;
    loop {
        // SAFETY: an all-zero siginfo_t is valid for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid siginfo_t for the call to fill.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                id,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r != 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Some((true, -1));
        }
        // SAFETY: waitid filled `info`; si_pid and si_status are valid for
        // a SIGCHLD-style siginfo (and si_pid is 0 when nothing changed).
        let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
        if who == 0 {
            return None;
        }
        return Some((info.si_code == libc::CLD_EXITED, status));
    }
}

/// Sends `signal` to `pid`. The caller guarantees `pid` is a child of this
/// process that has not been reaped yet (so the pid cannot have been reused).
pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// An empty `Vec` with room for `len` bytes. Large buffers are marked for
/// transparent huge pages, which cuts the page faults of filling them (the
/// main cost of receiving a large payload) by up to 512 times.
pub(crate) fn byte_buffer(len: usize) -> Vec<u8> {
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android")),
        allow(unused_mut)
    )]
    let mut v = Vec::with_capacity(len);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if len >= 4 << 20 {
        const HUGE: usize = 2 << 20;
        let start = v.as_mut_ptr() as usize;
        let aligned = start.next_multiple_of(HUGE);
        let usable = (start + len).saturating_sub(aligned) & !(HUGE - 1);
        if usable > 0 {
            // SAFETY: [aligned, aligned + usable) lies inside the allocation
            // `v` owns; MADV_HUGEPAGE is only a hint about how to back it and
            // does not change its contents or validity.
            unsafe {
                libc::madvise(aligned as *mut libc::c_void, usable, libc::MADV_HUGEPAGE);
            }
        }
    }
    v
}

/// The largest shared-memory region kept for reuse between messages;
/// larger payloads travel in a region of their own, used once.
pub(crate) const REGION_MAX: usize = 256 << 20;

/// Copies `bytes` to the start of `region`, a shared-memory region this
/// side created and reuses (`bytes` must fit).
pub(crate) fn write_region(region: &mut ipc_channel::ipc::IpcSharedMemory, bytes: &[u8]) {
    // SAFETY: ipc-channel asks that nothing else reads or writes the
    // memory while the slice lives. In this process nothing does: the
    // region is owned by this side's `Link` and borrowed mutably here. The
    // peer maps it too, but by the protocol reads it only after the message
    // announcing this payload, which is sent after this returns, and never
    // writes it; a peer that breaks the protocol and writes it meanwhile
    // changes bytes this process only copies from afterwards (plain bytes:
    // any value is valid), it cannot make this copy unsound.
    let memory = unsafe { region.deref_mut() };
    if let Some(dest) = memory.get_mut(..bytes.len()) {
        dest.copy_from_slice(bytes);
    }
}
/// 32 random bytes from the operating system, for the bootstrap secret.
pub(crate) fn random_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

/// Gives SIGINT its default action back (outside any signal handler; see
/// `ctrlc.rs`).
pub(crate) fn default_sigint() {
    // SAFETY: signal(2) with SIG_DFL installs no code of ours; it is called
    // from an ordinary thread.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Raises SIGINT in this process (after [`default_sigint`]: it ends the
/// program as a Ctrl-C does).
pub(crate) fn raise_sigint() {
    // SAFETY: raise(3) has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGINT);
    }
}

/// Sleeps briefly; used between polls of a child's exit status.
pub(crate) fn nap() {
    std::thread::sleep(Duration::from_millis(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    fn inheritable() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: new descriptors that this test owns.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn inherited_descriptors_are_closed_and_close_on_exec_ones_kept() {
        use std::io::{Read, Write};
        use std::os::fd::IntoRawFd;
        // A write end without close-on-exec is closed: its read end then
        // reads end-of-file (whatever reuses the number afterwards).
        let (read, write) = inheritable();
        close_if_inherited(write.into_raw_fd());
        let mut buf = [0u8; 1];
        assert_eq!(std::fs::File::from(read).read(&mut buf).unwrap(), 0);
        // A close-on-exec one is left alone: it still writes.
        let (read, write) = inheritable();
        // SAFETY: F_SETFD on a descriptor this test owns.
        unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
        close_if_inherited(write.as_raw_fd());
        std::fs::File::from(write).write_all(b"x").unwrap();
        std::fs::File::from(read).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"x");
        // A number that is not open is ignored.
        close_if_inherited(-1);
    }
}
