//! weft-process: Python's `multiprocessing.Pool` and
//! `concurrent.futures.ProcessPoolExecutor`, without their failure modes.
//!
//! Workers are the current executable re-run in worker mode and connected
//! over [`ipc-channel`](ipc_channel); arguments and results are `serde`
//! values; large byte payloads travel through shared memory. A worker that
//! segfaults, aborts, exits or is killed fails only the task it was running,
//! is replaced, and the pool goes on (Python raises `BrokenProcessPool` and
//! the whole pool is lost); a task can be given a timeout, past which its
//! worker is killed and replaced (Python cannot time a task out).
//!
//! # Map of the crate
//!
//! - [`ProcessPool`] (built with [`ProcessPool::builder`] →
//!   [`ProcessPoolBuilder`]): `submit`, `submit_with_timeout`, `apply`,
//!   `map`/`map_chunked`, `map_unordered`/`map_unordered_chunked`,
//!   `shutdown`, `terminate`.
//! - [`register!`]: marks a plain `fn(A) -> R` so that workers can run it.
//! - [`main_hook`]: worker mode for platforms without the init hook.
//! - [`MapResults`]: the iterator `map` returns.
//! - [`Error`]: why a pool could not be built. Task failures are
//!   [`TaskError`]s, re-exported from `weft-sync` with [`TaskHandle`] and
//!   [`WorkerExit`].
//!
//! # Python → weft
//!
//! | Python | weft |
//! |---|---|
//! | `def f(x): ...` (picklable, module level) | `fn f(x: A) -> R { ... }` + `weft_process::register!(f);` |
//! | `if __name__ == "__main__":` guard | nothing (see [What you write](#what-you-write)) |
//! | `Pool(processes=4)` / `ProcessPoolExecutor(max_workers=4)` | `ProcessPool::builder().processes(4).build()?` |
//! | `Pool(initializer=f, initargs=(a,))` | `.initializer(f, a)` |
//! | `Pool(maxtasksperchild=n)` / `max_tasks_per_child=n` | `.max_tasks_per_child(n)` |
//! | `multiprocessing.set_executable(path)` | `.executable(path)` |
//! | `executor.submit(f, x)` / `pool.apply_async(f, (x,))` | `pool.submit(f, x)` → [`TaskHandle`] |
//! | `future.result(timeout)` | `handle.join()` / `handle.join_timeout(d)` / `handle.await` |
//! | (no per-task timeout) | `pool.submit_with_timeout(f, x, d)`, `.task_timeout(d)` |
//! | `pool.apply(f, (x,))` | `pool.apply(f, x)` |
//! | `pool.map(f, xs, chunksize)` / `executor.map(f, xs, chunksize=)` | `pool.map(f, xs)` / `pool.map_chunked(f, xs, n)` |
//! | `pool.imap_unordered(f, xs)` | `pool.map_unordered(f, xs)` |
//! | `pool.close(); pool.join()` / `executor.shutdown()` / `with` block | `pool.shutdown()` / drop |
//! | `pool.terminate()` / `shutdown(cancel_futures=True)` | `pool.terminate()` |
//! | `BrokenProcessPool` | [`TaskError::WorkerLost`] for that task only |
//!
//! # What you write
//!
//! Nothing, with the default `init-hook` feature on Linux, the BSDs and
//! macOS: a process constructor (`.init_array`) notices that the process was
//! started as a worker and serves the pool instead of running `main` — in
//! binaries, examples, benches and `cargo test` integration tests alike
//! (libtest never starts in a worker). Elsewhere, or with
//! `default-features = false`, call [`main_hook`] as the first statement of
//! `main`; an integration test then needs `harness = false` and a `main`
//! that calls it first.
//!
//! Functions are registered with one line next to their definition:
//!
//! ```
//! use weft_process::ProcessPool;
//!
//! fn count_primes((lo, hi): (u64, u64)) -> usize {
//!     (lo..hi).filter(|&n| n > 1 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))).count()
//! }
//! weft_process::register!(count_primes);
//!
//! let pool = ProcessPool::builder().processes(2).build().unwrap();
//! let ranges = (0..4).map(|i| (i * 1000, (i + 1) * 1000));
//! let total: usize = pool.map(count_primes, ranges).map(Result::unwrap).sum();
//! assert_eq!(total, 550); // primes below 4,000
//! ```
//!
//! The handle is a `Future`, so `pool.submit(f, x).await` works in any
//! executor (weft-async, tokio, `futures_lite::future::block_on`).
//!
//! # Failure semantics
//!
//! Every failure reaches the task's handle as a [`TaskError`]; none hangs
//! the caller or breaks the pool.
//!
//! | What happens in the worker | The task gets | The worker |
//! |---|---|---|
//! | the function panics | [`TaskError::Panicked`] with the message | survives |
//! | it segfaults, aborts, calls `exit`, is killed | [`TaskError::WorkerLost`] with [`WorkerExit::Signal`] or [`WorkerExit::Code`] | reaped and replaced |
//! | it runs past its timeout | [`TaskError::TimedOut`] | killed, reaped and replaced |
//! | argument or result will not (de)serialize | [`TaskError::Serialization`] for that task alone | survives |
//! | it sends a malformed, oversized or unexpected message | [`TaskError::Serialization`] | killed and replaced |
//! | `terminate()` | running and queued tasks: [`TaskError::Cancelled`] | killed and reaped |
//! | task submitted after `shutdown()` | [`TaskError::Abandoned`] | — |
//!
//! Only the job a worker was running fails when it is lost: a worker holds
//! at most two jobs (the one it runs and the next), and the next one is
//! re-sent to the replacement. For `map`, a job is a chunk, so a lost worker
//! fails the items of its chunk and a timeout applies to a whole chunk.
//!
//! # Lifecycle and security
//!
//! - Workers die with the pool's process (`PR_SET_PDEATHSIG` on Linux, and
//!   on every platform they exit when their channel to the parent closes),
//!   are always reaped (no zombies), and no file descriptor outlives the
//!   pool.
//! - Only the processes the pool started can join it: each worker receives
//!   a 256-bit secret on its stdin and must present it in its first
//!   message, before any task is sent; the connecting pid and the table of
//!   registered functions must match too, so a worker binary that is not
//!   this build is refused with a clear error.
//! - Nothing a worker sends can panic, hang or exhaust the parent: messages
//!   from workers are checked (size, single fragment) before ipc-channel
//!   reads them, so it never allocates what a worker announces nor waits
//!   for fragments that never come; ipc-channel panics while decoding are
//!   caught; decoding errors fail the task; result payloads are capped by
//!   [`ProcessPoolBuilder::max_result_bytes`]; and shared memory from a
//!   worker is copied with `process_vm_readv`, so a worker that truncates
//!   it under the parent causes an error, not a SIGBUS. A worker that breaks
//!   the protocol is killed and replaced.
//! - Payloads above 32 KiB (arguments, results, or a whole `map` chunk)
//!   travel as one shared-memory region; a `Vec<u8>` argument or result is
//!   copied as is, not serialized byte by byte.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg(unix)]

mod pool;
mod registry;
mod supervisor;
mod sys;
mod wire;
mod worker;

pub use pool::{Error, MapResults, ProcessPool, ProcessPoolBuilder};
pub use weft_sync::{TaskError, TaskHandle, WorkerExit};
pub use worker::{is_worker, main_hook};

/// Used by [`register!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::registry::{Batch, Entry, REGISTRY, run_batch, signature_of, type_id_of};
    pub use linkme;
}

/// The parent's decoding of what a worker sends, for the fuzz targets in
/// `fuzz/` (`cargo xtask fuzz`); not part of the API. Each function runs
/// the same checks and decoders, in the same order, as the pool does on a
/// message from a worker, and returns what the pool would conclude: `Ok`
/// with a description, or `Err` with the reason the message is refused.
/// None may panic or hang, whatever the input.
#[doc(hidden)]
pub mod __fuzz {
    use std::os::fd::RawFd;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::{Duration, Instant};

    use ipc_channel::ipc::{IpcReceiver, IpcSender};

    use crate::supervisor::{Recv, check_reply, closed_or_bad};
    use crate::sys::{self, Frame};
    use crate::wire::{Blob, Bytes, FromWorker, MAX_FRAME};

    /// A worker-to-parent channel, as the pool creates one for each worker.
    #[derive(Debug)]
    pub struct Channel {
        tx: IpcSender<FromWorker>,
        rx: IpcReceiver<FromWorker>,
    }

    impl Channel {
        /// A fresh channel.
        pub fn new() -> std::io::Result<Channel> {
            let (tx, rx) = ipc_channel::ipc::channel()?;
            Ok(Channel { tx, rx })
        }

        /// The worker end's socket, to write raw packets on (from the
        /// `Debug` output, as `sys::receiver_fd` does for the other end).
        pub fn sender_fd(&self) -> Option<RawFd> {
            let text = format!("{:?}", self.tx);
            let start = text.find("SharedFileDescriptor(")? + "SharedFileDescriptor(".len();
            let rest = &text[start..];
            rest[..rest.find(')')?].parse().ok()
        }

        /// Receives the next message as the pool does (`Worker::recv`: frame
        /// check, then ipc-channel's decoding with its panics caught), and,
        /// for a job's reply, checks and decodes it as [`reply`] does.
        pub fn receive(&self, wait: Duration) -> Result<String, String> {
            let fd = sys::receiver_fd(&self.rx).ok_or("the receiver's fd is unknown")?;
            let recv = match sys::wait_frame(fd, Some(Instant::now() + wait), MAX_FRAME) {
                Frame::Ready => match catch_unwind(AssertUnwindSafe(|| self.rx.recv())) {
                    Ok(Ok(msg)) => Recv::Msg(msg),
                    Ok(Err(e)) => closed_or_bad(e),
                    Err(_) => Recv::Bad("ipc-channel panicked while reading".into()),
                },
                Frame::TimedOut => Recv::TimedOut,
                Frame::Closed => Recv::Closed,
                Frame::Refused(why) => Recv::Bad(why),
            };
            match recv {
                Recv::Msg(FromWorker::Done { job, status, data }) => {
                    decode_reply((job % 8) as usize, 1 << 20, status, data)
                        .map(|n| format!("a reply with {n} results"))
                }
                Recv::Msg(other) => Ok(format!("{other:?}")),
                Recv::Bad(why) => Err(why),
                Recv::TimedOut => Err("timed out".into()),
                Recv::Closed => Err("closed".into()),
            }
        }
    }

    /// Checks a job's reply (`status`, `data`) for a job of `count`
    /// arguments and a pool with `max_result_bytes = max`, as the pool does,
    /// then decodes every item's result as a `u64`, a `String` and a
    /// `Vec<u8>`. Returns the number of results.
    pub fn reply(count: usize, max: usize, status: &[u8], data: &[u8]) -> Result<usize, String> {
        decode_reply(
            count,
            max,
            Blob::Inline(Bytes(status.to_vec())),
            Blob::Inline(Bytes(data.to_vec())),
        )
    }

    fn decode_reply(count: usize, max: usize, status: Blob, data: Blob) -> Result<usize, String> {
        let results = check_reply(max, count, status, data).map_err(|(why, _)| why)?;
        let mut start = 0usize;
        for s in &results.status {
            if let crate::wire::ItemOut::Ok(end) = s {
                let end = *end as usize;
                let bytes = results.data.get(start..end).unwrap_or_default();
                start = end;
                let _ = crate::registry::decode::<u64>(bytes);
                let _ = crate::registry::decode::<String>(bytes);
                let _ = crate::registry::decode::<Vec<u8>>(bytes);
                let _ = crate::registry::decode::<(u64, Option<String>)>(bytes);
            }
        }
        Ok(results.status.len())
    }
}
