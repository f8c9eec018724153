//! # weft
//!
//! Python's multitasking toolkit — threads, processes, async/await and the
//! locks that keep them correct — rebuilt in Rust as small crates and
//! re-exported here under one roof.
//!
//! | Module | Crate | Python | Use it for |
//! |--------|-------|--------|------------|
//! | [`sync`] | `weft-sync` | `threading` locks, `queue`, `concurrent.futures.Future` | sharing state safely; the task handle every engine returns |
//! | [`pool`] (also [`thread`]) | `weft-pool` | `ThreadPoolExecutor`, `threading.Thread` (and rayon's `par_iter`) | CPU-bound work on all cores; blocking I/O in parallel |
//! | `process` (Unix) | `weft-process` | `multiprocessing.Process`, `Pipe`, `Queue`, `Pool`, `ProcessPoolExecutor` | isolation: code that may crash, hang or leak; channels between processes |
//! | `cluster` (Unix, feature `cluster`) | `weft-cluster` | Celery workers | the process pool across machines, on NATS JetStream |
//! | [`aio`] | `weft-async` | `asyncio` | many concurrent waits (sockets, timers, subprocesses, signals) on one thread, or on N threads (`aio::multi`) |
//! | [`prelude`] | | | the names most programs need |
//!
//! The engines meet in [`sync::TaskHandle`]: a thread-pool or process-pool
//! task can be awaited in async code, and an async task waited on from a
//! thread. Rust threads are not held back by a GIL: for CPU-bound work a
//! thread pool scales across cores, and processes are for isolation, not
//! for speed. `docs/guide.md` says which engine to pick, with the numbers of
//! `cargo run --release -p weft --example tour`.
//!
//! ## Python -> weft
//!
//! The full map, with a runnable example for every row, is the
//! [`python_guide`] page (also `docs/python.md`).
//!
//! | Python | weft |
//! |--------|------|
//! | `threading.Thread(target=f).start()` | `weft::pool::spawn(f)` (or `std::thread::spawn`) |
//! | `ThreadPoolExecutor(4).submit(f)` | `ThreadPool::new(4)?.spawn(f)?` |
//! | `executor.map(f, xs)` | `pool.map(f, xs, chunk_size)` |
//! | rayon's `xs.par_iter().map(f).sum()` | the same, with `use weft::prelude::*;` |
//! | `multiprocessing.Pool(4).map(f, xs)` | `ProcessPool::builder().processes(4).build()?.map(f, xs)` |
//! | `Process(target=f, args=(x,)).start()` / `.join()` | `let p = weft::process::Process::spawn(f, x)?;` / `p.join()` |
//! | `asyncio.run(main())` | `weft::aio::run(main())` |
//! | `asyncio.gather(a, b)` | `weft::aio::gather!(a, b)` |
//! | `asyncio.to_thread(f)` | `weft::aio::to_thread(f).await` |
//! | `asyncio.Runner()` / `run_coroutine_threadsafe` | `weft::aio::Runtime::new()` / `weft::aio::Handle::spawn` |
//! | `threading.Lock()` | `weft::sync::Mutex::new(data)` |
//! | `queue.Queue()` | `weft::sync::Queue::unbounded()` |
//! | `queue.PriorityQueue()` / `LifoQueue()` | `weft::sync::PriorityQueue::unbounded()` / `LifoQueue::unbounded()` |
//! | `threading.Timer(1.0, f).start()` | `weft::sync::Timer::start(Duration::from_secs(1), f)` |
//!
//! ```
//! use weft::prelude::*;
//!
//! // Threads: a pool and a lock.
//! let pool = ThreadPool::new(2).unwrap();
//! let counter = Mutex::new(0);
//! pool.scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|_| *counter.lock() += 1);
//!     }
//! });
//! assert_eq!(*counter.lock(), 4);
//!
//! // Data parallelism with rayon's names.
//! let squares: u64 = (1..=100u64).into_par_iter().map(|x| x * x).sum();
//! assert_eq!(squares, 338_350);
//!
//! // Async: a pool task awaited inside the async runtime.
//! let answer = weft::aio::run(async { weft::aio::to_thread(|| 6 * 7).await });
//! assert_eq!(answer, Ok(42));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// Locks, semaphores, events, barriers, queues and the task handle: the
/// `weft-sync` crate.
pub use weft_sync as sync;

/// The work-stealing thread pool: the `weft-pool` crate.
pub use weft_pool as pool;

/// Python's `threading` / `ThreadPoolExecutor` name for [`pool`]: the same
/// crate, `weft-pool`.
pub use weft_pool as thread;

/// Processes, pipes and queues between them, and the process pool: the
/// `weft-process` crate (Unix).
#[cfg(unix)]
pub use weft_process as process;

/// The process pool across machines, on NATS JetStream: the `weft-cluster`
/// crate (Unix, behind the `cluster` feature).
#[cfg(all(unix, feature = "cluster"))]
pub use weft_cluster as cluster;

/// The single-threaded async runtime (`weft-async`), plus [`aio::to_thread`],
/// which needs the thread pool and so lives here.
pub mod aio {
    pub use weft_async::*;

    use weft_sync::TaskHandle;

    /// Runs blocking `f` on weft-pool's global pool and returns its handle,
    /// to `.await` inside async code (Python's `asyncio.to_thread`).
    ///
    /// The work starts at once, whether or not the handle is awaited;
    /// a panic in `f` comes back as [`TaskError::Panicked`].
    ///
    /// ```
    /// let len = weft::aio::run(async {
    ///     weft::aio::to_thread(|| std::fs::read_to_string("Cargo.toml").map(|s| s.len())).await
    /// });
    /// assert!(len.unwrap().unwrap() > 0);
    /// ```
    pub fn to_thread<F, T>(f: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        weft_pool::spawn(f)
    }
}

/// The names most programs need, in one import: `use weft::prelude::*;`.
pub mod prelude {
    pub use weft_pool::iter::prelude::*;
    pub use weft_pool::{ShutdownMode, ThreadPool};
    #[cfg(unix)]
    pub use weft_process::{Process, ProcessPool};
    pub use weft_sync::{
        Barrier, BoundedSemaphore, Condition, Event, LifoQueue, Lock, Mutex, PriorityQueue, Queue,
        RLock, ReturnWhen, Semaphore, SimpleQueue, TaskError, TaskHandle, Timer, as_completed,
        wait,
    };
}

#[doc = include_str!("../python.md")]
pub mod python_guide {}
