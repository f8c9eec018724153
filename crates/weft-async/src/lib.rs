//! weft-async: Python's `asyncio`, for Rust, on one thread.
//!
//! [`run`] drives a future on the calling thread together with the tasks it
//! [`spawn`]s, its own edge-triggered I/O reactor (for the TCP types of
//! [`net`]), and `async-io`'s timers and reactor, so the smol ecosystem
//! (`async-net`, `async-fs`, HTTP crates built on them) runs on it unchanged.
//! Tasks need not be `Send`. Any `weft-sync` primitive or
//! [`TaskHandle`](weft_sync::TaskHandle) (a thread-pool or process-pool
//! result) can be awaited here, and wakes the runtime from whichever thread
//! completes it.
//!
//! For servers that should use every core, [`multi`] is the same surface
//! (spawn, gather, `TaskGroup`, timeouts, async-io sockets) for `Send`
//! futures on N threads, on `async-executor`'s work-stealing executor; the
//! single-threaded runtime stays the default.
//!
//! # Map of the crate
//!
//! | Area | Items |
//! |---|---|
//! | Runtime | [`run`], [`try_run`], [`Runtime`] (many [`block_on`](Runtime::block_on)s), [`Handle`] (spawn from any thread), [`in_runtime`] |
//! | Tasks | [`spawn`], [`try_spawn`], [`Builder`] (names), [`Task`] (await, [`cancel`](Task::cancel), [`detach`](Task::detach)), [`TaskSet`], [`shield`] |
//! | The current task | [`current_task`] ([`CurrentTask`]: id, name, cancel), [`task_local!`] ([`LocalKey`]) |
//! | Debugging | [`all_tasks`], [`TaskInfo`], [`TaskState`], [`current_task_id`], [`set_panic_hook`], [`PanicReport`], [`PanicPhase`] |
//! | Combinators | [`gather!`], [`try_gather!`], [`join_all`], [`try_join_all`], [`select`] / [`Either`], [`race`], [`as_completed`], [`wait`] |
//! | Structured concurrency | [`TaskGroup::scope`] ([`GroupScope`], [`ErrorGroup`]; [`TaskGroup::scope_send`] for `Send` children, inside [`multi::spawn`]), [`TaskGroup`] ([`GroupError`]) |
//! | Time | [`sleep`], [`sleep_until`], [`interval`] ([`MissedTickBehavior`]), [`timeout`], [`timeout_at`], [`TimedOut`], [`yield_now`] |
//! | Network | [`net::TcpListener`], [`net::TcpStream`], [`net::UdpSocket`], [`net::UnixListener`], [`net::UnixStream`], [`net::UnixDatagram`] (the runtime's own reactor), [`net::lookup_host`] (host names resolved off the loop); `async-net` works too |
//! | Processes and signals | [`process::Command`] ([`process::Child`] with async pipes), [`signal::Signals`], [`signal::ctrl_c`] (Unix; `async-process` and `async-signal`) |
//! | Errors | [`RuntimeError`], [`TimedOut`], and `weft_sync::TaskError` for task outcomes |
//! | Multi-threaded flavour | [`multi`]: [`multi::Runtime`] (N worker threads on `async-executor`), [`multi::spawn`], [`multi::Handle`], [`multi::TaskGroup`], [`multi::TaskSet`], [`multi::shield`], task-locals, the same combinators and timers, for `Send` futures |
//!
//! # Python -> weft
//!
//! | Python `asyncio` | weft |
//! |---|---|
//! | `asyncio.run(main())` | [`weft_async::run(main())`](run) |
//! | `asyncio.create_task(coro, name=...)` | [`spawn(fut)`](spawn), [`Builder::new().name(..).spawn(fut)`](Builder) |
//! | `task.cancel()`; `await task` | [`task.cancel().await`](Task::cancel); dropping a [`Task`] cancels it too |
//! | `asyncio.gather(a, b)` | [`gather!(a, b).await`](gather!) (tuple, mixed types) |
//! | `asyncio.gather(*aws)` | [`join_all(aws).await`](join_all) (order kept), [`try_join_all`] |
//! | `async with asyncio.TaskGroup() as tg:` (3.11) | [`TaskGroup::scope(\|tg\| async move { .. })`](TaskGroup::scope): children start at [`tg.spawn`](GroupScope::spawn), may borrow, every failure in an [`ErrorGroup`] |
//! | `ExceptionGroup` of a task group | [`ErrorGroup`] |
//! | a batch of children gathered at the end | [`TaskGroup::new`], [`spawn`](TaskGroup::spawn), [`join`](TaskGroup::join) (first failure cancels the siblings) |
//! | `asyncio.Runner()`; `runner.run(main())` | [`Runtime::new()`](Runtime::new); [`rt.block_on(main())`](Runtime::block_on) (tasks live between calls) |
//! | `asyncio.run_coroutine_threadsafe(coro, loop)` | [`handle.spawn(fut)`](Handle::spawn) from any thread -> `weft_sync::TaskHandle` |
//! | `loop.call_soon_threadsafe(f)` | [`handle.spawn(async move { f() })`](Handle::spawn) |
//! | `asyncio.get_running_loop()` (to hand to other threads) | [`Handle::current()`](Handle::current), [`Runtime::handle`] |
//! | `asyncio.wait(tasks, return_when=FIRST_COMPLETED)` in a loop | [`TaskSet`]: [`spawn`](TaskSet::spawn), [`join_next().await`](TaskSet::join_next) |
//! | `asyncio.shield(aw)` | [`shield(fut)`](shield) |
//! | `asyncio.current_task()`, `.get_name()`, `.cancel()` | [`current_task()`](current_task), [`CurrentTask::name`], [`CurrentTask::cancel`] |
//! | `contextvars.ContextVar`; `var.get()`, `var.set(v)` | [`task_local!`]; [`KEY.scope(v, fut)`](LocalKey::scope), [`KEY.get()`](LocalKey::get), [`KEY.set(v)`](LocalKey::set) |
//! | `asyncio.wait_for(aw, t)` / `asyncio.timeout(t)` | [`timeout(t, fut).await`](timeout) -> `Result<_, TimedOut>` |
//! | `asyncio.sleep(s)` / `asyncio.sleep(0)` | [`sleep(d)`](sleep) / [`yield_now()`](yield_now) |
//! | `asyncio.wait(aws, return_when=FIRST_COMPLETED)` | [`wait(&mut tasks, ReturnWhen::FirstCompleted, None)`](wait) |
//! | `asyncio.as_completed(aws)` | [`as_completed(futs)`](as_completed) |
//! | `asyncio.all_tasks()` | [`all_tasks()`](all_tasks) |
//! | `asyncio.open_connection(host, port)` | [`net::TcpStream::connect((host, port)).await`](net::TcpStream::connect) (reader and writer in one stream) |
//! | `asyncio.start_server(cb, host, port)` | [`net::TcpListener::bind`], then spawn a task per [`accept`](net::TcpListener::accept) |
//! | `loop.create_datagram_endpoint(..)` (UDP) | [`net::UdpSocket::bind`], [`send_to`](net::UdpSocket::send_to), [`recv_from`](net::UdpSocket::recv_from) |
//! | `asyncio.open_unix_connection(path)` / `start_unix_server(cb, path)` | [`net::UnixStream::connect`] / [`net::UnixListener::bind`]; datagrams: [`net::UnixDatagram`] |
//! | `await loop.getaddrinfo(host, port)` | [`net::lookup_host((host, port)).await`](net::lookup_host) (on a helper thread; `connect` does the same with a name) |
//! | `await asyncio.create_subprocess_exec(prog, *args, stdout=PIPE)` | [`process::Command::new(prog).args(args).stdout(Stdio::piped()).spawn()?`](process::Command::spawn) |
//! | `await proc.communicate()`, `await proc.wait()` | [`child.output().await`](process::Child::output), [`child.status().await`](process::Child::status) |
//! | `loop.add_signal_handler(SIGTERM, cb)` | [`signal::Signals::new([Signal::Term])?`](signal::Signals), then `.next().await` in a task; [`signal::ctrl_c().await`](signal::ctrl_c) |
//! | `loop.set_exception_handler(...)` ("exception never retrieved") | [`set_panic_hook`] |
//! | `asyncio.Queue`, `asyncio.Semaphore`, `asyncio.Lock`, `asyncio.Event` | `weft_sync::{Queue, Semaphore, Mutex, Event}`: one set of primitives for threads and tasks, with async methods |
//! | `asyncio.run(main())` for a server on every core | [`multi::run(main())`](multi::run), [`multi::Runtime::builder().threads(n).build()?`](multi::Builder), [`multi::spawn`] (`Send` futures; sockets from `async-net`) |
//! | `asyncio.to_thread(f)` | `weft::aio::to_thread(f)` in the umbrella crate (runs `f` on weft-pool; this crate never depends on the pool) |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use weft_async::{gather, sleep, spawn};
//!
//! async fn say_after(delay_ms: u64, what: &str) -> String {
//!     sleep(Duration::from_millis(delay_ms)).await;
//!     what.to_string()
//! }
//!
//! let (hello, world) = weft_async::run(async {
//!     let background = spawn(async { 40 + 2 });
//!     let pair = gather!(say_after(10, "hello"), say_after(5, "world")).await;
//!     assert_eq!(background.await, Ok(42));
//!     pair
//! });
//! assert_eq!((hello.as_str(), world.as_str()), ("hello", "world"));
//! ```
//!
//! # Runtimes, threads and task-local values
//!
//! [`run`] is a [`Runtime`] made for one future: both drive their tasks only
//! while they run on their thread. A [`Runtime`] kept between
//! [`block_on`](Runtime::block_on) calls keeps its tasks, paused; wake-ups
//! and [`Handle::spawn`]s from other threads that arrive meanwhile are queued
//! on its remote queue (the one every wake-up from another thread goes
//! through) and served at the next call. A task spawned through a
//! [`Handle`] is made on the spawning thread (one `async-task` allocation and
//! the [`TaskHandle`](weft_sync::TaskHandle)'s), pushed on that queue, and
//! numbered by the runtime's thread when it takes it. When a runtime ends,
//! it cancels its tasks, then closes that queue: later spawns fail at once.
//!
//! Task-local values ([`task_local!`]) are installed around each poll of a
//! [`scope`](LocalKey::scope)d future and taken off after it, as tokio's
//! are: no cost for tasks that use none, and no inheritance (Python copies
//! the context into each new task; here, scope the spawned future
//! explicitly).
//!
//! # The executor
//!
//! The run queue is thread-local and first in, first out: a `Cell` takes a
//! task pushed into an empty queue (so a task that wakes the next one, as in a
//! ping-pong, only moves a pointer in and out of it) and a `RefCell<VecDeque>`
//! the rest, its capacity kept from one `run` to the next. Scheduling a task
//! woken on the runtime's own thread takes no lock and no atomic of the
//! runtime's (the only atomics are `async-task`'s own task state). Wake-ups from other
//! threads go to a separate `ConcurrentQueue` and unpark the runtime, which
//! sleeps in `async-io`'s reactor (via `async_io::block_on`) whenever it has
//! nothing to run. The runtime's own reactor (an epoll instance where
//! [`net`]'s sockets are registered once, edge-triggered) is polled whenever
//! the run queue runs dry and after every 40 µs of running tasks, and its
//! descriptor is registered with `async-io`'s reactor so that a socket event
//! ends a sleep. `async-io`'s reactor is polled after every 40 µs slice while
//! it delivers events (timers, `async-net` sockets), backing off to once a
//! millisecond while it has none, so I/O and timers are served even under
//! constant load (the clock is read once every 32 polls when polls are
//! quick, more often when they are slow); the tasks queued at that moment
//! run before the main future is polled again. Each spawned task is one allocation (`async-task`'s: 72
//! bytes for an empty future, the same `malloc` size class as
//! `async-executor`'s tasks; a named task adds one, the out-of-line part of
//! its handle that holds the name), its [`Task`] handle is three words, and a
//! task enters the live-task registry only when it first has to wait (a named
//! one at once: its name is kept there).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod children;
mod combine;
mod error;
mod group;
mod local;
pub mod multi;
#[cfg(unix)]
pub mod net;
#[cfg(unix)]
pub mod process;
mod reactor;
mod runner;
mod runtime;
#[cfg(unix)]
pub mod signal;
mod task;
mod taskset;
mod time;
mod waker;

pub use combine::{AsCompleted, Either, as_completed, join_all, race, select, try_join_all, wait};
pub use error::{RuntimeError, TimedOut};
pub use group::{AnyChildren, ErrorGroup, GroupError, GroupScope, SendChildren, TaskGroup};
pub use local::{AccessError, LocalKey, TaskLocalFuture};
pub use runner::{Handle, Runtime};
pub use runtime::in_runtime;
pub use task::{
    Builder, CurrentTask, PanicPhase, PanicReport, Task, TaskInfo, TaskState, all_tasks,
    current_task, current_task_id, run, set_panic_hook, spawn, take_panic_hook, try_run, try_spawn,
};
pub use taskset::{Shielded, TaskSet, shield};
pub use time::{
    Interval, MissedTickBehavior, interval, sleep, sleep_until, timeout, timeout_at, yield_now,
};
pub use weft_sync::{ReturnWhen, TaskError, WaitResult};
