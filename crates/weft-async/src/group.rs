//! [`TaskGroup`]: structured concurrency, as Python's `asyncio.TaskGroup`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::children::{Children, Next};

/// A child: its future, wrapped so that its panics (in `poll` and in its
/// destructor) come out as a message.
type Child<'a, T, E> = Pin<Box<dyn Future<Output = Outcome<T, E>> + 'a>>;

/// What a child comes to: its value or error, or its panic's message.
type Outcome<T, E> = Result<Result<T, E>, String>;

pin_project_lite::pin_project! {
    /// A child future that catches its own panics: in `poll`, and in its
    /// destructor, which runs under `catch_unwind` as soon as it finishes
    /// (a panic there fails the child) or, when it is cancelled, in this
    /// wrapper's drop (the group has already failed or is being dropped
    /// itself, so that panic goes no further).
    struct Contained<F> {
        #[pin]
        stage: Stage<F>,
    }

    impl<F> PinnedDrop for Contained<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut stage = this.project().stage;
            if let StageProj::Live { .. } = stage.as_mut().project() {
                let _ = catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Done)))
                    .map_err(weft_sync::drop_quietly);
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        Live { #[pin] future: F },
        Done,
    }
}

impl<F: Future> Future for Contained<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.project().stage;
        let StageProj::Live { future } = stage.as_mut().project() else {
            return Poll::Pending;
        };
        let out = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => {
                let message = weft_sync::into_panic_message(payload);
                Err(message)
            }
        };
        match catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Done))) {
            Ok(()) => Poll::Ready(out),
            Err(payload) => {
                let message = weft_sync::into_panic_message(payload);
                // The first panic is the one reported; an output whose own
                // destructor panics is dropped where the panic stops here.
                let failed = out.and_then(|v| {
                    weft_sync::drop_quietly(v);
                    Err(message)
                });
                Poll::Ready(failed)
            }
        }
    }
}

/// A group of child futures that succeed together or fail together (Python's
/// `asyncio.TaskGroup`).
///
/// [`spawn`](TaskGroup::spawn) adds children; [`join`](TaskGroup::join) runs
/// them all concurrently and waits for all of them. The first child to return
/// an error or to panic stops the group: the other children are dropped
/// (cancelled; their destructors run) and `join` returns that failure as a
/// [`GroupError`]. If all succeed, `join` returns their values in spawn order.
///
/// Children are polled by the task that awaits `join`, not spawned on the
/// runtime, so they may **borrow from the enclosing scope** (no `'static`
/// bound) and never outlive the group. They start when `join` is awaited.
///
/// For Python 3.11's semantics (children start as soon as they are spawned,
/// may spawn siblings while the group runs, the group can be cancelled, and
/// every failure is reported), use [`TaskGroup::scope`], which borrows just
/// the same.
///
/// ```
/// use std::time::Duration;
/// use weft_async::{TaskGroup, GroupError, sleep};
/// weft_async::run(async {
///     let words = vec!["alpha".to_string(), "beta".to_string()];
///     let group = TaskGroup::new();
///     for w in &words {
///         // borrows `words`
///         group.spawn(async move { sleep(Duration::from_millis(1)).await; Ok::<_, String>(w.len()) });
///     }
///     assert_eq!(group.join().await, Ok(vec![5, 4]));
///
///     let group = TaskGroup::new();
///     group.spawn(async { sleep(Duration::from_secs(60)).await; Ok(1) }); // cancelled
///     group.spawn(async { Err("no route to host".to_string()) });
///     assert_eq!(
///         group.join().await,
///         Err(GroupError::Failed { index: 1, error: "no route to host".to_string() })
///     );
/// });
/// ```
pub struct TaskGroup<'a, T, E> {
    children: RefCell<Vec<Child<'a, T, E>>>,
}

impl<'a, T, E> Default for TaskGroup<'a, T, E> {
    fn default() -> Self {
        TaskGroup::new()
    }
}

impl<'a, T, E> fmt::Debug for TaskGroup<'a, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("children", &self.len())
            .finish()
    }
}

impl<'a, T, E> TaskGroup<'a, T, E> {
    /// An empty group.
    pub fn new() -> Self {
        TaskGroup {
            children: RefCell::new(Vec::new()),
        }
    }

    /// Runs `body` as the block of Python 3.11's `async with
    /// asyncio.TaskGroup() as tg:`, with `tg` a [`GroupScope`] to spawn
    /// children through.
    ///
    /// * **Children start when spawned.** They are polled by the scope's own
    ///   future, together with `body`: a child spawned by `body` (or by
    ///   another child, through a clone of the [`GroupScope`]) runs as soon
    ///   as the spawner yields, before `body` goes on. They may **borrow**
    ///   non-`'static` data, as with [`join`](TaskGroup::join), because
    ///   they never leave the scope's future.
    /// * **The scope ends** when `body` and every child have finished:
    ///   `Ok((body's output, the children's values in spawn order))`.
    /// * **Every failure is reported.** When children fail (return `Err` or
    ///   panic), those that finish in the same turn are collected too, then
    ///   `body` and the other children are dropped (cancelled) and the
    ///   scope returns an [`ErrorGroup`] with all the failures (Python's
    ///   `ExceptionGroup`).
    /// * **Cancellation.** [`GroupScope::cancel`] ends the scope the same way,
    ///   with [`ErrorGroup::is_cancelled`]; dropping the scope's future
    ///   (say, under a [`timeout`](crate::timeout)) cancels everything in it.
    ///
    /// Why a scope: a group whose children start at spawn time must be
    /// polled from the moment they are spawned, and a child that borrows
    /// local data can only be polled by a future that lives inside that
    /// borrow (spawning it as a runtime task would need `'static`). So the
    /// group *is* a future, and `body` runs inside it.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use weft_async::{GroupError, TaskGroup};
    /// weft_async::run(async {
    ///     let started = &Cell::new(false);
    ///     let words = &vec!["alpha".to_string(), "beta".to_string()];
    ///     let out = TaskGroup::scope(|tg| async move {
    ///         for w in words {
    ///             tg.spawn(async move { Ok::<_, String>(w.len()) }); // borrows `words`
    ///         }
    ///         let sibling = tg.clone();
    ///         tg.spawn(async move {
    ///             started.set(true);
    ///             sibling.spawn(async { Ok(3) }); // a child spawns a sibling
    ///             Ok(0)
    ///         });
    ///         weft_async::yield_now().await; // the children run now...
    ///         assert!(started.get()); // ...not at the end of the block
    ///         "body"
    ///     })
    ///     .await;
    ///     assert_eq!(out, Ok(("body", vec![5, 4, 0, 3])));
    ///
    ///     // Two children fail: both are reported.
    ///     let err = TaskGroup::<(), String>::scope(|tg| async move {
    ///         tg.spawn(async { Err("disk full".to_string()) });
    ///         tg.spawn(async { Err("no route".to_string()) });
    ///     })
    ///     .await
    ///     .unwrap_err();
    ///     assert_eq!(
    ///         err.errors(),
    ///         [
    ///             GroupError::Failed { index: 0, error: "disk full".to_string() },
    ///             GroupError::Failed { index: 1, error: "no route".to_string() },
    ///         ]
    ///     );
    /// });
    /// ```
    pub async fn scope<B, Fut, R>(body: B) -> Result<(R, Vec<T>), ErrorGroup<E>>
    where
        B: FnOnce(GroupScope<'a, T, E>) -> Fut,
        Fut: Future<Output = R>,
    {
        let shared = Rc::new(ScopeShared {
            new: RefCell::new(Vec::new()),
            spawned: Cell::new(0),
            cancelled: Cell::new(false),
            finished: Cell::new(false),
            polling: Cell::new(false),
            waker: RefCell::new(None),
        });
        // Whatever way the scope ends (even dropped), children spawned
        // after that are refused and those not started are dropped.
        struct Finish<'s, 'a, T, E>(&'s ScopeShared<'a, T, E>);
        impl<T, E> Drop for Finish<'_, '_, T, E> {
            fn drop(&mut self) {
                self.0.finished.set(true);
                let leftover = std::mem::take(&mut *self.0.new.borrow_mut());
                drop(leftover);
                self.0.waker.borrow_mut().take();
            }
        }
        let _finish = Finish(&shared);
        let mut children: Children<dyn Future<Output = Outcome<T, E>> + 'a> = Children::dynamic();
        let mut slot_index: Vec<usize> = Vec::new();
        let mut results: Vec<Option<T>> = Vec::new();
        let mut errors: Vec<GroupError<E>> = Vec::new();
        let mut body = pin!(Some(body(GroupScope {
            shared: shared.clone(),
        })));
        let mut body_out: Option<R> = None;
        std::future::poll_fn(|cx| {
            let stale = shared
                .waker
                .borrow()
                .as_ref()
                .is_none_or(|w| !w.will_wake(cx.waker()));
            if stale {
                *shared.waker.borrow_mut() = Some(cx.waker().clone());
            }
            shared.polling.set(true);
            let mut first = true;
            loop {
                // Start the children spawned since the last round.
                let new = std::mem::take(&mut *shared.new.borrow_mut());
                for (index, child) in new {
                    let slot = children.push(child);
                    if slot_index.len() <= slot {
                        slot_index.resize(slot + 1, 0);
                    }
                    slot_index[slot] = index;
                    if results.len() <= index {
                        results.resize_with(index + 1, || None);
                    }
                }
                if first && body_out.is_none() && errors.is_empty() && !shared.cancelled.get() {
                    first = false;
                    if let Some(running) = body.as_mut().as_pin_mut()
                        && let Poll::Ready(out) = running.poll(cx)
                    {
                        body_out = Some(out);
                        body.set(None);
                    }
                    continue;
                }
                let _ = children.poll_children(
                    cx,
                    |child, cx| child.poll(cx),
                    |slot, outcome| {
                        let index = slot_index[slot];
                        match outcome {
                            Ok(Ok(v)) => results[index] = Some(v),
                            Ok(Err(error)) => errors.push(GroupError::Failed { index, error }),
                            Err(message) => errors.push(GroupError::Panicked { index, message }),
                        }
                        Next::Continue
                    },
                );
                if shared.new.borrow().is_empty() || !errors.is_empty() || shared.cancelled.get() {
                    break;
                }
            }
            shared.polling.set(false);
            if !errors.is_empty() || shared.cancelled.get() {
                return Poll::Ready(());
            }
            if body_out.is_some() && children.left() == 0 {
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
        // Cancel what is left now, before returning: children first, then
        // the body (which may hold handles the children use).
        drop(children);
        body.set(None);
        let cancelled = shared.cancelled.get();
        if errors.is_empty() && !cancelled {
            let values = results
                .into_iter()
                .map(|r| r.expect("TaskGroup: every child produced a value"))
                .collect();
            let out = body_out.expect("TaskGroup: the body finished");
            Ok((out, values))
        } else {
            Err(ErrorGroup { errors, cancelled })
        }
    }

    /// Adds a child (Python's `tg.create_task(coro)`). Its index in
    /// [`GroupError`] and its place in `join`'s output is the spawn order.
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = Result<T, E>> + 'a,
    {
        self.children.borrow_mut().push(Box::pin(Contained {
            stage: Stage::Live { future },
        }));
    }

    /// How many children have been spawned.
    pub fn len(&self) -> usize {
        self.children.borrow().len()
    }

    /// Whether no child has been spawned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs every child to completion and returns their values in spawn
    /// order, or the first failure (an error or a panic), after dropping the
    /// children still running.
    pub async fn join(self) -> Result<Vec<T>, GroupError<E>> {
        let mut children = Children::from_boxed(self.children.into_inner());
        let mut results: Vec<Option<T>> = (0..children.len()).map(|_| None).collect();
        let mut failure: Option<GroupError<E>> = None;
        std::future::poll_fn(|cx| {
            let poll = children.poll_children(
                cx,
                |child, cx| child.poll(cx),
                |index, outcome| match outcome {
                    Ok(Ok(v)) => {
                        results[index] = Some(v);
                        Next::Continue
                    }
                    Ok(Err(error)) => {
                        failure = Some(GroupError::Failed { index, error });
                        Next::Stop
                    }
                    Err(message) => {
                        failure = Some(GroupError::Panicked { index, message });
                        Next::Stop
                    }
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

/// What a [`TaskGroup::scope`] shares with its [`GroupScope`] handles.
struct ScopeShared<'a, T, E> {
    /// Children spawned and not started yet, with their spawn index.
    new: RefCell<Vec<(usize, Child<'a, T, E>)>>,
    /// How many children were spawned.
    spawned: Cell<usize>,
    cancelled: Cell<bool>,
    /// The scope has ended: spawning is refused.
    finished: Cell<bool>,
    /// The scope's future is being polled (no need to wake it).
    polling: Cell<bool>,
    /// The scope's future's waker, to start children spawned from outside
    /// its poll.
    waker: RefCell<Option<Waker>>,
}

impl<T, E> ScopeShared<'_, T, E> {
    fn wake(&self) {
        if !self.polling.get() {
            let waker = self.waker.borrow().clone();
            if let Some(waker) = waker {
                crate::task::wake_contained(waker);
            }
        }
    }
}

/// The `tg` of `async with asyncio.TaskGroup() as tg:`: spawns children into
/// a running [`TaskGroup::scope`], from its body or from its children.
///
/// Cheap to clone (a reference count); clone it into a child to let that
/// child spawn siblings. Not `Send`: the group runs on one task.
pub struct GroupScope<'a, T, E> {
    shared: Rc<ScopeShared<'a, T, E>>,
}

impl<T, E> Clone for GroupScope<'_, T, E> {
    fn clone(&self) -> Self {
        GroupScope {
            shared: self.shared.clone(),
        }
    }
}

impl<T, E> fmt::Debug for GroupScope<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupScope")
            .field("spawned", &self.shared.spawned.get())
            .field("cancelled", &self.shared.cancelled.get())
            .field("finished", &self.shared.finished.get())
            .finish()
    }
}

impl<'a, T, E> GroupScope<'a, T, E> {
    /// Spawns a child (Python's `tg.create_task(coro)`): it starts as soon
    /// as the spawner yields. Returns its spawn index: its place among the
    /// values of a successful scope and in [`GroupError`]s.
    ///
    /// # Panics
    ///
    /// If the scope has already ended (Python raises `RuntimeError` too): a
    /// handle kept past the scope cannot start anything.
    pub fn spawn<F>(&self, future: F) -> usize
    where
        F: Future<Output = Result<T, E>> + 'a,
    {
        assert!(
            !self.shared.finished.get(),
            "GroupScope::spawn: this TaskGroup scope has already ended; spawn inside its body or its children"
        );
        let index = self.shared.spawned.get();
        self.shared.spawned.set(index + 1);
        self.shared.new.borrow_mut().push((
            index,
            Box::pin(Contained {
                stage: Stage::Live { future },
            }),
        ));
        self.shared.wake();
        index
    }

    /// Cancels the group: its body and every child are dropped (their
    /// destructors run) the next time the scope's future is polled, and the
    /// scope returns an [`ErrorGroup`] that [`is_cancelled`](ErrorGroup::is_cancelled)
    /// (with the failures seen before, if any). Called from the body or a
    /// child, the caller goes on until its next `.await` that has to wait.
    pub fn cancel(&self) {
        self.shared.cancelled.set(true);
        self.shared.wake();
    }

    /// Whether [`cancel`](GroupScope::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.cancelled.get()
    }

    /// How many children were spawned so far.
    pub fn spawned(&self) -> usize {
        self.shared.spawned.get()
    }
}

/// Why a [`TaskGroup::scope`] failed: every child failure it saw (Python's
/// `ExceptionGroup`), and whether it was cancelled.
///
/// When a child fails, the children that finish in the same turn of the
/// scope are still collected (so two children that fail together are both
/// reported), then the rest are cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorGroup<E> {
    errors: Vec<GroupError<E>>,
    cancelled: bool,
}

impl<E> ErrorGroup<E> {
    /// The failures, in the order they happened (each with its child's
    /// spawn index). Empty if the group was cancelled before any failure.
    pub fn errors(&self) -> &[GroupError<E>] {
        &self.errors
    }

    /// The failures, by value.
    pub fn into_errors(self) -> Vec<GroupError<E>> {
        self.errors
    }

    /// Whether the group ended because [`GroupScope::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

impl<E: fmt::Display> fmt::Display for ErrorGroup<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.cancelled {
            write!(f, "the task group was cancelled")?;
            if self.errors.is_empty() {
                return Ok(());
            }
            write!(f, "; before that, ")?;
        }
        let n = self.errors.len();
        write!(
            f,
            "{n} task{} of the group failed, so the others were cancelled",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            match e {
                GroupError::Failed { index, error } => write!(f, "; task {index}: {error}")?,
                GroupError::Panicked { index, message } => {
                    write!(f, "; task {index} panicked: {message}")?
                }
            }
        }
        Ok(())
    }
}

impl<E: std::error::Error + 'static> std::error::Error for ErrorGroup<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Why a [`TaskGroup`] failed: the first child that failed, by spawn index.
/// The other children were cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupError<E> {
    /// A child returned an error.
    Failed {
        /// The child's spawn index.
        index: usize,
        /// The error it returned.
        error: E,
    },
    /// A child panicked.
    Panicked {
        /// The child's spawn index.
        index: usize,
        /// The panic message.
        message: String,
    },
}

impl<E> GroupError<E> {
    /// The spawn index of the child that failed.
    pub fn index(&self) -> usize {
        match self {
            GroupError::Failed { index, .. } | GroupError::Panicked { index, .. } => *index,
        }
    }

    /// The child's error, if it returned one (rather than panicking).
    pub fn into_error(self) -> Option<E> {
        match self {
            GroupError::Failed { error, .. } => Some(error),
            GroupError::Panicked { .. } => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for GroupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::Failed { index, error } => write!(
                f,
                "task {index} of the group failed, so its siblings were cancelled: {error}"
            ),
            GroupError::Panicked { index, message } => write!(
                f,
                "task {index} of the group panicked, so its siblings were cancelled: {message}"
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for GroupError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GroupError::Failed { error, .. } => Some(error),
            GroupError::Panicked { .. } => None,
        }
    }
}
