//! `run`, `spawn`, [`Task`], task names, the live-task listing and the panic
//! hook for tasks nobody awaits.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, Waker};

use weft_sync::TaskError;

use crate::error::RuntimeError;
use crate::runtime::{self, Meta, NO_SLOT, Name, with_core};
use crate::waker::Guard;

/// Runs `future` to completion on the current thread and returns its output
/// (Python's `asyncio.run`).
///
/// While it runs, the thread drives `future`, every task [`spawn`]ed on it,
/// timers and I/O (through `async-io`'s reactor). When the thread has nothing
/// to run it sleeps in the reactor, using no CPU, until a timer fires, I/O is
/// ready, or another thread wakes one of its tasks.
///
/// When `future` completes, the tasks still alive (detached or not) are
/// cancelled: their futures are dropped, so their destructors run, before
/// `run` returns. A [`Task`] handle that outlives `run` then reports
/// [`TaskError::Cancelled`]. The same clean-up happens if `future` panics.
///
/// # Panics
///
/// If a runtime is already running on this thread (a `run` inside a task):
/// see [`try_run`] for the non-panicking form. Panics of `future` itself
/// propagate; panics of spawned tasks do not (see [`Task`]).
///
/// # Example
///
/// ```
/// let answer = weft_async::run(async {
///     let task = weft_async::spawn(async { 6 * 7 });
///     task.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn run<F: Future>(future: F) -> F::Output {
    match runtime::try_run(future) {
        Ok(out) => out,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`run`], but returns [`RuntimeError::NestedRun`] instead of
/// panicking when a runtime is already running on this thread.
///
/// ```
/// use weft_async::RuntimeError;
/// weft_async::run(async {
///     assert_eq!(weft_async::try_run(async {}), Err(RuntimeError::NestedRun));
/// });
/// ```
pub fn try_run<F: Future>(future: F) -> Result<F::Output, RuntimeError> {
    runtime::try_run(future)
}

/// Starts `future` as a task on the current thread's runtime and returns its
/// [`Task`] handle (Python's `asyncio.create_task`).
///
/// The future need not be `Send`: it never leaves this thread. It starts the
/// next time the running task yields to the runtime.
///
/// # Panics
///
/// If no runtime is running on this thread; [`try_spawn`] returns
/// [`RuntimeError::NoRuntime`] instead.
///
/// # Example
///
/// ```
/// use std::rc::Rc;
/// weft_async::run(async {
///     let shared = Rc::new(5); // !Send is fine
///     let s = shared.clone();
///     let task = weft_async::spawn(async move { *s * 2 });
///     assert_eq!(task.await, Ok(10));
/// });
/// ```
pub fn spawn<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match try_spawn(future) {
        Ok(task) => task,
        Err(e) => panic!("{e}"),
    }
}

/// Like [`spawn`], but returns [`RuntimeError::NoRuntime`] instead of
/// panicking when no runtime is running on this thread.
///
/// ```
/// use weft_async::RuntimeError;
/// assert_eq!(weft_async::try_spawn(async {}).err(), Some(RuntimeError::NoRuntime));
/// ```
pub fn try_spawn<F>(future: F) -> Result<Task<F::Output>, RuntimeError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_named(future, None)
}

fn spawn_named<F>(future: F, name: Option<Name>) -> Result<Task<F::Output>, RuntimeError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let side = name.as_ref().map(|name| {
        Box::new(Side {
            name: Some(name.clone()),
            done: None,
            guard: Guard::default(),
        })
    });
    let (inner, id) = runtime::spawn_raw(future, name)?;
    Ok(Task {
        inner: Some(inner.fallible()),
        side,
        id,
    })
}

/// Spawns tasks with options: today, a name (Python's
/// `create_task(coro, name=...)`), shown by [`all_tasks`] and in panic
/// reports.
///
/// ```
/// weft_async::run(async {
///     let task = weft_async::Builder::new()
///         .name("fetcher")
///         .spawn(async { 1 })
///         .unwrap();
///     assert_eq!(task.name(), Some("fetcher"));
///     assert_eq!(task.await, Ok(1));
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    name: Option<Name>,
}

impl Builder {
    /// A builder with no options set.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(Arc::new(name.into()));
        self
    }

    /// Spawns `future` as [`spawn`] does; fails with
    /// [`RuntimeError::NoRuntime`] outside a runtime.
    pub fn spawn<F>(self, future: F) -> Result<Task<F::Output>, RuntimeError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        spawn_named(future, self.name)
    }
}

/// What a task produced: its value, or its panic, whose report goes to the
/// panic hook if the outcome is dropped without being retrieved.
///
/// Dropping an outcome that still holds a value drops the value under
/// `catch_unwind`: `async-task` drops the output of a detached task under an
/// abort-on-panic guard, so a value whose destructor panics would otherwise
/// abort the process.
///
/// The report of a panic waits in a process-wide table (panics are rare),
/// so that an `Outcome<()>` is one word, which keeps `async-task`'s output
/// slot, and with it the allocation of a small task, as small as a plain
/// `Result<(), Box<_>>` would.
pub(crate) struct Outcome<T>(State<T>);

enum State<T> {
    Value(T),
    /// The index of the report in [`PANICS`].
    Panicked(u32),
    /// Taken by an `.await`.
    Taken,
}

/// Reports of panics that no `.await` has retrieved yet.
static PANICS: Mutex<Slab> = Mutex::new(Slab {
    slots: Vec::new(),
    free: Vec::new(),
});

struct Slab {
    slots: Vec<Option<PanicReport>>,
    free: Vec<u32>,
}

fn panics() -> std::sync::MutexGuard<'static, Slab> {
    PANICS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Slab {
    fn insert(&mut self, report: PanicReport) -> u32 {
        match self.free.pop() {
            Some(index) => {
                self.slots[index as usize] = Some(report);
                index
            }
            None => {
                // More than u32::MAX unretrieved panics at once cannot fit in
                // memory (each report is a few dozen bytes).
                let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
                self.slots.push(Some(report));
                index
            }
        }
    }

    fn take(&mut self, index: u32) -> Option<PanicReport> {
        let report = self.slots.get_mut(index as usize)?.take()?;
        self.free.push(index);
        Some(report)
    }
}

impl<T> Drop for Outcome<T> {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.0, State::Taken) {
            State::Value(value) => {
                if std::mem::needs_drop::<T>() {
                    let task_id = with_core(|core| core.current.get()).unwrap_or(0);
                    drop_output(value, task_id);
                }
            }
            State::Panicked(index) => {
                let report = panics().take(index);
                if let Some(report) = report {
                    report_unretrieved(&report);
                }
            }
            State::Taken => {}
        }
    }
}

impl<T> Outcome<T> {
    pub(crate) fn ok(value: T) -> Outcome<T> {
        Outcome(State::Value(value))
    }

    /// A panic caught while polling the current task, whose registry slot is
    /// `slot` (`NO_SLOT` if it has none).
    pub(crate) fn panicked(payload: Box<dyn std::any::Any + Send>, slot: u32) -> Outcome<T> {
        let report = current_report(payload, slot, PanicPhase::Running);
        Outcome(State::Panicked(panics().insert(report)))
    }

    fn into_result(mut self) -> Result<T, TaskError> {
        match std::mem::replace(&mut self.0, State::Taken) {
            State::Value(value) => Ok(value),
            State::Panicked(index) => {
                let report = panics().take(index);
                Err(TaskError::Panicked {
                    message: report.map(|r| r.message).unwrap_or_default(),
                })
            }
            State::Taken => Err(TaskError::Cancelled),
        }
    }

    pub(crate) fn is_err(&self) -> bool {
        matches!(self.0, State::Panicked(_))
    }

    /// Drops the outcome of task `task_id`, nobody having taken it: a panic
    /// goes to the hook, and so does a panic in the value's destructor.
    fn discard(mut self, task_id: u64) {
        if let State::Value(_) = self.0
            && let State::Value(value) = std::mem::replace(&mut self.0, State::Taken)
        {
            drop_output(value, task_id);
        }
        // A panic goes to the hook as this drops.
    }
}

/// Drops the output `value` of task `task_id`, which nobody took; a panic in
/// its destructor goes to the panic hook.
fn drop_output<T>(value: T, task_id: u64) {
    if let Some(message) = weft_sync::drop_quietly(value) {
        report_unretrieved(&PanicReport {
            task_id,
            task_name: None,
            message,
            phase: PanicPhase::Output,
        });
    }
}

/// The report of a panic in the task being polled or dropped on this thread,
/// whose registry slot is `slot` (`NO_SLOT` if it has none); consumes the
/// panic's payload.
fn current_report(
    payload: Box<dyn std::any::Any + Send>,
    slot: u32,
    phase: PanicPhase,
) -> PanicReport {
    let (task_id, task_name) = with_core(|core| {
        let name = if slot == NO_SLOT {
            None
        } else {
            let registry = core.registry.borrow();
            registry
                .get(slot)
                .and_then(|entry| entry.name.as_deref().cloned())
        };
        (core.current.get(), name)
    })
    .unwrap_or((0, None));
    PanicReport {
        task_id,
        task_name,
        message: weft_sync::into_panic_message(payload),
        phase,
    }
}

/// Reports a panic in the destructor of a cancelled task's future (the task
/// being dropped on this thread; `slot` is its registry slot): nobody awaits
/// a cancelled task's output, so it goes to the panic hook.
pub(crate) fn report_cancel_panic(payload: Box<dyn std::any::Any + Send>, slot: u32) {
    report_unretrieved(&current_report(payload, slot, PanicPhase::Cancelled));
}

/// Wakes `waker`, which user code handed to the runtime: a panic in its
/// `wake` goes to the panic hook, never further.
pub(crate) fn wake_contained(waker: Waker) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
        report_unretrieved(&current_report(payload, NO_SLOT, PanicPhase::Wake));
    }
}

/// Drops `waker`, which user code handed to the runtime: a panic in its
/// destructor goes to the panic hook, never further.
pub(crate) fn drop_contained(waker: Waker) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| drop(waker))) {
        report_unretrieved(&current_report(payload, NO_SLOT, PanicPhase::Wake));
    }
}

/// What a [`Task`] needs only sometimes, kept out of line so that the handle
/// stays three words: the task's name, and an outcome seen by
/// [`Task::poll_finished`] but not yet taken by an `.await`.
struct Side<T> {
    name: Option<Name>,
    done: Option<Outcome<T>>,
    /// The waker handed to `async-task` for a user's waker.
    guard: Guard,
}

/// The waker to poll a task's `async-task` handle with for `cx`: `cx`'s own
/// if it is one of weft's, else `side`'s guard (made here if need be).
#[inline]
fn awaiter<'w, T>(side: &'w mut Option<Box<Side<T>>>, cx: &'w Context<'_>) -> &'w Waker {
    if crate::waker::is_trusted(cx.waker()) {
        return cx.waker();
    }
    side.get_or_insert_with(|| {
        Box::new(Side {
            name: None,
            done: None,
            guard: Guard::default(),
        })
    })
    .guard
    .guard(cx.waker())
}

/// A handle to a spawned task (Python's `asyncio.Task`).
///
/// * **Await it** to get the task's output: `Ok(value)`, or
///   `Err(`[`TaskError::Panicked`]`)` if the task panicked (the runtime and the
///   other tasks carry on), or `Err(`[`TaskError::Cancelled`]`)` if the runtime
///   cancelled it (it was still running when [`run`] returned).
/// * **Drop it** to cancel the task: its future is dropped, without being
///   polled again, the next time the runtime gets control. Keep the handle, or
///   call [`detach`](Task::detach), to let the task run on.
/// * **[`cancel`](Task::cancel)`().await`** cancels it and waits until its
///   future is dropped; it returns the output if the task had already finished.
/// * **[`detach`](Task::detach)** lets it run to completion in the
///   background. A panic in a detached task (or in a finished task whose handle
///   is dropped before its output is taken) goes to the hook set with
///   [`set_panic_hook`]; by default it is printed to stderr.
/// * **Destructors are contained too.** A panic in the destructor of a
///   cancelled task's future (however it was cancelled: handle dropped,
///   `cancel().await`, or [`run`] returning), or of an output that nobody
///   takes, goes to the same hook ([`PanicReport::phase`] says which);
///   a future whose destructor panics as it finishes fails its task with
///   [`TaskError::Panicked`]. The runtime and the other tasks carry on.
///
/// `Task` is a [`Future`] (and `Unpin`), so it works with [`join_all`](crate::join_all),
/// [`select`](crate::select), [`timeout`](crate::timeout) and friends. It is
/// `Send` when `T` is, so it can also be awaited from another runtime or
/// thread (for example with `futures_lite::future::block_on(task)` on a plain
/// thread): the task itself always runs on the runtime that spawned it.
///
/// ```
/// weft_async::run(async {
///     let task = weft_async::spawn(async { panic!("boom") });
///     let err: Result<(), _> = task.await;
///     assert_eq!(err.unwrap_err().to_string(), "the task panicked: boom");
/// });
/// ```
#[must_use = "dropping a Task cancels it; call .detach() to let it run in the background"]
pub struct Task<T> {
    inner: Option<async_task::FallibleTask<Outcome<T>, Meta>>,
    /// Present only for named tasks, or once `poll_finished` stashed an outcome.
    side: Option<Box<Side<T>>>,
    id: u64,
}

// The output is only moved, never pinned.
impl<T> Unpin for Task<T> {}

impl<T> Task<T> {
    /// The task's id, unique within its runtime (as listed by [`all_tasks`]);
    /// ids count from 1 in each [`run`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The task's name, if it was spawned with one ([`Builder::name`]).
    pub fn name(&self) -> Option<&str> {
        self.side.as_ref()?.name.as_deref().map(String::as_str)
    }

    /// Takes the outcome stashed by `poll_finished`, if any.
    fn take_done(&mut self) -> Option<Outcome<T>> {
        self.side.as_mut()?.done.take()
    }

    fn has_done(&self) -> bool {
        self.side.as_ref().is_some_and(|side| side.done.is_some())
    }

    /// Whether the task has finished: returned, panicked or been cancelled.
    /// Awaiting a finished task returns at once.
    pub fn is_finished(&self) -> bool {
        self.has_done() || self.inner.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Cancels the task and waits until its future has been dropped (Python's
    /// `Task.cancel()` followed by awaiting it).
    ///
    /// Returns `Some(output)` if the task had already finished, and `None` if
    /// this call cancelled it. A cancelled task is never polled again, and its
    /// destructors have run when this returns.
    ///
    /// ```
    /// use std::time::Duration;
    /// weft_async::run(async {
    ///     let slow = weft_async::spawn(weft_async::sleep(Duration::from_secs(3600)));
    ///     assert_eq!(slow.cancel().await, None);
    ///     let quick = weft_async::spawn(async { 7 });
    ///     weft_async::sleep(Duration::from_millis(1)).await;
    ///     assert_eq!(quick.cancel().await, Some(Ok(7)));
    /// });
    /// ```
    pub async fn cancel(mut self) -> Option<Result<T, TaskError>> {
        if let Some(done) = self.take_done() {
            return Some(done.into_result());
        }
        let inner = self.inner.take()?;
        inner.cancel().await.map(Outcome::into_result)
    }

    /// Lets the task run to completion in the background, without a handle.
    ///
    /// If it panics, the panic goes to the hook set with [`set_panic_hook`]
    /// (by default, a line on stderr). Detached tasks still running when
    /// [`run`] returns are cancelled like any other.
    pub fn detach(mut self) {
        // Dropping a stashed or finished outcome reports an unretrieved panic.
        self.discard_finished();
        if let Some(inner) = self.inner.take() {
            inner.detach();
        }
    }

    /// Drops the outcome of a finished task, if it has one that nobody took:
    /// a panic goes to the hook, and so does a panic in the output's
    /// destructor (which must not unwind into whoever drops the handle).
    fn discard_finished(&mut self) {
        let id = self.id;
        if let Some(done) = self.take_done() {
            done.discard(id);
        }
        if let Some(inner) = self.inner.as_mut()
            && inner.is_finished()
        {
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(outcome) = Pin::new(inner).poll(&mut cx) {
                self.inner = None;
                if let Some(outcome) = outcome {
                    outcome.discard(id);
                }
            }
        }
    }

    /// Polls for completion without giving the output away: once finished,
    /// the outcome is kept for the next `.await`. Returns `Some(is_err)`.
    pub(crate) fn poll_finished(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let Some(done) = self.side.as_ref().and_then(|side| side.done.as_ref()) {
            return Poll::Ready(done.is_err());
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(false);
        };
        let mut cx = Context::from_waker(awaiter(&mut self.side, cx));
        match Pin::new(inner).poll(&mut cx) {
            Poll::Ready(Some(outcome)) => {
                self.inner = None;
                let is_err = outcome.is_err();
                self.side
                    .get_or_insert_with(|| {
                        Box::new(Side {
                            name: None,
                            done: None,
                            guard: Guard::default(),
                        })
                    })
                    .done = Some(outcome);
                Poll::Ready(is_err)
            }
            Poll::Ready(None) => {
                // Cancelled: leave `inner` in place so the await reports it.
                Poll::Ready(true)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.side.is_some()
            && let Some(done) = this.take_done()
        {
            return Poll::Ready(done.into_result());
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Err(TaskError::Cancelled));
        };
        let mut cx = Context::from_waker(awaiter(&mut this.side, cx));
        match Pin::new(inner).poll(&mut cx) {
            Poll::Ready(Some(outcome)) => {
                this.inner = None;
                Poll::Ready(outcome.into_result())
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(Err(TaskError::Cancelled))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if self.inner.is_some() || self.has_done() {
            // A finished outcome is dropped here, its panics contained; an
            // unfinished task is cancelled when `inner` drops.
            self.discard_finished();
        }
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("id", &self.id)
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// What a live task is doing, as reported by [`all_tasks`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskState {
    /// Being polled right now (the task that called [`all_tasks`]).
    Running,
    /// Woken and waiting in the run queue for its turn.
    Scheduled,
    /// Waiting for something (a timer, I/O, a channel, another task) to wake it.
    Waiting,
}

/// One live task, as listed by [`all_tasks`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// The task's id ([`Task::id`]).
    pub id: u64,
    /// The task's name, if it was given one.
    pub name: Option<String>,
    /// What it is doing.
    pub state: TaskState,
}

/// Lists the live tasks of the current thread's runtime, with their names and
/// states, in spawn order (Python's `asyncio.all_tasks`): handy when a program
/// hangs and you want to know who waits.
///
/// The future passed to [`run`] is not a task and is not listed. Outside a
/// runtime the list is empty.
///
/// ```
/// use std::time::Duration;
/// use weft_async::{Builder, TaskState};
/// weft_async::run(async {
///     let t = Builder::new().name("sleeper").spawn(weft_async::sleep(Duration::from_secs(60))).unwrap();
///     weft_async::yield_now().await; // let it start and block on its timer
///     let tasks = weft_async::all_tasks();
///     assert_eq!(tasks.len(), 1);
///     assert_eq!(tasks[0].name.as_deref(), Some("sleeper"));
///     assert_eq!(tasks[0].state, TaskState::Waiting);
///     drop(t);
/// });
/// ```
pub fn all_tasks() -> Vec<TaskInfo> {
    with_core(|core| {
        let current = core.current.get();
        let registry = core.registry.borrow();
        // Names live in the registry (a named task enters it when spawned).
        let names: std::collections::HashMap<u64, &Name> = registry
            .entries()
            .filter_map(|entry| Some((entry.id, entry.name.as_ref()?)))
            .collect();
        // Queued tasks (some never polled yet, so maybe not in the registry),
        // then the registered ones that are not queued.
        let mut tasks: Vec<TaskInfo> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        core.queue.for_each(|r| {
            let id = r.metadata().id();
            if queued.insert(id) {
                tasks.push(TaskInfo {
                    id,
                    name: names.get(&id).map(|name| name.to_string()),
                    state: TaskState::Scheduled,
                });
            }
        });
        for entry in registry.entries() {
            if queued.contains(&entry.id) {
                continue;
            }
            tasks.push(TaskInfo {
                id: entry.id,
                name: entry.name.as_deref().cloned(),
                state: if entry.id == current {
                    TaskState::Running
                } else {
                    TaskState::Waiting
                },
            });
        }
        if current != 0 && !tasks.iter().any(|t| t.id == current) {
            // The caller, in its first poll (not registered yet, so unnamed).
            tasks.push(TaskInfo {
                id: current,
                name: None,
                state: TaskState::Running,
            });
        }
        tasks.sort_by_key(|t| t.id);
        tasks
    })
    .unwrap_or_default()
}

/// The id of the task being polled on this thread, or `None` in the main
/// future of [`run`] or outside a runtime.
pub fn current_task_id() -> Option<u64> {
    with_core(|core| core.current.get()).filter(|&id| id != 0)
}

/// The task being polled on this thread (Python's `asyncio.current_task()`),
/// or `None` in the main future of [`run`] (which is not a task) and outside
/// a runtime.
///
/// ```
/// weft_async::run(async {
///     assert!(weft_async::current_task().is_none()); // the main future
///     let task = weft_async::Builder::new()
///         .name("worker")
///         .spawn(async {
///             let me = weft_async::current_task().unwrap();
///             (me.id(), me.name())
///         })
///         .unwrap();
///     let id = task.id();
///     assert_eq!(task.await, Ok((id, Some("worker".to_string()))));
/// });
/// ```
pub fn current_task() -> Option<CurrentTask> {
    with_core(|core| {
        let id = core.current.get();
        (id != 0).then(|| CurrentTask { rt: core.rt(), id })
    })
    .flatten()
}

/// A task found by [`current_task`]: its id, its name, and a way to cancel
/// it without its [`Task`] handle (Python's `current_task().cancel()`).
///
/// It can be kept and passed to other tasks of the same runtime (for
/// example, to let a watchdog cancel the task that registered with it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CurrentTask {
    rt: u64,
    id: u64,
}

impl CurrentTask {
    /// The task's id, as [`Task::id`] and [`all_tasks`] give it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The task's name, if it was spawned with one ([`Builder::name`]);
    /// `None` too once the task has finished, or when asked from another
    /// thread than its runtime's.
    pub fn name(&self) -> Option<String> {
        with_core(|core| {
            if core.rt() != self.rt {
                return None;
            }
            let registry = core.registry.borrow();
            registry
                .entries()
                .find(|entry| entry.id == self.id)
                .and_then(|entry| entry.name.as_deref().cloned())
        })
        .flatten()
    }

    /// Requests the task's cancellation (Python's `Task.cancel()`): the next
    /// time the task is due to run, the runtime drops its future instead of
    /// polling it (its destructors run then), and its [`Task`] handle
    /// reports [`TaskError::Cancelled`]. It is woken so that this happens
    /// soon; a task that cancels itself goes on until its next `.await` that
    /// has to wait.
    ///
    /// Returns `false` if the task has already finished, or if this is
    /// called on another thread than the task's runtime's.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_async::TaskError;
    /// weft_async::run(async {
    ///     let task = weft_async::spawn(async {
    ///         weft_async::current_task().unwrap().cancel();
    ///         weft_async::sleep(Duration::from_secs(60)).await; // dropped here
    ///         unreachable!()
    ///     });
    ///     assert_eq!(task.await, Err(TaskError::Cancelled));
    /// });
    /// ```
    pub fn cancel(&self) -> bool {
        with_core(|core| core.rt() == self.rt && core.request_cancel(self.id)).unwrap_or(false)
    }
}

/// A panic that no one retrieved: the task was detached, or its [`Task`] was
/// dropped after it finished, so nobody awaited the error (Python's "Task
/// exception was never retrieved").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PanicReport {
    /// The task's id.
    pub task_id: u64,
    /// The task's name, if it had one.
    pub task_name: Option<String>,
    /// The panic message.
    pub message: String,
    /// Whether the task panicked while it ran, or later in a destructor.
    pub phase: PanicPhase,
}

/// Where the panic of a [`PanicReport`] happened.
///
/// Destructors are user code too: a panic in the destructor of a cancelled
/// task's future, or of an output value that nobody took, is caught like a
/// panic in the task itself (the runtime and the other tasks carry on) and
/// reported to the hook, since nobody awaits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PanicPhase {
    /// While the task ran: its future was being polled, or dropped as it
    /// finished.
    Running,
    /// While the task's future was being dropped after it was cancelled
    /// (its [`Task`] dropped or [`cancel`](Task::cancel)led, or still alive
    /// when [`run`] returned).
    Cancelled,
    /// While the task's output, which nobody took (the task was detached,
    /// or its [`Task`] dropped after it finished), was being dropped. The
    /// report's `task_name` is `None` for this phase.
    Output,
    /// In a waker's `wake`, which the runtime called on behalf of a future
    /// that had passed it that waker (a socket waiting for I/O, or a
    /// combinator such as [`join_all`](crate::join_all) waking its parent).
    /// The report's task is the one the runtime was running at that moment
    /// (0: none); whoever owned the waker may not have been woken.
    Wake,
}

impl fmt::Display for PanicReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.task_name {
            Some(name) => write!(f, "task #{} ({name:?})", self.task_id)?,
            None => write!(f, "task #{}", self.task_id)?,
        }
        match self.phase {
            PanicPhase::Running => write!(f, " panicked and nobody awaited its Task")?,
            PanicPhase::Cancelled => write!(
                f,
                " panicked in a destructor while its future was dropped after it was cancelled"
            )?,
            PanicPhase::Output => write!(
                f,
                " finished, and its output panicked in its destructor as it was dropped unread"
            )?,
            PanicPhase::Wake => write!(f, ": a waker panicked when the runtime woke it")?,
        }
        write!(f, ": {}", self.message)
    }
}

type Hook = Arc<dyn Fn(&PanicReport) + Send + Sync + 'static>;

static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Sets the function that receives panics of tasks nobody awaits (detached
/// tasks, or finished tasks whose [`Task`] was dropped), for the whole
/// process. The default prints `weft-async: <report>` to stderr.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// weft_async::set_panic_hook(move |report| sink.lock().unwrap().push(report.message.clone()));
/// weft_async::run(async {
///     weft_async::spawn(async { panic!("lost") }).detach();
///     weft_async::sleep(std::time::Duration::from_millis(5)).await;
/// });
/// weft_async::take_panic_hook();
/// assert_eq!(*seen.lock().unwrap(), vec!["lost".to_string()]);
/// ```
pub fn set_panic_hook<F>(hook: F)
where
    F: Fn(&PanicReport) + Send + Sync + 'static,
{
    *HOOK.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(hook));
}

/// Restores the default panic hook (print to stderr).
pub fn take_panic_hook() {
    *HOOK.write().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Sends `report` to the hook. The hook is user code: if it panics, the
/// panic goes no further (the report and the hook's panic are printed to
/// stderr instead).
fn report_unretrieved(report: &PanicReport) {
    use std::io::Write as _;
    let hook = HOOK.read().unwrap_or_else(PoisonError::into_inner).clone();
    let failed = match hook {
        Some(hook) => match catch_unwind(AssertUnwindSafe(|| hook(report))) {
            Ok(()) => None,
            Err(payload) => {
                let message = weft_sync::into_panic_message(payload);
                Some(message)
            }
        },
        None => {
            // Not eprintln!, which panics if stderr cannot be written.
            let _ = writeln!(std::io::stderr(), "weft-async: {report}");
            return;
        }
    };
    if let Some(message) = failed {
        let _ = writeln!(
            std::io::stderr(),
            "weft-async: the panic hook panicked ({message}) while reporting: {report}"
        );
    }
}
