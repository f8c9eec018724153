//! weft-pool: a hand-built work-stealing thread pool. Python's
//! `ThreadPoolExecutor` (submit, map, shutdown) and rayon's fork/join
//! (`join`, `scope`, `broadcast`, `install`) and parallel iterators in one
//! crate, returning weft's one task handle, [`weft_sync::TaskHandle`].
//!
//! # rayon -> weft
//!
//! Moving a rayon program is a search and replace of the paths; the method
//! names and their meaning stay.
//!
//! | rayon | weft-pool |
//! |---|---|
//! | `use rayon::prelude::*;` | `use weft_pool::iter::prelude::*;` |
//! | `v.par_iter()`, `v.par_iter_mut()`, `v.into_par_iter()`, `(0..n).into_par_iter()` | the same ([`iter`]) |
//! | `.map`, `.map_init`, `.map_with`, `.filter`, `.filter_map`, `.flat_map`, `.flat_map_iter`, `.flatten`, `.flatten_iter`, `.chain`, `.enumerate`, `.zip`, `.chunks`, `.rev`, `.step_by`, `.take`, `.skip`, `.with_min_len`, `.with_max_len`, `.fold`, `.copied`, `.cloned`, `.inspect` | the same (`.chain` is not indexed here: no `.enumerate`/`.zip` after it) |
//! | `.for_each`, `.for_each_init`, `.for_each_with`, `.sum`, `.product`, `.reduce`, `.reduce_with`, `.min`/`.max` (`_by`, `_by_key`), `.count`, `.any`/`.all`, `.find_any`/`.find_first`, `.find_map_any`/`.find_map_first`, `.position_any`/`.position_first`, `.try_for_each`, `.try_reduce` (over `Result`/`Option`), `.unzip`, `.partition`, `.collect_into_vec(&mut v)`, `.collect()` into a `Vec` (in order), `HashMap`, `HashSet`, `BTreeMap`, `BTreeSet`, `String`; `c.par_extend(it)` | the same |
//! | `s.par_chunks(n)`, `s.par_chunks_mut(n)`, `s.par_chunks_exact(n)`, `s.par_windows(n)`; `iter.par_bridge()` | the same |
//! | `s.par_sort()`, `s.par_sort_unstable()` (and `_by`, `_by_key`) | the same |
//! | `rayon::join(a, b)`, `rayon::scope(\|s\| ..)`, `rayon::spawn(f)` | [`join`], [`scope`], [`spawn`] (which returns a [`weft_sync::TaskHandle`]) |
//! | `rayon::in_place_scope`, `rayon::scope_fifo`, `rayon::spawn_fifo`, `rayon::yield_now` | [`in_place_scope`], [`scope_fifo`], [`spawn_fifo`], [`yield_now`] |
//! | `ThreadPoolBuilder::new().num_threads(4).build()?` | [`ThreadPool::builder()`](ThreadPool::builder)`.num_threads(4).build()?` |
//! | `pool.install(f)`, `pool.broadcast(f)` | [`ThreadPool::install`], [`ThreadPool::broadcast`] |
//! | `rayon::current_thread_index()`, `rayon::current_num_threads()` | [`current_thread_index`], [`current_num_threads`] |
//! | `rayon::iter::plumbing::{Producer, Consumer, ..}` | [`iter::plumbing`] (the same model: producers split at an index, consumers fold and reduce) |
//!
//! ```
//! use weft_pool::iter::prelude::*;
//!
//! let words = ["apple", "kiwi", "banana", "fig"];
//! let long: Vec<String> = words
//!     .par_iter()
//!     .filter(|w| w.len() > 3)
//!     .map(|w| w.to_uppercase())
//!     .collect();
//! assert_eq!(long, ["APPLE", "KIWI", "BANANA"]);
//!
//! let pool = weft_pool::ThreadPool::new(2)?;
//! let sum: u64 = pool.install(|| (1..=1000u64).into_par_iter().map(|x| x * x).sum());
//! assert_eq!(sum, 333_833_500);
//! # Ok::<(), weft_pool::PoolError>(())
//! ```
//!
//! # Map of the crate
//!
//! | Item | What it is |
//! |------|------------|
//! | [`ThreadPool`], [`ThreadPoolBuilder`] | a pool of worker threads; `build()` returns a `Result` |
//! | [`ThreadPool::spawn`] / [`spawn`] | submit `'static` work, get a [`weft_sync::TaskHandle`] |
//! | [`ThreadPool::join`] / [`join`] | fork/join: run two closures, potentially in parallel |
//! | [`ThreadPool::scope`] / [`scope`], [`Scope`] | spawn work that borrows the caller's stack |
//! | [`ThreadPool::in_place_scope`] / [`in_place_scope`] | a scope whose body stays on the calling thread |
//! | [`scope_fifo`], [`Scope::spawn_fifo`], [`spawn_fifo`] | rayon's first-in, first-out spawns |
//! | [`yield_now`], [`Yield`] | run one pending job of the pool from inside a task |
//! | [`ThreadPool::map`], [`ThreadPool::map_unordered`] | parallel map, ordered or as finished, chunked |
//! | [`ThreadPool::broadcast`], [`BroadcastContext`] | run a closure once on every worker |
//! | [`ThreadPool::install`] | run a closure inside the pool |
//! | [`ThreadPool::shutdown`], [`ShutdownMode`] | stop: drain, or cancel what is pending |
//! | [`ThreadPool::shutdown_nowait`] | stop without waiting (`shutdown(wait=False)`) |
//! | [`current_thread_index`], [`current_num_threads`] | where am I? |
//! | [`PoolError`] | the one error type |
//! | [`iter`], [`iter::prelude`] | rayon's parallel iterators: `par_iter`, `map`, `sum`, `collect`, ... |
//! | [`iter::ParallelSlice`], [`iter::ParallelSliceMut`] | `par_chunks`, `par_chunks_mut`, `par_sort`, `par_sort_unstable` |
//! | [`iter::plumbing`] | producers, consumers and the adaptive bridge under the iterators |
//!
//! # Python -> weft
//!
//! | Python (`concurrent.futures`, `threading`) | weft-pool |
//! |---|---|
//! | `ex = ThreadPoolExecutor(max_workers=4)` | `let pool = ThreadPool::new(4)?;` |
//! | `ThreadPoolExecutor(4, thread_name_prefix="w", initializer=f)` | `ThreadPool::builder().num_threads(4).thread_name(..).start_handler(f).build()?` |
//! | `fut = ex.submit(f)` | `let h = pool.spawn(f)?;` |
//! | `fut.result()` / `await asyncio.wrap_future(fut)` | `h.join()` / `h.await` |
//! | `ex.map(f, items, chunksize=64)` | `pool.map(f, items, 64)` (a `Vec`, in order) |
//! | `pool.imap_unordered(f, items)` | `pool.map_unordered(f, items, chunk)` |
//! | `for f in as_completed(futs)` | `weft_sync::as_completed(handles)` |
//! | `ex.shutdown(wait=True)` | `pool.shutdown(ShutdownMode::Wait)` or drop the pool |
//! | `ex.shutdown(cancel_futures=True)` | `pool.shutdown(ShutdownMode::CancelPending)` |
//! | `ex.shutdown(wait=False)` | `pool.shutdown_nowait(ShutdownMode::Wait)` |
//! | `BrokenThreadPool` (the initializer raised) | [`PoolError::Broken`] from every later `spawn` |
//! | `threading.Thread(target=f).start()` | `weft_pool::spawn(f)` on the global pool |
//! | *(none: fork/join)* | `join(a, b)`, `scope(\|s\| ..)` |
//!
//! # How it works
//!
//! Each worker keeps a private stack of `join` jobs (no atomics to push or
//! pop) and a shared crossbeam deque others steal from; work from outside
//! goes on global crossbeam injectors: spawned tasks on one of four (chosen
//! by the submitting thread, each task queued by value when its closure is
//! small: no box), `install` jobs on another. A `join` pushes its second
//! closure privately, runs the first, and pops the second back: a few
//! nanoseconds. Only when another worker is hungry (it raised a share
//! request) does a busy worker move its *oldest* private jobs to its shared
//! deque, so work is split lazily, where it pays; the outermost three
//! pending `join`s of a worker (the biggest pieces) are shared at once. A
//! worker keeps at most four private jobs, those of its outermost pending
//! `join`s; a `join` nested below them simply calls its two closures in
//! turn, as sequential code would (a thief takes the bigger pieces above
//! first, which frees room for the next `join` to offer its half). Idle
//! workers spin for a moment (searching), then yield their core
//! (so a thread that needs the core, such as the caller of `install`
//! woken on it to take its result, runs at once), then park; a push wakes
//! a sleeper only when no worker is searching already, and a searcher that finds
//! work wakes the next sleeper only if more work is queued, so a burst of
//! submits wakes workers one at a time, as many as there is work for (see
//! the `sleep` module, modelled with loom). Submitters from many threads
//! count themselves on striped counters, not one shared one. While a `join` waits for a
//! stolen half it only runs descendants of that half (stolen back from the
//! thief), never unrelated queued work, so a task holding a lock cannot be
//! handed a job that needs the same lock (rayon #592). `install` from a
//! worker of another pool records a wait chain, so pool A -> pool B -> pool A
//! sends the inner job back to the very A worker that waits, and one thread
//! per pool suffices. A worker waiting in such a cross-pool `install` also
//! runs the `install` jobs that workers of other pools send to its own pool
//! (those only, never spawned tasks or `join` halves), as rayon's waiting
//! workers do with any job: so opposite chains running at once (A -> B -> A
//! beside B -> A -> B, or a ring of pools) finish too, where each pool's
//! worker would otherwise hold the thread the other chain needs.
//!
//! `build()` fails with a [`PoolError`], never a panic, for a setting no
//! pool can have (zero or too many threads, a thread name with a NUL byte, a
//! stack the OS will not give), and stops the workers it had started. User
//! code that panics where a worker calls it (a hook, a task, the `Drop` of a
//! result nobody waits for or of a task cancelled unrun) is contained: the
//! worker goes on.
//!
//! # Examples
//!
//! ```
//! use weft_pool::{ShutdownMode, ThreadPool};
//!
//! fn fib(n: u64) -> u64 {
//!     if n < 2 {
//!         return n;
//!     }
//!     let (a, b) = weft_pool::join(|| fib(n - 1), || fib(n - 2));
//!     a + b
//! }
//!
//! let pool = ThreadPool::new(2)?;
//! assert_eq!(pool.install(|| fib(20)), 6765);
//!
//! let handles: Vec<_> = (0..4u64)
//!     .map(|i| pool.spawn(move || i * 10))
//!     .collect::<Result<_, _>>()?;
//! let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
//! assert_eq!(results, [0, 10, 20, 30]);
//!
//! pool.shutdown(ShutdownMode::Wait);
//! # Ok::<(), weft_pool::PoolError>(())
//! ```
#![deny(missing_docs)]

mod broadcast;
mod error;
pub mod iter;
mod job;
mod map;
mod pool;
mod registry;
mod scope;
mod shim;

#[cfg(not(loom))]
mod sleep;
/// The sleep/wake protocol, exposed only to loom models (`tests/loom.rs`).
#[cfg(loom)]
#[doc(hidden)]
pub mod sleep;

use std::sync::OnceLock;

use weft_sync::TaskHandle;

pub use broadcast::BroadcastContext;
pub use error::PoolError;
pub use pool::{MapUnordered, ShutdownMode, ThreadPool, ThreadPoolBuilder};
pub use scope::{Scope, ScopeFifo};

use registry::WorkerThread;

static GLOBAL: OnceLock<ThreadPool> = OnceLock::new();

fn global() -> &'static ThreadPool {
    GLOBAL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .build()
            .expect("weft-pool: the operating system refused to start the global pool's threads")
    })
}

/// Runs `a` and `b`, potentially in parallel, and returns both results.
///
/// On a worker of a pool this is that pool's `join`; anywhere else it moves
/// into the global pool first. `b` is offered to idle workers; if nobody
/// takes it, it runs right here after `a`, at the cost of a plain push and
/// pop. Deep inside a tree of `join`s (below the four outermost pending
/// ones on this worker, which idle workers take first), `b` is not offered
/// and the call costs no more than calling `a` then `b`. A panic in either
/// closure is resumed here once both are done (if `a` panics before `b` was
/// taken, `b` does not run).
///
/// ```
/// fn sum(v: &[u64]) -> u64 {
///     if v.len() <= 1 {
///         return v.iter().sum();
///     }
///     let (l, r) = v.split_at(v.len() / 2);
///     let (a, b) = weft_pool::join(|| sum(l), || sum(r));
///     a + b
/// }
/// let v: Vec<u64> = (1..=1000).collect();
/// assert_eq!(sum(&v), 500_500);
/// ```
#[inline]
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    match WorkerThread::current() {
        Some(w) => registry::join_in_worker(w, a, b),
        None => global().install(|| join(a, b)),
    }
}

/// Runs `op` with a [`Scope`] on the current pool (or the global pool) and
/// returns once every task spawned in it has finished. See
/// [`ThreadPool::scope`].
///
/// ```
/// let data = vec![1, 2, 3];
/// let sum = std::sync::atomic::AtomicI32::new(0);
/// weft_pool::scope(|s| {
///     for x in &data {
///         let sum = &sum;
///         s.spawn(move |_| { sum.fetch_add(*x, std::sync::atomic::Ordering::Relaxed); });
///     }
/// });
/// assert_eq!(sum.into_inner(), 6);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R + Send,
    R: Send,
{
    match WorkerThread::current() {
        Some(w) => scope::scope_in_worker(w, op),
        None => global().scope(op),
    }
}

/// Submits `f` to the current pool (or the global pool, which is never shut
/// down) and returns its handle. See [`ThreadPool::spawn`].
///
/// ```
/// let h = weft_pool::spawn(|| "done");
/// assert_eq!(h.join(), Ok("done"));
/// ```
pub fn spawn<F, T>(f: F) -> TaskHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let f = match WorkerThread::current() {
        Some(w) => match pool::spawn_on(w.registry(), f) {
            Ok(h) => return h,
            // That pool is shutting down: fall back to the global one.
            Err(f) => f,
        },
        None => f,
    };
    global()
        .spawn(f)
        .unwrap_or_else(|e| panic!("weft-pool: the global pool cannot take the task: {e}"))
}

/// [`spawn`] under rayon's name for a task queued first in, first out:
/// weft's spawned tasks already are (each submitting thread's tasks start
/// in the order it submitted them).
///
/// ```
/// let h = weft_pool::spawn_fifo(|| 1 + 1);
/// assert_eq!(h.join(), Ok(2));
/// ```
pub fn spawn_fifo<F, T>(f: F) -> TaskHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn(f)
}

/// [`scope`] under rayon's name for a scope whose tasks are spawned with
/// [`Scope::spawn_fifo`].
///
/// ```
/// let sum = std::sync::atomic::AtomicU32::new(0);
/// weft_pool::scope_fifo(|s| {
///     for i in 1..=3 {
///         let sum = &sum;
///         s.spawn_fifo(move |_| { sum.fetch_add(i, std::sync::atomic::Ordering::Relaxed); });
///     }
/// });
/// assert_eq!(sum.into_inner(), 6);
/// ```
pub fn scope_fifo<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&ScopeFifo<'scope>) -> R + Send,
    R: Send,
{
    scope(op)
}

/// A scope whose body `op` runs on the calling thread while its tasks run
/// on the current pool (the global pool outside any pool): rayon's
/// `in_place_scope`. See [`ThreadPool::in_place_scope`].
///
/// ```
/// let mut v = vec![1, 2, 3];
/// weft_pool::in_place_scope(|s| {
///     for x in &mut v {
///         s.spawn(move |_| *x *= 10);
///     }
/// });
/// assert_eq!(v, [10, 20, 30]);
/// ```
pub fn in_place_scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    match WorkerThread::current() {
        Some(w) => scope::scope_in_worker(w, op),
        None => global().in_place_scope(op),
    }
}

/// What [`yield_now`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Yield {
    /// It ran one pending job of the pool.
    Executed,
    /// The pool had nothing pending: nothing ran.
    Idle,
}

/// Runs one pending job of the current worker's pool, if there is one, and
/// says which happened; `None` when the calling thread is not a worker
/// (rayon's `yield_now`). The job may be any queued work of the pool
/// (another task, a half of someone's `join`), so call it where running
/// unrelated work is safe: not while holding a lock that work may take.
///
/// ```
/// assert_eq!(weft_pool::yield_now(), None);
/// let pool = weft_pool::ThreadPool::new(1)?;
/// assert!(pool.install(weft_pool::yield_now).is_some());
/// # Ok::<(), weft_pool::PoolError>(())
/// ```
pub fn yield_now() -> Option<Yield> {
    let w = WorkerThread::current()?;
    Some(if w.run_one_pending() {
        Yield::Executed
    } else {
        Yield::Idle
    })
}

/// The index of the current thread in its pool, or `None` outside any
/// pool's workers.
///
/// ```
/// assert_eq!(weft_pool::current_thread_index(), None);
/// let pool = weft_pool::ThreadPool::new(2)?;
/// assert!(pool.install(weft_pool::current_thread_index).is_some());
/// # Ok::<(), weft_pool::PoolError>(())
/// ```
pub fn current_thread_index() -> Option<usize> {
    WorkerThread::current().map(|w| w.index())
}

/// The number of workers of the current pool (or of the global pool when
/// called outside any pool).
///
/// ```
/// assert!(weft_pool::current_num_threads() >= 1);
/// ```
pub fn current_num_threads() -> usize {
    match WorkerThread::current() {
        Some(w) => w.registry().num_threads(),
        None => global().num_threads(),
    }
}
