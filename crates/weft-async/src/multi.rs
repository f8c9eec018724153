//! The multi-threaded flavour: the same surface for `Send` futures, run on
//! N threads by `async-executor`'s work-stealing [`Executor`].
//!
//! The single-threaded runtime of the crate root ([`run`](crate::run),
//! [`spawn`](crate::spawn)) stays the default: it is faster per task, its
//! tasks need not be `Send`, and it has weft's own sockets ([`net`](crate::net)).
//! Pick this flavour for a server whose tasks do enough work between awaits
//! to use every core (parsing, compressing, hashing, serializing replies),
//! when that work is too fine-grained to hand to a thread pool piece by
//! piece.
//!
//! | Single-threaded (crate root) | Multi-threaded (this module) |
//! |---|---|
//! | [`run(fut)`](crate::run) | [`run(fut)`](run) (one worker per core) |
//! | [`Runtime::new()`](crate::Runtime::new) | [`Runtime::builder().threads(n).build()?`](Builder) |
//! | [`Runtime::block_on`](crate::Runtime::block_on) | [`Runtime::block_on`] |
//! | [`spawn`](crate::spawn) -> [`Task`](crate::Task) | [`spawn`] -> [`Task`] (`Send + 'static` futures) |
//! | [`Handle::spawn`](crate::Handle::spawn) -> `TaskHandle` | [`Handle::spawn`] -> `TaskHandle` |
//! | [`TaskGroup`](crate::TaskGroup) (children polled in the awaiting task) | [`TaskGroup`] (children are tasks, run in parallel) |
//! | [`TaskGroup::scope`](crate::TaskGroup::scope) (children may borrow) | [`TaskGroup::scope_send`](crate::TaskGroup::scope_send) for `Send` children, anywhere (its future is `Send`, so it runs inside a [`spawn`]ed task; its children run concurrently on the task that awaits it, not in parallel); `scope` itself, whose future is not `Send`, in [`block_on`](Runtime::block_on)'s future |
//! | [`TaskSet`](crate::TaskSet) | [`TaskSet`] (tasks in parallel, results as they finish) |
//! | [`shield`](crate::shield) | [`shield`] |
//! | [`task_local!`](crate::task_local), [`LocalKey::scope`] | the same (re-exported here): a scoped value follows its future from worker to worker |
//! | [`gather!`](crate::gather), [`join_all`], [`select`], [`race`], [`as_completed`] | the same items (re-exported here) |
//! | [`sleep`], [`interval`], [`timeout`], [`yield_now`] | the same items (re-exported here) |
//! | [`net`](crate::net) sockets (the runtime's own reactor, `!Send`) | `async-net` or `async_io::Async` sockets (async-io's reactor) |
//!
//! # How it runs
//!
//! A [`Runtime`] owns N worker threads and one `async-executor`
//! [`Executor`] per worker. Worker `i` runs, inside `async_io::block_on`,
//! batches of up to 200 tasks of `executors[i]` (`Executor::try_tick`),
//! then one task of another worker's executor (a batch, when it has none of
//! its own); with nothing to run anywhere it sleeps in `async-io`'s reactor
//! (or drives it, for timers and sockets) as a ticker of every executor
//! (`Executor::tick`) until one has work. A task spawned on a worker goes
//! to that worker's executor (a spawn from outside the workers, in turn to
//! each). [`block_on`](Runtime::block_on) drives its future on the calling
//! thread (not one of the workers), as tokio's does; inside it and inside
//! tasks, [`spawn`] spawns onto the runtime.
//!
//! Why an executor per worker: `async-executor` puts every woken task on
//! its executor's global queue (tokio keeps it on the worker's own queue),
//! so with one executor for all workers every wake-up (a yield, a ready
//! socket) is a push and a pop that the workers contend for. With one per
//! worker, a task's wake-ups go to the queue of the worker that spawned it,
//! which mostly only that worker touches; and `try_tick` runs a task
//! straight from that queue, where `Executor::run`'s runner first moves it
//! to a local queue of its own. Measured on 2 threads on the loaded 2-core
//! machine (alternating builds; wide spreads): `mt_yield_many` weft/tokio
//! 1.2-2.4x with one executor, 1.1-1.6x now; spawning 1M tasks from
//! `block_on` stays faster than tokio (0.3-0.5x before, 0.7-0.8x now: the
//! spawner and the workers now share each executor's global queue).
//!
//! Every task's future is wrapped so that a panic (in `poll`, or in its
//! destructor) fails that task's handle with
//! [`TaskError::Panicked`] and never unwinds into a worker.
//! Dropping the [`Runtime`] stops and joins its threads, then cancels the
//! tasks left (their futures are dropped, their handles say
//! [`TaskError::Cancelled`]); [`Handle`]s refuse new tasks from then on.
//!
//! # What it costs
//!
//! The flavour adds a panic guard around each task's future and the
//! spreading of tasks over the workers' executors: per task it costs about
//! what `async-executor` costs (see the `async-executor` rows of
//! `benches/multi_thread.rs`). Against tokio's multi-thread runtime on 2
//! threads, spawning and awaiting many tasks is faster; wake-ups still cost
//! a little more (a push and a pop on `async-executor`'s unbounded
//! concurrent queue, and `async-io` re-arms its one-shot epoll registration
//! at each socket wait). Where per-task overhead matters more than cores,
//! the single-threaded runtime is the faster one.
//!
//! # Sockets
//!
//! The crate's own [`net`](crate::net) sockets live on the single-threaded
//! runtime's reactor and are `!Send`: they do not work here. Use
//! `async-net`'s (or `async_io::Async<std::net::TcpStream>`): they are
//! `Send`, and `async-io`'s reactor serves them whichever worker polls them.
//!
//! ```
//! use weft_async::multi::{self, Runtime};
//!
//! let rt = Runtime::builder().threads(2).build().unwrap();
//! let total = rt.block_on(async {
//!     let tasks: Vec<_> = (0..100u64).map(|i| multi::spawn(async move { i * i })).collect();
//!     let mut total = 0;
//!     for t in tasks {
//!         total += t.await.unwrap();
//!     }
//!     total
//! });
//! assert_eq!(total, 328_350);
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use async_executor::Executor;
use weft_sync::{Completer, Event, TaskError, TaskHandle};

use crate::children::{Children, Next};
use crate::taskset::TaskSlots;

pub use crate::combine::{AsCompleted, Either, as_completed, join_all, race, select, try_join_all};
pub use crate::error::TimedOut;
pub use crate::group::GroupError;
pub use crate::time::{
    Interval, MissedTickBehavior, interval, sleep, sleep_until, timeout, timeout_at, yield_now,
};
pub use crate::{LocalKey, TaskLocalFuture, gather, task_local, try_gather};

/// The most worker threads a [`Builder`] accepts.
pub const MAX_THREADS: usize = 1024;

/// Why the multi-threaded flavour refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`Builder::threads`] was given 0.
    #[error(
        "a multi-threaded runtime needs at least one worker thread; use threads(1) or more (or \
         the single-threaded weft_async::Runtime)"
    )]
    ZeroThreads,
    /// [`Builder::threads`] was given more than [`MAX_THREADS`].
    #[error(
        "{requested} worker threads were asked for, more than the limit of {max}; one per core \
         is the usual choice"
    )]
    TooManyThreads {
        /// How many were asked for.
        requested: usize,
        /// The limit, [`MAX_THREADS`].
        max: usize,
    },
    /// [`Builder::thread_name`] was given a name with a NUL byte.
    #[error("a thread name cannot contain a NUL byte; choose another name")]
    InvalidThreadName,
    /// The operating system refused to start a worker thread (the workers
    /// started before it were stopped and joined).
    #[error(
        "the operating system refused to start worker thread {index}: {message}; use fewer \
         threads or a smaller stack size"
    )]
    ThreadSpawn {
        /// Which worker (from 0).
        index: usize,
        /// What the operating system said.
        message: String,
    },
    /// [`spawn`] was called outside a multi-threaded runtime.
    #[error(
        "weft_async::multi::spawn was called outside a multi-threaded runtime; call it from a \
         task or from Runtime::block_on, or spawn through Runtime::spawn or a Handle"
    )]
    NoRuntime,
    /// [`block_on`](Runtime::block_on) was called where blocking would stall
    /// a runtime: on a worker thread, inside another `block_on`, or inside
    /// a single-threaded weft-async runtime.
    #[error(
        "Runtime::block_on was called inside a running runtime, where blocking would stall it; \
         await the future instead, or spawn it"
    )]
    NestedBlockOn,
    /// A [`Handle`] was asked to spawn onto a runtime that has been dropped.
    #[error(
        "the multi-threaded runtime this Handle points to has been dropped, so nothing spawned \
         on it would run; spawn onto a runtime that is still alive"
    )]
    Closed,
}

static NEXT_RUNTIME_ID: AtomicU64 = AtomicU64::new(1);

/// What the runtime's threads, its `block_on` calls and its handles share.
struct Inner {
    /// One executor per worker thread: a task spawned by a worker stays on
    /// that worker's executor, whose queues the other workers touch only
    /// when they help (see `work`).
    exs: Box<[Executor<'static>]>,
    /// Round-robin over `exs` for spawns from outside the workers.
    next: AtomicUsize,
    /// Set when the runtime is dropped: the workers leave `run`.
    stop: Event,
    /// Set when the runtime is dropped: handles refuse new tasks.
    closed: AtomicBool,
    id: u64,
    threads: usize,
}

thread_local! {
    /// The runtime that [`spawn`] spawns onto: set on a worker thread for
    /// its life, and on a `block_on` thread for the call.
    static CURRENT: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
    /// The id of the runtime this thread is a worker of, or that is in a
    /// `block_on` on it (0: none).
    static BLOCKING: Cell<u64> = const { Cell::new(0) };
    /// The index of the worker this thread is (`usize::MAX`: none).
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

impl Inner {
    /// The executor a task spawned here goes to: this worker's own, or
    /// (from outside the workers) the next in turn.
    #[inline]
    fn executor(&self) -> &Executor<'static> {
        let n = self.exs.len();
        let me = WORKER.get();
        let index = if me < n && BLOCKING.get() == self.id {
            me
        } else if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        &self.exs[index]
    }
}

/// Configures and builds a [`Runtime`] (tokio's `Builder::new_multi_thread`).
///
/// ```
/// use weft_async::multi::{Error, Runtime};
/// let rt = Runtime::builder().threads(2).thread_name("api").build().unwrap();
/// assert_eq!(rt.threads(), 2);
/// assert_eq!(Runtime::builder().threads(0).build().err(), Some(Error::ZeroThreads));
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    threads: Option<usize>,
    name: String,
    stack_size: Option<usize>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl Builder {
    /// A builder with the defaults: one worker per available core, threads
    /// named `weft-worker-<i>`, the standard stack size.
    pub fn new() -> Builder {
        Builder {
            threads: None,
            name: "weft-worker".to_owned(),
            stack_size: None,
        }
    }

    /// The number of worker threads (1 to [`MAX_THREADS`]; `build` says
    /// [`Error::ZeroThreads`] or [`Error::TooManyThreads`] otherwise).
    pub fn threads(mut self, n: usize) -> Builder {
        self.threads = Some(n);
        self
    }

    /// The workers' thread names are `<name>-<i>`.
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.name = name.into();
        self
    }

    /// The workers' stack size in bytes (the standard library's default
    /// otherwise).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Starts the worker threads. On an error no thread is left behind.
    pub fn build(self) -> Result<Runtime, Error> {
        let threads = match self.threads {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if threads == 0 {
            return Err(Error::ZeroThreads);
        }
        if threads > MAX_THREADS {
            return Err(Error::TooManyThreads {
                requested: threads,
                max: MAX_THREADS,
            });
        }
        if self.name.contains('\0') {
            return Err(Error::InvalidThreadName);
        }
        let inner = Arc::new(Inner {
            exs: (0..threads).map(|_| Executor::new()).collect(),
            next: AtomicUsize::new(0),
            stop: Event::new(),
            closed: AtomicBool::new(false),
            id: NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed),
            threads,
        });
        let mut rt = Runtime {
            inner,
            workers: Vec::with_capacity(threads),
        };
        for index in 0..threads {
            let mut builder = std::thread::Builder::new().name(format!("{}-{index}", self.name));
            if let Some(bytes) = self.stack_size {
                builder = builder.stack_size(bytes);
            }
            let inner = rt.inner.clone();
            // The standard library may panic (rather than fail) on a stack
            // size it cannot round up: treat that as a refusal too.
            let spawned = catch_unwind(AssertUnwindSafe(|| {
                builder.spawn(move || worker(inner, index))
            }));
            match spawned {
                Ok(Ok(handle)) => rt.workers.push(handle),
                Ok(Err(e)) => {
                    // Dropping `rt` stops and joins the workers started.
                    return Err(Error::ThreadSpawn {
                        index,
                        message: e.to_string(),
                    });
                }
                Err(payload) => {
                    return Err(Error::ThreadSpawn {
                        index,
                        message: weft_sync::into_panic_message(payload),
                    });
                }
            }
        }
        Ok(rt)
    }
}

/// A worker thread's life: run its executor, and help the others, until
/// the runtime stops.
fn worker(inner: Arc<Inner>, index: usize) {
    BLOCKING.set(inner.id);
    WORKER.set(index);
    CURRENT.set(Some(inner.clone()));
    while !inner.stop.is_set() {
        // Task panics are caught in `Contained`; this only guards the
        // worker against anything else that might unwind out of `run`.
        let ran = catch_unwind(AssertUnwindSafe(|| {
            async_io::block_on(work(&inner, index));
        }));
        if let Err(payload) = ran {
            weft_sync::drop_quietly(payload);
        }
    }
    CURRENT.set(None);
    WORKER.set(usize::MAX);
    BLOCKING.set(0);
}

/// How many tasks a worker runs from one executor before it looks at the
/// others, the stop event and (by yielding to `async_io::block_on`) the
/// reactor: `Executor::run`'s own batch.
const BATCH: usize = 200;

/// A worker's loop: batches of its own executor's tasks
/// (`Executor::try_tick`), then one task of another worker's executor (a
/// whole batch of them when it has none of its own), until the runtime
/// stops; with nothing to run anywhere, it sleeps as one of the tickers of
/// every executor (`Executor::tick`) until one of them has work.
///
/// Why not one executor for all workers: `async-executor` pushes every
/// woken task onto its executor's global queue, which all of that
/// executor's runners pop, so with one executor each wake-up (a yield, a
/// socket ready) is a push and a pop that the workers contend for. With one
/// executor per worker, a task's wake-ups go to the queue of the worker
/// that spawned it, which mostly only that worker touches. And why
/// `try_tick` rather than `Executor::run`: `run`'s runner moves tasks from
/// the global queue into a local one before running them (a pop and a push
/// more per wake-up), which only pays when several runners share the
/// global queue.
async fn work(inner: &Inner, index: usize) {
    let n = inner.exs.len();
    let own = &inner.exs[index];
    let mut stop = std::pin::pin!(inner.stop.wait_async());
    let mut next = 1;
    loop {
        let mut ran = 0;
        while ran < BATCH && own.try_tick() {
            ran += 1;
        }
        if std::future::poll_fn(|cx| Poll::Ready(stop.as_mut().poll(cx).is_ready())).await {
            return;
        }
        // Help the others: one task of one of them, or a batch when this
        // worker has nothing of its own.
        let quota = if ran == BATCH { 1 } else { BATCH };
        let mut helped = 0;
        for k in 0..n.saturating_sub(1) {
            let other = &inner.exs[(index + next + k) % n];
            while helped < quota && other.try_tick() {
                helped += 1;
            }
            if helped > 0 {
                next = (next + k) % (n - 1) + 1;
                break;
            }
        }
        if ran + helped > 0 {
            // Let block_on poll the reactor (timers, sockets) between batches.
            futures_lite::future::yield_now().await;
            continue;
        }
        // Nothing to run: sleep until some executor has a task (and run
        // it), or the runtime stops.
        let mut ticks: Vec<Pin<Box<dyn Future<Output = ()> + '_>>> = (0..n)
            .map(|k| {
                Box::pin(inner.exs[(index + k) % n].tick()) as Pin<Box<dyn Future<Output = ()>>>
            })
            .collect();
        let stopped = std::future::poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(true);
            }
            for t in ticks.iter_mut() {
                if t.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
            }
            Poll::Pending
        })
        .await;
        if stopped {
            return;
        }
    }
}

/// A multi-threaded runtime: an `async-executor` [`Executor`] run by N
/// worker threads (tokio's multi-thread `Runtime`).
///
/// Tasks ([`spawn`](Runtime::spawn), or [`spawn`] inside the runtime) run on
/// the workers, start at once and run whether or not anyone awaits them;
/// [`block_on`](Runtime::block_on) drives a future on the calling thread
/// until it completes. Dropping the `Runtime` stops its workers (each
/// finishes the poll it is in), joins them, and cancels the tasks left.
///
/// ```
/// use std::time::Duration;
/// use weft_async::multi::{self, Runtime};
///
/// let rt = Runtime::builder().threads(2).build().unwrap();
/// let ticker = rt.spawn(async {
///     let mut every = multi::interval(Duration::from_millis(1));
///     for _ in 0..3 {
///         every.tick().await;
///     }
///     "ticked"
/// });
/// let out = rt.block_on(async {
///     let (a, b) = multi::gather!(
///         multi::spawn(async { 40 }),
///         multi::timeout(Duration::from_secs(10), async { 2 }),
///     )
///     .await;
///     a.unwrap() + b.unwrap()
/// });
/// assert_eq!(out, 42);
/// assert_eq!(ticker.join(), Ok("ticked"));
/// ```
pub struct Runtime {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl Runtime {
    /// A runtime with one worker per available core.
    pub fn new() -> Result<Runtime, Error> {
        Builder::new().build()
    }

    /// A [`Builder`], to choose the number of threads and their names.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// How many worker threads it has.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// Runs `future` to completion on the calling thread and returns its
    /// output; the runtime's tasks go on running on the workers meanwhile,
    /// and [`spawn`] inside `future` spawns onto this runtime. `future` need
    /// not be `Send`.
    ///
    /// # Panics
    ///
    /// On a thread where blocking would stall a runtime (see
    /// [`try_block_on`](Runtime::try_block_on)). A panic of `future` itself
    /// propagates.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self.try_block_on(future) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`block_on`](Runtime::block_on), but says
    /// [`Error::NestedBlockOn`] on a worker thread, inside another
    /// `block_on`, or inside a single-threaded weft-async runtime.
    ///
    /// ```
    /// use weft_async::multi::{Error, Runtime};
    /// let rt = Runtime::builder().threads(1).build().unwrap();
    /// let nested = rt.block_on(async { Runtime::builder().threads(1).build().unwrap().try_block_on(async {}) });
    /// assert_eq!(nested, Err(Error::NestedBlockOn));
    /// ```
    pub fn try_block_on<F: Future>(&self, future: F) -> Result<F::Output, Error> {
        if BLOCKING.get() != 0 || crate::in_runtime() {
            return Err(Error::NestedBlockOn);
        }
        struct Restore(Option<Arc<Inner>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                BLOCKING.set(0);
                CURRENT.set(self.0.take());
            }
        }
        let _restore = Restore(CURRENT.replace(Some(self.inner.clone())));
        BLOCKING.set(self.inner.id);
        Ok(async_io::block_on(trusted(future)))
    }

    /// Spawns `future` as a task on the workers, from any thread.
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(&self.inner, future)
    }

    /// A handle to this runtime, to spawn onto it from anywhere.
    pub fn handle(&self) -> Handle {
        Handle {
            inner: Arc::downgrade(&self.inner),
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.stop.set();
        let me = std::thread::current().id();
        for worker in self.workers.drain(..) {
            // Dropped by one of its own tasks: that worker leaves `run`
            // when the task returns; it cannot wait for itself.
            if worker.thread().id() != me {
                let _ = worker.join();
            }
        }
        // The executor (and with it the tasks left, cancelled) goes with the
        // last reference to `inner`: normally this one, or a `Handle::spawn`
        // still in progress on another thread.
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.inner.id)
            .field("threads", &self.inner.threads)
            .finish_non_exhaustive()
    }
}

/// Runs `future` on a new multi-threaded runtime with one worker per core,
/// and drops the runtime (Python's `asyncio.run`, on every core).
///
/// # Panics
///
/// If the runtime cannot be started or `block_on` is refused; see
/// [`try_run`].
///
/// ```
/// let squares = weft_async::multi::run(async {
///     let tasks = (1..=4u64).map(|i| weft_async::multi::spawn(async move { i * i }));
///     weft_async::multi::join_all(tasks).await
/// });
/// assert_eq!(squares, vec![Ok(1), Ok(4), Ok(9), Ok(16)]);
/// ```
pub fn run<F: Future>(future: F) -> F::Output {
    match try_run(future) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`run`], but returns the error if the runtime cannot be started or
/// blocking here would stall a runtime.
pub fn try_run<F: Future>(future: F) -> Result<F::Output, Error> {
    Runtime::new()?.try_block_on(future)
}

/// Spawns `future` onto the multi-threaded runtime running this code (a
/// task, or [`Runtime::block_on`]) and returns its [`Task`] (Python's
/// `asyncio.create_task`).
///
/// # Panics
///
/// Outside a multi-threaded runtime; [`try_spawn`] says
/// [`Error::NoRuntime`] instead.
///
/// ```
/// weft_async::multi::run(async {
///     let task = weft_async::multi::spawn(async { "done" });
///     assert_eq!(task.await, Ok("done"));
/// });
/// ```
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match try_spawn(future) {
        Ok(task) => task,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`spawn`], but says [`Error::NoRuntime`] outside a multi-threaded
/// runtime.
///
/// ```
/// use weft_async::multi::{try_spawn, Error};
/// assert_eq!(try_spawn(async {}).err(), Some(Error::NoRuntime));
/// ```
pub fn try_spawn<F>(future: F) -> Result<Task<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    CURRENT.with_borrow(|current| match current {
        Some(inner) => Ok(spawn_on(inner, future)),
        None => Err(Error::NoRuntime),
    })
}

fn spawn_on<F>(inner: &Inner, future: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = inner.executor().spawn(Contained {
        future: Some(future),
    });
    Task {
        inner: Some(task.fallible()),
        guard: None,
    }
}

/// A `Send + Clone` handle to a multi-threaded [`Runtime`], to spawn onto it
/// from any thread (Python's `asyncio.run_coroutine_threadsafe`).
///
/// It does not keep the runtime alive: once the [`Runtime`] is dropped,
/// [`spawn`](Handle::spawn) returns a handle that has failed with
/// [`TaskError::Cancelled`] ([`try_spawn`](Handle::try_spawn) says
/// [`Error::Closed`]).
///
/// ```
/// use weft_async::multi::Runtime;
/// let rt = Runtime::builder().threads(2).build().unwrap();
/// let handle = rt.handle();
/// let from_a_thread = std::thread::spawn(move || handle.spawn(async { 6 * 7 }).join());
/// assert_eq!(from_a_thread.join().unwrap(), Ok(42));
/// let handle = rt.handle();
/// drop(rt);
/// assert_eq!(handle.spawn(async { 1 }).join(), Err(weft_async::TaskError::Cancelled));
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Weak<Inner>,
}

impl Handle {
    /// The handle of the multi-threaded runtime running this code (a task,
    /// or [`Runtime::block_on`]).
    ///
    /// # Panics
    ///
    /// Outside one; [`try_current`](Handle::try_current) says
    /// [`Error::NoRuntime`].
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => panic!("{e}"),
        }
    }

    /// The handle of the multi-threaded runtime running this code, or
    /// [`Error::NoRuntime`].
    pub fn try_current() -> Result<Handle, Error> {
        CURRENT.with_borrow(|current| match current {
            Some(inner) => Ok(Handle {
                inner: Arc::downgrade(inner),
            }),
            None => Err(Error::NoRuntime),
        })
    }

    /// Spawns `future` onto the runtime and returns weft's [`TaskHandle`]:
    /// join it from a thread, or await it from any runtime.
    /// [`TaskHandle::cancel`] cancels the task if it has not started. A
    /// panic fails the handle with [`TaskError::Panicked`]; a task the
    /// runtime cancels (or a spawn after it was dropped) fails it with
    /// [`TaskError::Cancelled`].
    pub fn spawn<F>(&self, future: F) -> TaskHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (completer, handle) = TaskHandle::pair();
        match self.live() {
            Some(inner) => inner
                .executor()
                .spawn(Spawned {
                    future: Some(future),
                    completer: Some(completer),
                    started: false,
                })
                .detach(),
            None => {
                completer.set_error(TaskError::Cancelled);
            }
        }
        handle
    }

    /// Like [`spawn`](Handle::spawn), but says [`Error::Closed`] (and drops
    /// `future`) if the runtime has been dropped.
    pub fn try_spawn<F>(&self, future: F) -> Result<TaskHandle<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        Ok(self.spawn(future))
    }

    /// Spawns `future` and returns its [`Task`] (awaitable, cancelled when
    /// dropped), or [`Error::Closed`].
    pub fn spawn_task<F>(&self, future: F) -> Result<Task<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.live() {
            Some(inner) => Ok(spawn_on(&inner, future)),
            None => Err(Error::Closed),
        }
    }

    /// Whether the runtime has been dropped: nothing spawned on it will run.
    pub fn is_closed(&self) -> bool {
        self.live().is_none()
    }

    fn live(&self) -> Option<Arc<Inner>> {
        self.inner
            .upgrade()
            .filter(|inner| !inner.closed.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// `future`, polled with its `block_on`'s waker marked as weft's own (it
/// unparks a thread, and never panics): task handles awaited in it pass it
/// to `async-task` as it is.
async fn trusted<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| crate::waker::polling_with(cx, |cx| future.as_mut().poll(cx))).await
}

/// A task's outcome as the executor keeps it; a panic in the output's
/// destructor, if nobody takes it, is contained where it is dropped.
struct Outcome<T>(Option<Result<T, TaskError>>);

impl<T> Drop for Outcome<T> {
    fn drop(&mut self) {
        if let Some(outcome) = self.0.take() {
            weft_sync::drop_quietly(outcome);
        }
    }
}

pin_project_lite::pin_project! {
    /// A task's future, whose panics (in `poll` and in its destructor)
    /// become the task's `TaskError::Panicked` instead of unwinding into a
    /// worker.
    struct Contained<F> {
        #[pin]
        future: Option<F>,
    }

    impl<F> PinnedDrop for Contained<F> {
        fn drop(this: Pin<&mut Self>) {
            // Cancelled (the handle dropped, or the runtime ended): the
            // future's destructor must not unwind into the executor.
            let mut future = this.project().future;
            if future.is_some() {
                let _ = catch_unwind(AssertUnwindSafe(|| future.set(None)))
                    .map_err(weft_sync::drop_quietly);
            }
        }
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome<F::Output>> {
        let mut slot = self.project().future;
        let Some(future) = slot.as_mut().as_pin_mut() else {
            return Poll::Ready(Outcome(Some(Err(TaskError::Cancelled))));
        };
        let polled =
            crate::waker::polling_with(cx, |cx| catch_unwind(AssertUnwindSafe(|| future.poll(cx))));
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(TaskError::Panicked {
                message: weft_sync::into_panic_message(payload),
            }),
        };
        Poll::Ready(Outcome(Some(finish(slot, out))))
    }
}

/// Drops a finished future in `slot` and returns `out`, or the panic of its
/// destructor (the first panic is the one reported).
fn finish<F, T>(mut slot: Pin<&mut Option<F>>, out: Result<T, TaskError>) -> Result<T, TaskError> {
    match catch_unwind(AssertUnwindSafe(|| slot.set(None))) {
        Ok(()) => out,
        Err(payload) => {
            let message = weft_sync::into_panic_message(payload);
            match out {
                Ok(value) => {
                    weft_sync::drop_quietly(value);
                    Err(TaskError::Panicked { message })
                }
                failed => failed,
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A future spawned through a [`Handle`]: completes its [`TaskHandle`]
    /// with its output, its panic, or `Cancelled` if it is dropped first.
    struct Spawned<F: Future> {
        #[pin]
        future: Option<F>,
        completer: Option<Completer<F::Output>>,
        started: bool,
    }

    impl<F: Future> PinnedDrop for Spawned<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Dropped unfinished: the handle says so before the future's
            // destructor runs, whose panic goes no further.
            if let Some(completer) = this.completer.take() {
                completer.set_error(TaskError::Cancelled);
            }
            let mut future = this.future;
            if future.is_some() {
                let _ = catch_unwind(AssertUnwindSafe(|| future.set(None)))
                    .map_err(weft_sync::drop_quietly);
            }
        }
    }
}

impl<F: Future> Future for Spawned<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if !*this.started {
            *this.started = true;
            if let Some(completer) = this.completer.as_ref()
                && !completer.start()
            {
                // Cancelled through its handle before it started.
                this.completer.take();
                let _ = catch_unwind(AssertUnwindSafe(|| this.future.set(None)))
                    .map_err(weft_sync::drop_quietly);
                return Poll::Ready(());
            }
        }
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let polled =
            crate::waker::polling_with(cx, |cx| catch_unwind(AssertUnwindSafe(|| future.poll(cx))));
        let out = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(TaskError::Panicked {
                message: weft_sync::into_panic_message(payload),
            }),
        };
        let outcome = finish(this.future, out);
        if let Some(completer) = this.completer.take() {
            completer.complete(outcome);
        }
        Poll::Ready(())
    }
}

/// A handle to a task of a multi-threaded runtime (Python's
/// `asyncio.Task`), as the single-threaded [`Task`](crate::Task):
///
/// * **Await it** for `Ok(output)`, `Err(`[`TaskError::Panicked`]`)` if the
///   task panicked (the worker carries on), or
///   `Err(`[`TaskError::Cancelled`]`)` if the runtime was dropped first.
/// * **Block on it** from a plain thread with [`join`](Task::join).
/// * **Drop it** to cancel the task; [`detach`](Task::detach) it to let it
///   run on unobserved.
///
/// ```
/// weft_async::multi::run(async {
///     let task = weft_async::multi::spawn(async { panic!("boom") });
///     let err: Result<(), _> = task.await;
///     assert_eq!(err.unwrap_err().to_string(), "the task panicked: boom");
/// });
/// ```
#[must_use = "dropping a Task cancels it; call .detach() to let it run in the background"]
pub struct Task<T> {
    inner: Option<async_task::FallibleTask<Outcome<T>>>,
    /// The waker handed to `async-task` for a user's waker (made on demand).
    guard: Option<Box<crate::waker::Guard>>,
}

impl<T> Unpin for Task<T> {}

impl<T> Task<T> {
    /// Whether the task has finished (returned, panicked or been cancelled):
    /// awaiting it returns at once.
    pub fn is_finished(&self) -> bool {
        self.inner.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Cancels the task and waits until its future has been dropped. Returns
    /// `Some(outcome)` if it had finished already, `None` if this call
    /// cancelled it.
    ///
    /// ```
    /// use std::time::Duration;
    /// weft_async::multi::run(async {
    ///     let slow = weft_async::multi::spawn(weft_async::multi::sleep(Duration::from_secs(3600)));
    ///     assert_eq!(slow.cancel().await, None);
    /// });
    /// ```
    pub async fn cancel(mut self) -> Option<Result<T, TaskError>> {
        let inner = self.inner.take()?;
        inner.cancel().await.and_then(|mut o| o.0.take())
    }

    /// Lets the task run to completion in the background, without a handle.
    /// (A panic in it is reported by the standard panic hook as it
    /// happens, and goes no further.)
    pub fn detach(mut self) {
        if let Some(inner) = self.inner.take() {
            inner.detach();
        }
    }

    /// Blocks this thread until the task finishes and returns its outcome.
    ///
    /// Meant for plain threads: on a worker thread, or in a task, await the
    /// task instead (blocking there stalls that worker).
    ///
    /// ```
    /// let rt = weft_async::multi::Runtime::builder().threads(1).build().unwrap();
    /// assert_eq!(rt.spawn(async { 7 }).join(), Ok(7));
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        futures_lite::future::block_on(trusted(self))
    }

    /// Like [`join`](Task::join), giving up after `timeout`: then the task
    /// goes on and comes back as `Err(task)`.
    pub fn join_timeout(mut self, timeout: Duration) -> Result<Result<T, TaskError>, Task<T>> {
        let out = async_io::block_on(trusted(crate::time::timeout(timeout, &mut self)));
        out.map_err(|_| self)
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(TaskError::Cancelled));
        };
        let waker = if crate::waker::is_trusted(cx.waker()) {
            cx.waker()
        } else {
            this.guard.get_or_insert_default().guard(cx.waker())
        };
        match Pin::new(inner).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(out) => {
                this.inner = None;
                Poll::Ready(
                    out.and_then(|mut o| o.0.take())
                        .unwrap_or(Err(TaskError::Cancelled)),
                )
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A group of tasks that succeed together or fail together (Python's
/// `asyncio.TaskGroup`), for the multi-threaded flavour.
///
/// Unlike the single-threaded [`TaskGroup`](crate::TaskGroup), whose
/// children are polled by the awaiting task, each child here is a task of
/// the runtime: it starts at [`spawn`](TaskGroup::spawn) and runs in
/// parallel with its siblings, so it must be `Send + 'static`.
/// [`join`](TaskGroup::join) waits for all of them and returns their values
/// in spawn order; the first child to fail (return `Err` or panic) cancels
/// the others, and `join` returns that failure. Dropping the group cancels
/// the children still running.
///
/// ```
/// use std::time::Duration;
/// use weft_async::multi::{self, GroupError, TaskGroup};
/// multi::run(async {
///     let mut group = TaskGroup::new();
///     for n in [3u64, 1, 2] {
///         group.spawn(async move { multi::sleep(Duration::from_millis(n)).await; Ok::<_, String>(n) });
///     }
///     assert_eq!(group.join().await, Ok(vec![3, 1, 2]));
///
///     let mut group = TaskGroup::new();
///     group.spawn(async { multi::sleep(Duration::from_secs(3600)).await; Ok(1) }); // cancelled
///     group.spawn(async { Err("no route to host".to_string()) });
///     assert_eq!(
///         group.join().await,
///         Err(GroupError::Failed { index: 1, error: "no route to host".to_string() })
///     );
/// });
/// ```
pub struct TaskGroup<T, E> {
    tasks: Vec<Task<Result<T, E>>>,
}

impl<T, E> Default for TaskGroup<T, E> {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl<T, E> fmt::Debug for TaskGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("children", &self.tasks.len())
            .finish()
    }
}

impl<T, E> TaskGroup<T, E> {
    /// An empty group.
    pub fn new() -> Self {
        TaskGroup { tasks: Vec::new() }
    }

    /// Spawns a child onto the runtime running this code (Python's
    /// `tg.create_task(coro)`); its spawn index is its place in `join`'s
    /// output and in a [`GroupError`].
    ///
    /// # Panics
    ///
    /// Outside a multi-threaded runtime (as [`spawn`]).
    pub fn spawn<F>(&mut self, future: F)
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.tasks.push(spawn(future));
    }

    /// Adds a task spawned elsewhere (say, through a [`Handle::spawn_task`]).
    pub fn insert(&mut self, task: Task<Result<T, E>>) {
        self.tasks.push(task);
    }

    /// How many children have been spawned.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no child has been spawned.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for every child and returns their values in spawn order, or the
    /// first failure, after cancelling the children still running. A child
    /// that the runtime cancelled (it was dropped) counts as
    /// [`GroupError::Panicked`] with the cancellation's message.
    pub async fn join(self) -> Result<Vec<T>, GroupError<E>> {
        let mut children = Children::new(self.tasks);
        let mut results: Vec<Option<T>> = (0..children.len()).map(|_| None).collect();
        let mut failure: Option<GroupError<E>> = None;
        std::future::poll_fn(|cx| {
            let poll = children.poll_children(
                cx,
                |task, cx| task.poll(cx),
                |index, outcome| {
                    let error = match outcome {
                        Ok(Ok(v)) => {
                            results[index] = Some(v);
                            return Next::Continue;
                        }
                        Ok(Err(error)) => GroupError::Failed { index, error },
                        Err(TaskError::Panicked { message }) => {
                            GroupError::Panicked { index, message }
                        }
                        Err(other) => GroupError::Panicked {
                            index,
                            message: other.to_string(),
                        },
                    };
                    failure = Some(error);
                    Next::Stop
                },
            );
            if failure.is_some() {
                Poll::Ready(())
            } else {
                poll
            }
        })
        .await;
        // Cancel the siblings now, before returning.
        drop(children);
        match failure {
            Some(e) => Err(e),
            None => Ok(results
                .into_iter()
                .map(|r| r.expect("TaskGroup: every child produced a value"))
                .collect()),
        }
    }
}

/// A set of tasks whose results are taken in the order they finish
/// (tokio's `JoinSet`; Python's `asyncio.wait(.., FIRST_COMPLETED)` in a
/// loop), for the multi-threaded flavour: the single-threaded
/// [`TaskSet`](crate::TaskSet)'s surface, over [`Task`]s that run in
/// parallel on the workers.
///
/// The set may grow while results are taken; a failure stops nothing.
/// Dropping the set cancels the tasks still in it;
/// [`detach_all`](TaskSet::detach_all) lets them run on. It is `Send` when
/// `T` is, so a task may own one.
///
/// ```
/// use std::sync::Arc;
/// use weft_async::multi::{self, TaskSet};
/// use weft_sync::Event;
/// multi::run(async {
///     let mut set = TaskSet::new();
///     let gate = Arc::new(Event::new());
///     let g = gate.clone();
///     set.spawn(async move { g.wait_async().await; "waited" });
///     set.spawn(async { "at once" });
///     assert_eq!(set.join_next().await, Some(Ok("at once"))); // finished first
///     gate.set();
///     assert_eq!(set.join_next().await, Some(Ok("waited")));
///     assert_eq!(set.join_next().await, None); // empty
/// });
/// ```
pub struct TaskSet<T> {
    tasks: TaskSlots<Task<T>>,
    next_id: u64,
}

impl<T> Default for TaskSet<T> {
    fn default() -> Self {
        TaskSet::new()
    }
}

impl<T> fmt::Debug for TaskSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSet").field("len", &self.len()).finish()
    }
}

impl<T> TaskSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        TaskSet {
            tasks: TaskSlots::new(),
            next_id: 0,
        }
    }

    /// Spawns `future` on the multi-threaded runtime running this code (as
    /// [`spawn`]) and adds it to the set; returns its id in the set (0, 1,
    /// 2, ... in the order added).
    ///
    /// # Panics
    ///
    /// Outside a multi-threaded runtime; [`try_spawn`](TaskSet::try_spawn)
    /// says [`Error::NoRuntime`] instead.
    pub fn spawn<F>(&mut self, future: F) -> u64
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.insert(spawn(future))
    }

    /// Like [`spawn`](TaskSet::spawn), or [`Error::NoRuntime`].
    pub fn try_spawn<F>(&mut self, future: F) -> Result<u64, Error>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        Ok(self.insert(try_spawn(future)?))
    }

    /// Adds a task spawned elsewhere (for example with
    /// [`Handle::spawn_task`]); returns its id in the set.
    pub fn insert(&mut self, task: Task<T>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.tasks.push(task, id);
        id
    }

    /// How many tasks are in the set (finished ones stay until taken).
    pub fn len(&self) -> usize {
        self.tasks.left()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits for the next task to finish and takes its outcome out of the
    /// set; `None` when the set is empty. Cancel-safe.
    pub async fn join_next(&mut self) -> Option<Result<T, TaskError>> {
        self.join_next_with_id().await.map(|(_, outcome)| outcome)
    }

    /// Like [`join_next`](TaskSet::join_next), with the task's id in the set.
    pub async fn join_next_with_id(&mut self) -> Option<(u64, Result<T, TaskError>)> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// Polls for the next finished task: `Ready(None)` when the set is empty.
    pub fn poll_join_next(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(u64, Result<T, TaskError>)>> {
        self.tasks.poll_next(cx)
    }

    /// Cancels every task in the set (a task running on another worker
    /// finishes the poll it is in) and empties it.
    pub fn cancel_all(&mut self) {
        drop(self.tasks.drain());
    }

    /// Cancels every task in the set and waits until their futures have
    /// been dropped.
    pub async fn shutdown(&mut self) {
        for task in self.tasks.drain() {
            let _ = Pin::into_inner(task).cancel().await;
        }
    }

    /// Lets every task in the set run on in the background, and empties it.
    pub fn detach_all(&mut self) {
        for task in self.tasks.drain() {
            Pin::into_inner(task).detach();
        }
    }
}

/// Protects `future` from cancellation (Python's `asyncio.shield`), on the
/// multi-threaded flavour: it runs as a task of its own, and if the
/// returned [`Shielded`] is dropped (its caller cancelled, a
/// [`timeout`] ran out) the task runs on to completion instead of being
/// cancelled with it. The runtime still cancels it if it is dropped first.
///
/// # Panics
///
/// Outside a multi-threaded runtime (as [`spawn`]).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft_async::multi::{self, shield, timeout};
/// use weft_sync::Event;
/// multi::run(async {
///     let (go, saved) = (Arc::new(Event::new()), Arc::new(Event::new()));
///     let (g, s) = (go.clone(), saved.clone());
///     let write = shield(async move {
///         g.wait_async().await;
///         s.set(); // must not be cut short
///     });
///     assert!(timeout(Duration::from_millis(1), write).await.is_err()); // the caller gives up
///     go.set();
///     saved.wait_async().await; // the shielded work did not
/// });
/// ```
pub fn shield<F>(future: F) -> Shielded<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Shielded {
        task: Some(spawn(future)),
    }
}

/// The future of [`shield`]: the task's outcome; dropping it detaches the
/// task instead of cancelling it.
#[must_use = "futures do nothing unless awaited; the shielded task runs either way"]
pub struct Shielded<T> {
    task: Option<Task<T>>,
}

impl<T> fmt::Debug for Shielded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shielded")
            .field(
                "finished",
                &self.task.as_ref().is_none_or(Task::is_finished),
            )
            .finish()
    }
}

impl<T> Future for Shielded<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(task) = this.task.as_mut() else {
            return Poll::Ready(Err(TaskError::Cancelled));
        };
        let out = Pin::new(task).poll(cx);
        if out.is_ready() {
            this.task = None;
        }
        out
    }
}

impl<T> Drop for Shielded<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}
