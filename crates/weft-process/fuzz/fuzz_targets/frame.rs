//! One packet, as a worker could write it on its channel to the parent,
//! received and decoded as the pool does: the frame check, ipc-channel's
//! decoding of a `FromWorker` message, and for a job's reply the reply
//! check and the result decoders.
//!
//! The first input byte picks how the packet is built from the rest:
//! - 0: sent as is (any header: truncated, lying about its size, ...);
//! - 1: behind a correct ipc-channel header (the body reaches postcard);
//! - 2: behind a header announcing more bytes than are sent (the first
//!   fragment of a message that never completes);
//! - 3: behind a correct header, padded past the parent's frame limit.
//!
//! Every packet must be received (never a hang) and end as a message or a
//! refusal, never as a panic. One exception, known and handled: ipc-channel
//! 0.23 itself panics on some malformed messages (an index to a channel or
//! shared-memory region that was not sent, `ipc.rs` in
//! `deserialize_os_ipc_sender` and friends). The parent catches that panic
//! around `recv` and treats the message as a protocol violation (the worker
//! is killed and replaced), so this target lets panics located in
//! ipc-channel's sources through (and says so once on stderr); any other
//! panic aborts, as libFuzzer's hook does.
#![no_main]

use std::sync::Once;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_process::__fuzz::Channel;

const HEADER: usize = 2 * size_of::<usize>();
/// Above the parent's limit (`wire::MAX_FRAME`, 68 KiB).
const OVERSIZED: usize = 80 * 1024;

fn with_header(body: &[u8], announced_extra: usize) -> Vec<u8> {
    let len = HEADER + body.len();
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&len.to_ne_bytes());
    p.extend_from_slice(&(body.len() + announced_extra).to_ne_bytes());
    p.extend_from_slice(body);
    p
}

/// Lets panics raised inside ipc-channel through (the parent catches
/// them); any other panic goes to libFuzzer's hook, which aborts.
fn tolerate_ipc_channel_panics() {
    static ONCE: Once = Once::new();
    static NOTED: Once = Once::new();
    ONCE.call_once(|| {
        let libfuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_ipc_channel = info
                .location()
                .is_some_and(|l| l.file().contains("/ipc-channel-"));
            if in_ipc_channel {
                NOTED.call_once(|| {
                    eprintln!(
                        "frame: note: ipc-channel panicked while decoding a message ({info}); \
                         the parent catches this and refuses the message"
                    );
                });
            } else {
                libfuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    tolerate_ipc_channel_panics();
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let packet = match mode % 4 {
        0 => body.to_vec(),
        1 => with_header(body, 0),
        2 => with_header(body, 1 + usize::from(mode)),
        _ => {
            let mut padded = body.to_vec();
            padded.resize(OVERSIZED.max(body.len()), 0);
            with_header(&padded, 0)
        }
    };
    let channel = Channel::new().expect("a channel");
    let fd = channel.sender_fd().expect("the sender's fd");
    // SAFETY: `fd` is the channel's open socket, which `channel` keeps open
    // for the call; `packet` is valid for reads of its length.
    let sent = unsafe {
        libc::send(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        return;
    }
    let outcome = channel.receive(Duration::from_secs(5));
    assert!(
        outcome.as_ref().err().is_none_or(|e| e != "timed out"),
        "a packet that was sent was not received: {outcome:?}"
    );
});
