//! [`TaskGroup`]: structured concurrency, as Python's `asyncio.TaskGroup`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
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
        run_scope(body).await
    }

    /// [`scope`](TaskGroup::scope) for `Send` children: the same group,
    /// whose future is `Send` when `body`'s future, its output and the
    /// children's values and errors are, so it can run inside a task of
    /// the multi-threaded flavour ([`multi::spawn`](crate::multi::spawn)).
    /// The children still run concurrently on the task that awaits the
    /// scope, not in parallel (for that, spawn tasks into a
    /// [`multi::TaskGroup`](crate::multi::TaskGroup)), and may borrow.
    ///
    /// ([`scope`](TaskGroup::scope) itself accepts children that are not
    /// `Send`, such as ones holding an `Rc`: a group that may hold such
    /// children cannot be `Send`, whatever the ones it holds are, so its
    /// future is never `Send` and `multi::spawn` refuses it:)
    ///
    /// ```compile_fail
    /// use weft_async::{multi, TaskGroup};
    /// multi::run(async {
    ///     multi::spawn(TaskGroup::<u8, ()>::scope(|tg| async move {
    ///         tg.spawn(async { Ok(1) });
    ///     }));
    /// });
    /// ```
    ///
    /// ```
    /// use weft_async::{multi, TaskGroup};
    /// let rt = multi::Runtime::builder().threads(2).build().unwrap();
    /// let out = rt.spawn(async {
    ///     let words = vec!["alpha".to_string(), "beta".to_string()];
    ///     let words = &words;
    ///     TaskGroup::scope_send(|tg| async move {
    ///         for w in words {
    ///             tg.spawn(async move { Ok::<_, String>(w.len()) }); // borrows `words`
    ///         }
    ///         "body"
    ///     })
    ///     .await
    /// })
    /// .join(); // a multi::Task, waited for from this thread
    /// assert_eq!(out.unwrap(), Ok(("body", vec![5, 4])));
    /// ```
    pub async fn scope_send<B, Fut, R>(body: B) -> Result<(R, Vec<T>), ErrorGroup<E>>
    where
        B: FnOnce(GroupScope<'a, T, E, SendChildren>) -> Fut,
        Fut: Future<Output = R>,
    {
        run_scope(body).await
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

/// The body of [`TaskGroup::scope`] and [`TaskGroup::scope_send`].
async fn run_scope<'a, T, E, K, B, Fut, R>(body: B) -> Result<(R, Vec<T>), ErrorGroup<E>>
where
    K: Kind<'a, T, E>,
    B: FnOnce(GroupScope<'a, T, E, K>) -> Fut,
    Fut: Future<Output = R>,
{
    let shared: Arc<ScopeShared<'a, T, E, K>> = Arc::new(ScopeShared {
        new: Mutex::new(Vec::new()),
        spawned: AtomicUsize::new(0),
        cancelled: AtomicBool::new(false),
        finished: AtomicBool::new(false),
        polling: AtomicBool::new(false),
        waker: Mutex::new(None),
    });
    // Whatever way the scope ends (even dropped), children spawned after
    // that are refused and those not started are dropped.
    struct Finish<'s, 'a, T, E, K: Kind<'a, T, E>>(&'s ScopeShared<'a, T, E, K>);
    impl<'a, T, E, K: Kind<'a, T, E>> Drop for Finish<'_, 'a, T, E, K> {
        fn drop(&mut self) {
            self.0.finished.store(true, Ordering::SeqCst);
            let leftover = std::mem::take(&mut *self.0.pending());
            drop(leftover);
            self.0.waker().take();
        }
    }
    let _finish = Finish(&shared);
    let mut children: Children<K::Child> = Children::dynamic();
    let mut slot_index: Vec<usize> = Vec::new();
    let mut results: Vec<Option<T>> = Vec::new();
    let mut errors: Vec<GroupError<E>> = Vec::new();
    let mut body = pin!(Some(body(GroupScope {
        shared: shared.clone(),
    })));
    let mut body_out: Option<R> = None;
    std::future::poll_fn(|cx| {
        {
            let mut waker = shared.waker();
            if waker.as_ref().is_none_or(|w| !w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        shared.polling.store(true, Ordering::SeqCst);
        let mut first = true;
        loop {
            // Start the children spawned since the last round.
            let new = std::mem::take(&mut *shared.pending());
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
            if first && body_out.is_none() && errors.is_empty() && !shared.is_cancelled() {
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
            if shared.pending().is_empty() || !errors.is_empty() || shared.is_cancelled() {
                break;
            }
        }
        shared.polling.store(false, Ordering::SeqCst);
        if !errors.is_empty() || shared.is_cancelled() {
            return Poll::Ready(());
        }
        // A spawn or a cancel from another thread that saw `polling` still
        // set did not wake us: look again now that it is clear.
        if !shared.pending().is_empty() {
            cx.waker().wake_by_ref();
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
    let cancelled = shared.is_cancelled();
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

mod sealed {
    /// How a scope keeps its children: the type they are boxed as.
    pub trait Kind<'a, T, E>: 'static {
        /// A boxed child's type.
        type Child: ?Sized + std::future::Future<Output = super::Outcome<T, E>>;
    }
}
use sealed::Kind;

/// The kind of [`GroupScope`] that [`TaskGroup::scope`] gives: its children
/// may be anything (`Rc`s, `RefCell` borrows), and its future is not `Send`.
#[derive(Debug)]
pub enum AnyChildren {}

/// The kind of [`GroupScope`] that [`TaskGroup::scope_send`] gives: its
/// children are `Send`, and so is its future (where the body's is).
#[derive(Debug)]
pub enum SendChildren {}

impl<'a, T, E> Kind<'a, T, E> for AnyChildren {
    type Child = dyn Future<Output = Outcome<T, E>> + 'a;
}

impl<'a, T, E> Kind<'a, T, E> for SendChildren {
    type Child = dyn Future<Output = Outcome<T, E>> + Send + 'a;
}

/// What a [`TaskGroup::scope`] shares with its [`GroupScope`] handles.
struct ScopeShared<'a, T, E, K: Kind<'a, T, E>> {
    /// Children spawned and not started yet, with their spawn index.
    #[allow(clippy::type_complexity)]
    new: Mutex<Vec<(usize, Pin<Box<K::Child>>)>>,
    /// How many children were spawned.
    spawned: AtomicUsize,
    cancelled: AtomicBool,
    /// The scope has ended: spawning is refused.
    finished: AtomicBool,
    /// The scope's future is being polled (no need to wake it).
    polling: AtomicBool,
    /// The scope's future's waker, to start children spawned from outside
    /// its poll.
    waker: Mutex<Option<Waker>>,
}

impl<'a, T, E, K: Kind<'a, T, E>> ScopeShared<'a, T, E, K> {
    #[allow(clippy::type_complexity)]
    fn pending(&self) -> MutexGuard<'_, Vec<(usize, Pin<Box<K::Child>>)>> {
        self.new.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn waker(&self) -> MutexGuard<'_, Option<Waker>> {
        self.waker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn wake(&self) {
        if !self.polling.load(Ordering::SeqCst) {
            let waker = self.waker().clone();
            if let Some(waker) = waker {
                crate::task::wake_contained(waker);
            }
        }
    }

    fn push(&self, child: Pin<Box<K::Child>>) -> usize {
        assert!(
            !self.finished.load(Ordering::SeqCst),
            "GroupScope::spawn: this TaskGroup scope has already ended; spawn inside its body or its children"
        );
        let index = self.spawned.fetch_add(1, Ordering::SeqCst);
        self.pending().push((index, child));
        self.wake();
        index
    }
}

/// The `tg` of `async with asyncio.TaskGroup() as tg:`: spawns children into
/// a running [`TaskGroup::scope`], from its body or from its children.
///
/// Cheap to clone (a reference count); clone it into a child to let that
/// child spawn siblings. The group runs on one task. The scope of
/// [`TaskGroup::scope`] (kind [`AnyChildren`]) is not `Send`; that of
/// [`TaskGroup::scope_send`] (kind [`SendChildren`]) is.
pub struct GroupScope<'a, T, E, K: Kind<'a, T, E> = AnyChildren> {
    shared: Arc<ScopeShared<'a, T, E, K>>,
}

impl<'a, T, E, K: Kind<'a, T, E>> Clone for GroupScope<'a, T, E, K> {
    fn clone(&self) -> Self {
        GroupScope {
            shared: self.shared.clone(),
        }
    }
}

impl<'a, T, E, K: Kind<'a, T, E>> fmt::Debug for GroupScope<'a, T, E, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupScope")
            .field("spawned", &self.shared.spawned.load(Ordering::SeqCst))
            .field("cancelled", &self.shared.is_cancelled())
            .field("finished", &self.shared.finished.load(Ordering::SeqCst))
            .finish()
    }
}

impl<'a, T, E> GroupScope<'a, T, E, SendChildren> {
    /// Spawns a `Send` child (Python's `tg.create_task(coro)`), as
    /// [`GroupScope::spawn`] does for the scope of [`TaskGroup::scope`].
    ///
    /// # Panics
    ///
    /// If the scope has already ended.
    pub fn spawn<F>(&self, future: F) -> usize
    where
        F: Future<Output = Result<T, E>> + Send + 'a,
    {
        self.shared.push(Box::pin(Contained {
            stage: Stage::Live { future },
        }))
    }
}

impl<'a, T, E> GroupScope<'a, T, E, AnyChildren> {
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
        self.shared.push(Box::pin(Contained {
            stage: Stage::Live { future },
        }))
    }
}

impl<'a, T, E, K: Kind<'a, T, E>> GroupScope<'a, T, E, K> {
    /// Cancels the group: its body and every child are dropped (their
    /// destructors run) the next time the scope's future is polled, and the
    /// scope returns an [`ErrorGroup`] that [`is_cancelled`](ErrorGroup::is_cancelled)
    /// (with the failures seen before, if any). Called from the body or a
    /// child, the caller goes on until its next `.await` that has to wait.
    pub fn cancel(&self) {
        self.shared.cancelled.store(true, Ordering::SeqCst);
        self.shared.wake();
    }

    /// Whether [`cancel`](GroupScope::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.is_cancelled()
    }

    /// How many children were spawned so far.
    pub fn spawned(&self) -> usize {
        self.shared.spawned.load(Ordering::SeqCst)
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
