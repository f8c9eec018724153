//! weft-process: Python's `multiprocessing` (`Process`, `Pipe`, `Queue`,
//! `Pool`) and `concurrent.futures.ProcessPoolExecutor`, without their
//! failure modes.
//!
//! Everything runs over ipc-channel (0.23), one transport for all:
//! [`Process`], [`Pipe`], [`Queue`] and the [`ProcessPool`]'s tasks,
//! results and control messages. Its channels travel inside messages: a
//! process's argument may carry pipe ends and queue handles (Python needs a
//! `Manager` for that).
//!
//! Workers are the current executable re-run in worker mode, each connected
//! to the pool by its own pair of ipc-channel channels; arguments and
//! results are `serde` values; large byte payloads travel through
//! ipc-channel shared memory (`IpcSharedMemory`), in a region per worker
//! reused from task to task. A worker that
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
//!   not, blocking, timed and async; a blocking `put` from another process
//!   is buffered and sent in batches by a feeder thread, as Python's is
//!   ([`Queue::flush`] waits for them and reports refusals); errors
//!   [`QueuePutError`], [`QueueGetError`].
//! - [`ProcessPool`] (built with [`ProcessPool::builder`] →
//!   [`ProcessPoolBuilder`]): `submit`, `submit_with_timeout`, `apply`,
//!   `map`/`map_chunked`, `map_unordered`/`map_unordered_chunked`,
//!   `imap`/`imap_bounded` (→ [`Imap`]), `submit_cancellable` (→
//!   [`Canceller`]), `running`, `queued`, `close`,
//!   `shutdown_cancel_queued`, `shutdown`, `terminate`, `spare_pid`; the
//!   builder's `cwd`, `stdout` and `stderr` ([`Output`]), and
//!   `spare_worker` (a worker started ahead of need, which a slot that
//!   loses its worker takes at once).
//! - [`SharedMemory`]: bytes in shared memory, that travel in task
//!   arguments without a copy.
//! - [`register!`]: marks a plain `fn(A) -> R` so that workers can run it.
//! - [`main_hook`]: worker mode for platforms without the init hook.
//! - [`MapResults`]: the iterator `map` returns; [`MapStream`]: the same
//!   as a `Stream` for async code (`into_stream`).
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
//! | `pool.imap(f, xs)` | `pool.imap(f, xs)` (lazy: an endless `xs` works) |
//! | `asyncio.gather(*(loop.run_in_executor(ex, f, x) for x in xs))` | `pool.map(f, xs).into_stream()` (a `Stream`) |
//! | `pool.imap_unordered(f, xs)` | `pool.map_unordered(f, xs)` |
//! | pebble's `future.cancel()` on a running task | `pool.submit_cancellable(f, x)` → `(handle, canceller)`; `canceller.cancel()` |
//! | a `Queue` for a pool task (needs a `Manager`) | `pool.submit(f, (queue.clone(), x))`: weft's channels travel in task arguments |
//! | `pool.close(); pool.join()` / `executor.shutdown()` / `with` block | `pool.close()` (returns at once), `pool.shutdown()` / drop |
//! | `executor.shutdown(cancel_futures=True)` | `pool.shutdown_cancel_queued(true)` |
//! | `pool.terminate()` / `shutdown(cancel_futures=True)` | `pool.terminate()` |
//! | `KeyboardInterrupt` (Ctrl-C), then the `with` block terminates the pool | `.shutdown_on_ctrl_c(true)` on the builder |
//! | `BrokenProcessPool` | [`TaskError::WorkerLost`] for that task only |
//! | `Process(target=f, args=(x,))`, `start()` | `Process::new(f, x)`, `.start()?` (or `Process::spawn(f, x)?`) |
//! | `p.join()`, `p.exitcode` | `p.join()` → `Result<R, TaskError>`, `p.exit_status()` |
//! | `p.join(timeout)`, `is_alive()`, `pid`, `name` | `p.join_timeout(t)`, `p.wait_timeout(t)`, `is_alive()`, `pid()`, `name()` |
//! | `p.terminate()`, `p.kill()` | `p.terminate()` (SIGTERM), `p.kill()` (SIGKILL) |
//! | `Pipe()`, `Pipe(duplex=False)` | [`Pipe::duplex`], [`Pipe::one_way`] (typed ends) |
//! | `conn.send(x)`, `recv()`, `poll(t)` | `send(x)`, `recv()`, `recv_timeout(t)`, `try_recv()`, `poll(t)` |
//! | `multiprocessing.Queue(maxsize)` | [`Queue::bounded`], [`Queue::unbounded`] |
//! | `q.put`, `q.get(timeout=)`, `put_nowait`, `get_nowait` | `put`, `get_timeout`, `try_put`, `try_get`, `put_async`, `get_async`, `shutdown` |
//! | `q.close(); q.join_thread()` (the feeder thread's buffer sent) | [`Queue::flush`] (also says how many buffered items were refused) |
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
//! | [`Canceller::cancel`] while it runs | [`TaskError::Cancelled`] (a task queued behind it on that worker runs on the replacement) | killed, reaped and replaced |
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
//!   `pipe()` the program made for another child, say) is closed by the
//!   worker first thing (the init hook, or `main_hook`), before any code
//!   of weft's or the user's runs (a `/proc/self/fd` sweep, else every
//!   number up to the limit), as CPython's spawn and forkserver workers
//!   get only theirs. Workers and `Process` children are started with
//!   `posix_spawn` (no `pre_exec` code), so a start does not copy the
//!   parent's page tables as a `fork` does: with 1 GiB held by the parent,
//!   a start took about 140 ms, and takes about 3 ms.
//! - With [`ProcessPoolBuilder::spare_worker`], one more worker, started
//!   and authenticated like the others, waits idle; a slot whose worker
//!   is lost (crash, timeout, cancel, recycling) takes it instead of
//!   starting a process (a crash then costs its slot about 2 ms, not a
//!   `fork` + `exec` + handshake), and the next spare starts in the
//!   background. The spare is reaped and replaced if it dies while idle,
//!   killed by `terminate`, asked to exit by `shutdown`, and dies with the
//!   parent; the thread that starts spares outlives every slot, since a
//!   worker dies with the *thread* that started it (`PR_SET_PDEATHSIG`).
//! - Only the processes the pool started can join it: a worker is started
//!   with the name of an ipc-channel one-shot server, a 256-bit secret and
//!   the parent's pid in its environment (removed before any user code
//!   runs; its stdin is `/dev/null`), connects, and must present the secret,
//!   its own pid and this build's table of registered functions before any
//!   task is sent; a worker binary that is not this build is refused with a
//!   clear error. ipc-channel's `accept` has no timeout: a watchdog thread
//!   beside it connects in the worker's place when the worker dies before
//!   connecting (`build()` then fails at once with its exit status), and
//!   kills a worker that neither connects nor dies within the start
//!   timeout.
//! - A receive from a worker cannot take the parent down: it runs inside
//!   `catch_unwind` (ipc-channel panics on some malformed messages, and
//!   decoding is done there too), and a message that does not decode, or
//!   whose decoding panics, fails the task with a clear error and the
//!   worker is killed and replaced (a job it was already running behind
//!   that one fails as [`TaskError::WorkerLost`]). Every length a worker
//!   announces is checked against the shared memory it points into before a
//!   byte is read; result payloads are capped by
//!   [`ProcessPoolBuilder::max_result_bytes`] before they are copied, and a
//!   job's list of per-item outcomes by its item count (error texts are cut
//!   to 4 KiB each, 1 MiB per reply) before it is decoded.
//! - No send can block the thread that must also read: the pool holds at
//!   most two jobs in a worker's channel (the one it runs and the next,
//!   plus at most one control message), and a message is at most about
//!   70 KiB (larger payloads go through shared memory), so every message
//!   fits the socket's buffer and a send never waits for the worker to
//!   read, even a worker that has stopped reading. That is the credit
//!   window.
//! - Payloads above 32 KiB (arguments, results, a `map` chunk's offsets
//!   and outcomes) never travel inside messages. Each side of a worker's
//!   channel keeps two `IpcSharedMemory` regions (one per job the pool
//!   keeps in flight on it), each sent to the other once and mapped by
//!   both, and reuses them while their pages are warm (a 64 MiB payload
//!   then costs one `memcpy` into one, not 16,384 page faults); a region
//!   is written again only once the other side is done with it (the worker
//!   has answered the job; the parent has copied the result out and said
//!   so), and while both are in use a payload gets shared memory of its
//!   own. A `Vec<u8>` argument or result is copied as is, not serialized
//!   byte by byte, and a worker keeps its last large buffer (up to
//!   256 MiB) for the next large argument, so an idle worker and its side
//!   of the pool may hold up to about five times its largest payload (its
//!   two regions, the pool's two, its buffer) until it is replaced or the
//!   pool is dropped.
//! - Workers run in their own process group, so a terminal's Ctrl-C
//!   (`SIGINT` to the foreground group) reaches the parent only, which
//!   decides what happens to the pool (they still die with it). With
//!   [`ProcessPoolBuilder::shutdown_on_ctrl_c`], a Ctrl-C terminates the
//!   pool (workers killed and reaped, tasks `Cancelled`) and the program
//!   goes on; a second one ends it as usual.
//! - Platforms: built and tested on Linux; also checked to compile for
//!   macOS (`x86_64-apple-darwin`, where ipc-channel uses Mach ports and
//!   shared memory of its own, not Unix sockets and memfds). What differs
//!   outside Linux: there is no `PR_SET_PDEATHSIG`, so a worker or child
//!   exits when its channel to the parent closes, which the parent's death
//!   does, but only once it reads it (between tasks; a task it runs is not
//!   interrupted); inherited descriptors are closed by checking every
//!   number up to the limit (no `/proc/self/fd`); large
//!   buffers are not marked for transparent huge pages; on macOS, where
//!   ipc-channel sends shared memory as a copy-on-write Mach region, a
//!   region is never reused (every large payload gets shared memory of its
//!   own, which costs its page faults each time). The crate does not
//!   build on Windows (`#![cfg(unix)]`).
//!
//! # What a hostile worker or peer can still do
//!
//! weft guards what it can around ipc-channel (above, and for
//! [`Process`], [`Pipe`] and [`Queue`] below). What a hostile worker of
//! the pool, a [`Process`] child, or any process holding a channel end,
//! can still do to the receiving process through ipc-channel, which weft
//! cannot prevent without replacing it:
//!
//! - **Abort the receiving process** by announcing a huge fragmented
//!   message: ipc-channel reserves the announced size before reading it,
//!   and an allocation failure aborts (one larger than `isize::MAX` only
//!   panics, which weft catches). Short of that, make it allocate as much
//!   as the message really is before weft sees it (the pool's message
//!   limits apply after ipc-channel has received the message).
//! - **Block a receive forever**, past any timeout: once the first
//!   fragment of a large message has arrived, ipc-channel reads the rest
//!   without a timeout. For the pool this blocks that worker's supervisor
//!   thread (or an `apply` call on it): its tasks, the task timeout
//!   included, wait until the worker exits, which `terminate` or killing it
//!   ends; other workers go on. For a [`Process`]'s result it blocks only
//!   the keeper thread; for a [`Pipe`] or a remote [`Queue`] operation it
//!   blocks the caller until the sender's process exits.
//! - **Fault the receiver** (`SIGBUS`) with shared memory: every
//!   descriptor that is not a socket is mapped as shared memory at its
//!   current size, and a sender that shrinks the file afterwards makes a
//!   read of the mapping fault. The pool reads a worker's shared memory
//!   (its region and large results), so a hostile worker can kill the
//!   parent this way; a [`Pipe`] or [`Queue`] reads it only if the received
//!   type holds an `IpcSharedMemory`. A descriptor that cannot be mapped
//!   makes ipc-channel panic, which weft catches.
//! - **Exhaust descriptors or threads**: each message may carry up to 64
//!   descriptors, and ipc-channel never closes the channels a message
//!   carries beyond those its type takes (a release build leaks their
//!   descriptors; a debug build panics on them, which weft catches, and
//!   leaks them too); each [`Queue`] session opened from another process
//!   costs a thread in the owner. A forged batch of buffered puts (item
//!   lengths that do not match its bytes, items that do not decode) fails
//!   those items alone.
//! - **Connect to a one-shot server first**: its socket is a file in a
//!   fresh directory under the temporary directory, created with the
//!   process's umask (with a umask that lets others write it, another
//!   user can connect). Such a connection cannot pass the secret check; it
//!   only makes the start of that worker or child fail.
//! - ipc-channel sends without `MSG_NOSIGNAL`: a process that writes to a
//!   channel whose reader is gone gets `SIGPIPE`, which Rust's `main`, pool
//!   workers and [`Process`] children ignore, but a program that restores
//!   its default action dies of it.
//!
//! # Processes, pipes and queues: what weft guards
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
//!   through a watchdog thread that connects in its place (the same one
//!   the pool uses for its workers); one that neither
//!   connects nor dies within the start timeout is killed, which also ends
//!   an `accept` stuck on a half-sent first message.
//!
//! A child's result is received by its keeper thread, so the worst a child
//! can do to its parent beyond the list above is never send a result: `join`
//! then waits until the child exits. Children are reaped only by their
//! keeper; signals are sent under the same lock as the reap, so a pid that
//! could have been reused is never signalled.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg(unix)]

mod boot;
mod cancel;
mod channel;
mod ctrlc;
mod encoded;
mod errtext;
mod imap;
mod link;
mod mpqueue;
mod pipe;
mod pool;
mod process;
mod registry;
mod spare;
mod supervisor;
mod sys;
mod wire;
mod worker;

pub use cancel::Canceller;
pub use channel::SharedMemory;
pub use encoded::{Function, decode, encode, registry_fingerprint};
pub use imap::Imap;
pub use mpqueue::{Queue, QueueGetError, QueuePutError};
pub use pipe::{Connection, Pipe, PipeReceiver, PipeSender, RecvError, SendError};
pub use pool::{Error, MapResults, MapStream, Output, ProcessPool, ProcessPoolBuilder};
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
/// `fuzz/` (`cargo xtask fuzz`); not part of the API. `Channel` runs the
/// same receive, checks and decoders, in the same order, as the pool does
/// on a message from a worker, and returns what the pool would conclude:
/// `Ok` with a description, or `Err` with the reason the message is
/// refused. None may panic, whatever the message's bytes and shared
/// memory (ipc-channel's own framing is not fuzzed: a peer that breaks it
/// can block or abort a receive, as the crate documentation says).
#[doc(hidden)]
pub mod __fuzz {
    use std::time::{Duration, Instant};

    use ipc_channel::ipc::{self, IpcReceiver, IpcSharedMemory, OpaqueIpcSender};
    use serde::ser::{SerializeTuple, Serializer};

    use crate::channel::{Incoming, send_ref};
    use crate::link::Link;
    use crate::supervisor::{Recv, check_reply, recv_from, take_reply};
    use crate::wire::FromWorkerIn;

    /// A pool–worker channel: the parent's end, as the pool holds it, and
    /// the worker's end to send arbitrary messages on.
    pub struct Channel {
        parent: Link<FromWorkerIn>,
        worker: OpaqueIpcSender,
        /// Where the parent's messages to the worker (releases) go.
        _to_worker: IpcReceiver<()>,
    }

    impl std::fmt::Debug for Channel {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Channel").finish_non_exhaustive()
        }
    }

    /// A message whose encoding is `shm`'s indices, then `body` as is.
    struct Frame<'a> {
        shm: &'a [IpcSharedMemory],
        body: &'a [u8],
    }

    impl serde::Serialize for Frame<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(self.shm.len() + self.body.len())?;
            for shm in self.shm {
                t.serialize_element(shm)?;
            }
            for b in self.body {
                t.serialize_element(b)?;
            }
            t.end()
        }
    }

    impl Channel {
        /// A fresh channel.
        pub fn new() -> std::io::Result<Channel> {
            let (worker, from) = ipc::channel::<Incoming<FromWorkerIn>>()?;
            let (to, to_worker) = ipc::channel::<()>()?;
            Ok(Channel {
                parent: Link::new(to.to_opaque(), from),
                worker: worker.to_opaque(),
                _to_worker: to_worker,
            })
        }

        /// Sends, from the worker's end, one message whose bytes are one
        /// small index per shared-memory region of `shm` (made from those
        /// bytes), then `body`; `false` if it could not be sent.
        pub fn send(&self, body: &[u8], shm: &[&[u8]]) -> bool {
            let shm: Vec<IpcSharedMemory> =
                shm.iter().map(|b| IpcSharedMemory::from_bytes(b)).collect();
            send_ref(&self.worker, &Frame { shm: &shm, body }).is_ok()
        }

        /// Sends a message as a worker would (for the crate's own tests).
        #[cfg(test)]
        pub(crate) fn send_msg(&self, msg: &crate::wire::FromWorker<'_>) {
            send_ref(&self.worker, msg).unwrap();
        }

        /// Receives the next message as the pool does, and, for a job's
        /// reply, checks it and copies its payload out as the pool does for
        /// a job of eight arguments and a `max_result_bytes` of 1 MiB, then
        /// decodes the results as [`reply`] does.
        pub fn receive(&mut self, wait: Duration) -> Result<String, String> {
            let deadline = Instant::now().checked_add(wait);
            match recv_from(&self.parent, deadline) {
                Recv::Msg(FromWorkerIn::Done {
                    job, status, data, ..
                }) => {
                    let results =
                        take_reply(&mut self.parent, job, 1 << 20, 8, status, data, Vec::new())
                            .map_err(|(why, _)| why)?;
                    decode_items(&results.status, &results.data);
                    Ok(format!("a reply with {} results", results.status.len()))
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
    use std::time::Duration;

    use ipc_channel::ipc::IpcSharedMemory;

    use crate::__fuzz::Channel;
    use crate::wire::{Blob, FromWorker, ItemOut, Raw};

    fn status_of(items: usize) -> Vec<u8> {
        postcard::to_stdvec(&vec![ItemOut::Ok(0); items]).unwrap()
    }

    fn done<'a>(status: Blob<'a>, data: Blob<'a>) -> FromWorker<'a> {
        FromWorker::Done {
            job: 1,
            status,
            data,
            carriers: &[],
        }
    }

    /// What the parent concludes from one message.
    fn receive(msg: &FromWorker<'_>) -> Result<String, String> {
        let mut channel = Channel::new().unwrap();
        channel.send_msg(msg);
        channel.receive(Duration::from_secs(5))
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn malformed_messages_from_a_worker_are_refused_never_trusted() {
        let status = status_of(8);
        let inline = |b| Blob::Inline(Raw(b));
        // A valid reply (8 empty results) is accepted.
        assert!(receive(&done(inline(&status), inline(&[]))).is_ok());
        // Garbage, and a valid reply with a byte missing.
        let mut channel = Channel::new().unwrap();
        assert!(channel.send(&[0xff; 40], &[]));
        assert!(channel.receive(Duration::from_secs(5)).is_err());
        assert!(channel.send(&[2, 1, 0], &[b"not a channel"]));
        assert!(channel.receive(Duration::from_secs(5)).is_err());
        // A region that was never sent.
        let e = receive(&done(
            inline(&status),
            Blob::Region {
                slot: 0,
                len: 1 << 10,
            },
        ))
        .unwrap_err();
        assert!(e.contains("region"), "{e}");
        // A region slot that does not exist.
        let region = IpcSharedMemory::from_bytes(&[1; 100]);
        let e = receive(&done(
            inline(&status),
            Blob::NewRegion {
                slot: 2,
                shm: &region,
                len: 10,
            },
        ))
        .unwrap_err();
        assert!(e.contains("region 2"), "{e}");
        // A status list in the worker's region.
        let region = IpcSharedMemory::from_bytes(&status);
        let e = receive(&done(
            Blob::NewRegion {
                slot: 0,
                shm: &region,
                len: status.len() as u64,
            },
            inline(&[]),
        ))
        .unwrap_err();
        assert!(e.contains("status"), "{e}");
        // A payload over max_result_bytes (1 MiB here) is refused before it
        // is read; one longer than its region too.
        let big = IpcSharedMemory::from_byte(0, 2 << 20);
        let e = receive(&done(inline(&status), Blob::OneShot(&big))).unwrap_err();
        assert!(e.contains("max_result_bytes"), "{e}");
        let small = IpcSharedMemory::from_byte(0, 100);
        let e = receive(&done(
            inline(&status),
            Blob::NewRegion {
                slot: 1,
                shm: &small,
                len: 200,
            },
        ))
        .unwrap_err();
        assert!(e.contains("does not fit"), "{e}");
        // The same payload in proper shared memory is read.
        let ok = IpcSharedMemory::from_byte(0, 100_000);
        assert!(receive(&done(inline(&status), Blob::OneShot(&ok))).is_ok());
        // A status list that does not match the job, or offsets past the
        // data.
        let short = status_of(3);
        assert!(receive(&done(inline(&short), inline(&[]))).is_err());
        let past = postcard::to_stdvec(&vec![ItemOut::Ok(9); 8]).unwrap();
        assert!(receive(&done(inline(&past), inline(&[1]))).is_err());
        // Nothing at all within the deadline: a timeout, not a hang.
        let mut silent = Channel::new().unwrap();
        assert_eq!(
            silent.receive(Duration::from_millis(20)).unwrap_err(),
            "timed out"
        );
    }
}
