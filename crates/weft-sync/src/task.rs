//! [`TaskHandle`], the `concurrent.futures.Future` of every weft engine, and its
//! producer side, [`Completer`].
//!
//! An engine (a thread pool, a process pool, an async runtime) makes a pair
//! with [`TaskHandle::pair`], keeps the [`Completer`] with the job and hands the
//! [`TaskHandle`] to the user. The completer marks the task as started
//! ([`Completer::start`]) and completes it once with a value or a
//! [`TaskError`]; the handle can be waited on from a thread (`join`,
//! `wait_timeout`) or awaited from any executor, because it is a
//! [`Future`].

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::shim::{Arc, Condvar, Mutex, MutexGuard};
use crate::waker::deadline_after;

/// Why a task produced no value.
///
/// Every engine reports failures through this one type, so code that waits on
/// a thread-pool task, a process-pool task or an async task handles errors the
/// same way. Each variant's message says what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The task's code panicked. The worker that ran it is still alive.
    #[error("the task panicked: {message}")]
    Panicked {
        /// The panic message (the `&str` or `String` payload), or a note that
        /// the payload was of another type.
        message: String,
    },
    /// The task was cancelled ([`TaskHandle::cancel`], a pool shut down with
    /// pending work cancelled, or a sibling's failure in a task group).
    #[error("the task was cancelled before it could finish")]
    Cancelled,
    /// The task ran past its time limit and the engine stopped it.
    #[error("the task ran past its time limit of {timeout:?} and was stopped")]
    TimedOut {
        /// The limit the task exceeded.
        timeout: Duration,
    },
    /// The worker running the task died (a crash, `abort`, `exit`, a signal)
    /// before reporting a result. The engine has replaced the worker.
    #[error("the worker running the task died ({exit}) before reporting a result")]
    WorkerLost {
        /// How the worker ended.
        exit: WorkerExit,
    },
    /// The task's argument or result could not be serialized or deserialized
    /// on its way between processes.
    #[error("the task's argument or result could not be (de)serialized: {message}")]
    Serialization {
        /// What the serializer said.
        message: String,
    },
    /// The engine dropped the task without running it to completion, for
    /// example because the pool or runtime that owned it was torn down.
    #[error(
        "the task was dropped by its engine before it completed (was the pool or runtime shut down?)"
    )]
    Abandoned,
}

impl TaskError {
    /// A [`TaskError::Panicked`] carrying the message of a caught panic
    /// payload (as returned by [`std::panic::catch_unwind`]).
    ///
    /// ```
    /// use weft_sync::TaskError;
    /// let payload = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
    /// assert_eq!(
    ///     TaskError::from_panic(&*payload),
    ///     TaskError::Panicked { message: "boom 7".into() }
    /// );
    /// ```
    pub fn from_panic(payload: &(dyn Any + Send)) -> TaskError {
        TaskError::Panicked {
            message: panic_message(payload),
        }
    }

    /// `true` for [`TaskError::Cancelled`].
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled)
    }

    /// `true` for [`TaskError::Panicked`].
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked { .. })
    }
}

/// The message of a panic payload: the `&str` or `String` it carries, or a
/// placeholder for other payload types.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<the panic payload was not a string>".to_owned()
    }
}

/// The message of a caught panic ([`panic_message`]), consuming its
/// payload without letting a second panic out: a payload whose own `Drop`
/// panics is leaked instead (as std does for the payloads of panicking
/// threads).
///
/// ```
/// let payload = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
/// assert_eq!(weft_sync::into_panic_message(payload), "boom 7");
/// ```
pub fn into_panic_message(payload: Box<dyn Any + Send>) -> String {
    let message = panic_message(&*payload);
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    message
}

/// Drops `value` where a panic must not escape: on a thread an engine owns
/// (a worker, a supervisor, a runtime's loop), or on a path that is already
/// unwinding. A panic raised by its `Drop` is caught and its message
/// returned; that panic's own payload is dropped by
/// [`into_panic_message`], so nothing unwinds out of this call.
///
/// Every weft engine drops user values (unread results, cancelled
/// closures, caught panic payloads) through this function.
///
/// ```
/// struct Loud;
/// impl Drop for Loud {
///     fn drop(&mut self) {
///         panic!("loud drop");
///     }
/// }
/// assert_eq!(weft_sync::drop_quietly(Loud).as_deref(), Some("loud drop"));
/// assert_eq!(weft_sync::drop_quietly(vec![1, 2, 3]), None);
/// ```
pub fn drop_quietly<T>(value: T) -> Option<String> {
    catch_unwind(AssertUnwindSafe(move || drop(value)))
        .err()
        .map(into_panic_message)
}

/// How a worker process ended, for [`TaskError::WorkerLost`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerExit {
    /// It exited with this status code.
    Code(i32),
    /// It was killed by this signal number (Unix).
    Signal(i32),
    /// The way it ended is not known; the text says what was observed.
    Unknown(String),
}

impl fmt::Display for WorkerExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerExit::Code(code) => write!(f, "exit code {code}"),
            WorkerExit::Signal(sig) => write!(f, "killed by signal {sig}"),
            WorkerExit::Unknown(what) => write!(f, "{what}"),
        }
    }
}

type Callback<T> = Box<dyn FnOnce(Result<&T, &TaskError>) + Send + 'static>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started; can still be cancelled.
    Pending,
    /// Started by its engine; can no longer be cancelled.
    Running,
    /// The outcome is being decided: done-callbacks are running. Observers
    /// still see the task as unfinished.
    Completing,
    /// Finished; the outcome is in `State::outcome`.
    Done,
    /// Finished, and the outcome has been taken by `join` or `.await`.
    Taken,
}

struct State<T> {
    phase: Phase,
    cancelled: bool,
    failed: bool,
    outcome: Option<Result<T, TaskError>>,
    /// The waker of the handle's own `Future` implementation.
    waker: Option<Waker>,
    /// Wakers of other waiters (`wait`, `as_completed`), by key.
    watchers: Vec<(u64, Waker)>,
    next_key: u64,
    callbacks: Vec<Callback<T>>,
    /// Threads blocked on the condition variable.
    blocked: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    cond: Condvar,
}

impl<T> Shared<T> {
    fn is_done(phase: Phase) -> bool {
        matches!(phase, Phase::Done | Phase::Taken)
    }

    /// Finishes the task with `outcome` unless it has already finished.
    /// Runs the done-callbacks on this thread, then publishes the outcome and
    /// wakes every waiter. Returns the outcome back if the task had already
    /// finished (it was cancelled, or completed twice).
    ///
    /// With `only_if_pending` (cancellation), a task that has started is left
    /// alone: the check and the transition happen under one lock, so a
    /// cancel racing with `start` has exactly one winner.
    fn finish(
        &self,
        outcome: Result<T, TaskError>,
        only_if_pending: bool,
    ) -> Result<(), Result<T, TaskError>> {
        let mut st = self.state.lock();
        match st.phase {
            Phase::Pending => {}
            Phase::Running if !only_if_pending => {}
            _ => return Err(outcome),
        }
        st.phase = Phase::Completing;
        st.cancelled = matches!(outcome, Err(TaskError::Cancelled));
        st.failed = outcome.is_err();
        // Run the callbacks outside the lock, repeating in case a callback
        // (or another thread) adds more while they run.
        loop {
            let callbacks = std::mem::take(&mut st.callbacks);
            if callbacks.is_empty() {
                break;
            }
            drop(st);
            for cb in callbacks {
                run_callback(cb, &outcome);
            }
            st = self.state.lock();
        }
        st.phase = Phase::Done;
        st.outcome = Some(outcome);
        let waker = st.waker.take();
        let watchers = std::mem::take(&mut st.watchers);
        let blocked = st.blocked > 0;
        drop(st);
        if blocked {
            self.cond.notify_all();
        }
        // A waker is executor code: one that panics must not keep the
        // others from being woken, nor unwind into the completing engine.
        for w in waker
            .into_iter()
            .chain(watchers.into_iter().map(|(_, w)| w))
        {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || w.wake())) {
                drop_quietly(payload);
            }
        }
        Ok(())
    }

    fn take(st: &mut MutexGuard<'_, State<T>>) -> Result<T, TaskError> {
        match st.phase {
            Phase::Done => {
                st.phase = Phase::Taken;
                st.outcome
                    .take()
                    .expect("a finished task holds its outcome")
            }
            Phase::Taken => panic!("the result of this TaskHandle was already taken"),
            _ => unreachable!("take called on an unfinished task"),
        }
    }
}

fn run_callback<T>(cb: Callback<T>, outcome: &Result<T, TaskError>) {
    let arg = outcome.as_ref();
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || cb(arg))) {
        // A done-callback that panics must not take the engine's worker down
        // with it, nor keep the other callbacks from running; as in Python,
        // it is reported and ignored.
        eprintln!(
            "weft: a TaskHandle done-callback panicked (ignored): {}",
            into_panic_message(payload)
        );
    }
}

/// Drops `value` on an engine's thread, where a panicking `Drop` (of a
/// result no one will read, say) must not unwind into the engine: the
/// panic is reported on stderr and ignored.
fn drop_on_engine_thread<V>(value: V, what: &str) {
    if let Some(message) = drop_quietly(value) {
        eprintln!("weft: dropping {what} panicked (ignored): {message}");
    }
}

/// The handle to a task's outcome: Python's `concurrent.futures.Future`, and a
/// Rust [`Future`].
///
/// Every weft engine returns one. Wait for it from a thread with
/// [`join`](TaskHandle::join) or [`wait_timeout`](TaskHandle::wait_timeout),
/// or `.await` it in any executor; both give `Result<T, TaskError>`.
///
/// Dropping a handle detaches the task: it still runs, and its result is
/// dropped, on the thread that completes the task (where a panic in the
/// result's `Drop` is reported on stderr and ignored, so that it cannot
/// take the engine's worker down). To stop a task that has not started,
/// call [`cancel`](TaskHandle::cancel).
///
/// | Python `Future`           | `TaskHandle`                                  |
/// |---------------------------|-----------------------------------------------|
/// | `f.result()`              | [`join`](TaskHandle::join) / `.await`         |
/// | `f.result(timeout=t)`     | [`join_timeout`](TaskHandle::join_timeout)    |
/// | `f.done()`                | [`is_finished`](TaskHandle::is_finished)      |
/// | `f.running()`             | [`is_running`](TaskHandle::is_running)        |
/// | `f.cancel()`              | [`cancel`](TaskHandle::cancel)                |
/// | `f.cancelled()`           | [`is_cancelled`](TaskHandle::is_cancelled)    |
/// | `f.add_done_callback(fn)` | [`add_done_callback`](TaskHandle::add_done_callback) |
///
/// # Examples
///
/// A producer thread completing a handle that the caller joins:
///
/// ```
/// use weft_sync::{TaskHandle, TaskError};
///
/// let (completer, handle) = TaskHandle::pair();
/// std::thread::spawn(move || {
///     completer.run(|| 6 * 7);
/// });
/// assert_eq!(handle.join(), Ok(42));
///
/// // A task cancelled before it starts never runs.
/// let (completer, handle) = TaskHandle::<i32>::pair();
/// assert!(handle.cancel());
/// assert!(!completer.run(|| unreachable!()));
/// assert_eq!(handle.join(), Err(TaskError::Cancelled));
/// ```
pub struct TaskHandle<T> {
    shared: Arc<Shared<T>>,
}

/// The producer side of a [`TaskHandle`]: held by the engine that runs the task.
///
/// Call [`start`](Completer::start) before running the task (it returns
/// `false` if the task was cancelled, and then the task must not run), then
/// complete it once with [`set_result`](Completer::set_result),
/// [`set_error`](Completer::set_error) or [`complete`](Completer::complete),
/// or do all of that with [`run`](Completer::run). A completer dropped
/// without completing reports [`TaskError::Abandoned`], so a waiter is never
/// left hanging.
pub struct Completer<T> {
    shared: Option<Arc<Shared<T>>>,
}

impl<T> TaskHandle<T> {
    /// Makes a pending task: the engine keeps the [`Completer`], the caller
    /// gets the [`TaskHandle`].
    pub fn pair() -> (Completer<T>, TaskHandle<T>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                phase: Phase::Pending,
                cancelled: false,
                failed: false,
                outcome: None,
                waker: None,
                watchers: Vec::new(),
                next_key: 0,
                callbacks: Vec::new(),
                blocked: 0,
            }),
            cond: Condvar::new(),
        });
        (
            Completer {
                shared: Some(shared.clone()),
            },
            TaskHandle { shared },
        )
    }

    /// A handle that is already finished with `outcome`; for engines that
    /// can report a failure (or a result) at once.
    ///
    /// ```
    /// use weft_sync::{TaskHandle, TaskError};
    /// let h = TaskHandle::<u8>::ready(Err(TaskError::Cancelled));
    /// assert!(h.is_finished());
    /// assert_eq!(h.join(), Err(TaskError::Cancelled));
    /// ```
    pub fn ready(outcome: Result<T, TaskError>) -> TaskHandle<T> {
        let (completer, handle) = TaskHandle::pair();
        completer.complete(outcome);
        handle
    }

    /// Blocks the calling thread until the task finishes and returns its
    /// outcome (Python's `future.result()`).
    ///
    /// Do not call this from inside an async task: `.await` the handle there.
    pub fn join(self) -> Result<T, TaskError> {
        let mut st = self.shared.state.lock();
        while !Shared::<T>::is_done(st.phase) {
            st.blocked += 1;
            self.shared.cond.wait(&mut st);
            st.blocked -= 1;
        }
        Shared::take(&mut st)
    }

    /// Waits at most `timeout` for the task to finish; gives the outcome, or
    /// the handle back if the time ran out (Python's `future.result(timeout)`,
    /// without losing the handle).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::TaskHandle;
    ///
    /// let (completer, handle) = TaskHandle::<u32>::pair();
    /// let handle = handle.join_timeout(Duration::from_millis(10)).unwrap_err();
    /// completer.set_result(1);
    /// assert_eq!(handle.join_timeout(Duration::from_secs(1)).ok(), Some(Ok(1)));
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, TaskHandle<T>> {
        if self.wait_timeout(timeout) {
            Ok(self.join())
        } else {
            Err(self)
        }
    }

    /// Gives the outcome if the task has finished, or the handle back if not.
    /// Never blocks.
    pub fn try_join(self) -> Result<Result<T, TaskError>, TaskHandle<T>> {
        if self.is_finished() {
            Ok(self.join())
        } else {
            Err(self)
        }
    }

    /// Blocks until the task finishes, without taking its outcome.
    pub fn wait(&self) {
        let mut st = self.shared.state.lock();
        while !Shared::<T>::is_done(st.phase) {
            st.blocked += 1;
            self.shared.cond.wait(&mut st);
            st.blocked -= 1;
        }
    }

    /// Blocks until the task finishes or `timeout` passes; returns whether it
    /// finished. A timeout of zero just checks.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let Some(deadline) = deadline_after(timeout) else {
            self.wait();
            return true;
        };
        let mut st = self.shared.state.lock();
        while !Shared::<T>::is_done(st.phase) {
            st.blocked += 1;
            let timed_out = self.shared.cond.wait_until(&mut st, deadline);
            st.blocked -= 1;
            if timed_out {
                return Shared::<T>::is_done(st.phase);
            }
        }
        true
    }

    /// Whether the task has finished, successfully or not (Python's `done()`).
    pub fn is_finished(&self) -> bool {
        Shared::<T>::is_done(self.shared.state.lock().phase)
    }

    /// Whether the engine has started the task and it has not finished yet.
    pub fn is_running(&self) -> bool {
        matches!(
            self.shared.state.lock().phase,
            Phase::Running | Phase::Completing
        )
    }

    /// Whether the task ended by cancellation.
    pub fn is_cancelled(&self) -> bool {
        let st = self.shared.state.lock();
        Shared::<T>::is_done(st.phase) && st.cancelled
    }

    /// Cancels the task if it has not started yet; it will then never run and
    /// finishes with [`TaskError::Cancelled`]. Returns `true` if the task is
    /// cancelled (now or before), `false` if it is already running or
    /// finished otherwise, as Python's `Future.cancel()`.
    pub fn cancel(&self) -> bool {
        {
            let st = self.shared.state.lock();
            match st.phase {
                Phase::Pending => {}
                Phase::Done | Phase::Taken => return st.cancelled,
                Phase::Running | Phase::Completing => return false,
            }
        }
        match self.shared.finish(Err(TaskError::Cancelled), true) {
            Ok(()) => true,
            // Lost a race with the engine starting or finishing it.
            Err(_) => self.is_cancelled(),
        }
    }

    /// Registers `callback` to run once with the outcome when the task
    /// finishes, or at once on this thread if it already has.
    ///
    /// Callbacks run on the thread that completes the task, in the order they
    /// were added, just before waiters are woken; a callback that panics is
    /// reported on stderr and ignored. A callback must not block on its own
    /// handle.
    ///
    /// # Panics
    ///
    /// If the outcome was already taken (by awaiting `&mut handle`).
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use weft_sync::TaskHandle;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let (completer, handle) = TaskHandle::pair();
    /// handle.add_done_callback(move |r: Result<&i32, _>| tx.send(r.copied().ok()).unwrap());
    /// completer.set_result(5);
    /// assert_eq!(rx.recv().unwrap(), Some(5));
    /// ```
    pub fn add_done_callback<F>(&self, callback: F)
    where
        F: FnOnce(Result<&T, &TaskError>) + Send + 'static,
    {
        let mut st = self.shared.state.lock();
        match st.phase {
            Phase::Pending | Phase::Running | Phase::Completing => {
                st.callbacks.push(Box::new(callback));
            }
            Phase::Done => {
                // Take the outcome out while the callback runs so that the
                // lock is not held during user code. No one can take it for
                // good meanwhile: `join` and `poll` need ownership or `&mut`
                // of this handle, which we borrow. Another late callback on
                // another thread waits for it to come back.
                while st.outcome.is_none() {
                    st.blocked += 1;
                    self.shared.cond.wait(&mut st);
                    st.blocked -= 1;
                }
                let outcome = st.outcome.take().expect("checked above");
                drop(st);
                run_callback(Box::new(callback), &outcome);
                let mut st = self.shared.state.lock();
                st.outcome = Some(outcome);
                let blocked = st.blocked > 0;
                drop(st);
                if blocked {
                    self.shared.cond.notify_all();
                }
            }
            Phase::Taken => {
                panic!("add_done_callback on a TaskHandle whose result was already taken")
            }
        }
    }

    /// Registers `waker` to be woken when the task finishes. Returns a key
    /// for [`unwatch`](Self::unwatch), or `None` if the task has already
    /// finished (the waker is then not kept).
    pub(crate) fn watch(&self, waker: &Waker) -> Option<u64> {
        let mut st = self.shared.state.lock();
        if Shared::<T>::is_done(st.phase) {
            return None;
        }
        let key = st.next_key;
        st.next_key += 1;
        st.watchers.push((key, waker.clone()));
        Some(key)
    }

    /// Removes a waker registered by [`watch`](Self::watch).
    pub(crate) fn unwatch(&self, key: u64) {
        let mut st = self.shared.state.lock();
        if let Some(pos) = st.watchers.iter().position(|(k, _)| *k == key) {
            st.watchers.swap_remove(pos);
        }
    }

    /// `None` while unfinished; `Some(true)` if it finished with an error
    /// other than cancellation (a cancelled task did not raise, as Python's
    /// `FIRST_EXCEPTION` sees it).
    pub(crate) fn finished_with_error(&self) -> Option<bool> {
        let st = self.shared.state.lock();
        Shared::<T>::is_done(st.phase).then_some(st.failed && !st.cancelled)
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.shared.state.lock();
        if Shared::<T>::is_done(st.phase) {
            return Poll::Ready(Shared::take(&mut st));
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> Unpin for TaskHandle<T> {}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.state.lock();
        let state = match st.phase {
            Phase::Pending => "pending",
            Phase::Running | Phase::Completing => "running",
            Phase::Done | Phase::Taken if st.cancelled => "cancelled",
            Phase::Done | Phase::Taken if st.failed => "failed",
            Phase::Done | Phase::Taken => "finished",
        };
        f.debug_struct("TaskHandle").field("state", &state).finish()
    }
}

impl<T> Completer<T> {
    fn shared(&self) -> &Shared<T> {
        self.shared
            .as_ref()
            .expect("completer used after completion")
    }

    /// Marks the task as started, after which it can no longer be cancelled
    /// (Python's `set_running_or_notify_cancel`). Returns `false` if it was
    /// cancelled: then the task must not run, and completing it is a no-op.
    pub fn start(&self) -> bool {
        let mut st = self.shared().state.lock();
        match st.phase {
            Phase::Pending => {
                st.phase = Phase::Running;
                true
            }
            Phase::Running => true,
            Phase::Completing | Phase::Done | Phase::Taken => false,
        }
    }

    /// Whether the task was cancelled (or otherwise finished) before its
    /// engine completed it. An engine may check this to skip queued work.
    pub fn is_cancelled(&self) -> bool {
        let st = self.shared().state.lock();
        !matches!(st.phase, Phase::Pending | Phase::Running)
    }

    /// Completes the task with `outcome`. Returns `false` (and drops the
    /// outcome) if the task had already finished, i.e. it was cancelled.
    ///
    /// Never panics because of user code: done-callbacks that panic are
    /// reported on stderr and skipped (the others still run), and so is a
    /// panic in the `Drop` of an outcome dropped here (refused, or left
    /// unread because the handle was dropped).
    pub fn complete(mut self, outcome: Result<T, TaskError>) -> bool {
        let shared = self.shared.take().expect("completer used after completion");
        let done = match shared.finish(outcome, false) {
            Ok(()) => true,
            Err(refused) => {
                drop_on_engine_thread(refused, "a task's refused outcome");
                false
            }
        };
        // The last reference, if the handle is gone: this drops the result.
        drop_on_engine_thread(shared, "a task's unread result");
        done
    }

    /// Completes the task with a value. See [`complete`](Self::complete).
    pub fn set_result(self, value: T) -> bool {
        self.complete(Ok(value))
    }

    /// Completes the task with an error. See [`complete`](Self::complete).
    pub fn set_error(self, error: TaskError) -> bool {
        self.complete(Err(error))
    }

    /// Starts the task and runs `f` on this thread, completing the handle
    /// with its value, or with [`TaskError::Panicked`] if it panics (the
    /// panic is caught and does not unwind further). Returns `false`, without
    /// calling `f`, if the task was cancelled.
    pub fn run<F>(self, f: F) -> bool
    where
        F: FnOnce() -> T,
    {
        if !self.start() {
            return false;
        }
        let outcome = catch_unwind(AssertUnwindSafe(f)).map_err(|payload| TaskError::Panicked {
            message: into_panic_message(payload),
        });
        self.complete(outcome);
        true
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let _ = shared.finish(Err(TaskError::Abandoned), false);
        }
    }
}

impl<T> fmt::Debug for Completer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Completer").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    #[test]
    fn completes_across_threads() {
        let (c, h) = TaskHandle::pair();
        let t = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            c.set_result(String::from("done"))
        });
        assert_eq!(h.join().unwrap(), "done");
        assert!(t.join().unwrap());
    }

    #[test]
    fn panics_are_reported_with_their_message() {
        let (c, h) = TaskHandle::<u8>::pair();
        assert!(c.run(|| panic!("bad {}", "input")));
        assert_eq!(
            h.join(),
            Err(TaskError::Panicked {
                message: "bad input".into()
            })
        );
    }

    #[test]
    fn cancel_only_before_start() {
        let (c, h) = TaskHandle::<u8>::pair();
        assert!(c.start());
        assert!(!h.cancel());
        assert!(!h.is_cancelled());
        assert!(h.is_running());
        c.set_result(1);
        assert!(!h.cancel());
        assert_eq!(h.join(), Ok(1));

        let (c, h) = TaskHandle::<u8>::pair();
        assert!(h.cancel());
        assert!(h.cancel(), "cancelling twice still reports cancelled");
        assert!(h.is_cancelled());
        assert!(c.is_cancelled());
        assert!(!c.start());
        let ran = AtomicUsize::new(0);
        let (c2, h2) = TaskHandle::<u8>::pair();
        h2.cancel();
        assert!(!c2.run(|| {
            ran.fetch_add(1, Ordering::SeqCst);
            1
        }));
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        assert!(!c.set_result(3), "completing a cancelled task is refused");
        assert_eq!(h.join(), Err(TaskError::Cancelled));
    }

    #[test]
    fn dropped_completer_abandons() {
        let (c, h) = TaskHandle::<u8>::pair();
        drop(c);
        assert_eq!(h.join(), Err(TaskError::Abandoned));
    }

    #[test]
    fn wait_timeout_expires_then_succeeds() {
        let (c, h) = TaskHandle::<u8>::pair();
        assert!(!h.wait_timeout(Duration::from_millis(30)));
        assert!(!h.wait_timeout(Duration::ZERO));
        let h = h.try_join().unwrap_err();
        c.set_result(9);
        assert!(h.wait_timeout(Duration::from_millis(1)));
        assert!(h.wait_timeout(Duration::MAX));
        assert_eq!(h.try_join().unwrap(), Ok(9));
    }

    #[test]
    fn callbacks_run_once_in_order_even_when_late() {
        let log = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (c, h) = TaskHandle::<u8>::pair();
        for i in 0..3 {
            let log = log.clone();
            h.add_done_callback(move |r| log.lock().push((i, r.copied().ok())));
        }
        c.set_result(4);
        let l2 = log.clone();
        h.add_done_callback(move |r| l2.lock().push((9, r.copied().ok())));
        assert_eq!(
            *log.lock(),
            vec![(0, Some(4)), (1, Some(4)), (2, Some(4)), (9, Some(4))]
        );
        assert_eq!(h.join(), Ok(4));
    }

    #[test]
    fn panicking_callback_does_not_break_completion() {
        let (c, h) = TaskHandle::<u8>::pair();
        h.add_done_callback(|_| panic!("callback failure"));
        assert!(c.set_result(2));
        assert_eq!(h.join(), Ok(2));
    }

    #[test]
    fn many_blocked_joiners_all_wake() {
        let (c, h) = TaskHandle::<u8>::pair();
        let h = std::sync::Arc::new(h);
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                thread::spawn(move || {
                    h.wait();
                    h.is_finished()
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        c.set_result(1);
        for w in waiters {
            assert!(w.join().unwrap());
        }
    }

    #[test]
    fn debug_shows_state() {
        let (c, h) = TaskHandle::<u8>::pair();
        assert!(format!("{h:?}").contains("pending"));
        c.start();
        assert!(format!("{h:?}").contains("running"));
        c.set_error(TaskError::WorkerLost {
            exit: WorkerExit::Signal(9),
        });
        assert!(format!("{h:?}").contains("failed"));
        assert_eq!(
            h.join().unwrap_err().to_string(),
            "the worker running the task died (killed by signal 9) before reporting a result"
        );
    }
}
