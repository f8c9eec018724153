//! The error types of weft-sync's primitives. Each message says what went
//! wrong and what to do about it.

use std::fmt;

/// A wait that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Timeout;

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the wait timed out before the condition was met")
    }
}

impl std::error::Error for Timeout {}

/// A release that is not allowed (Python raises `RuntimeError` or
/// `ValueError` for these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseError {
    /// `release` was called on a `Lock` that is not locked.
    #[error("release of an unlocked Lock: acquire it before releasing it")]
    NotLocked,
    /// `release` was called on an `RLock` by a thread that does not hold it.
    #[error(
        "cannot release an RLock this thread does not hold: only the owning thread may release it"
    )]
    NotOwner,
    /// A `BoundedSemaphore` was released more times than it was acquired.
    #[error("BoundedSemaphore released too many times: the counter would exceed its initial value")]
    OverRelease,
}

/// A `Barrier` is broken: it timed out, was aborted, or was reset while
/// threads waited (Python's `BrokenBarrierError`). Call `Barrier::reset` to
/// use it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error(
    "the barrier is broken (a wait timed out, or it was aborted or reset): reset it to use it again"
)]
pub struct BrokenBarrierError;

/// Why a value could not be put on a `Queue`. The value is handed back.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError<T> {
    /// The queue was full (at once for `try_put`, until the deadline for
    /// `put_timeout`); Python's `queue.Full`.
    #[error("the queue is full")]
    Full(T),
    /// The queue was shut down; no more values are accepted (Python's
    /// `queue.ShutDown`).
    #[error("the queue has been shut down and accepts no more items")]
    ShutDown(T),
}

impl<T> PutError<T> {
    /// The value that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(v) | PutError::ShutDown(v) => v,
        }
    }
    /// Whether the queue was shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, PutError::ShutDown(_))
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(_) => f.write_str("Full(..)"),
            PutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

/// Why no value could be got from a `Queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GetError {
    /// The queue was empty (at once for `try_get`, until the deadline for
    /// `get_timeout`); Python's `queue.Empty`.
    #[error("the queue is empty")]
    Empty,
    /// The queue was shut down and has no items left (Python's `queue.ShutDown`).
    #[error("the queue has been shut down and has no items left")]
    ShutDown,
}

/// `Queue::task_done` was called more times than items were put (Python
/// raises `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("task_done() called more times than items were put on the queue")]
pub struct TaskDoneError;
