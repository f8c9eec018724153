//! Running several futures at once: [`gather!`](crate::gather),
//! [`try_gather!`](crate::try_gather), [`join_all`], [`try_join_all`],
//! [`select`], [`race`], [`as_completed`] and [`wait`].
//!
//! These combinators poll their futures inside the task that awaits them (as
//! `futures::join!` does), so the futures may borrow local data and need not
//! be `'static`. To run work as separate tasks, [`spawn`](crate::spawn) it and
//! combine the [`Task`]s.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use weft_sync::{ReturnWhen, WaitResult};

use crate::children::{Children, Next};
use crate::task::Task;

/// Awaits a fixed set of futures concurrently and returns a tuple of their
/// outputs in argument order, whatever order they finish in (Python's
/// `asyncio.gather(a, b, c)`). Outputs may have different types.
///
/// The futures are polled by the awaiting task, so they may borrow local
/// variables. To stop at the first error, use [`try_gather!`](crate::try_gather).
///
/// ```
/// use std::time::Duration;
/// use weft_async::{gather, sleep};
/// weft_async::run(async {
///     let name = String::from("weft");
///     let (a, b, c) = gather!(
///         async { sleep(Duration::from_millis(20)).await; 1 },
///         async { sleep(Duration::from_millis(5)).await; name.len() },
///         async { "ready" },
///     )
///     .await;
///     assert_eq!((a, b, c), (1, 4, "ready"));
/// });
/// ```
#[macro_export]
macro_rules! gather {
    ($($fut:expr),+ $(,)?) => {
        $crate::__gather!(@collect [] $($fut,)+)
    };
}

/// Like [`gather!`](crate::gather) for futures returning `Result<_, E>` (the
/// same `E`): returns `Ok` with the tuple of values, or the first error as soon
/// as it happens, dropping (cancelling) the futures still running (asyncio's
/// `gather(..., return_exceptions=False)`).
///
/// ```
/// use weft_async::try_gather;
/// weft_async::run(async {
///     let ok: Result<(i32, &str), String> = try_gather!(async { Ok(1) }, async { Ok("two") }).await;
///     assert_eq!(ok, Ok((1, "two")));
///     let err: Result<(i32, i32), String> =
///         try_gather!(async { Ok(1) }, async { Err("bad".to_string()) }).await;
///     assert_eq!(err, Err("bad".to_string()));
/// });
/// ```
#[macro_export]
macro_rules! try_gather {
    ($($fut:expr),+ $(,)?) => {
        $crate::__gather!(@try [] $($fut,)+)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gather {
    // Give each future its own pair of identifiers (hygiene keeps the `fut`
    // and `out` of each step distinct).
    (@collect [$($acc:tt)*] $head:expr, $($tail:expr,)*) => {
        $crate::__gather!(@collect [$($acc)* (fut out $head)] $($tail,)*)
    };
    (@collect [$(($f:ident $o:ident $e:expr))*]) => {
        async {
            $(
                let mut $f = ::core::pin::pin!($e);
                let mut $o = ::core::option::Option::None;
            )*
            ::core::future::poll_fn(|cx| {
                let mut pending = false;
                $(
                    if $o.is_none() {
                        match ::core::future::Future::poll($f.as_mut(), cx) {
                            ::core::task::Poll::Ready(v) => $o = ::core::option::Option::Some(v),
                            ::core::task::Poll::Pending => pending = true,
                        }
                    }
                )*
                if pending {
                    ::core::task::Poll::Pending
                } else {
                    ::core::task::Poll::Ready(())
                }
            })
            .await;
            ($($o.expect("gather: every output is set"),)*)
        }
    };
    (@try [$($acc:tt)*] $head:expr, $($tail:expr,)*) => {
        $crate::__gather!(@try [$($acc)* (fut out $head)] $($tail,)*)
    };
    (@try [$(($f:ident $o:ident $e:expr))*]) => {
        async {
            $(
                let mut $f = ::core::pin::pin!($e);
                let mut $o = ::core::option::Option::None;
            )*
            let res = ::core::future::poll_fn(|cx| {
                let mut pending = false;
                $(
                    if $o.is_none() {
                        match ::core::future::Future::poll($f.as_mut(), cx) {
                            ::core::task::Poll::Ready(::core::result::Result::Ok(v)) => {
                                $o = ::core::option::Option::Some(v)
                            }
                            ::core::task::Poll::Ready(::core::result::Result::Err(e)) => {
                                return ::core::task::Poll::Ready(::core::result::Result::Err(e));
                            }
                            ::core::task::Poll::Pending => pending = true,
                        }
                    }
                )*
                if pending {
                    ::core::task::Poll::Pending
                } else {
                    ::core::task::Poll::Ready(::core::result::Result::Ok(()))
                }
            })
            .await;
            res.map(|()| ($($o.expect("try_gather: every output is set"),)*))
        }
    };
}

/// Awaits every future of a collection concurrently and returns their outputs
/// in the collection's order (Python's `asyncio.gather(*aws)`).
///
/// Each future is boxed once and gets its own waker, so a wake-up polls only
/// the futures that were woken: awaiting many futures stays linear.
///
/// ```
/// use std::time::Duration;
/// weft_async::run(async {
///     let tasks = (0..5u64).map(|i| async move {
///         weft_async::sleep(Duration::from_millis(10 - 2 * i)).await;
///         i * i
///     });
///     assert_eq!(weft_async::join_all(tasks).await, vec![0, 1, 4, 9, 16]);
/// });
/// ```
pub async fn join_all<I>(futures: I) -> Vec<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future,
{
    let mut children = Children::new(futures);
    let mut outputs: Vec<Option<<I::Item as Future>::Output>> =
        (0..children.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        children.poll_children(
            cx,
            |f, cx| f.poll(cx),
            |i, v| {
                outputs[i] = Some(v);
                Next::Continue
            },
        )
    })
    .await;
    outputs
        .into_iter()
        .map(|v| v.expect("join_all: every future finished"))
        .collect()
}

/// Like [`join_all`] for futures returning `Result<T, E>`: returns all the
/// values in order, or the first error as soon as it happens, dropping
/// (cancelling) the futures still running.
///
/// ```
/// weft_async::run(async {
///     let all_ok = weft_async::try_join_all((1..=3).map(|i| async move { Ok::<_, String>(i) }));
///     assert_eq!(all_ok.await, Ok(vec![1, 2, 3]));
///     let one_bad = weft_async::try_join_all((1..=3).map(|i| async move {
///         if i == 2 { Err(format!("item {i} failed")) } else { Ok(i) }
///     }));
///     assert_eq!(one_bad.await, Err("item 2 failed".to_string()));
/// });
/// ```
pub async fn try_join_all<I, T, E>(futures: I) -> Result<Vec<T>, E>
where
    I: IntoIterator,
    I::Item: Future<Output = Result<T, E>>,
{
    let mut children = Children::new(futures);
    let mut outputs: Vec<Option<T>> = (0..children.len()).map(|_| None).collect();
    let mut error = None;
    std::future::poll_fn(|cx| {
        let poll = children.poll_children(
            cx,
            |f, cx| f.poll(cx),
            |i, v| match v {
                Ok(v) => {
                    outputs[i] = Some(v);
                    Next::Continue
                }
                Err(e) => {
                    error = Some(e);
                    Next::Stop
                }
            },
        );
        if error.is_some() {
            Poll::Ready(())
        } else {
            poll
        }
    })
    .await;
    // The futures still running are dropped here, before returning.
    drop(children);
    match error {
        Some(e) => Err(e),
        None => Ok(outputs
            .into_iter()
            .map(|v| v.expect("try_join_all: every future succeeded"))
            .collect()),
    }
}

/// The output of [`select`]: which future finished first, with its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Either<A, B> {
    /// The first future finished first.
    Left(A),
    /// The second future finished first.
    Right(B),
}

/// Awaits whichever of two futures finishes first and drops (cancels) the
/// other. If both are ready at the same poll, `a` wins (the choice is biased
/// in argument order, so it is deterministic).
///
/// ```
/// use std::time::Duration;
/// use weft_async::{select, sleep, Either};
/// weft_async::run(async {
///     let fast = async { sleep(Duration::from_millis(1)).await; "fast" };
///     let slow = async { sleep(Duration::from_secs(60)).await; 0u8 };
///     assert_eq!(select(slow, fast).await, Either::Right("fast"));
/// });
/// ```
pub async fn select<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// Awaits whichever of two futures with the same output type finishes first,
/// dropping the other (biased towards `a`, as [`select`]).
///
/// ```
/// use std::time::Duration;
/// use weft_async::{race, sleep};
/// weft_async::run(async {
///     let a = async { sleep(Duration::from_millis(30)).await; "a" };
///     let b = async { sleep(Duration::from_millis(1)).await; "b" };
///     assert_eq!(race(a, b).await, "b");
/// });
/// ```
pub async fn race<T, A, B>(a: A, b: B) -> T
where
    A: Future<Output = T>,
    B: Future<Output = T>,
{
    match select(a, b).await {
        Either::Left(v) | Either::Right(v) => v,
    }
}

/// Yields the outputs of `futures` in the order they finish (Python's
/// `asyncio.as_completed`). Use [`AsCompleted::next`] or its [`Stream`] impl.
///
/// ```
/// use std::time::Duration;
/// weft_async::run(async {
///     let mut done = weft_async::as_completed([30u64, 10, 20].map(|ms| async move {
///         weft_async::sleep(Duration::from_millis(ms)).await;
///         ms
///     }));
///     let mut order = Vec::new();
///     while let Some(ms) = done.next().await {
///         order.push(ms);
///     }
///     assert_eq!(order, vec![10, 20, 30]);
/// });
/// ```
pub fn as_completed<I>(futures: I) -> AsCompleted<I::Item>
where
    I: IntoIterator,
    I::Item: Future,
{
    AsCompleted {
        children: Children::new(futures),
    }
}

/// The stream returned by [`as_completed`].
#[must_use = "streams do nothing unless polled"]
pub struct AsCompleted<F> {
    children: Children<F>,
}

impl<F: Future> AsCompleted<F> {
    /// How many futures have not finished yet.
    pub fn remaining(&self) -> usize {
        self.children.left()
    }

    /// The next output to be ready, or `None` once every future has finished.
    pub async fn next(&mut self) -> Option<F::Output> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl<F: Future> Stream for AsCompleted<F> {
    type Item = F::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<F::Output>> {
        let this = self.get_mut();
        if this.children.left() == 0 {
            return Poll::Ready(None);
        }
        let mut out = None;
        let _ = this.children.poll_children(
            cx,
            |f, cx| f.poll(cx),
            |_, v| {
                out = Some(v);
                Next::Stop
            },
        );
        match out {
            Some(v) => Poll::Ready(Some(v)),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.children.left();
        (left, Some(left))
    }
}

impl<F> std::fmt::Debug for AsCompleted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted").finish_non_exhaustive()
    }
}

/// Waits until `tasks` meet `return_when`, or `timeout` passes (`None`: no
/// limit), and says which have finished (Python's `asyncio.wait`).
///
/// Returns indices into `tasks`, in ascending order. Finished tasks keep their
/// output: awaiting one of the `done` tasks returns at once. Nothing is
/// cancelled, on timeout either. [`ReturnWhen::FirstException`] counts a
/// panicked or cancelled task as an exception.
///
/// ```
/// use std::time::Duration;
/// use weft_async::{spawn, sleep, wait, ReturnWhen};
/// weft_async::run(async {
///     let mut tasks = vec![
///         spawn(async { sleep(Duration::from_secs(60)).await; 1 }),
///         spawn(async { 2 }),
///     ];
///     let r = wait(&mut tasks, ReturnWhen::FirstCompleted, None).await;
///     assert_eq!((r.done, r.not_done), (vec![1], vec![0]));
///     assert_eq!(tasks.pop().unwrap().await, Ok(2));
/// });
/// ```
pub async fn wait<T>(
    tasks: &mut [Task<T>],
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> WaitResult {
    let check = |tasks: &mut [Task<T>], cx: &mut Context<'_>| -> (bool, WaitResult) {
        let mut result = WaitResult::default();
        let mut any_error = false;
        for (i, task) in tasks.iter_mut().enumerate() {
            match task.poll_finished(cx) {
                Poll::Ready(is_err) => {
                    any_error |= is_err;
                    result.done.push(i);
                }
                Poll::Pending => result.not_done.push(i),
            }
        }
        let satisfied = result.not_done.is_empty()
            || match return_when {
                ReturnWhen::FirstCompleted => !result.done.is_empty(),
                ReturnWhen::FirstException => any_error,
                _ => false,
            };
        (satisfied, result)
    };
    let waiting = std::future::poll_fn(|cx| match check(&mut *tasks, cx) {
        (true, result) => Poll::Ready(result),
        (false, _) => Poll::Pending,
    });
    let outcome = match timeout {
        None => Ok(waiting.await),
        Some(limit) => crate::time::timeout(limit, waiting).await,
    };
    outcome.unwrap_or_else(|_| {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        check(&mut *tasks, &mut cx).1
    })
}
