//! [`TaskSet`] (tasks added over time, results taken as they finish) and
//! [`shield`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use weft_sync::TaskError;

use crate::children::{Children, Next};
use crate::error::RuntimeError;
use crate::task::Task;

/// A set of spawned tasks whose results are taken in the order they finish
/// (tokio's `JoinSet`; in Python, a set of tasks drained with
/// `asyncio.wait(tasks, return_when=FIRST_COMPLETED)` or `as_completed`).
///
/// Unlike a [`TaskGroup`](crate::TaskGroup), the tasks are real runtime
/// tasks (`'static`, started at once) and the set may grow while you take
/// results from it; a failure stops nothing. Dropping the set cancels the
/// tasks still in it; [`detach_all`](TaskSet::detach_all) lets them run on.
///
/// ```
/// use std::time::Duration;
/// use weft_async::{TaskSet, sleep};
/// weft_async::run(async {
///     let mut set = TaskSet::new();
///     for ms in [30u64, 10, 20] {
///         set.spawn(async move { sleep(Duration::from_millis(ms)).await; ms });
///     }
///     let mut order = Vec::new();
///     while let Some(result) = set.join_next().await {
///         order.push(result.unwrap());
///     }
///     assert_eq!(order, [10, 20, 30]);
/// });
/// ```
pub struct TaskSet<T> {
    tasks: TaskSlots<Task<T>>,
}

/// The tasks of a set, each with its id, taken out as they finish: the
/// core of both flavours' `TaskSet` (this one and [`multi`](crate::multi)'s).
pub(crate) struct TaskSlots<F> {
    tasks: Children<F>,
    /// The id of the task in each slot of `tasks`.
    ids: Vec<u64>,
}

impl<F: Future> TaskSlots<F> {
    pub(crate) fn new() -> Self {
        TaskSlots {
            tasks: Children::dynamic(),
            ids: Vec::new(),
        }
    }

    /// Adds `task` under `id`.
    pub(crate) fn push(&mut self, task: F, id: u64) {
        let slot = self.tasks.push(Box::pin(task));
        if self.ids.len() <= slot {
            self.ids.resize(slot + 1, 0);
        }
        self.ids[slot] = id;
    }

    /// How many tasks are left (finished ones stay until taken).
    pub(crate) fn left(&self) -> usize {
        self.tasks.left()
    }

    /// Polls for the next finished task: `Ready(None)` when none is left.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(u64, F::Output)>> {
        if self.tasks.left() == 0 {
            return Poll::Ready(None);
        }
        let mut out = None;
        let ids = &self.ids;
        let _ = self.tasks.poll_children(
            cx,
            |task, cx| task.poll(cx),
            |slot, outcome| {
                out = Some((ids[slot], outcome));
                Next::Stop
            },
        );
        match out {
            Some(out) => Poll::Ready(Some(out)),
            None => Poll::Pending,
        }
    }

    /// Takes every task left out of the set.
    pub(crate) fn drain(&mut self) -> Vec<Pin<Box<F>>> {
        self.tasks.drain()
    }
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
        }
    }

    /// Spawns `future` on the current runtime (as [`spawn`](crate::spawn))
    /// and adds it to the set; returns the task's id.
    ///
    /// # Panics
    ///
    /// Outside a runtime; [`try_spawn`](TaskSet::try_spawn) returns
    /// [`RuntimeError::NoRuntime`] instead.
    pub fn spawn<F>(&mut self, future: F) -> u64
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        self.insert(crate::spawn(future))
    }

    /// Like [`spawn`](TaskSet::spawn), or [`RuntimeError::NoRuntime`].
    pub fn try_spawn<F>(&mut self, future: F) -> Result<u64, RuntimeError>
    where
        F: Future<Output = T> + 'static,
        T: 'static,
    {
        Ok(self.insert(crate::try_spawn(future)?))
    }

    /// Adds a task spawned elsewhere; returns its id.
    pub fn insert(&mut self, task: Task<T>) -> u64 {
        let id = task.id();
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
    /// set; `None` when the set is empty. Cancel-safe: if this future is
    /// dropped before it completes, no outcome is lost.
    pub async fn join_next(&mut self) -> Option<Result<T, TaskError>> {
        self.join_next_with_id().await.map(|(_, outcome)| outcome)
    }

    /// Like [`join_next`](TaskSet::join_next), with the task's id.
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

    /// Cancels every task in the set (their futures are dropped the next
    /// time the runtime gets control) and empties it.
    pub fn cancel_all(&mut self) {
        drop(self.tasks.drain());
    }

    /// Cancels every task in the set and waits until their futures have
    /// been dropped (their destructors have run when this returns).
    pub async fn shutdown(&mut self) {
        for task in self.tasks.drain() {
            let task = Pin::into_inner(task);
            let _ = task.cancel().await;
        }
    }

    /// Lets every task in the set run on in the background, and empties it.
    pub fn detach_all(&mut self) {
        for task in self.tasks.drain() {
            Pin::into_inner(task).detach();
        }
    }
}

/// Protects `future` from cancellation (Python's `asyncio.shield`): it runs
/// as a task of its own, and if the returned future is dropped (its caller
/// cancelled, a [`timeout`](crate::timeout) ran out), the task goes on to
/// completion in the background instead of being cancelled with it.
///
/// Awaiting the result gives the task's outcome, as a [`Task`] does; a panic
/// of a task nobody awaits any more goes to the [panic
/// hook](crate::set_panic_hook). The runtime still cancels it if it ends
/// first.
///
/// # Panics
///
/// Outside a runtime.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft_async::{shield, timeout};
/// use weft_sync::Event;
/// weft_async::run(async {
///     let (go, saved) = (Arc::new(Event::new()), Arc::new(Event::new()));
///     let (g, s) = (go.clone(), saved.clone());
///     let write = shield(async move {
///         g.wait_async().await;
///         s.set(); // must not be cut short
///     });
///     // The caller gives up...
///     assert!(timeout(Duration::from_millis(1), write).await.is_err());
///     // ...the shielded work does not.
///     go.set();
///     saved.wait_async().await;
/// });
/// ```
pub fn shield<F>(future: F) -> Shielded<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Shielded {
        task: Some(crate::spawn(future)),
    }
}

/// The future of [`shield`]: detaches its task instead of cancelling it
/// when dropped.
#[must_use = "a shielded future still runs if dropped, but its outcome is lost"]
pub struct Shielded<T> {
    task: Option<Task<T>>,
}

impl<T> fmt::Debug for Shielded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shielded")
            .field("task", &self.task)
            .finish()
    }
}

impl<T> Future for Shielded<T> {
    type Output = Result<T, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(TaskError::Cancelled));
        };
        let out = std::task::ready!(Pin::new(task).poll(cx));
        self.task = None;
        Poll::Ready(out)
    }
}

impl<T> Drop for Shielded<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}
