//! The operating-system calls the pool needs, and the only `unsafe` code of
//! the crate: the process-constructor hook, `PR_SET_PDEATHSIG`, ignoring
//! `SIGPIPE`, removing the worker marker from the environment, sending a
//! signal to a worker by pid, and peeking at a worker's next message before
//! ipc-channel reads it.
#![allow(unsafe_code)]

use std::os::fd::RawFd;
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

/// What [`wait_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete, unfragmented message of acceptable size is ready.
    Ready,
    /// The deadline passed with nothing to read.
    TimedOut,
    /// The peer closed its end and nothing is left to read.
    Closed,
    /// The next message is not acceptable (the text says why).
    Refused(String),
}

/// Waits until the next ipc-channel message on `fd` can be read, or
/// `deadline` passes, and checks its header without consuming it: the
/// message must be a single fragment of at most `max` bytes. ipc-channel
/// trusts the total size a sender writes in its header and allocates for
/// it, and blocks on the fragments that follow; refusing anything else here
/// means a worker can neither exhaust the parent's memory nor hang it.
///
/// ipc-channel's frame: `[fragment_size: usize][total_size: usize][data]`,
/// where `fragment_size` is the length of the whole packet.
pub(crate) fn wait_frame(fd: RawFd, deadline: Option<Instant>, max: usize) -> Frame {
    loop {
        let timeout_ms: libc::c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    0
                } else {
                    // Round up so that we never wake before the deadline.
                    let ms = left.as_nanos().div_ceil(1_000_000);
                    libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
                }
            }
        };
        if deadline.is_none() {
            // No time limit: a blocking peek waits for the next message
            // without a separate poll(2).
            match peek_header(fd, 0) {
                Peek::Header(len, header) => return check_header(len, header, max),
                Peek::Closed => return Frame::Closed,
                Peek::Retry => continue,
                Peek::Failed(why) => return Frame::Refused(why),
            }
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Frame::Refused(format!(
                "poll on the worker's channel failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        if n == 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Frame::TimedOut;
            }
            continue;
        }
        match peek_header(fd, libc::MSG_DONTWAIT) {
            Peek::Header(len, header) => return check_header(len, header, max),
            Peek::Closed => return Frame::Closed,
            Peek::Retry => continue,
            Peek::Failed(why) => return Frame::Refused(why),
        }
    }
}

const HEADER: usize = 2 * size_of::<usize>();

enum Peek {
    /// The packet's full length and its first bytes.
    Header(usize, [u8; HEADER]),
    Closed,
    Retry,
    Failed(String),
}

/// Reads the first bytes of the next packet without consuming it.
fn peek_header(fd: RawFd, flags: libc::c_int) -> Peek {
    let mut header = [0u8; HEADER];
    // SAFETY: `header` is valid for writes of `HEADER` bytes.
    let got = unsafe {
        libc::recv(
            fd,
            header.as_mut_ptr().cast(),
            HEADER,
            libc::MSG_PEEK | libc::MSG_TRUNC | flags,
        )
    };
    if got == 0 {
        return Peek::Closed;
    }
    if got < 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Peek::Retry,
            Some(libc::ECONNRESET) | Some(libc::EPIPE) | Some(libc::ENOTCONN) => Peek::Closed,
            _ => Peek::Failed(format!("reading the worker's channel failed: {err}")),
        };
    }
    Peek::Header(got as usize, header)
}

/// Accepts only a single-fragment message of at most `max` bytes.
fn check_header(len: usize, header: [u8; HEADER], max: usize) -> Frame {
    if len < HEADER {
        return Frame::Refused(format!(
            "the worker sent a {len}-byte message, shorter than any valid message"
        ));
    }
    let (a, b) = header.split_at(size_of::<usize>());
    let fragment = usize::from_ne_bytes(a.try_into().unwrap_or_default());
    let total = usize::from_ne_bytes(b.try_into().unwrap_or_default());
    if fragment != len || total != len - HEADER {
        return Frame::Refused(format!(
            "the worker sent a fragmented or malformed message (announced {total} bytes, \
             packet of {len} bytes); workers never send fragmented messages"
        ));
    }
    if len > max {
        return Frame::Refused(format!(
            "the worker sent a {len}-byte message, over the {max}-byte limit for messages from workers"
        ));
    }
    Frame::Ready
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

/// The file descriptor behind an ipc-channel receiver, read from its `Debug`
/// output (`OsIpcReceiver { fd: Cell { value: N } }` in ipc-channel 0.23),
/// since ipc-channel does not expose it. `None` if the format is not
/// recognised; the pool then falls back to ipc-channel's own receive.
pub(crate) fn receiver_fd<T: std::fmt::Debug>(
    rx: &ipc_channel::ipc::IpcReceiver<T>,
) -> Option<RawFd> {
    let text = format!("{rx:?}");
    let start = text.find("fd: Cell { value: ")? + "fd: Cell { value: ".len();
    let rest = &text[start..];
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != '-')?;
    let fd: RawFd = rest[..end].parse().ok()?;
    (fd >= 0).then_some(fd)
}

/// Copies `src` — a shared-memory region a worker sent — into a new buffer
/// without ever faulting on it: the worker still holds the region's file and
/// could truncate it, and reading a truncated mapping raises SIGBUS, which
/// would kill the parent. `process_vm_readv` on our own pid turns that fault
/// into an error instead. Where that call is not available, falls back to a
/// plain copy.
pub(crate) fn copy_untrusted(src: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = byte_buffer(src.len());
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut done = 0usize;
        while done < src.len() {
            let rest = src.len() - done;
            let local = libc::iovec {
                // SAFETY: `done < src.len() <= out.capacity()`.
                iov_base: unsafe { out.as_mut_ptr().add(done) }.cast(),
                iov_len: rest,
            };
            let remote = libc::iovec {
                iov_base: src[done..].as_ptr() as *mut libc::c_void,
                iov_len: rest,
            };
            // SAFETY: `local` describes `rest` writable bytes of `out`'s
            // spare capacity; `remote` is only read, by the kernel, which
            // reports a fault on it as EFAULT instead of a signal.
            let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
            if got > 0 {
                done += got as usize;
                continue;
            }
            let errno = std::io::Error::last_os_error().raw_os_error();
            if got < 0 && errno == Some(libc::EINTR) {
                continue;
            }
            if got == 0 || errno == Some(libc::EFAULT) {
                return Err(
                    "the worker's shared memory became unreadable while the pool read it \
                     (was it truncated?)"
                        .into(),
                );
            }
            // Not available here (e.g. ENOSYS, EPERM): finish with a plain copy.
            break;
        }
        // SAFETY: the first `done` bytes of `out` were written above.
        unsafe { out.set_len(done) };
        out.extend_from_slice(&src[done..]);
        Ok(out)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        out.extend_from_slice(src);
        Ok(out)
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

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn copy_untrusted_copies_and_survives_truncation() {
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| i as u8).collect();
        assert_eq!(copy_untrusted(&data).unwrap(), data);
        assert_eq!(copy_untrusted(&[]).unwrap(), Vec::<u8>::new());
        // A shared mapping whose file shrinks under it: reading it would
        // raise SIGBUS; the copy reports an error instead.
        let shm = ipc_channel::ipc::IpcSharedMemory::from_bytes(&data);
        let fd_dir = std::fs::read_dir("/proc/self/fd").unwrap();
        let mut truncated = false;
        for entry in fd_dir.flatten() {
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let ours = target
                .to_string_lossy()
                .contains("ipc-channel-shared-memory")
                && std::fs::metadata(entry.path()).is_ok_and(|m| m.len() == 3 << 20);
            if ours {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(entry.path())
                    .unwrap();
                file.set_len(0).unwrap();
                truncated = true;
            }
        }
        assert!(truncated);
        assert!(copy_untrusted(&shm).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn receiver_fd_is_found() {
        let (_tx, rx) = ipc_channel::ipc::channel::<u8>().unwrap();
        let fd = receiver_fd(&rx).expect("ipc-channel's Debug format changed");
        assert!(fd > 2);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn wait_frame_times_out_then_sees_a_message_then_close() {
        let (tx, rx) = ipc_channel::ipc::channel::<u32>().unwrap();
        let fd = receiver_fd(&rx).unwrap();
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(wait_frame(fd, Some(soon), 1024), Frame::TimedOut);
        tx.send(7).unwrap();
        assert_eq!(wait_frame(fd, None, 1024), Frame::Ready);
        assert_eq!(rx.recv().unwrap(), 7);
        tx.send(8).unwrap();
        assert!(matches!(wait_frame(fd, None, 8), Frame::Refused(_)));
        assert_eq!(rx.recv().unwrap(), 8);
        drop(tx);
        assert_eq!(wait_frame(fd, None, 1024), Frame::Closed);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn wait_frame_refuses_fragmented_messages() {
        let (tx, rx) = ipc_channel::ipc::channel::<Vec<u8>>().unwrap();
        let fd = receiver_fd(&rx).unwrap();
        let big = vec![1u8; 4 << 20];
        let t = std::thread::spawn(move || tx.send(big));
        assert!(matches!(
            wait_frame(fd, None, usize::MAX),
            Frame::Refused(_)
        ));
        // Drain it so that the sender finishes.
        assert_eq!(rx.recv().unwrap().len(), 4 << 20);
        t.join().unwrap().unwrap();
    }
}
