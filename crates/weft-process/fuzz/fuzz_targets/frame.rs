//! One packet, as a worker could write it on its channel to the parent,
//! received and decoded as the pool does: the bounded receive (size and
//! descriptor limits), the decoding of a `FromWorker` message, and for a
//! job's reply the payload checks (shared memory included), the reply
//! check and the result decoders.
//!
//! The first input byte picks how the packet is sent; the rest is its body:
//! - 0: as is (any bytes: truncated, lying about lengths, ...);
//! - 1: with one descriptor, a sealed memfd holding the body (so that a
//!   payload that refers to shared memory finds one, of any length);
//! - 2: with one descriptor that is not a sealed memfd (a pipe);
//! - 3: with more descriptors than a message may carry;
//! - 4: padded past the parent's message limit.
//!
//! Every packet must be received (never a hang) and end as a message or a
//! refusal, never as a panic.
#![no_main]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_process::__fuzz::Channel;

/// Above the parent's limit (`wire::MAX_FRAME`, 68 KiB).
const OVERSIZED: usize = 80 * 1024;

fn memfd(body: &[u8]) -> OwnedFd {
    // SAFETY: a NUL-terminated name; the result is checked and owned.
    let raw = unsafe {
        libc::memfd_create(c"fuzz".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    };
    assert!(raw >= 0, "memfd_create");
    // SAFETY: `raw` is a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let file = std::fs::File::from(fd.try_clone().expect("dup"));
    std::os::unix::fs::FileExt::write_all_at(&file, body, 0).expect("write");
    // SAFETY: fcntl on a descriptor we own; no pointers.
    unsafe { libc::fcntl(raw, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK | libc::F_SEAL_GROW) };
    fd
}

fn pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both are new descriptors we own.
    unsafe {
        drop(OwnedFd::from_raw_fd(fds[1]));
        OwnedFd::from_raw_fd(fds[0])
    }
}

fn send(fd: i32, packet: &[u8], fds: &[i32]) -> bool {
    let mut iov = libc::iovec {
        iov_base: packet.as_ptr() as *mut libc::c_void,
        iov_len: packet.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the control buffer has room for
    // the (at most four) descriptors written below.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let bytes = (fds.len() * size_of::<i32>()) as u32;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(bytes) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(bytes) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        }
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) >= 0
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let mut channel = Channel::new().expect("a channel");
    let fd = channel.sender_fd();
    let shm = memfd(body);
    let other = pipe();
    let sent = match mode % 5 {
        0 => send(fd, body, &[]),
        1 => send(fd, body, &[shm.as_raw_fd()]),
        2 => send(fd, body, &[other.as_raw_fd()]),
        3 => send(fd, body, &[shm.as_raw_fd(); 4]),
        _ => {
            let mut padded = body.to_vec();
            padded.resize(OVERSIZED.max(body.len()), 0);
            send(fd, &padded, &[])
        }
    };
    if !sent {
        return;
    }
    let outcome = channel.receive(Duration::from_secs(5));
    assert!(
        outcome.as_ref().err().is_none_or(|e| e != "timed out"),
        "a packet that was sent was not received: {outcome:?}"
    );
});
