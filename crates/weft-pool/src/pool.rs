//! [`ThreadPool`] and its builder.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use weft_sync::{TaskError, TaskHandle};

use crate::broadcast::BroadcastContext;
use crate::job::{SpawnJob, drop_quietly};
use crate::registry::{self, Config, Hook, Registry, WorkerThread};
use crate::scope::{Scope, ScopeFifo, scope_in_worker};
use crate::{PoolError, map};

/// How [`ThreadPool::shutdown`] treats work that has not started yet
/// (Python's `shutdown(wait=True, cancel_futures=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Run everything already queued, then stop (`cancel_futures=False`).
    Wait,
    /// Report every queued [`spawn`](ThreadPool::spawn)ed task that has not
    /// started as [`TaskError::Cancelled`] without running it, finish the
    /// running ones, then stop (`cancel_futures=True`).
    CancelPending,
}

/// Configures and starts a [`ThreadPool`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let s = started.clone();
/// let pool = weft_pool::ThreadPool::builder()
///     .num_threads(2)
///     .thread_name(|i| format!("cruncher-{i}"))
///     .stack_size(1 << 20)
///     .start_handler(move |_| { s.fetch_add(1, Ordering::SeqCst); })
///     .build()?;
/// pool.broadcast(|_| ())?; // every worker has started once this returns
/// assert_eq!(started.load(Ordering::SeqCst), 2);
///
/// assert!(weft_pool::ThreadPool::builder().num_threads(0).build().is_err());
/// # Ok::<(), weft_pool::PoolError>(())
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ThreadPoolBuilder {
    num_threads: Option<usize>,
    thread_name: Option<Box<dyn FnMut(usize) -> String>>,
    stack_size: Option<usize>,
    start_handler: Option<Hook>,
    exit_handler: Option<Hook>,
}

impl std::fmt::Debug for ThreadPoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPoolBuilder")
            .field("num_threads", &self.num_threads)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

impl Default for ThreadPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ThreadPoolBuilder {
    /// A builder with the defaults: one thread per available core, threads
    /// named `weft-pool-<index>`, the platform's stack size, no hooks.
    pub fn new() -> Self {
        ThreadPoolBuilder {
            num_threads: None,
            thread_name: None,
            stack_size: None,
            start_handler: None,
            exit_handler: None,
        }
    }

    /// The number of worker threads (Python's `max_workers`). Zero, and
    /// more than [`MAX_THREADS`](Self::MAX_THREADS), are refused by
    /// [`build`](Self::build).
    pub fn num_threads(mut self, n: usize) -> Self {
        self.num_threads = Some(n);
        self
    }

    /// Names worker `index` with `name(index)` (called on the thread that
    /// calls [`build`](Self::build)). A name with a NUL byte, or a panic in
    /// `name`, makes `build` fail, with no worker left running.
    pub fn thread_name(mut self, name: impl FnMut(usize) -> String + 'static) -> Self {
        self.thread_name = Some(Box::new(name));
        self
    }

    /// The stack size of each worker, in bytes. Zero, and less than
    /// [`MIN_STACK_SIZE`](Self::MIN_STACK_SIZE), are refused by
    /// [`build`](Self::build); a size the operating system cannot give (say
    /// `usize::MAX`) makes it fail with [`PoolError::ThreadSpawn`].
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Runs `f(index)` on each worker thread when it starts (Python's
    /// `initializer`); [`build`](Self::build) returns once every worker
    /// has run it (so a hook must not wait for something done after
    /// `build`). A panic in it breaks the pool, as in Python
    /// (`BrokenThreadPool`): it is reported on stderr, and every later
    /// [`spawn`](ThreadPool::spawn) and [`broadcast`](ThreadPool::broadcast)
    /// returns [`PoolError::Broken`] with its message. The workers stay
    /// alive, so work already inside the pool (and `install`, `join`,
    /// `scope`) still runs, and the pool shuts down normally.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::builder()
    ///     .num_threads(1)
    ///     .start_handler(|_| panic!("no database"))
    ///     .build()?;
    /// let err = pool.spawn(|| ()).unwrap_err();
    /// assert!(err.to_string().contains("no database"));
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn start_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.start_handler = Some(Arc::new(f));
        self
    }

    /// Runs `f(index)` on each worker thread just before it exits (also when
    /// [`build`](Self::build) fails after starting some workers: those are
    /// stopped and their exit hooks run). A panic in it is reported on stderr
    /// and ignored.
    pub fn exit_handler(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.exit_handler = Some(Arc::new(f));
        self
    }

    /// The most threads one pool may have (that of Java's `ForkJoinPool`).
    /// The pool's per-worker queues are made before its threads start, so
    /// an absurd count would exhaust memory before the operating system got
    /// a chance to refuse the threads.
    pub const MAX_THREADS: usize = 0x7fff;

    /// The smallest stack size [`stack_size`](Self::stack_size) accepts:
    /// what a worker's own frames, a `join` and a caught panic (with a
    /// backtrace) need in a debug build, twice over. A smaller stack would
    /// overflow, which aborts the whole process.
    pub const MIN_STACK_SIZE: usize = 64 * 1024;

    fn config(self) -> Result<Config, PoolError> {
        let num_threads = match self.num_threads {
            Some(0) => return Err(PoolError::ZeroThreads),
            Some(n) if n > Self::MAX_THREADS => {
                return Err(PoolError::TooManyThreads {
                    requested: n,
                    max: Self::MAX_THREADS,
                });
            }
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(Self::MAX_THREADS),
        };
        match self.stack_size {
            Some(0) => return Err(PoolError::ZeroStackSize),
            Some(n) if n < Self::MIN_STACK_SIZE => {
                return Err(PoolError::StackTooSmall {
                    requested: n,
                    min: Self::MIN_STACK_SIZE,
                });
            }
            _ => {}
        }
        Ok(Config {
            num_threads,
            thread_name: Some(
                self.thread_name
                    .unwrap_or_else(|| Box::new(|i| format!("weft-pool-{i}"))),
            ),
            stack_size: self.stack_size,
            start_handler: self.start_handler,
            exit_handler: self.exit_handler,
        })
    }

    /// Starts the pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::ZeroThreads`], [`PoolError::TooManyThreads`],
    /// [`PoolError::ZeroStackSize`] or [`PoolError::StackTooSmall`] for a
    /// bad setting;
    /// [`PoolError::InvalidThreadName`] or [`PoolError::ThreadNamePanicked`]
    /// if the `thread_name` closure gave no usable name;
    /// [`PoolError::ThreadSpawn`] if the OS refuses a thread. In every case
    /// the workers started before the failure have been stopped (their exit
    /// hooks ran) and joined when `build` returns.
    ///
    /// ```
    /// use weft_pool::{PoolError, ThreadPool};
    ///
    /// let e = ThreadPool::builder().num_threads(usize::MAX).build().unwrap_err();
    /// assert!(matches!(e, PoolError::TooManyThreads { .. }));
    /// let e = ThreadPool::builder()
    ///     .num_threads(2)
    ///     .thread_name(|i| if i == 0 { "ok".into() } else { "bad\0name".into() })
    ///     .build()
    ///     .unwrap_err();
    /// assert!(matches!(e, PoolError::InvalidThreadName { index: 1, .. }));
    /// let e = ThreadPool::builder().stack_size(usize::MAX).build().unwrap_err();
    /// assert!(matches!(e, PoolError::ThreadSpawn { .. }));
    /// ```
    pub fn build(self) -> Result<ThreadPool, PoolError> {
        let config = self.config()?;
        let registry = Registry::new(config)?;
        Ok(ThreadPool {
            registry,
            no_wait_on_drop: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Starts the pool and makes it the global pool used by the free
    /// functions ([`crate::join`], [`crate::scope`], [`crate::spawn`]).
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build), and [`PoolError::GlobalAlreadyInitialized`]
    /// if the global pool already exists.
    pub fn build_global(self) -> Result<(), PoolError> {
        if crate::GLOBAL.get().is_some() {
            return Err(PoolError::GlobalAlreadyInitialized);
        }
        let pool = self.build()?;
        crate::GLOBAL
            .set(pool)
            .map_err(|_| PoolError::GlobalAlreadyInitialized)
    }
}

/// A work-stealing thread pool: Python's `ThreadPoolExecutor` and rayon's
/// fork/join in one.
///
/// Dropping it finishes the queued work and joins the threads (as
/// [`shutdown`](Self::shutdown) with [`ShutdownMode::Wait`]).
///
/// ```
/// let pool = weft_pool::ThreadPool::new(2)?;
/// let handle = pool.spawn(|| 6 * 7)?;
/// assert_eq!(handle.join(), Ok(42));
/// let (a, b) = pool.join(|| 1 + 1, || 2 + 2);
/// assert_eq!((a, b), (2, 4));
/// assert_eq!(pool.map(|x: u32| x * x, 1..=4, 0), [1, 4, 9, 16]);
/// # Ok::<(), weft_pool::PoolError>(())
/// ```
pub struct ThreadPool {
    pub(crate) registry: Arc<Registry>,
    /// Set by `shutdown_nowait`: dropping the pool does not join.
    no_wait_on_drop: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("num_threads", &self.num_threads())
            .field("shut_down", &self.is_shutdown())
            .finish()
    }
}

impl ThreadPool {
    /// A pool of `num_threads` workers with default settings
    /// (`ThreadPoolExecutor(max_workers=n)`).
    ///
    /// # Errors
    ///
    /// As [`ThreadPoolBuilder::build`]; zero threads is an error.
    pub fn new(num_threads: usize) -> Result<ThreadPool, PoolError> {
        ThreadPoolBuilder::new().num_threads(num_threads).build()
    }

    /// A builder to configure a pool.
    pub fn builder() -> ThreadPoolBuilder {
        ThreadPoolBuilder::new()
    }

    /// The number of worker threads.
    pub fn num_threads(&self) -> usize {
        self.registry.num_threads()
    }

    /// The index of the current thread in this pool, if it is one of its
    /// workers.
    pub fn current_thread_index(&self) -> Option<usize> {
        WorkerThread::current()
            .filter(|w| Arc::ptr_eq(w.registry(), &self.registry))
            .map(|w| w.index())
    }

    /// Whether [`shutdown`](Self::shutdown) has been called.
    pub fn is_shutdown(&self) -> bool {
        self.registry.is_closed()
    }

    /// Submits `f` to run on the pool and returns its handle (Python's
    /// `executor.submit(f)`). Join the handle, `.await` it in any executor,
    /// or cancel it before it starts. A panic in `f` is reported as
    /// [`TaskError::Panicked`] and leaves the worker alive.
    ///
    /// Joining a handle blocks the calling thread without running other
    /// work (so a task holding a lock is never handed unrelated work while
    /// it waits). As with Python's executor, a task that waits for a task
    /// queued behind it can therefore deadlock a pool whose workers are all
    /// busy waiting; prefer [`join`](Self::join) or [`scope`](Self::scope)
    /// for work that waits on work.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(1)?;
    /// let h = pool.spawn(|| panic!("oops"))?;
    /// assert!(matches!(h.join(), Err(weft_sync::TaskError::Panicked { .. })));
    /// pool.shutdown(weft_pool::ShutdownMode::Wait);
    /// assert!(pool.spawn(|| ()).is_err());
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`PoolError::ShutDown`] after [`shutdown`](Self::shutdown);
    /// [`PoolError::Broken`] if a worker's start hook panicked (Python's
    /// `BrokenThreadPool`).
    pub fn spawn<F, T>(&self, f: F) -> Result<TaskHandle<T>, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if let Some(message) = self.registry.broken() {
            return Err(PoolError::Broken {
                message: message.to_owned(),
            });
        }
        spawn_on(&self.registry, f).map_err(|_| PoolError::ShutDown)
    }

    /// [`spawn`](Self::spawn) under rayon's name for a task queued in
    /// first-in, first-out order: weft's spawned tasks already are (each
    /// submitting thread's tasks start in the order it submitted them), so
    /// this is the same call.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(1)?;
    /// let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    /// let handles: Vec<_> = (0..5)
    ///     .map(|i| {
    ///         let order = order.clone();
    ///         pool.spawn_fifo(move || order.lock().unwrap().push(i))
    ///     })
    ///     .collect::<Result<_, _>>()?;
    /// for h in handles {
    ///     h.join().unwrap();
    /// }
    /// assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    pub fn spawn_fifo<F, T>(&self, f: F) -> Result<TaskHandle<T>, PoolError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.spawn(f)
    }

    /// Runs `a` and `b`, potentially in parallel, and returns both results
    /// (rayon's `join`). `a` runs on the current worker (the call moves into
    /// the pool first if made from outside it); `b` is offered to idle
    /// workers (see [`crate::join`]). A panic in either is resumed here once
    /// both are done.
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        match WorkerThread::current() {
            Some(w) if Arc::ptr_eq(w.registry(), &self.registry) => {
                registry::join_in_worker(w, a, b)
            }
            _ => self.install(|| crate::join(a, b)),
        }
    }

    /// Runs `op` with a [`Scope`] in which tasks borrowing the caller's
    /// data can be spawned; returns once all of them have finished. The first
    /// panic (of `op` or of a task) is resumed here.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(2)?;
    /// let mut halves = [0u64; 2];
    /// let (lo, hi) = halves.split_at_mut(1);
    /// pool.scope(|s| {
    ///     s.spawn(|_| lo[0] = (0..50u64).sum());
    ///     s.spawn(|_| hi[0] = (50..100u64).sum());
    /// });
    /// assert_eq!(halves[0] + halves[1], 4950);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R + Send,
        R: Send,
    {
        self.install(|| {
            let w = WorkerThread::current();
            match w {
                Some(w) => scope_in_worker(w, op),
                // The pool is shut down and `install` ran us here.
                None => crate::scope(op),
            }
        })
    }

    /// [`scope`](Self::scope) under rayon's name for a scope whose tasks
    /// are spawned with [`Scope::spawn_fifo`] (first in, first out).
    pub fn scope_fifo<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
        R: Send,
    {
        self.scope(op)
    }

    /// A scope whose body `op` runs right here, on the calling thread,
    /// while its spawned tasks run on this pool (rayon's `in_place_scope`).
    /// Unlike [`scope`](Self::scope), the body does not take a worker, so
    /// it may block waiting for its own tasks even on a one-thread pool.
    /// Returns once every task spawned in it has finished; the first panic
    /// (of `op` or of a task) is resumed here. Called on one of this pool's
    /// workers it is [`scope`](Self::scope).
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(1)?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let got = pool.in_place_scope(|s| {
    ///     s.spawn(move |_| tx.send(42).unwrap());
    ///     // Blocks the calling thread, not the pool's only worker.
    ///     rx.recv().unwrap()
    /// });
    /// assert_eq!(got, 42);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn in_place_scope<'scope, OP, R>(&self, op: OP) -> R
    where
        OP: FnOnce(&Scope<'scope>) -> R,
    {
        match WorkerThread::current() {
            Some(w) if Arc::ptr_eq(w.registry(), &self.registry) => scope_in_worker(w, op),
            _ => crate::scope::scope_in_place(&self.registry, op),
        }
    }

    /// Runs `f` on a worker of this pool and returns its result; calls
    /// made inside `f` (`join`, `scope`, [`crate::spawn`]) use this pool.
    /// After shutdown, `f` runs on the calling thread.
    ///
    /// Called from a worker of another pool, that worker waits for `f`
    /// and meanwhile runs the `install` jobs other pools' workers send to
    /// its own pool (nothing else), so that opposite cross-pool chains
    /// cannot block each other; a task that holds a lock across such an
    /// `install` may therefore see one of those jobs run on its thread.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(2)?;
    /// let idx = pool.install(|| weft_pool::current_thread_index());
    /// assert!(idx.unwrap() < 2);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn install<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        if self.registry.is_current_worker() {
            f()
        } else {
            registry::install_from_outside(&self.registry, f)
        }
    }

    /// Applies `f` to every item in parallel and returns the results in
    /// input order (Python's `executor.map(f, items, chunksize=...)`). Items
    /// are processed in chunks of `chunk_size` (0 picks one). A panic in `f`
    /// is resumed here. The results are written in place into a `Vec`
    /// allocated on the calling thread (warm memory from its heap, rather
    /// than fresh pages from a worker's arena).
    pub fn map<T, R, F, I>(&self, f: F, items: I, chunk_size: usize) -> Vec<R>
    where
        I: IntoIterator<Item = T>,
        T: Send,
        R: Send,
        F: Fn(T) -> R + Sync + Send,
    {
        let items: Vec<T> = items.into_iter().collect();
        let chunk = if chunk_size == 0 {
            auto_chunk(items.len(), self.num_threads())
        } else {
            chunk_size
        };
        map::par_map(self, items, chunk, &f)
    }

    /// [`map`](Self::map) over a borrowed slice: no copy of the input is
    /// made, and `f` gets each item by reference.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(2)?;
    /// let v: Vec<u64> = (0..1000).collect();
    /// let doubled = pool.map_slice(|x| x * 2, &v, 0);
    /// assert_eq!(doubled[999], 1998);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn map_slice<T, R, F>(&self, f: F, items: &[T], chunk_size: usize) -> Vec<R>
    where
        T: Sync,
        R: Send,
        F: Fn(&T) -> R + Sync + Send,
    {
        let chunk = if chunk_size == 0 {
            auto_chunk(items.len(), self.num_threads())
        } else {
            chunk_size
        };
        map::par_map_slice(self, items, chunk, &f)
    }

    /// Applies `f` to every item in parallel and yields the results as their
    /// chunks finish (Python's `imap_unordered`). Each chunk of `chunk_size`
    /// items (0 picks a size) is one task; a panic in `f` is resumed by the
    /// iterator when it reaches that chunk. Dropping the iterator early
    /// cancels the chunks that have not started. After shutdown the work
    /// runs on the calling thread.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(2)?;
    /// let mut out: Vec<u32> = pool.map_unordered(|x: u32| x + 1, 0..10, 3).collect();
    /// out.sort();
    /// assert_eq!(out, (1..=10).collect::<Vec<_>>());
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn map_unordered<T, R, F, I>(&self, f: F, items: I, chunk_size: usize) -> MapUnordered<R>
    where
        I: IntoIterator<Item = T>,
        T: Send + 'static,
        R: Send + 'static,
        F: Fn(T) -> R + Send + Sync + 'static,
    {
        let items: Vec<T> = items.into_iter().collect();
        let chunk = if chunk_size == 0 {
            auto_chunk(items.len(), self.num_threads()).max(64)
        } else {
            chunk_size
        };
        let f = Arc::new(f);
        let (tx, rx) = mpsc::channel();
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut pending = 0;
        let mut items = items.into_iter();
        loop {
            let part: Vec<T> = items.by_ref().take(chunk).collect();
            if part.is_empty() {
                break;
            }
            pending += 1;
            let (f, tx, dropped) = (Arc::clone(&f), tx.clone(), Arc::clone(&dropped));
            let job = move || {
                if dropped.load(Ordering::Acquire) {
                    // The iterator was dropped before this chunk started:
                    // nobody wants its results, so `f` is not run.
                    drop_quietly(part);
                    return;
                }
                let r = catch_unwind(AssertUnwindSafe(|| {
                    part.into_iter().map(|x| f(x)).collect()
                }));
                // Nobody listens any more (the iterator was dropped): the
                // results (or the panic) are dropped here, on the worker.
                if let Err(mpsc::SendError(r)) = tx.send(r) {
                    drop_quietly(r);
                }
            };
            if let Err(job) = registry::spawn_job(&self.registry, job) {
                job();
            }
        }
        MapUnordered {
            rx,
            pending,
            buf: Vec::new().into_iter(),
            dropped,
        }
    }

    /// Runs `f` once on every worker and returns the results by worker
    /// index. A panic in any call is resumed here once all are done.
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(3)?;
    /// let ids = pool.broadcast(|ctx| ctx.index())?;
    /// assert_eq!(ids, [0, 1, 2]);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    ///
    /// Each worker runs its call when it is idle, so calling this from
    /// inside a task while another worker waits on that task can deadlock;
    /// call it from outside the pool.
    ///
    /// # Errors
    ///
    /// [`PoolError::ShutDown`] after [`shutdown`](Self::shutdown);
    /// [`PoolError::Broken`] if a worker's start hook panicked.
    pub fn broadcast<F, R>(&self, f: F) -> Result<Vec<R>, PoolError>
    where
        F: Fn(BroadcastContext) -> R + Sync,
        R: Send,
    {
        if let Some(message) = self.registry.broken() {
            return Err(PoolError::Broken {
                message: message.to_owned(),
            });
        }
        crate::broadcast::broadcast(&self.registry, f)
    }

    /// Stops the pool (Python's `executor.shutdown`): no new work is
    /// accepted ([`spawn`](Self::spawn) and [`broadcast`](Self::broadcast)
    /// return [`PoolError::ShutDown`]; `install`, `join`, `scope`, `map` and
    /// `map_unordered` then run outside this pool: on the calling thread,
    /// whose own nested `join`/`scope` calls use the global pool),
    /// queued work is run or, with [`ShutdownMode::CancelPending`], spawned
    /// tasks that have not started are reported cancelled; then the worker
    /// threads are joined. Called from one of the pool's own workers, it
    /// does not wait for the threads. Calling it again (from any thread,
    /// also while another thread's call is still waiting) stops nothing
    /// more, and waits like the first call: every caller outside the pool
    /// returns once all the work has been done (or cancelled) and every
    /// worker has exited.
    ///
    /// ```
    /// use weft_pool::{ShutdownMode, ThreadPool};
    /// let pool = ThreadPool::new(1)?;
    /// let h = pool.spawn(|| 1)?;
    /// pool.shutdown(ShutdownMode::Wait);
    /// assert_eq!(h.join(), Ok(1));
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    ///
    /// # From a worker of another pool
    ///
    /// Called (or the pool dropped) on a worker of another weft pool `a`,
    /// it waits as above, and meanwhile that worker runs the
    /// [`install`](Self::install) calls that other pools' workers make into
    /// `a`: a task of this pool that installs into `a` finishes even when
    /// the caller is `a`'s only free worker.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_pool::{ShutdownMode, ThreadPool};
    /// let a = Arc::new(ThreadPool::new(1)?);
    /// let b = ThreadPool::new(1)?;
    /// let a2 = Arc::clone(&a);
    /// let h = b.spawn(move || a2.install(|| 2))?;
    /// // `a`'s only worker stops `b`, whose task needs `a`.
    /// a.install(move || b.shutdown(ShutdownMode::Wait));
    /// assert_eq!(h.join(), Ok(2));
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    ///
    /// Inside an `install` that a worker of this pool is waiting on
    /// (`b.install(|| a.install(|| b.shutdown(..)))`), that worker cannot
    /// exit before the call returns, so it closes the pool and returns
    /// without waiting, as a call from the pool's own worker does.
    ///
    /// The waiting worker runs no other work of its pool: if this pool's
    /// tasks wait for *other* work of the caller's pool (a task
    /// [`spawn`](Self::spawn)ed there, a channel fed by it) and the caller
    /// is that pool's only free worker, the call never returns. Stop such a
    /// pool from outside any pool, or with
    /// [`shutdown_nowait`](Self::shutdown_nowait) and a later wait from
    /// outside.
    pub fn shutdown(&self, mode: ShutdownMode) {
        self.registry
            .shutdown(matches!(mode, ShutdownMode::CancelPending));
        if let Some(w) = WorkerThread::current() {
            if Arc::ptr_eq(w.registry(), &self.registry) {
                return;
            }
            // A worker of another pool: wait while running the installs
            // sent to its own pool (see the docs above), or not at all when
            // a worker of this pool is waiting on the caller.
            if !self.registry.wait_for_exit_in_worker(w) {
                return;
            }
        }
        self.registry.join_workers();
    }

    /// Stops the pool without waiting (Python's `shutdown(wait=False)`):
    /// no new work is accepted, as with [`shutdown`](Self::shutdown), and
    /// this returns at once; the workers finish (or, with
    /// [`ShutdownMode::CancelPending`], cancel) what is queued and exit on
    /// their own. Dropping the pool afterwards does not wait for them
    /// either; a later [`shutdown`](Self::shutdown) does.
    ///
    /// ```
    /// use weft_pool::{ShutdownMode, ThreadPool};
    /// let pool = ThreadPool::new(1)?;
    /// let h = pool.spawn(|| std::thread::sleep(std::time::Duration::from_millis(50)))?;
    /// pool.shutdown_nowait(ShutdownMode::Wait); // returns before the task ends
    /// assert!(pool.spawn(|| ()).is_err());
    /// assert_eq!(h.join(), Ok(())); // the queued work still runs
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn shutdown_nowait(&self, mode: ShutdownMode) {
        self.registry
            .shutdown(matches!(mode, ShutdownMode::CancelPending));
        self.no_wait_on_drop.store(true, Ordering::Relaxed);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if self.no_wait_on_drop.load(Ordering::Relaxed) {
            // `shutdown_nowait` closed it: the workers exit on their own.
            return;
        }
        self.shutdown(ShutdownMode::Wait);
    }
}

/// Submits `f` to `registry`, or gives it back if the pool is shut down.
pub(crate) fn spawn_on<F, T>(registry: &Arc<Registry>, f: F) -> Result<TaskHandle<T>, F>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let Some(gate) = registry.enter() else {
        return Err(f);
    };
    let (completer, handle) = TaskHandle::pair();
    let body = move || {
        let cancel = WorkerThread::current()
            .is_some_and(|w| w.registry().cancel_pending.load(Ordering::Relaxed));
        if cancel {
            completer.complete(Err(TaskError::Cancelled));
        } else {
            completer.run(f);
        }
    };
    // The gate was open when we queued it, so a worker runs it exactly once
    // (workers drain the queues before they exit).
    registry.inject_spawn(&gate, SpawnJob::new(body));
    Ok(handle)
}

fn auto_chunk(len: usize, threads: usize) -> usize {
    (len / (threads * 8).max(1)).clamp(1, 1024)
}

/// The iterator returned by [`ThreadPool::map_unordered`].
///
/// Dropping it before the end cancels the chunks that have not started
/// (their items are dropped without calling `f`); chunks already running
/// finish, and their results are dropped on the worker.
pub struct MapUnordered<R> {
    rx: mpsc::Receiver<std::thread::Result<Vec<R>>>,
    pending: usize,
    buf: std::vec::IntoIter<R>,
    /// Set when the iterator is dropped: queued chunks skip their work.
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

impl<R> Drop for MapUnordered<R> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Release);
    }
}

impl<R> std::fmt::Debug for MapUnordered<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapUnordered")
            .field("pending_chunks", &self.pending)
            .finish_non_exhaustive()
    }
}

impl<R> Iterator for MapUnordered<R> {
    type Item = R;

    fn next(&mut self) -> Option<R> {
        loop {
            if let Some(r) = self.buf.next() {
                return Some(r);
            }
            if self.pending == 0 {
                return None;
            }
            match self.rx.recv() {
                Ok(Ok(v)) => {
                    self.pending -= 1;
                    self.buf = v.into_iter();
                }
                Ok(Err(p)) => {
                    self.pending -= 1;
                    resume_unwind(p);
                }
                Err(_) => {
                    self.pending = 0;
                    return None;
                }
            }
        }
    }
}
