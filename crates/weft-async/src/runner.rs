//! [`Runtime`] (a loop that outlives one call, Python's `asyncio.Runner`)
//! and [`Handle`] (spawning onto a running loop from any thread, Python's
//! `asyncio.run_coroutine_threadsafe`).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use weft_sync::{Completer, TaskError, TaskHandle};

use crate::error::RuntimeError;
use crate::runtime::{self, Core, Remote, State};
use crate::task::Task;

/// A runtime that lives across several [`block_on`](Runtime::block_on)
/// calls (Python's `asyncio.Runner`; [`run`](crate::run) is the one-liner
/// that makes one, runs one future and ends it).
///
/// Tasks spawned in one `block_on` live on after it returns, paused (a
/// runtime runs only inside `block_on`), and go on running in the next one.
/// Wake-ups and [`Handle::spawn`]s that arrive meanwhile are queued.
/// Dropping the `Runtime` cancels the tasks still alive, as `run` does when
/// its future completes: their futures are dropped on this thread (panics in
/// their destructors go to the [panic hook](crate::set_panic_hook)), and
/// [`Handle`]s to it refuse new tasks from then on.
///
/// A `Runtime` stays on the thread that made it (it is neither `Send` nor
/// `Sync`, as its tasks need not be); a [`Handle`] reaches it from anywhere.
///
/// ```
/// use std::time::Duration;
/// use weft_async::Runtime;
///
/// let rt = Runtime::new();
/// // A task spawned in the first call...
/// let ticker = rt.block_on(async {
///     weft_async::spawn(async {
///         let mut ticks = 0;
///         while ticks < 3 {
///             weft_async::sleep(Duration::from_millis(1)).await;
///             ticks += 1;
///         }
///         ticks
///     })
/// });
/// // ...goes on in the next one.
/// assert_eq!(rt.block_on(ticker), Ok(3));
/// assert_eq!(rt.block_on(async { 6 * 7 }), 42);
/// ```
pub struct Runtime {
    remote: Arc<Remote>,
    /// The runtime's tasks, queues and registry while it is not installed on
    /// the thread (between `block_on` calls); while it is, what it displaced.
    state: RefCell<State>,
}

impl Runtime {
    /// A new runtime, not running yet.
    pub fn new() -> Runtime {
        let rt = runtime::new_runtime_id();
        let remote = Arc::new(Remote::new(rt));
        runtime::register_remote(&remote);
        Runtime {
            state: RefCell::new(State::new(rt, remote.clone())),
            remote,
        }
    }

    /// Runs `future` to completion on this thread, together with the
    /// runtime's tasks, and returns its output (Python's `Runner.run`, or
    /// `loop.run_until_complete`).
    ///
    /// # Panics
    ///
    /// If a runtime (this one or another) is already running on this thread;
    /// [`try_block_on`](Runtime::try_block_on) returns
    /// [`RuntimeError::NestedRun`] instead. Panics of `future` propagate (the
    /// runtime and its tasks stay usable).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self.try_block_on(future) {
            Ok(out) => out,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`block_on`](Runtime::block_on), but returns
    /// [`RuntimeError::NestedRun`] instead of panicking when a runtime is
    /// already running on this thread.
    ///
    /// ```
    /// use weft_async::{Runtime, RuntimeError};
    /// let rt = Runtime::new();
    /// rt.block_on(async {
    ///     assert_eq!(Runtime::new().try_block_on(async {}), Err(RuntimeError::NestedRun));
    /// });
    /// ```
    pub fn try_block_on<F: Future>(&self, future: F) -> Result<F::Output, RuntimeError> {
        if runtime::with_thread_core(Core::rt).unwrap_or(0) != 0 {
            return Err(RuntimeError::NestedRun);
        }
        let remote = self.remote.clone();
        self.enter(move || {
            struct Idle<'a>(&'a Remote);
            impl Drop for Idle<'_> {
                fn drop(&mut self) {
                    runtime::idle(self.0);
                }
            }
            let _idle = Idle(&remote);
            runtime::drive(future, remote.clone())
        })
    }

    /// Spawns `future` as a task of this runtime (as [`spawn`](crate::spawn)
    /// does inside it), also between `block_on` calls: it starts at the next
    /// one. The future need not be `Send`.
    ///
    /// ```
    /// let rt = weft_async::Runtime::new();
    /// let task = rt.spawn(async { 5 });
    /// assert_eq!(rt.block_on(task), Ok(5));
    /// ```
    pub fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        match self.enter(|| crate::task::try_spawn(future)) {
            Ok(Ok(task)) => task,
            Ok(Err(e)) | Err(e) => panic!("{e}"),
        }
    }

    /// A handle to this runtime, to spawn `Send` futures onto it from any
    /// thread.
    pub fn handle(&self) -> Handle {
        Handle {
            remote: self.remote.clone(),
        }
    }

    /// Calls `f` with this runtime installed on the thread (its tasks,
    /// queues and registry in the thread's core), then puts back what was
    /// there.
    fn enter<R>(&self, f: impl FnOnce() -> R) -> Result<R, RuntimeError> {
        let rt = self.remote.rt();
        if runtime::with_thread_core(Core::rt) == Some(rt) {
            return Ok(f());
        }
        let mut state = self
            .state
            .try_borrow_mut()
            .map_err(|_| RuntimeError::NestedRun)?;
        runtime::with_thread_core(|core| {
            runtime::swap(core, &mut state);
            struct SwapBack<'a> {
                core: &'a Core,
                state: &'a mut State,
            }
            impl Drop for SwapBack<'_> {
                fn drop(&mut self) {
                    runtime::swap(self.core, self.state);
                }
            }
            let _back = SwapBack {
                core,
                state: &mut state,
            };
            f()
        })
        .ok_or(RuntimeError::NoRuntime)
    }
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime::new()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let remote = self.remote.clone();
        let state = self.state.get_mut();
        let _ = runtime::with_thread_core(|core| {
            runtime::swap(core, state);
            runtime::cancel_all(core, &remote);
            runtime::swap(core, state);
        });
        runtime::retire(&remote);
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("id", &self.remote.rt())
            .finish_non_exhaustive()
    }
}

/// A `Send + Clone` handle to a runtime, to spawn `Send` futures onto it
/// from any thread (Python's `asyncio.run_coroutine_threadsafe` and
/// `loop.call_soon_threadsafe`).
///
/// Get one with [`Runtime::handle`], or with [`Handle::current`] inside a
/// running runtime (including one started by [`run`](crate::run)).
/// [`spawn`](Handle::spawn) returns weft's [`TaskHandle`]: join it from a
/// thread, or await it from any runtime. A task spawned after the runtime
/// has ended never runs: its handle fails at once with
/// [`TaskError::Cancelled`] ([`try_spawn`](Handle::try_spawn) says
/// [`RuntimeError::Closed`]), and so does the handle of a task the runtime
/// cancels as it ends.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use weft_async::Handle;
///
/// let (tx, rx) = mpsc::channel();
/// let runtime = std::thread::spawn(move || {
///     weft_async::run(async move {
///         tx.send(Handle::current()).unwrap();
///         // Serve until the other thread's task arrives and finishes.
///         weft_async::sleep(Duration::from_millis(50)).await;
///     })
/// });
/// let handle = rx.recv().unwrap();
/// let task = handle.spawn(async { 6 * 7 });
/// assert_eq!(task.join(), Ok(42));
/// runtime.join().unwrap();
/// // The runtime has ended: a late task fails plainly, never hangs.
/// assert_eq!(handle.spawn(async { 1 }).join(), Err(weft_async::TaskError::Cancelled));
/// ```
#[derive(Clone)]
pub struct Handle {
    remote: Arc<Remote>,
}

impl Handle {
    /// The handle of the runtime running on this thread.
    ///
    /// # Panics
    ///
    /// Outside a runtime; [`try_current`](Handle::try_current) returns
    /// [`RuntimeError::NoRuntime`] instead.
    pub fn current() -> Handle {
        match Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => panic!("{e}"),
        }
    }

    /// The handle of the runtime running on this thread, or
    /// [`RuntimeError::NoRuntime`].
    pub fn try_current() -> Result<Handle, RuntimeError> {
        runtime::with_core(Core::remote)
            .flatten()
            .map(|remote| Handle { remote })
            .ok_or(RuntimeError::NoRuntime)
    }

    /// Spawns `future` onto the runtime from any thread and returns its
    /// [`TaskHandle`] (Python's `run_coroutine_threadsafe`).
    ///
    /// The task is queued and the runtime woken; it starts at the runtime's
    /// next turn (or at its next `block_on`, for an idle [`Runtime`]).
    /// [`TaskHandle::cancel`] cancels it if it has not started yet. A panic
    /// in it fails the handle with [`TaskError::Panicked`]. If the runtime
    /// has ended, or ends before the task finishes, the handle fails with
    /// [`TaskError::Cancelled`].
    pub fn spawn<F>(&self, future: F) -> TaskHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (completer, handle) = TaskHandle::pair();
        if !self.remote.is_closed() {
            runtime::spawn_send(
                Spawned {
                    future: Some(future),
                    completer: Some(completer),
                    started: false,
                },
                &self.remote,
            );
        } else {
            completer.set_error(TaskError::Cancelled);
        }
        handle
    }

    /// Like [`spawn`](Handle::spawn), but says [`RuntimeError::Closed`] (and
    /// drops `future`) if the runtime has already ended.
    ///
    /// ```
    /// use weft_async::{Runtime, RuntimeError};
    /// let handle = Runtime::new().handle(); // the Runtime is dropped at once
    /// assert_eq!(handle.try_spawn(async {}).err(), Some(RuntimeError::Closed));
    /// ```
    pub fn try_spawn<F>(&self, future: F) -> Result<TaskHandle<F::Output>, RuntimeError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.remote.is_closed() {
            return Err(RuntimeError::Closed);
        }
        Ok(self.spawn(future))
    }

    /// Whether the runtime has ended ([`run`](crate::run) returned, or its
    /// [`Runtime`] was dropped): nothing spawned on it will run.
    pub fn is_closed(&self) -> bool {
        self.remote.is_closed()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("runtime", &self.remote.rt())
            .field("closed", &self.is_closed())
            .finish()
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
            // Dropped unfinished (cancelled before it started, or the
            // runtime ended): the handle says so before the future's
            // destructor runs (a panic there goes to the panic hook).
            if let Some(completer) = this.project().completer.take() {
                completer.set_error(TaskError::Cancelled);
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
                // Cancelled through its handle before it started: never runs.
                this.completer.take();
                this.future.set(None);
                return Poll::Ready(());
            }
        }
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        let outcome = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(TaskError::Panicked {
                message: weft_sync::into_panic_message(payload),
            }),
        };
        // Drop the future before completing: a panic in its destructor fails
        // the task, as it does for a local task.
        let outcome = match catch_unwind(AssertUnwindSafe(|| this.future.set(None))) {
            Ok(()) => outcome,
            Err(payload) => {
                let message = weft_sync::into_panic_message(payload);
                match outcome {
                    Ok(value) => {
                        weft_sync::drop_quietly(value);
                        Err(TaskError::Panicked { message })
                    }
                    failed => failed,
                }
            }
        };
        if let Some(completer) = this.completer.take() {
            completer.complete(outcome);
        }
        Poll::Ready(())
    }
}
