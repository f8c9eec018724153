//! # weft-sync
//!
//! Python's `threading` primitives and `concurrent.futures.Future`, for Rust:
//! one set of locks, semaphores, events, barriers and queues that threads
//! **and** async tasks can wait on together, plus [`TaskHandle`], the one
//! completion handle every weft engine (thread pool, process pool, async
//! runtime) returns.
//!
//! Every operation that waits comes in three forms: blocking (`lock`,
//! `acquire`, `wait`, `get`), with a time limit (`try_lock_for`,
//! `acquire_timeout`, `wait_timeout`, `get_timeout`), and async
//! (`lock_async`, `acquire_async`, `wait_async`, `get_async`), whose futures
//! run in any executor and are cancel-safe when dropped. Waiting threads
//! park; nothing spins for long. Built on `parking_lot_core` (thread parking
//! for the locks) and `event-listener` (wait lists shared by threads and
//! tasks); [`Condition`] keeps its own first-in, first-out queue of threads
//! and tasks, so that `notify(n)` wakes the `n` oldest waiters of either
//! kind.
//!
//! ## Map of the crate
//!
//! | Item | What it is |
//! |------|------------|
//! | [`Mutex<T>`], [`MutexGuard`] | mutual exclusion with a guard; no poisoning |
//! | [`Lock`] | `Mutex<()>` with Python's explicit `acquire`/`release` |
//! | [`RLock<T>`], [`RLockGuard`], [`RLockFuture`] | reentrant lock, owned by a thread (an async acquisition's owner is the thread polling it) |
//! | [`Condition`] | condition variable over a [`Mutex`] or an [`RLock`] (released fully, whatever its depth) |
//! | [`Semaphore`], [`BoundedSemaphore`], [`SemaphoreGuard`] | counting semaphores |
//! | [`Event`] | a flag to wait on |
//! | [`Barrier`] | a meeting point with Python's broken state |
//! | [`Queue<T>`], [`GetFuture`], [`PutFuture`] | FIFO queue with `task_done`/`join` and `shutdown` |
//! | [`LifoQueue<T>`], [`PriorityQueue<T>`] | the same queue, newest first / smallest first (FIFO among equals) |
//! | [`SimpleQueue<T>`] | unbounded FIFO queue without task tracking |
//! | [`Timer`] | runs a function once after a delay unless cancelled; all timers share one thread |
//! | [`TaskHandle<T>`], [`Completer<T>`], [`TaskError`] | a task's outcome, its producer, and why it failed |
//! | [`wait`], [`wait_async`], [`as_completed`] | waiting on many tasks from any engines |
//! | [`ReleaseError`], [`BrokenBarrierError`], [`PutError`], [`GetError`], [`TaskDoneError`], [`Timeout`] | errors, each a sentence you can act on |
//! | `deadlock` (feature `deadlock-detection`) | lock-order deadlock detection and a watchdog for stalled waits |
//!
//! ## Python -> weft
//!
//! | Python | weft-sync |
//! |--------|-----------|
//! | `lock = threading.Lock()` | `let lock = Lock::new(());` or `Mutex::new(data)` |
//! | `with lock:` | `let guard = mutex.lock();` (unlocks when dropped) |
//! | `lock.acquire(timeout=1)` | `lock.acquire_timeout(Duration::from_secs(1))` / `mutex.try_lock_for(..)` |
//! | `lock.release()` | `lock.release()?` |
//! | `threading.RLock()` | `RLock::new(())`; async: `rlock.lock_async().await` (the polling thread owns it) |
//! | `cond.wait()` / `cond.wait_for(pred)` | `cond.wait(&mut guard)` / `cond.wait_for(&mut guard, pred)` |
//! | `cond.notify(n)` / `notify_all()` | `cond.notify(n)` / `cond.notify_all()` |
//! | `threading.Condition(rlock)` (Python's default) | `cond.wait_rlock(&mut rlock_guard)` / `cond.wait_for_rlock(&mut g, pred)` |
//! | `threading.Semaphore(3)` | `Semaphore::new(3)`; `let _permit = sem.acquire();` |
//! | `threading.BoundedSemaphore(3)` | `BoundedSemaphore::new(3)` |
//! | `event.set()` / `event.wait(t)` | `event.set()` / `event.wait_timeout(t)` |
//! | `threading.Barrier(n, action, timeout)` | `Barrier::with_action(n, action).with_timeout(t)` (the timeout applies to `wait_async` too) |
//! | `t = threading.Timer(2.0, f); t.start()` | `let t = Timer::start(Duration::from_secs(2), f);` |
//! | `t.cancel()` | `t.cancel()` (`true`: `f` will never run) |
//! | `BrokenBarrierError` | [`BrokenBarrierError`] |
//! | `queue.Queue(maxsize=8)` | `Queue::bounded(8)` (`Queue::unbounded()` for no limit) |
//! | `q.put(x)` / `q.get(timeout=t)` | `q.put(x)?` / `q.get_timeout(t)?` |
//! | `q.task_done()` / `q.join()` | `q.task_done()?` / `q.join()` |
//! | `q.shutdown(immediate)` (3.13) | `q.shutdown(immediate)` |
//! | `queue.LifoQueue(8)` / `queue.PriorityQueue(8)` | `LifoQueue::bounded(8)` / `PriorityQueue::bounded(8)` |
//! | `queue.SimpleQueue()` | `SimpleQueue::new()` |
//! | `asyncio.Lock`, `asyncio.Queue`, ... | the same types: `.lock_async().await`, `.get_async().await` |
//! | `concurrent.futures.Future` | [`TaskHandle`] (also a Rust `Future`) |
//! | `future.result(timeout)` | `handle.join()` / `handle.join_timeout(t)` / `handle.await` |
//! | `future.cancel()` / `add_done_callback` | `handle.cancel()` / `handle.add_done_callback(f)` |
//! | `concurrent.futures.wait(fs, return_when=FIRST_COMPLETED)` | `wait(&handles, ReturnWhen::FirstCompleted, None)` |
//! | `concurrent.futures.as_completed(fs)` | `for (i, r) in as_completed(handles) { .. }` |
//! | `concurrent.futures.as_completed(fs, timeout)` | `for item in as_completed(handles).within(t) { let (i, r) = item?; .. }` |
//!
//! What differs from Python: a [`Mutex`] owns the data it protects (there is
//! no way to touch it without the lock), guards replace `with`, errors are
//! `Result`s instead of exceptions, and the same primitive serves threads
//! and async tasks (Python keeps `threading` and `asyncio` apart, and the
//! asyncio ones are not thread-safe).
//!
//! ## Example: a thread and an async task on one queue
//!
//! ```
//! use std::sync::Arc;
//! use weft_sync::Queue;
//!
//! let q = Arc::new(Queue::bounded(4));
//! let producer = {
//!     let q = q.clone();
//!     std::thread::spawn(move || {
//!         for i in 0..10 {
//!             q.put(i).unwrap(); // blocks while the queue is full
//!         }
//!         q.shutdown(false);
//!     })
//! };
//! let sum = futures_lite::future::block_on(async {
//!     let mut sum = 0;
//!     while let Ok(v) = q.get_async().await {
//!         sum += v;
//!     }
//!     sum
//! });
//! producer.join().unwrap();
//! assert_eq!(sum, 45);
//! ```
//!
//! ## Deadlock detection (feature `deadlock-detection`)
//!
//! Off by default, and free when off (no field, check or call is compiled
//! in). With `weft-sync = { ..., features = ["deadlock-detection"] }`, every
//! blocking or timed acquisition of a `Mutex`, `Lock` or `RLock` feeds a
//! global lock-order graph, and an acquisition that *could* deadlock (locks
//! taken in an order that closes a cycle with orders seen before, even if
//! the threads never collided on this run; or a thread locking a `Mutex` it
//! already holds) is reported before it blocks, with both acquisition sites
//! and backtraces when `RUST_BACKTRACE` is set: by a panic, or by the hook
//! set with `deadlock::set_deadlock_hook`. `deadlock::waiting_longer_than`
//! and `deadlock::Watchdog` report threads stuck on any weft primitive,
//! with the primitive and the `file:line` of the wait. Async acquisitions
//! are not tracked. See the `deadlock` module for the details.
//!
//! Python has no equivalent; the closest is `faulthandler.dump_traceback_later`
//! (the watchdog).
//!
//! ## For engine authors
//!
//! An engine makes a pending task with [`TaskHandle::pair`], keeps the
//! [`Completer`], calls [`Completer::start`] when the task is about to run
//! (it returns `false` if the user cancelled it), and completes it once.
//! [`Completer::run`] does all three around a closure, catching panics.
#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod barrier;
mod condition;
#[cfg(feature = "deadlock-detection")]
pub mod deadlock;
mod error;
mod event;
mod mutex;
mod queue;
mod queues;
mod raw_lock;
mod rlock;
mod semaphore;
mod shim;
mod task;
mod timer;
mod wait;
mod waiting;
mod waker;

pub use barrier::Barrier;
pub use condition::Condition;
pub use error::{BrokenBarrierError, GetError, PutError, ReleaseError, TaskDoneError, Timeout};
pub use event::{Event, EventWaitFuture};
pub use mutex::{Lock, Mutex, MutexGuard, MutexLockFuture};
pub use queue::{GetFuture, PutFuture, Queue};
pub use queues::{LifoQueue, PriorityQueue, SimpleQueue};
pub use rlock::{RLock, RLockFuture, RLockGuard};
pub use semaphore::{AcquireFuture, BoundedSemaphore, Semaphore, SemaphoreGuard};
pub use task::{
    Completer, TaskError, TaskHandle, WorkerExit, drop_quietly, into_panic_message, panic_message,
};
pub use timer::Timer;
pub use wait::{
    AsCompleted, AsCompletedStream, AsCompletedWithin, ReturnWhen, WaitAsync, WaitResult,
    as_completed, wait, wait_async,
};
