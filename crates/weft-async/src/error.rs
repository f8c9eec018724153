//! The crate's errors.

use std::time::Duration;

use weft_sync::TaskError;

/// Why the runtime refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// `run` was called on a thread that is already running a weft-async
    /// runtime (from inside a task or the main future).
    #[error(
        "weft_async::run was called inside a running weft-async runtime on the same thread; \
         await the future instead, or spawn it with weft_async::spawn"
    )]
    NestedRun,
    /// `spawn` was called on a thread with no weft-async runtime running.
    #[error(
        "weft_async::spawn was called outside a weft-async runtime; call it from code that \
         runs inside weft_async::run(...)"
    )]
    NoRuntime,
    /// A [`Handle`](crate::Handle) was asked to spawn onto a runtime that has
    /// ended ([`run`](crate::run) returned, or its
    /// [`Runtime`](crate::Runtime) was dropped).
    #[error(
        "the weft-async runtime this Handle points to has ended (its run returned or its Runtime \
         was dropped), so nothing spawned on it would run; spawn onto a runtime that is still alive"
    )]
    Closed,
}

/// A [`timeout`](crate::timeout) ran out before its future completed
/// (Python's `TimeoutError` from `asyncio.wait_for` / `asyncio.timeout`).
///
/// The future was dropped (cancelled). Converts into
/// [`TaskError::TimedOut`] and into an [`std::io::Error`] of kind
/// [`TimedOut`](std::io::ErrorKind::TimedOut), so `?` works in either kind of
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the operation did not complete within {timeout:?} and was cancelled; allow more time or \
     check what it was waiting for"
)]
pub struct TimedOut {
    /// The time limit that ran out.
    pub timeout: Duration,
}

impl From<TimedOut> for TaskError {
    fn from(e: TimedOut) -> TaskError {
        TaskError::TimedOut { timeout: e.timeout }
    }
}

impl From<TimedOut> for std::io::Error {
    fn from(e: TimedOut) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}
