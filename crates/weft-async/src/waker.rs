//! Wakers that user code hands to a task handle, kept away from
//! `async-task`, which clones, wakes and drops the waker of a task's awaiter
//! under an abort-on-panic guard: a [`Task`](crate::Task) (or a
//! [`multi::Task`](crate::multi::Task)) polled by hand, or by another
//! executor, with a waker whose `clone`, `wake` or `drop` panics would abort
//! the whole process.
//!
//! So a task handle gives `async-task` a waker of weft's own (a
//! [`Guard`]), which holds the user's waker and calls it with its panics
//! caught (reported to the panic hook, as a panic nobody awaited). The
//! user's `clone` runs in the handle's `poll`, where its panic unwinds to
//! whoever polled the handle, as any panic of a poll does.
//!
//! The wakers of weft's own tasks and combinators cannot panic: while one of
//! them polls, its identity is recorded ([`polling_with`]) and a handle
//! polled with it passes it to `async-task` directly, at no cost.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, RawWakerVTable, Wake, Waker};

/// A waker's identity: its data and vtable pointers (what `will_wake`
/// compares).
type Identity = (*const (), *const RawWakerVTable);

thread_local! {
    /// The waker of the weft task (or combinator child) being polled on this
    /// thread, if any.
    static TRUSTED: Cell<Identity> = const { Cell::new((std::ptr::null(), std::ptr::null())) };
}

fn identity(waker: &Waker) -> Identity {
    (waker.data(), std::ptr::from_ref(waker.vtable()))
}

/// Runs `poll` (a poll of weft's own, with `cx`'s waker, which never
/// panics) with that waker recorded as trusted, and restores the previous
/// record afterwards (even if `poll` panics).
#[inline]
pub(crate) fn polling_with<'c, 'w, R>(
    cx: &'c mut Context<'w>,
    poll: impl FnOnce(&'c mut Context<'w>) -> R,
) -> R {
    struct Restore(Identity);
    impl Drop for Restore {
        #[inline]
        fn drop(&mut self) {
            TRUSTED.set(self.0);
        }
    }
    let _restore = Restore(TRUSTED.replace(identity(cx.waker())));
    poll(cx)
}

/// Whether `waker` is the waker of the weft poll in progress on this thread.
#[inline]
pub(crate) fn is_trusted(waker: &Waker) -> bool {
    TRUSTED.get() == identity(waker)
}

/// The user's waker, called with its panics caught.
struct Shim {
    user: Mutex<Option<Waker>>,
}

impl Shim {
    fn take(&self) -> Option<Waker> {
        self.user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl Wake for Shim {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Taken: the handle's next poll stores the waker to use next.
        if let Some(user) = self.take() {
            crate::task::wake_contained(user);
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        let user = self
            .user
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(user) = user {
            crate::task::drop_contained(user);
        }
    }
}

/// What a task handle keeps to guard the wakers it is polled with: made the
/// first time it is polled with a waker that is not weft's own.
#[derive(Default)]
pub(crate) struct Guard {
    shim: Option<(Arc<Shim>, Waker)>,
}

impl Guard {
    /// The guard's waker, now holding (a clone of) `user`.
    ///
    /// A panic of the user's `clone` (or of the `drop` of the waker it
    /// replaces) unwinds from here, out of the handle's `poll`, before
    /// anything was changed.
    #[cold]
    pub(crate) fn guard(&mut self, user: &Waker) -> &Waker {
        let (shim, waker) = self.shim.get_or_insert_with(|| {
            let shim = Arc::new(Shim {
                user: Mutex::new(None),
            });
            let waker = Waker::from(shim.clone());
            (shim, waker)
        });
        let mut slot = shim.user.lock().unwrap_or_else(PoisonError::into_inner);
        if !slot.as_ref().is_some_and(|w| w.will_wake(user)) {
            let fresh = user.clone();
            let old = slot.replace(fresh);
            drop(slot);
            drop(old);
        }
        waker
    }
}
