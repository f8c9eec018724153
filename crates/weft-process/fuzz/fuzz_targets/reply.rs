//! A job's reply from a worker (the `status` and `data` of
//! `FromWorker::Done`), checked and decoded as the pool does: the status
//! list (postcard), its count against the job's, its offsets against the
//! data, the `max_result_bytes` cap, then each result's decoding.
//!
//! Input: `[count, max, split, bytes...]`; `bytes[..split]` is the status,
//! the rest the data. Must end in `Ok` or `Err`, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

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
        let [count, max, split, rest @ ..] = data else {
            return;
        };
        let count = usize::from(*count % 16);
        let max = if max & 1 == 0 {
            1 << 20
        } else {
            usize::from(*max)
        };
        let (status, results) = rest.split_at(usize::from(*split).min(rest.len()));
        let _ = weft_process::__fuzz::reply(count, max, status, results);
    }
);
