//! Cancelling a task while it runs ([`Canceller`]), as pebble does: its
//! worker is killed and replaced.
//!
//! The task's [`CancelCell`] says where it is: queued, sent to the worker
//! of a slot (as job `id`), or finished. [`Canceller::cancel`] marks it
//! cancelled and, if a worker holds it, kills that worker under the slot's
//! lock (so the pid is still the worker's) and records, for the slot's
//! supervisor, which job the kill was for. The supervisor then sees the
//! worker die: the job killed for fails with [`TaskError::Cancelled`](crate::TaskError::Cancelled);
//! any other job the worker held (the next one, or the one it moved on to
//! if the cancelled one had just finished) is not at fault and runs again
//! on the replacement.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::pool::{Inner, lock};

/// Where a cancellable task is.
#[derive(Debug, Default)]
struct State {
    /// [`Canceller::cancel`] was called.
    requested: bool,
    /// The slot whose worker holds it, and its job id there.
    on: Option<(usize, u64)>,
    /// Its outcome has been delivered.
    finished: bool,
}

/// The shared state of one cancellable task.
#[derive(Debug, Default)]
pub(crate) struct CancelCell {
    state: Mutex<State>,
}

impl CancelCell {
    /// Whether the task must not run (checked before it is sent).
    pub(crate) fn requested(&self) -> bool {
        lock(&self.state).requested
    }

    /// The task is about to be sent to the worker of `slot` as job `id`;
    /// `false` (and nothing recorded) if it was cancelled: it must not be.
    pub(crate) fn claim(&self, slot: usize, id: u64) -> bool {
        let mut st = lock(&self.state);
        if st.requested {
            return false;
        }
        st.on = Some((slot, id));
        true
    }

    /// The task is back in a queue (its worker was lost before it ran).
    pub(crate) fn unsent(&self) {
        lock(&self.state).on = None;
    }

    /// The task's outcome is delivered.
    pub(crate) fn finished(&self) {
        let mut st = lock(&self.state);
        st.finished = true;
        st.on = None;
    }
}

/// Cancels one task of a [`ProcessPool`](crate::ProcessPool), queued or
/// running; made by
/// [`submit_cancellable`](crate::ProcessPool::submit_cancellable).
///
/// A running task's worker is killed and replaced, as pebble's
/// `future.cancel()` does (Python's `Future.cancel()` cannot stop a running
/// task); the task fails with [`TaskError::Cancelled`](crate::TaskError::Cancelled).
pub struct Canceller {
    cell: Arc<CancelCell>,
    inner: Arc<Inner>,
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("state", &*lock(&self.cell.state))
            .finish_non_exhaustive()
    }
}

impl Canceller {
    pub(crate) fn new(cell: Arc<CancelCell>, inner: Arc<Inner>) -> Canceller {
        Canceller { cell, inner }
    }

    /// Cancels the task: a queued one never runs; a running one's worker
    /// is killed (and replaced). Either way the task's handle gives
    /// [`TaskError::Cancelled`](crate::TaskError::Cancelled). Returns `false` if the task had already
    /// finished (its outcome stands), `true` otherwise. Idempotent.
    pub fn cancel(&self) -> bool {
        let mut st = lock(&self.cell.state);
        if st.finished {
            return false;
        }
        st.requested = true;
        if let Some((slot, id)) = st.on {
            // The slot's lock: its pid is the live worker's, not reaped.
            let pid = lock(&self.inner.slots[slot]);
            if let Some(pid) = *pid {
                *lock(&self.inner.cancel_kills[slot]) = Some(id);
                crate::sys::kill(pid);
            }
        }
        true
    }

    /// Whether [`cancel`](Self::cancel) has been called.
    pub fn is_cancel_requested(&self) -> bool {
        self.cell.requested()
    }
}
