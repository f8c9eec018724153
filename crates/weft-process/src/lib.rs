//! weft-process: Python's `multiprocessing` (`Process`, `Pipe`, `Queue`,
//! `Pool`) and `concurrent.futures.ProcessPoolExecutor`, without their
//! failure modes.
//!
//! [`Process`], [`Pipe`] and [`Queue`] run over ipc-channel, whose channels
//! travel inside messages: a process's argument may carry pipe ends and
//! queue handles (Python needs a `Manager` for that). The pool below runs
//! on a channel of its own for now.
//!
//! Workers are the current executable re-run in worker mode, each connected
//! to the pool by its own Unix socket pair; arguments and results are
//! `serde` values; large byte payloads travel through shared memory. A worker that
//! segfaults, aborts, exits or is killed fails only the task it was running,
//! is replaced, and the pool goes on (Python raises `BrokenProcessPool` and
//! the whole pool is lost); a task can be given a timeout, past which its
//! worker is killed and replaced (Python cannot time a task out).
//!
//! # Map of the crate
//!
//! - [`Process`]: one registered function in a fresh child process:
//!   `start`, `join` (the result, or how the child died), `join_timeout`,
//!   `is_alive`, `pid`, `exit_status`, `terminate`, `kill`.
//! - [`Pipe`] → [`PipeSender`] / [`PipeReceiver`] ([`Pipe::one_way`]) or
//!   two [`Connection`]s ([`Pipe::duplex`]); errors [`SendError`],
//!   [`RecvError`].
//! - [`Queue`]: many producers and consumers in any processes, bounded or
//!   not, blocking, timed and async; errors [`QueuePutError`],
//!   [`QueueGetError`].
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
//! | `Process(target=f, args=(x,))`, `start()` | `Process::new(f, x)`, `.start()?` (or `Process::spawn(f, x)?`) |
//! | `p.join()`, `p.exitcode` | `p.join()` → `Result<R, TaskError>`, `p.exit_status()` |
//! | `p.join(timeout)`, `is_alive()`, `pid`, `name` | `p.join_timeout(t)`, `p.wait_timeout(t)`, `is_alive()`, `pid()`, `name()` |
//! | `p.terminate()`, `p.kill()` | `p.terminate()` (SIGTERM), `p.kill()` (SIGKILL) |
//! | `Pipe()`, `Pipe(duplex=False)` | [`Pipe::duplex`], [`Pipe::one_way`] (typed ends) |
//! | `conn.send(x)`, `recv()`, `poll(t)` | `send(x)`, `recv()`, `recv_timeout(t)`, `try_recv()`, `poll(t)` |
//! | `multiprocessing.Queue(maxsize)` | [`Queue::bounded`], [`Queue::unbounded`] |
//! | `q.put`, `q.get(timeout=)`, `put_nowait`, `get_nowait` | `put`, `get_timeout`, `try_put`, `try_get`, `put_async`, `get_async`, `shutdown` |
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
//! | argument or result will not (de)serialize, or its `Serialize` / `Deserialize` panics (in the worker or the parent) | [`TaskError::Serialization`] for that task (or `map` item) alone, naming the type and giving its own message | survives |
//! | it sends a malformed, oversized or unexpected message | [`TaskError::Serialization`] | killed and replaced |
//! | `terminate()` | running and queued tasks: [`TaskError::Cancelled`] | killed and reaped |
//! | task submitted after `shutdown()` | [`TaskError::Abandoned`] | — |
//!
//! User code that the pool runs on its own threads (a result's
//! `Deserialize`, a value's `Drop` when its handle or `map` iterator is
//! gone, done-callbacks) cannot take a pool thread down either: a panic
//! there fails only the value it belongs to, or is reported on stderr and
//! ignored. The text of a type's own (de)serialization error
//! (`Error::custom`), which postcard drops, is recovered by running the
//! failed value again through an adapter that keeps it.
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
//!   are always reaped (no zombies; a worker that dies while idle, killed
//!   from outside say, is reaped and replaced at once: a small thread per
//!   worker waits for its exit), and no file descriptor outlives the
//!   pool.
//! - A worker holds only its channel and its stdin, stdout and stderr:
//!   every other descriptor of the parent that is not close-on-exec (a
//!   `pipe()` the program made for another child, say) is made
//!   close-on-exec in the child before it runs the worker
//!   (`close_range`, else a `/proc/self/fd` sweep, else every number up to
//!   the limit), as CPython's spawn and forkserver workers get only theirs.
//! - Only the processes the pool started can join it: each worker's channel
//!   is a `SOCK_SEQPACKET` socket pair whose other end only that child
//!   inherits (as its stdin, which the worker then points at `/dev/null`),
//!   and the worker must echo the 256-bit secret of the pool's first
//!   message, before any task is sent; its pid and its table of registered
//!   functions must match too, so a worker binary that is not this build is
//!   refused with a clear error.
//! - Nothing a worker sends can panic, hang or exhaust the parent: each
//!   message, the handshake included, is read whole by one `recvmsg` into
//!   a buffer of fixed size (68 KiB) with a deadline where one applies; a
//!   longer message, one with more than two file descriptors (the excess
//!   are closed) or one that does not decode fails the task with a clear
//!   error and the worker is killed and replaced (a job it was already
//!   running behind that one fails as [`TaskError::WorkerLost`]). Result
//!   payloads are capped by [`ProcessPoolBuilder::max_result_bytes`] before
//!   anything is allocated for them, and a job's list of per-item outcomes
//!   by its item count (error texts are cut to 4 KiB each, 1 MiB per
//!   reply); shared memory from a worker is accepted only as a non-empty
//!   memfd sealed against shrinking, mapped at exactly its size, so reading
//!   it can never fault, and every length is checked against it. A worker
//!   that stops reading its channel cannot block the parent either: a send
//!   to it gives up after 5 s and the worker is replaced.
//! - Payloads above 32 KiB (arguments, results, or a whole `map` chunk)
//!   never travel inside messages. Arguments go through shared memory: the
//!   pool keeps one sealed memfd region per worker, mapped in both
//!   processes and reused while its pages are warm (a 64 MiB payload then
//!   costs one `memcpy` into it, not 16,384 page faults); while it is in use
//!   (two jobs in flight), a payload gets a memfd of its own. Results are
//!   read by the parent straight from the worker's buffer with
//!   `process_vm_readv` (one copy; the worker keeps the buffer until the
//!   parent releases it) where the parent may read its workers' memory,
//!   which it checks at start-up; elsewhere they come back through shared
//!   memory the same way. A bad address from a worker is an error, never a
//!   fault. If a read is denied later (task code made the worker
//!   non-dumpable, or it exited), only that task fails and the worker
//!   sends its results through shared memory from then on. A `Vec<u8>` argument or result is copied as is, not serialized
//!   byte by byte, and a worker keeps its last large buffer (up to 256 MiB)
//!   for the next large argument, so an idle worker may hold about three
//!   times its largest payload until it is replaced or the pool is dropped.
//! - Platforms: the channel and the shared memory are built and tested on
//!   Linux (`SOCK_SEQPACKET` Unix sockets, sealed `memfd`s,
//!   `process_vm_readv`). Elsewhere (untested) a system without
//!   `SOCK_SEQPACKET` Unix sockets cannot build a pool (the error says
//!   why), and one without `memfd_create` fails tasks whose payloads
//!   exceed 32 KiB. Sends never raise `SIGPIPE` (`MSG_NOSIGNAL`; on Apple
//!   systems, which lack it, `SO_NOSIGPIPE` on the sockets).
//!
//! # Processes, pipes and queues: what a peer can still do
//!
//! [`Process`], [`Pipe`] and [`Queue`] trust ipc-channel (0.23) to carry
//! their messages. weft guards what it can around it:
//!
//! - Decoding a message (user `Deserialize` code, and ipc-channel's own
//!   indexing into the message's descriptors, which panics on a malformed
//!   message) runs inside `catch_unwind`: a panic fails that receive (a
//!   [`Process`]'s result becomes [`TaskError::Serialization`]), never the
//!   receiving thread. A `Deserialize` that panics mid-message leaves the
//!   message's channels in ipc-channel's per-thread stash; weft empties it.
//! - A value that will not serialize is given back with the serializer's
//!   own message, and the channels it had already put in ipc-channel's
//!   per-thread stash are flushed (ipc-channel leaves them there, to ride
//!   along with the thread's next message, to whichever process).
//! - A child must connect to its one-shot server with the 256-bit secret
//!   from its environment, its own pid and this build's table of
//!   registered functions; anything else fails `start`. A child that dies
//!   before connecting unblocks `accept` (ipc-channel's has no timeout)
//!   through a keeper thread that connects in its place; one that neither
//!   connects nor dies within the start timeout is killed, which also ends
//!   an `accept` stuck on a half-sent first message.
//!
//! What a hostile peer (a child, or any process holding a channel end) can
//! still do through ipc-channel, which weft cannot prevent without
//! replacing it:
//!
//! - **Abort the receiving process** by announcing a huge fragmented
//!   message: ipc-channel reserves the announced size before reading it,
//!   and an allocation failure aborts (one larger than `isize::MAX` only
//!   panics, which weft catches).
//! - **Block a receive forever**, past any timeout: once the first
//!   fragment of a large message has arrived, ipc-channel reads the rest
//!   without a timeout. For a [`Process`]'s result this blocks only the
//!   keeper thread, and killing the child ends it; for a [`Pipe`] or a
//!   remote [`Queue`] operation it blocks the caller until the sender's
//!   process exits.
//! - **Fault the receiver** (`SIGBUS`) with shared memory: every
//!   descriptor that is not a socket is mapped as shared memory at its
//!   current size, and a sender that shrinks the file afterwards makes a
//!   read of the mapping fault. It is read only if the received type holds
//!   an `IpcSharedMemory`. A descriptor that cannot be mapped read-write
//!   makes ipc-channel panic, which weft catches.
//! - **Exhaust descriptors or threads**: each message may carry up to 64
//!   descriptors, and each [`Queue`] session opened from another process
//!   costs a thread in the owner.
//! - **Connect to a one-shot server first**: its socket is a file in a
//!   fresh directory under the temporary directory, created with the
//!   process's umask (with a umask that lets others write it, another
//!   user can connect). Such a connection cannot pass the secret check; it
//!   only makes `start` fail.
//! - ipc-channel sends without `MSG_NOSIGNAL`: a process that writes to a
//!   channel whose reader is gone gets `SIGPIPE`, which Rust's `main`, pool
//!   workers and [`Process`] children ignore, but a program that restores
//!   its default action dies of it.
//!
//! A child's result is received by its keeper thread, so the worst a child
//! can do to its parent beyond that list is never send a result: `join`
//! then waits until the child exits. Children are reaped only by their
//! keeper; signals are sent under the same lock as the reap, so a pid that
//! could have been reused is never signalled.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg(unix)]

mod channel;
mod encoded;
mod errtext;
mod link;
mod mpqueue;
mod pipe;
mod pool;
mod process;
mod registry;
mod supervisor;
mod sys;
mod wire;
mod worker;

pub use encoded::{Function, decode, encode, registry_fingerprint};
pub use mpqueue::{Queue, QueueGetError, QueuePutError};
pub use pipe::{Connection, Pipe, PipeReceiver, PipeSender, RecvError, SendError};
pub use pool::{Error, MapResults, ProcessPool, ProcessPoolBuilder};
pub use process::Process;
pub use weft_sync::{TaskError, TaskHandle, WorkerExit};
pub use worker::{is_worker, main_hook};

/// Used by [`register!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::process::{ChildIo, run_process};
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
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::time::{Duration, Instant};

    use crate::link::{Link, Received};
    use crate::supervisor::{check_reply, take_reply};
    use crate::wire::FromWorker;

    /// A pool–worker channel: the parent's end, as the pool holds it, and
    /// the worker's end to write raw packets on.
    #[derive(Debug)]
    pub struct Channel {
        parent: Link,
        buf: Vec<u8>,
        worker: OwnedFd,
    }

    impl Channel {
        /// A fresh channel.
        pub fn new() -> std::io::Result<Channel> {
            let (parent, worker) = crate::sys::socketpair()?;
            Ok(Channel {
                parent: Link::new(parent),
                buf: Vec::new(),
                worker,
            })
        }

        /// The worker end's socket (a `SOCK_SEQPACKET` socket: one write is
        /// one message).
        pub fn sender_fd(&self) -> RawFd {
            self.worker.as_raw_fd()
        }

        /// Receives the next message as the pool does (bounded receive,
        /// decoding), and, for a job's reply, checks it and copies its
        /// payload out as the pool does for a job of eight arguments and
        /// a `max_result_bytes` of 1 MiB, then decodes the results as
        /// [`reply`] does.
        pub fn receive(&mut self, wait: Duration) -> Result<String, String> {
            let deadline = Instant::now().checked_add(wait);
            match self.parent.recv::<FromWorker<'_>>(&mut self.buf, deadline) {
                Received::Msg(FromWorker::Done { job, status, data }) => {
                    let results =
                        take_reply(&mut self.parent, job, 1 << 20, 8, status, data, Vec::new())
                            .map_err(|(why, _)| why)?;
                    decode_items(&results.status, &results.data);
                    Ok(format!("a reply with {} results", results.status.len()))
                }
                Received::Msg(other) => {
                    self.parent.no_spare_fds()?;
                    Ok(format!("{other:?}"))
                }
                Received::Bad(why) => Err(why),
                Received::TimedOut => Err("timed out".into()),
                Received::Closed => Err("closed".into()),
            }
        }
    }

    /// Checks a job's reply (`status`, `data`) for a job of `count`
    /// arguments and a pool with `max_result_bytes = max`, as the pool does,
    /// then decodes every item's result as a `u64`, a `String` and a
    /// `Vec<u8>`. Returns the number of results.
    pub fn reply(count: usize, max: usize, status: &[u8], data: &[u8]) -> Result<usize, String> {
        let status = check_reply(max, count, status, data.len() as u64).map_err(|(why, _)| why)?;
        decode_items(&status, data);
        Ok(status.len())
    }

    fn decode_items(status: &[crate::wire::ItemOut], data: &[u8]) {
        let mut start = 0usize;
        for s in status {
            if let crate::wire::ItemOut::Ok(end) = s {
                let end = *end as usize;
                let bytes = data.get(start..end).unwrap_or_default();
                start = end;
                let _ = crate::registry::decode::<u64>(bytes);
                let _ = crate::registry::decode::<String>(bytes);
                let _ = crate::registry::decode::<Vec<u8>>(bytes);
                let _ = crate::registry::decode::<(u64, Option<String>)>(bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use crate::__fuzz::Channel;
    use crate::sys;
    use crate::wire::{Blob, FromWorker, ItemOut, Raw, encode_to};

    fn encode(msg: &FromWorker<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_to(msg, &mut out).unwrap();
        out
    }

    fn status_of(items: usize) -> Vec<u8> {
        postcard::to_stdvec(&vec![ItemOut::Ok(0); items]).unwrap()
    }

    /// What the parent concludes from one packet with these descriptors.
    fn receive(packet: &[u8], fds: &[std::os::fd::RawFd]) -> Result<String, String> {
        let mut channel = Channel::new().unwrap();
        sys::send_msg(channel.sender_fd(), packet, fds).unwrap();
        channel.receive(Duration::from_secs(5))
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn malformed_messages_from_a_worker_are_refused_never_trusted() {
        let status = status_of(8);
        let done = |data: Blob<'static>, status: &'static [u8]| {
            encode(&FromWorker::Done {
                job: 1,
                status: Blob::Inline(Raw(status)),
                data,
            })
        };
        let status: &'static [u8] = Box::leak(status.into_boxed_slice());
        // A valid reply (8 empty results) is accepted.
        assert!(receive(&done(Blob::Inline(Raw(&[])), status), &[]).is_ok());
        // Garbage, and a valid reply with a byte missing.
        assert!(receive(&[0xff; 40], &[]).is_err());
        let valid = done(Blob::Inline(Raw(&[])), status);
        assert!(receive(&valid[..valid.len() - 1], &[]).is_err());
        // A region that was never sent.
        let e = receive(&done(Blob::Region { len: 1 << 20 }, status), &[]).unwrap_err();
        assert!(e.contains("region"), "{e}");
        // Shared memory announced but no descriptor, or a descriptor no
        // payload uses.
        let e = receive(&done(Blob::OneShot { len: 100_000 }, status), &[]).unwrap_err();
        assert!(e.contains("descriptor"), "{e}");
        let shm = sys::memfd_with(&[0; 100_000]).unwrap();
        let e = receive(&valid, &[shm.as_raw_fd()]).unwrap_err();
        assert!(e.contains("descriptors"), "{e}");
        // A payload over max_result_bytes (1 MiB here) is refused before it
        // is read; one longer than its memfd, or in a descriptor that is not
        // a sealed memfd, is refused too.
        let big = done(Blob::OneShot { len: 2 << 20 }, status);
        let e = receive(&big, &[shm.as_raw_fd()]).unwrap_err();
        assert!(e.contains("max_result_bytes"), "{e}");
        let long = done(Blob::OneShot { len: 200_000 }, status);
        assert!(receive(&long, &[shm.as_raw_fd()]).is_err());
        let file = std::fs::File::open("/dev/zero").unwrap();
        let not_memfd = done(Blob::NewRegion { len: 100_000 }, status);
        assert!(receive(&not_memfd, &[file.as_raw_fd()]).is_err());
        // The same payload in a proper memfd is read.
        let ok = done(Blob::OneShot { len: 100_000 }, status);
        assert!(receive(&ok, &[shm.as_raw_fd()]).is_ok());
        // A status list that does not match the job, or offsets past the
        // data.
        let short: &'static [u8] = Box::leak(status_of(3).into_boxed_slice());
        assert!(receive(&done(Blob::Inline(Raw(&[])), short), &[]).is_err());
        let past: &'static [u8] = Box::leak(
            postcard::to_stdvec(&vec![ItemOut::Ok(9); 8])
                .unwrap()
                .into_boxed_slice(),
        );
        assert!(receive(&done(Blob::Inline(Raw(&[1])), past), &[]).is_err());
        // Nothing at all within the deadline: a timeout, not a hang.
        let mut silent = Channel::new().unwrap();
        assert_eq!(
            silent.receive(Duration::from_millis(20)).unwrap_err(),
            "timed out"
        );
    }
}
