//! The operating-system calls the pool needs, and the only `unsafe` code of
//! the crate: the process-constructor hook, `PR_SET_PDEATHSIG`, ignoring
//! `SIGPIPE`, removing the worker marker from the environment, sending a
//! signal to a worker by pid, the channel between the pool and a worker (a
//! `SOCK_SEQPACKET` socket pair: bounded receives, descriptors passed with
//! `SCM_RIGHTS`) and the sealed shared-memory regions large payloads travel
//! in.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

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

/// Makes the child that `cmd` starts hold only the descriptors it is
/// given as stdin, stdout and stderr: every other descriptor it would
/// inherit (one the program opened without close-on-exec: a `pipe()`, a
/// file from C code) is made close-on-exec between `fork` and `exec`, so
/// that the worker never keeps another child's pipe open. Marking rather
/// than closing keeps the channel the standard library uses to report a
/// failed `exec`.
pub(crate) fn inherit_only_stdio(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: it makes raw system calls
    // (close_range, open, getdents64, fcntl, close, getrlimit) on a stack
    // buffer, and neither allocates nor takes a lock.
    unsafe {
        cmd.pre_exec(|| {
            cloexec_from(3);
            Ok(())
        });
    }
}

/// Sets close-on-exec on every descriptor from `first` up. Async-signal
/// safe (see [`inherit_only_stdio`]).
fn cloexec_from(first: libc::c_int) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // Linux 5.11 and later: one call.
        // SAFETY: close_range takes no pointers.
        let done = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        } == 0;
        if done || cloexec_listed(first) {
            return;
        }
    }
    // Elsewhere, or without /proc: every number up to the limit.
    // SAFETY: getrlimit writes into the struct it is given.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1024
    };
    for fd in first..max {
        set_cloexec(fd);
    }
}

/// Sets close-on-exec on `fd` if it is open. Async-signal safe.
fn set_cloexec(fd: libc::c_int) {
    // SAFETY: fcntl on a descriptor number takes no pointers; a closed one
    // is EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// [`cloexec_from`] for kernels before 5.11: the descriptors listed in
/// `/proc/self/fd`, read with raw `getdents64` into a stack buffer (as
/// CPython's `_posixsubprocess` does). `false` if it cannot be listed.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn cloexec_listed(first: libc::c_int) -> bool {
    // SAFETY: a NUL-terminated path; the result is checked.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return false;
    }
    let mut buf = [0u64; 512];
    loop {
        // SAFETY: `buf` is writable for its size in bytes.
        let got = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir,
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        if got <= 0 {
            break;
        }
        let bytes = buf.as_ptr().cast::<u8>();
        let mut at = 0usize;
        while at + 19 < got as usize {
            // linux_dirent64: d_ino (8), d_off (8), d_reclen (2),
            // d_type (1), then the NUL-terminated name.
            // SAFETY: the kernel wrote `got` bytes of whole records; each
            // record's header and name lie within them.
            let (reclen, fd) = unsafe {
                let reclen = std::ptr::read_unaligned(bytes.add(at + 16).cast::<u16>()) as usize;
                let mut fd: libc::c_int = 0;
                let mut name = bytes.add(at + 19);
                let mut digits = 0;
                while (*name).is_ascii_digit() && digits < 10 {
                    fd = fd * 10 + libc::c_int::from(*name - b'0');
                    name = name.add(1);
                    digits += 1;
                }
                (reclen, if digits > 0 && *name == 0 { fd } else { -1 })
            };
            if fd >= first && fd != dir {
                set_cloexec(fd);
            }
            if reclen == 0 {
                break;
            }
            at += reclen;
        }
    }
    // SAFETY: `dir` was opened above.
    unsafe { libc::close(dir) };
    true
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

/// A connected pair of `SOCK_SEQPACKET` Unix sockets (close-on-exec): the
/// channel between the pool and one worker. Each `send` is one message
/// (packet) with its boundaries kept, so a message is read whole by one
/// `recvmsg` into a bounded buffer, never trusted for its size.
pub(crate) fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let kind = libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let kind = libc::SOCK_SEQPACKET;
    // SAFETY: `fds` is valid for writes of two c_ints.
    if unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: socketpair succeeded, so both are open descriptors we own.
    let pair = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    for fd in [&pair.0, &pair.1] {
        // SAFETY: F_SETFD on an open descriptor; no pointers.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // No MSG_NOSIGNAL there: a send to a closed peer must not raise SIGPIPE.
    #[cfg(target_vendor = "apple")]
    for fd in [&pair.0, &pair.1] {
        let on: libc::c_int = 1;
        // SAFETY: `on` is a valid c_int for the duration of the call.
        let ok = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NOSIGPIPE,
                (&on as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if ok != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(pair)
}

/// The most file descriptors one message may carry (one per payload that
/// travels out of band; a message has at most two).
pub(crate) const MAX_FDS: usize = 2;

/// Sends one message: `data` and the descriptors `fds` (SCM_RIGHTS).
/// Blocks while the peer's receive buffer is full. `SIGPIPE` is never
/// raised: a closed peer is an `EPIPE` error.
pub(crate) fn send_msg(fd: RawFd, data: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    // The control buffer below has room for eight.
    assert!(fds.len() <= 8);
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for MAX_FDS descriptors, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid value (null pointers, lengths 0).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds) as libc::c_uint;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(bytes) } as usize;
        debug_assert!(space <= std::mem::size_of_val(&control));
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: `msg` points at `control`, which has room for one header
        // and `fds.len()` descriptors (checked above), so CMSG_FIRSTHDR is
        // non-null and CMSG_DATA has room for the copy.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        }
    }
    // Apple systems have no MSG_NOSIGNAL: their sockets are made with
    // SO_NOSIGPIPE instead (see `socketpair`).
    #[cfg(not(target_vendor = "apple"))]
    let flags = libc::MSG_NOSIGNAL;
    #[cfg(target_vendor = "apple")]
    let flags = 0;
    loop {
        // SAFETY: `msg` and everything it points to live across the call.
        let sent = unsafe { libc::sendmsg(fd, &msg, flags) };
        if sent >= 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Makes a blocking send on `fd` give up (with `EAGAIN`) after `timeout`.
/// The pool's sends to a worker never need to wait for long (a worker holds
/// at most two jobs, and every message is small), so a send that cannot
/// complete means the worker stopped reading its channel: the parent then
/// treats it as lost instead of waiting forever.
pub(crate) fn set_send_timeout(fd: RawFd, timeout: Duration) -> std::io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 1,000,000: fits every platform's suseconds_t.
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval for the duration of the call.
    let ok = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if ok == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// What [`recv_msg`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A message of acceptable size is in the buffer (its descriptors, if
    /// any, in the descriptor list).
    Ready,
    /// The deadline passed with nothing to read.
    TimedOut,
    /// The peer closed its end and nothing is left to read.
    Closed,
    /// The next message was not acceptable (the text says why); it was
    /// consumed, and any descriptors it carried were closed.
    Refused(String),
}

/// Receives the next message on `fd` into `buf` (cleared first; at most
/// `max` bytes are accepted) and its descriptors into `fds` (at most
/// [`MAX_FDS`]), waiting at most until `deadline`. A longer message, one
/// with more descriptors, or an empty one is refused, so whatever the peer
/// sends, this never allocates more than `max` bytes and never blocks past
/// the deadline.
pub(crate) fn recv_msg(
    fd: RawFd,
    buf: &mut Vec<u8>,
    fds: &mut Vec<OwnedFd>,
    max: usize,
    deadline: Option<Instant>,
) -> Frame {
    buf.clear();
    fds.clear();
    // One byte more than allowed, to see a message that is too long.
    buf.reserve(max + 1);
    let mut flags = 0;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    {
        flags |= libc::MSG_CMSG_CLOEXEC;
    }
    loop {
        if let Some(deadline) = deadline {
            match wait_readable(fd, deadline) {
                Ok(true) => flags |= libc::MSG_DONTWAIT,
                Ok(false) => return Frame::TimedOut,
                Err(e) => return Frame::Refused(format!("waiting on the channel failed: {e}")),
            }
        }
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: max + 1,
        };
        // Room for more descriptors than allowed, to close the excess.
        let mut control = [0u64; 16];
        // SAFETY: an all-zero msghdr is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `iov` describes `max + 1` writable bytes of `buf`'s
        // capacity and `control` is writable for `msg_controllen` bytes.
        let got = unsafe { libc::recvmsg(fd, &mut msg, flags) };
        if got < 0 {
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => continue,
                Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ENOTCONN) => {
                    return Frame::Closed;
                }
                _ => return Frame::Refused(format!("reading the channel failed: {err}")),
            }
        }
        // Take ownership of every descriptor received, so that each is
        // closed whatever happens next.
        // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk the
        // control buffer within `msg_controllen`, and each SCM_RIGHTS
        // payload is an array of descriptors now open in this process.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg);
                    let bytes = (*cmsg).cmsg_len as usize - (data as usize - cmsg as usize);
                    for i in 0..bytes / size_of::<libc::c_int>() {
                        let raw = std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                        if raw >= 0 {
                            fds.push(OwnedFd::from_raw_fd(raw));
                        }
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        let got = got as usize;
        if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > MAX_FDS {
            fds.clear();
            return Frame::Refused(format!(
                "the peer sent a message with more than {MAX_FDS} file descriptors"
            ));
        }
        if got > max || msg.msg_flags & libc::MSG_TRUNC != 0 {
            fds.clear();
            return Frame::Refused(format!("the peer sent a message over the {max}-byte limit"));
        }
        if got == 0 {
            fds.clear();
            // End of stream, or an empty packet (never valid).
            return if peer_closed(fd) {
                Frame::Closed
            } else {
                Frame::Refused("the peer sent an empty message".into())
            };
        }
        // SAFETY: recvmsg wrote `got <= max + 1` bytes into `buf`.
        unsafe { buf.set_len(got) };
        return Frame::Ready;
    }
}

/// Waits until `fd` is readable (or closed): `false` if `deadline` passed.
fn wait_readable(fd: RawFd, deadline: Instant) -> std::io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Round up so that we never wake before the deadline.
        let ms =
            libc::c_int::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}

/// Whether the peer of `fd` has closed its end.
fn peer_closed(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLHUP != 0
}

/// Moves the worker's end of its channel, inherited as stdin, to a new
/// descriptor, and puts `/dev/null` on stdin, so that a task reading stdin
/// cannot read (or corrupt) the pool's messages. Returns the channel.
pub(crate) fn take_stdin_channel() -> std::io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on fd 0; no pointers. The result, if
    // not negative, is a new descriptor we own.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: see above.
    let channel = unsafe { OwnedFd::from_raw_fd(fd) };
    if !is_seqpacket(channel.as_raw_fd()) {
        return Err(std::io::Error::other(
            "stdin is not the pool's channel (not a SOCK_SEQPACKET socket)",
        ));
    }
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: dup2 onto fd 0 of a descriptor we hold open; no pointers.
    if unsafe { libc::dup2(null.as_raw_fd(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(channel)
}

/// Whether `fd` is a `SOCK_SEQPACKET` socket.
fn is_seqpacket(fd: RawFd) -> bool {
    let mut kind: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `kind` and `len` are valid for writes of their sizes.
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    ok == 0 && kind == libc::SOCK_SEQPACKET
}

/// An empty `Vec` with room for `len` bytes. Large buffers are marked for
/// transparent huge pages, which cuts the page faults of filling them (the
/// main cost of receiving a large payload) by up to 512 times.
pub(crate) fn byte_buffer(len: usize) -> Vec<u8> {
    const HUGE: usize = 2 << 20;
    let mut v = Vec::with_capacity(len);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if len >= 2 * HUGE {
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

/// A shared-memory region (a sealed `memfd`) mapped into this process and
/// kept for reuse: the pages are allocated and mapped once, so the next
/// payload costs a `memcpy`, not a page fault per 4 KiB.
pub(crate) struct Shm {
    fd: OwnedFd,
    ptr: *mut u8,
    cap: usize,
}

// SAFETY: `Shm` owns its mapping; the raw pointer is only a handle to it,
// usable from any thread.
unsafe impl Send for Shm {}

impl std::fmt::Debug for Shm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shm({} bytes)", self.cap)
    }
}

impl Shm {
    /// A new region of `cap` bytes (at least 1), sealed at that size and
    /// mapped read-write, its pages allocated now.
    pub(crate) fn create(cap: usize) -> std::io::Result<Shm> {
        let cap = cap.max(1);
        let fd = sealed_memfd(cap)?;
        let ptr = map(&fd, cap, libc::PROT_READ | libc::PROT_WRITE, true)?;
        Ok(Shm { fd, ptr, cap })
    }

    /// Maps, read-only, a region a peer sent. Refused unless it is a memfd
    /// sealed against shrinking (so reading it can never fault) whose size
    /// is at least `need` and at most `limit` bytes.
    pub(crate) fn open(fd: OwnedFd, need: usize, limit: usize) -> Result<Shm, String> {
        let size = sealed_size(&fd)?;
        // Never an empty one: it could not be mapped as it is, and a
        // mapping longer than the file would fault when read.
        if size == 0 || size < need || size > limit.max(need) {
            return Err(format!(
                "the peer sent a shared-memory region of {size} bytes for a payload of {need}"
            ));
        }
        // The mapping is exactly the file's size, which is sealed against
        // shrinking: every byte of it stays readable.
        let cap = size;
        // Not populated: the pages are mapped as they are first read, and a
        // region that is never read costs no memory here.
        let ptr = map(&fd, cap, libc::PROT_READ, false)
            .map_err(|e| format!("the peer's shared memory could not be mapped: {e}"))?;
        Ok(Shm { fd, ptr, cap })
    }

    /// Its size in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// Its descriptor, to send to the peer.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Copies `data` to the start of the region (created by this process,
    /// so mapped writable).
    pub(crate) fn write(&mut self, data: &[u8]) {
        assert!(data.len() <= self.cap);
        // SAFETY: the mapping is `cap >= data.len()` bytes, writable (made by
        // `create`), and does not overlap `data` (a fresh mapping).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr, data.len()) };
    }

    /// Appends the region's first `len` bytes to `out`.
    ///
    /// The peer may write the region while it is read here (only if it
    /// breaks the protocol): the copy then holds whatever bytes it found,
    /// which is harmless for plain bytes; the region's size cannot change
    /// (it is sealed), so the read never faults.
    /// A `len` over the region's size (a peer's lie) is an error.
    pub(crate) fn read_into(&self, len: usize, out: &mut Vec<u8>) -> Result<(), String> {
        self.check(len)?;
        out.reserve(len);
        let at = out.len();
        // SAFETY: `len <= cap` bytes of the mapping are readable for as long
        // as `self` lives, and `out` has room for `len` more bytes, in a
        // buffer that cannot overlap the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr, out.as_mut_ptr().add(at), len);
            out.set_len(at + len);
        }
        Ok(())
    }

    /// The region's first `len` bytes, for a worker reading what its parent
    /// wrote (the parent does not write the region again until the worker
    /// has answered the job that uses it). A `len` over the region's size
    /// is an error.
    pub(crate) fn bytes(&self, len: usize) -> Result<&[u8], String> {
        self.check(len)?;
        // SAFETY: `len <= cap` bytes of the mapping stay readable while
        // `self` is borrowed; see above for why they do not change.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr, len) })
    }

    fn check(&self, len: usize) -> Result<(), String> {
        if len > self.cap {
            return Err(format!(
                "a payload of {len} bytes refers to a {}-byte shared-memory region",
                self.cap
            ));
        }
        Ok(())
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`cap` is the mapping made for this value, unmapped
        // only here.
        unsafe { libc::munmap(self.ptr.cast(), self.cap) };
    }
}

fn map(fd: &OwnedFd, len: usize, prot: libc::c_int, populate: bool) -> std::io::Result<*mut u8> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = if populate {
        libc::MAP_SHARED | libc::MAP_POPULATE
    } else {
        libc::MAP_SHARED
    };
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = {
        let _ = populate;
        libc::MAP_SHARED
    };
    // SAFETY: a new shared mapping of an open descriptor; the kernel picks
    // the address, so no existing memory is affected.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd.as_raw_fd(), 0) };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ptr.cast())
}

/// A memfd of `len` bytes whose size is sealed.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sealed_memfd(len: usize) -> std::io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated literal; the result, if not
    // negative, is a new descriptor we own.
    let raw = unsafe {
        libc::memfd_create(
            c"weft-process".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: see above.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let size = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: ftruncate and fcntl on a descriptor we own; no pointers.
    unsafe {
        if libc::ftruncate(raw, size) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        if libc::fcntl(raw, libc::F_ADD_SEALS, seals) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(fd)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sealed_memfd(_len: usize) -> std::io::Result<OwnedFd> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "large payloads need memfd_create (Linux)",
    ))
}

/// The size of a memfd a peer sent, if it is sealed against shrinking.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn sealed_size(fd: &OwnedFd) -> Result<usize, String> {
    // SAFETY: fcntl(F_GET_SEALS) has no pointer arguments.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
        return Err(
            "the peer sent a descriptor that is not a memfd sealed against shrinking".into(),
        );
    }
    let size = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?)
        .metadata()
        .map_err(|e| e.to_string())?
        .len();
    usize::try_from(size).map_err(|e| e.to_string())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn sealed_size(_fd: &OwnedFd) -> Result<usize, String> {
    Err("large payloads need memfd_create (Linux)".into())
}

/// A sealed memfd holding a copy of `data`, for a payload sent once.
pub(crate) fn memfd_with(data: &[u8]) -> std::io::Result<OwnedFd> {
    let fd = sealed_memfd(data.len().max(1))?;
    std::os::unix::fs::FileExt::write_all_at(&std::fs::File::from(fd.try_clone()?), data, 0)?;
    Ok(fd)
}

/// Appends the first `len` bytes of a memfd a peer sent to `out`. It must
/// be sealed against shrinking and at least `len` bytes long; it is read
/// with `pread`, so even a file that changes cannot fault or block.
pub(crate) fn read_memfd(fd: &OwnedFd, len: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let size = sealed_size(fd)?;
    if size < len {
        return Err(format!(
            "the peer sent a {size}-byte shared-memory file for a {len}-byte payload"
        ));
    }
    let file = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?);
    let at = out.len();
    out.resize(at + len, 0);
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut out[at..], 0)
        .map_err(|e| format!("the peer's shared memory could not be read: {e}"))
}

/// Appends `len` bytes at address `addr` of process `pid` (a worker of this
/// process) to `out`, with `process_vm_readv`: one copy, straight from the
/// worker's buffer. Any failure (the address is not mapped there, the
/// process is gone, the call is not permitted or not available) is an
/// error, never a fault in this process.
pub(crate) fn read_remote(
    pid: u32,
    addr: u64,
    len: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
        let addr = usize::try_from(addr).map_err(std::io::Error::other)?;
        out.reserve(len);
        let at = out.len();
        let mut done = 0usize;
        while done < len {
            let local = libc::iovec {
                // SAFETY: `at + done < at + len <= out.capacity()`.
                iov_base: unsafe { out.as_mut_ptr().add(at + done) }.cast(),
                iov_len: len - done,
            };
            let remote = libc::iovec {
                iov_base: addr.wrapping_add(done) as *mut libc::c_void,
                iov_len: len - done,
            };
            // SAFETY: `local` is `len - done` writable bytes of `out`'s spare
            // capacity; `remote` is only read, by the kernel, in the other
            // process, and a bad address there is reported as an error.
            let got = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
            if got > 0 {
                done += got as usize;
                continue;
            }
            let err = std::io::Error::last_os_error();
            if got < 0 && err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            if got == 0 {
                // Nothing copied and no error: treat as an unmapped address.
                return Err(std::io::Error::from_raw_os_error(libc::EFAULT));
            }
            return Err(err);
        }
        // SAFETY: the `len` bytes after `at` were written above.
        unsafe { out.set_len(at + len) };
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (pid, addr, len, out);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "reading a worker's memory needs Linux",
        ))
    }
}

/// Whether this process may still have its memory read by its parent
/// (task code may have made it non-dumpable, which forbids that).
pub(crate) fn dumpable() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: PR_GET_DUMPABLE takes no pointers.
        unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        false
    }
}

/// 32 random bytes from the operating system, for the bootstrap secret.
pub(crate) fn random_secret() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut secret = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut secret)?;
    Ok(secret)
}

/// Sleeps briefly; used between polls of a child's exit status.
pub(crate) fn nap() {
    std::thread::sleep(Duration::from_millis(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair().unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn messages_keep_their_boundaries_and_time_out() {
        let (a, b) = pair();
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, Some(soon)),
            Frame::TimedOut
        );
        send_msg(a.as_raw_fd(), b"one", &[]).unwrap();
        send_msg(a.as_raw_fd(), b"two!", &[]).unwrap();
        assert_eq!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, None),
            Frame::Ready
        );
        assert_eq!(buf, b"one");
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, Some(later)),
            Frame::Ready
        );
        assert_eq!(buf, b"two!");
        drop(a);
        assert_eq!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, None),
            Frame::Closed
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn oversized_empty_and_fd_laden_messages_are_refused_and_consumed() {
        let (a, b) = pair();
        let (mut buf, mut fds) = (Vec::new(), Vec::new());
        let fd = memfd_with(b"x").unwrap();
        let raw = fd.as_raw_fd();
        // Too long: refused without taking more than the limit.
        send_msg(a.as_raw_fd(), &[7; 65], &[]).unwrap();
        assert!(matches!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, None),
            Frame::Refused(why) if why.contains("limit")
        ));
        assert!(buf.capacity() < 1024);
        // Empty: never valid, and not mistaken for the end of the stream.
        send_msg(a.as_raw_fd(), &[], &[]).unwrap();
        assert!(matches!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, None),
            Frame::Refused(why) if why.contains("empty")
        ));
        // Too many descriptors: refused, and the ones received are closed.
        send_msg(a.as_raw_fd(), b"m", &[raw; MAX_FDS + 1]).unwrap();
        assert!(matches!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, None),
            Frame::Refused(why) if why.contains("descriptors")
        ));
        assert!(fds.is_empty());
        // Within the limits, descriptors arrive in order.
        send_msg(a.as_raw_fd(), b"ok", &[raw]).unwrap();
        assert_eq!(
            recv_msg(b.as_raw_fd(), &mut buf, &mut fds, 64, None),
            Frame::Ready
        );
        assert_eq!(fds.len(), 1);
        let mut out = Vec::new();
        read_memfd(&fds[0], 1, &mut out).unwrap();
        assert_eq!(out, b"x");
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn regions_and_memfds_from_a_peer_are_checked() {
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| i as u8).collect();
        let mut region = Shm::create(data.len()).unwrap();
        region.write(&data);
        let copy = region.fd.try_clone().unwrap();
        let theirs = Shm::open(copy, data.len(), REGION_MAX).unwrap();
        let mut out = Vec::new();
        theirs.read_into(data.len(), &mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(theirs.bytes(3).unwrap(), &data[..3]);
        // Past its end: an error, never a read out of bounds.
        assert!(theirs.bytes(data.len() + 1).is_err());
        assert!(theirs.read_into(data.len() + 1, &mut Vec::new()).is_err());
        // Sealed: the creator cannot shrink it under the reader.
        let file = std::fs::File::from(region.fd.try_clone().unwrap());
        assert!(file.set_len(0).is_err());
        // Too small for the payload, or too large a region: refused.
        let copy = region.fd.try_clone().unwrap();
        assert!(Shm::open(copy, data.len() + 1, REGION_MAX).is_err());
        let copy = region.fd.try_clone().unwrap();
        assert!(Shm::open(copy, 1, 1024).is_err());
        // Not a sealed memfd (a plain file, a socket): refused.
        let (a, _b) = pair();
        assert!(Shm::open(a, 1, REGION_MAX).is_err());
        let plain = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(read_memfd(&OwnedFd::from(plain), 1, &mut out).is_err());
        // A one-shot memfd shorter than announced: refused.
        let short = memfd_with(&[1, 2, 3]).unwrap();
        assert!(read_memfd(&short, 4, &mut Vec::new()).is_err());
    }

    /// A sealed memfd of `len` bytes, as a peer could make it.
    fn peer_memfd(len: usize) -> OwnedFd {
        // SAFETY: a NUL-terminated name; the result is checked and owned.
        let raw = unsafe {
            libc::memfd_create(
                c"peer".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        assert!(raw >= 0);
        // SAFETY: a new descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        std::fs::File::from(fd.try_clone().unwrap())
            .set_len(len as u64)
            .unwrap();
        // SAFETY: fcntl on a descriptor we own; no pointers.
        let sealed = unsafe { libc::fcntl(raw, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
        assert_eq!(sealed, 0);
        fd
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn an_empty_region_is_refused_and_a_region_is_never_read_past_its_file() {
        // Regression: an empty region used to be mapped one byte long (past
        // the end of its file) and taken to hold one byte, so that a later
        // one-byte payload in it raised SIGBUS in the parent.
        assert!(Shm::open(peer_memfd(0), 0, REGION_MAX).is_err());
        // Otherwise the mapping is the file's size, exactly.
        let region = Shm::open(peer_memfd(100), 0, REGION_MAX).unwrap();
        assert_eq!(region.capacity(), 100);
        assert_eq!(region.bytes(100).unwrap(), &[0; 100][..]);
        assert!(region.bytes(101).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn a_send_to_a_peer_that_stopped_reading_gives_up() {
        let (a, _b) = pair();
        set_send_timeout(a.as_raw_fd(), Duration::from_millis(50)).unwrap();
        let big = vec![0u8; 60 * 1024];
        let started = Instant::now();
        let err = loop {
            if let Err(e) = send_msg(a.as_raw_fd(), &big, &[]) {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "never blocked");
        };
        assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn remote_reads_copy_or_fail_cleanly() {
        let data: Vec<u8> = (0..1 << 20).map(|i: u32| i as u8).collect();
        let me = std::process::id();
        let mut out = vec![9];
        read_remote(me, data.as_ptr() as u64, data.len(), &mut out).unwrap();
        assert_eq!(out[0], 9);
        assert_eq!(out[1..], data[..]);
        // An address that is not mapped: an error, not a fault.
        assert!(read_remote(me, 8, 16, &mut Vec::new()).is_err());
        assert!(read_remote(me, u64::MAX - 4, 16, &mut Vec::new()).is_err());
    }

    /// Two fresh descriptors that are not close-on-exec, the lower first.
    fn inheritable() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: new descriptors that this test owns.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    fn cloexec(fd: &OwnedFd) -> bool {
        // SAFETY: F_GETFD takes no pointers.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn every_way_of_marking_inherited_descriptors_reaches_them() {
        // Only descriptors from the pipe's up are touched (close-on-exec
        // on this test process's own later descriptors is harmless).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // The /proc/self/fd listing (kernels before close_range).
            let (a, b) = inheritable();
            assert!(!cloexec(&a) && !cloexec(&b));
            assert!(cloexec_listed(a.as_raw_fd().min(b.as_raw_fd())));
            assert!(cloexec(&a) && cloexec(&b));
        }
        // Whatever the kernel offers.
        let (a, b) = inheritable();
        cloexec_from(a.as_raw_fd().min(b.as_raw_fd()));
        assert!(cloexec(&a) && cloexec(&b));
        // One descriptor at a time; a closed number is ignored.
        let (a, _b) = inheritable();
        set_cloexec(a.as_raw_fd());
        assert!(cloexec(&a));
        set_cloexec(-1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn only_a_seqpacket_socket_is_taken_as_the_channel() {
        let (a, _b) = pair();
        assert!(is_seqpacket(a.as_raw_fd()));
        let (s, _t) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!is_seqpacket(s.as_raw_fd()));
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(!is_seqpacket(file.as_raw_fd()));
    }
}
