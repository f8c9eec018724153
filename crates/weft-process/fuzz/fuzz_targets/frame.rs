//! One message, as a worker could send it on its channel to the parent
//! (ipc-channel's framing, any bytes, any shared memory), received and
//! decoded as the pool does: the receive (where a panic of ipc-channel's
//! own decoding is caught), the decoding of a `FromWorker` message, and for
//! a job's reply the payload checks (regions and shared memory included),
//! the reply check and the result decoders.
//!
//! The first input byte picks how the message is sent; the rest is its
//! body. Its low two bits give how many shared-memory regions come with
//! it (0 to 3), sized by the body's last bytes (0 to 255 bytes each, one
//! byte per region, taken off the body); the message's bytes are one
//! index per region, then the body, so that a payload that refers to
//! shared memory or a region finds one (or a lying index does not).
//!
//! If the byte's high bit is set, the body is sent as two messages (split
//! at its middle), each with those regions, and both are received on the
//! same channel: a second message may then refer to a region the first one
//! sent (or failed to).
//!
//! Every message must be received (never a hang) and end as a message or
//! a refusal, never as a panic or a fault.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weft_process::__fuzz::Channel;

fuzz_target!(
    init: {
        // libfuzzer-sys's panic hook aborts on every panic, also on one
        // the pool catches by design (ipc-channel's own decoding panics on
        // some malformed messages; weft catches that and refuses the
        // message). Only a panic that escapes the target is a finding:
        // libfuzzer-sys still aborts on those (its `catch_unwind` around
        // each input). Silent, for speed; rerun a saved crash input with
        // the target binary to see the message.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        let Some((&mode, body)) = data.split_first() else {
            return;
        };
        let regions = usize::from(mode & 3).min(body.len());
        let (body, sizes) = body.split_at(body.len() - regions);
        let shm: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![7; usize::from(n)]).collect();
        let shm: Vec<&[u8]> = shm.iter().map(Vec::as_slice).collect();
        let mut channel = Channel::new().expect("a channel");
        let messages: Vec<&[u8]> = if mode & 0x80 != 0 && body.len() >= 2 {
            let (a, b) = body.split_at(body.len() / 2);
            vec![a, b]
        } else {
            vec![body]
        };
        for message in messages {
            if !channel.send(message, &shm) {
                return;
            }
            let outcome = channel.receive(Duration::from_secs(5));
            assert!(
                outcome.as_ref().err().is_none_or(|e| e != "timed out"),
                "a message that was sent was not received: {outcome:?}"
            );
        }
    }
);
