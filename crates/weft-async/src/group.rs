//! [`TaskGroup`]: structured concurrency, as Python's `asyncio.TaskGroup`.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::Poll;

use crate::children::{Children, Next};

/// A child: its future, wrapped so that its panics (in `poll` and in its
/// destructor) come out as a message.
type Child<'a, T, E> = Pin<Box<dyn Future<Output = Result<Result<T, E>, String>> + 'a>>;

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
