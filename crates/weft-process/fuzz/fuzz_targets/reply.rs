//! A job's reply from a worker (the `status` and `data` of
//! `FromWorker::Done`), checked and decoded as the pool does: the status
//! list (postcard), its count against the job's, its offsets against the
//! data, the `max_result_bytes` cap, then each result's decoding.
//!
//! Input: `[count, max, split, bytes...]`; `bytes[..split]` is the status,
//! the rest the data. Must end in `Ok` or `Err`, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
});
