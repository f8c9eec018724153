//! One packet, as a worker could write it on its channel to the parent,
//! received and decoded as the pool does: the bounded receive (size and
//! descriptor limits), the decoding of a `FromWorker` message, and for a
//! job's reply the payload checks (shared memory included), the reply
//! check and the result decoders.
//!
//! The first input byte picks how the packet is sent; the rest is its body.
//! Its low bits (modulo 7) pick the descriptors:
//! - 0: none, the body as is (any bytes: truncated, lying about lengths);
//! - 1: one, a sealed memfd holding the body (so that a payload that
//!   refers to shared memory finds one, of any length);
//! - 2: one that is not a sealed memfd (a pipe);
//! - 3: more than a message may carry;
//! - 4: none, the body padded past the parent's message limit;
//! - 5: two sealed memfds, of the sizes the body's last two bytes give
//!   (0 to 255 bytes each, either may be empty), the packet being the rest
//!   of the body, so that both payloads of a reply can refer to shared
//!   memory of any size (two new regions, a region and a memfd, ...);
//! - 6: two, an empty sealed memfd then one holding the body.
//!
//! If the byte's high bit is set, the body is sent as two packets (split at
//! its middle), each with those descriptors, and both are received on the
//! same channel: a second message may then refer to a region the first
//! one sent (or failed to).
//!
//! Every packet must be received (never a hang) and end as a message or a
//! refusal, never as a panic or a fault.
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
        libc::memfd_create(
            c"fuzz".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    assert!(raw >= 0, "memfd_create");
    // SAFETY: `raw` is a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let file = std::fs::File::from(fd.try_clone().expect("dup"));
    std::os::unix::fs::FileExt::write_all_at(&file, body, 0).expect("write");
    // SAFETY: fcntl on a descriptor we own; no pointers.
    unsafe {
        libc::fcntl(
            raw,
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
        )
    };
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

/// Sends `body` on `fd` with the descriptors `mode` picks; `false` if it
/// could not be sent (nothing to receive then).
fn send_with(fd: i32, mode: u8, body: &[u8]) -> bool {
    let shm = memfd(body);
    let other = pipe();
    match mode % 7 {
        0 => send(fd, body, &[]),
        1 => send(fd, body, &[shm.as_raw_fd()]),
        2 => send(fd, body, &[other.as_raw_fd()]),
        3 => send(fd, body, &[shm.as_raw_fd(); 4]),
        4 => {
            let mut padded = body.to_vec();
            padded.resize(OVERSIZED.max(body.len()), 0);
            send(fd, &padded, &[])
        }
        5 => {
            let [.., sa, sb] = body else {
                return send(fd, body, &[]);
            };
            let (a, b) = (
                memfd(&vec![7; usize::from(*sa)]),
                memfd(&vec![7; usize::from(*sb)]),
            );
            send(fd, &body[..body.len() - 2], &[a.as_raw_fd(), b.as_raw_fd()])
        }
        _ => {
            let empty = memfd(&[]);
            send(fd, body, &[empty.as_raw_fd(), shm.as_raw_fd()])
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let mut channel = Channel::new().expect("a channel");
    let fd = channel.sender_fd();
    let packets: Vec<&[u8]> = if mode & 0x80 != 0 && body.len() >= 2 {
        let (a, b) = body.split_at(body.len() / 2);
        vec![a, b]
    } else {
        vec![body]
    };
    for packet in packets {
        if !send_with(fd, mode & 0x7f, packet) {
            return;
        }
        let outcome = channel.receive(Duration::from_secs(5));
        assert!(
            outcome.as_ref().err().is_none_or(|e| e != "timed out"),
            "a packet that was sent was not received: {outcome:?}"
        );
    }
});
