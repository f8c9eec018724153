//! Blocking on wakers: the bridge that lets a plain thread wait on anything
//! that an async task would wait on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};
use std::thread::Thread;
use std::time::Instant;

/// A waker that unparks one thread.
///
/// `wake` sets a flag before unparking, so a wake-up that arrives before the
/// thread parks is never lost.
#[derive(Debug)]
pub(crate) struct ThreadWaker {
    thread: Thread,
    notified: AtomicBool,
}

impl ThreadWaker {
    /// A waker for the current thread, and the handle to park on it.
    pub(crate) fn current() -> (Arc<ThreadWaker>, Waker) {
        let tw = Arc::new(ThreadWaker {
            thread: std::thread::current(),
            notified: AtomicBool::new(false),
        });
        let waker = Waker::from(tw.clone());
        (tw, waker)
    }

    /// Parks until woken or until `deadline` passes. Returns `false` if the
    /// deadline passed without a wake-up. Must be called on the thread that
    /// created the waker.
    pub(crate) fn park_until(&self, deadline: Option<Instant>) -> bool {
        loop {
            if self.notified.swap(false, Ordering::Acquire) {
                return true;
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return self.notified.swap(false, Ordering::Acquire);
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// `Instant::now() + timeout`, or `None` (wait forever) when the sum does not
/// fit in an `Instant`.
pub(crate) fn deadline_after(timeout: std::time::Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
