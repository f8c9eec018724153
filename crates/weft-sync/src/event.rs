//! [`Event`]: Python's `threading.Event`, a flag threads and tasks wait on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::waiting::{EventWait, WaitList, block_on};
use crate::waker::deadline_after;

/// A flag that starts clear; [`wait`](Event::wait) blocks until it is
/// [`set`](Event::set) (Python's `threading.Event`).
///
/// Setting wakes every waiter, threads and async tasks alike; waiting on a
/// set event returns at once.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use weft_sync::Event;
///
/// let started = Arc::new(Event::new());
/// assert!(!started.wait_timeout(Duration::from_millis(5)));
/// let t = {
///     let started = started.clone();
///     std::thread::spawn(move || started.set())
/// };
/// started.wait();
/// assert!(started.is_set());
/// t.join().unwrap();
/// ```
#[derive(Default)]
pub struct Event {
    flag: AtomicBool,
    event: WaitList,
}

impl Event {
    crate::shim::const_unless_loom! {
        /// A new event, clear.
        pub fn new() -> Event {
            Event {
                flag: AtomicBool::new(false),
                event: WaitList::new(),
            }
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.flag.store(true, Ordering::Release);
        self.event.notify_all();
    }

    /// Clears the flag; later waits block until it is set again.
    pub fn clear(&self) {
        self.flag.store(false, Ordering::Release);
    }

    /// Blocks until the flag is set.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait(&self) {
        block_on!(Event, &self.event, None, |_| self.is_set().then_some(()));
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it
    /// is set (Python's `wait(timeout)`).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        block_on!(Event, &self.event, deadline_after(timeout), |_| {
            self.is_set().then_some(())
        })
        .is_some()
    }

    /// Waits for the flag without blocking the thread; usable from any
    /// executor, and cancel-safe.
    pub fn wait_async(&self) -> EventWaitFuture<'_> {
        EventWaitFuture {
            wait: EventWait::new(&self.event, self, |e, _| e.is_set().then_some(())),
        }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("is_set", &self.is_set())
            .finish()
    }
}

/// The future returned by [`Event::wait_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct EventWaitFuture<'a> {
    wait: EventWait<'a, &'a Event, ()>,
}

impl Future for EventWaitFuture<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.wait).poll(cx)
    }
}

impl fmt::Debug for EventWaitFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventWaitFuture").finish_non_exhaustive()
    }
}
