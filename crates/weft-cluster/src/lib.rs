//! weft-cluster: the process pool across machines.
//!
//! When one machine is not enough, Python leaves `multiprocessing` for
//! Celery or Ray, and the code changes shape. Here it does not: the same
//! functions marked with [`weft_process::register!`], the same `submit` and
//! `map`, the same [`TaskHandle`] — with [`Worker`]s on any number of
//! machines, coordinated by NATS JetStream (a persistent work-queue stream,
//! explicit acks, redelivery, replicated streams), through the vendor's
//! client, `async-nats`. Each worker runs its tasks in a local
//! [`weft_process::ProcessPool`], so a task that crashes or hangs its
//! process fails only itself, on any machine.
//!
//! # Map of the crate
//!
//! - [`Cluster`] (built with [`Cluster::builder`] → [`ClusterBuilder`]):
//!   `submit`, `submit_with_timeout`, `apply`, `map`/`map_chunked`,
//!   `map_unordered`/`map_unordered_chunked` → [`MapResults`].
//! - [`Worker`] (built with [`Worker::builder`] → [`WorkerBuilder`]):
//!   `run()` in a worker binary, or `start()` → `stop()`.
//! - [`ClusterError`]: why a client or worker could not start. Task
//!   failures are [`TaskError`]s, re-exported from `weft-sync` with
//!   [`TaskHandle`] and [`WorkerExit`].
//!
//! # Python → weft
//!
//! | Python (Celery) | weft |
//! |---|---|
//! | `@app.task def f(x): ...` | `fn f(x: A) -> R { ... }` + `weft_process::register!(f);` |
//! | `Celery(broker="redis://…")` | `Cluster::builder().url("nats://…").build()?` |
//! | `f.delay(x)` / `f.apply_async((x,))` | `cluster.submit(f, x)` → [`TaskHandle`] |
//! | `f.delay(x).get()` | `cluster.apply(f, x)` |
//! | `apply_async(time_limit=t)` | `cluster.submit_with_timeout(f, x, t)` |
//! | `result.get(timeout=t)` | `handle.join()` / `handle.join_timeout(t)` / `handle.await` |
//! | `group(f.s(x) for x in xs)()` / `chunks` | `cluster.map(f, xs)` / `map_chunked(f, xs, n)` |
//! | `celery -A app worker -c 8` | `Worker::builder().url(…).processes(8).run()` in a binary of the same code |
//! | `acks_late=True`, `visibility_timeout` | always (explicit acks); `.ack_wait(d)` with progress acks |
//! | `max_retries` on worker loss | `.max_deliver(n)` |
//!
//! # Semantics
//!
//! **Every task is executed at least once; its result reaches the caller
//! exactly once.** A task is acknowledged to the server only after its
//! result is stored, so a worker that vanishes leaves its task to be
//! redelivered; a task may then run twice, and the client keeps the first
//! result for each task id and drops any later one.
//!
//! | What happens | The caller gets |
//! |---|---|
//! | the function returns | its value, once |
//! | it panics | [`TaskError::Panicked`] (not retried) |
//! | it runs past its timeout | [`TaskError::TimedOut`]; its process is killed and replaced (not retried) |
//! | its process crashes or aborts | retried (after `retry_delay`), up to `max_deliver` deliveries, then [`TaskError::WorkerLost`] with the exit |
//! | the whole worker is killed (SIGKILL, power loss) | the task is redelivered after `ack_wait` to another worker; after `max_deliver` such deliveries, [`TaskError::WorkerLost`] |
//! | the worker runs different code (registry fingerprint differs) | [`TaskError::Serialization`] saying so; the task does not run |
//! | argument or result will not (de)serialize | [`TaskError::Serialization`] for that task (or `map` item) |
//! | the server restarts (file storage) | nothing: stored tasks and results survive, clients and workers reconnect and go on |
//! | the server cannot be reached when submitting | retried for `publish_timeout`, then [`TaskError::WorkerLost`] saying the task never reached the server |
//! | the server cannot be reached at `build()` | [`ClusterError::Connect`] within the connect timeout |
//! | the [`Cluster`] is dropped | its unfinished handles: [`TaskError::Abandoned`] |
//!
//! A running task keeps its claim alive with progress acks every third of
//! `ack_wait`, so tasks may run far longer than `ack_wait`. Handles are
//! never waited on forever by the library itself; a task whose workers are
//! all gone simply waits in the stream for the next worker, as in a local
//! pool whose processes are busy (use `join_timeout` to bound a wait).
//!
//! # A whole program
//!
//! The same binary is the client and, started with another argument, the
//! worker (workers on other machines run the same build):
//!
//! ```no_run
//! use weft_cluster::{Cluster, Worker};
//!
//! fn count_primes((lo, hi): (u64, u64)) -> usize {
//!     (lo..hi).filter(|&n| n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)).count()
//! }
//! weft_process::register!(count_primes);
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let url = "nats://127.0.0.1:4222";
//!     if std::env::args().nth(1).as_deref() == Some("worker") {
//!         Worker::builder().url(url).processes(4).run()?;
//!         return Ok(());
//!     }
//!     let cluster = Cluster::builder().url(url).build()?;
//!     let ranges = (0..100).map(|i| (i * 10_000, (i + 1) * 10_000));
//!     let primes: usize = cluster.map(count_primes, ranges).map(Result::unwrap).sum();
//!     println!("{primes} primes below a million");
//!     Ok(())
//! }
//! ```
//!
//! See `docs/cluster.md` for several machines, a 3-node NATS cluster with
//! replicated streams, TLS and credentials, and what a task costs.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod client;
mod connect;
mod error;
mod options;
mod wire;
mod worker;

pub use client::{Cluster, ClusterBuilder, MapResults};
pub use error::ClusterError;
pub use weft_sync::{TaskError, TaskHandle, WorkerExit};
pub use worker::{Worker, WorkerBuilder};
