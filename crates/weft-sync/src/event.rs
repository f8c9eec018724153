//! [`Event`]: Python's `threading.Event`, a flag threads and tasks wait on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::shim::{AtomicUsize, Ordering};
use crate::waiting::{EventWait, WaitList, block_on};
use crate::waker::deadline_after;

/// The flag, in bit 0 of [`Event::state`].
const SET: usize = 1;
/// One step of the generation, in the bits above the flag.
const GENERATION: usize = 2;

/// A flag that starts clear; [`wait`](Event::wait) blocks until it is
/// [`set`](Event::set) (Python's `threading.Event`).
///
/// Setting wakes every waiter, threads and async tasks alike; waiting on a
/// set event returns at once. A wait that was under way when the event was
/// set returns (and `wait_timeout` returns `true`) even if the event is
/// cleared again before the waiter runs, as in Python: `set` followed at
/// once by `clear` still releases everyone who was waiting.
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
    /// Bit 0: the flag. The bits above: the generation, a counter bumped by
    /// every `set` that finds the flag clear. A waiter notes the generation
    /// when it starts and returns once the flag is set *or* the generation
    /// has moved on, so a `set` is never lost to a `clear` that follows it
    /// before the waiter wakes. (The counter wraps after 2^63 sets, 2^31 on
    /// a 32-bit target; a waiter would have to sleep through exactly that
    /// many for the wrap to hide one.)
    state: AtomicUsize,
    event: WaitList,
}

/// What a waiter checks each time it looks: returns `Some(())` once the
/// flag is set or a `set` happened since the first look (whose generation
/// `seen` records).
fn set_since(state: &AtomicUsize, seen: &mut Option<usize>) -> Option<()> {
    let s = state.load(Ordering::Acquire);
    if s & SET != 0 {
        return Some(());
    }
    let generation = s & !SET;
    match *seen {
        None => {
            *seen = Some(generation);
            None
        }
        Some(g) => (g != generation).then_some(()),
    }
}

impl Event {
    crate::shim::const_unless_loom! {
        /// A new event, clear.
        pub fn new() -> Event {
            Event {
                state: AtomicUsize::new(0),
                event: WaitList::new(),
            }
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) & SET != 0
    }

    /// Sets the flag and wakes every waiter, including those that will
    /// only run after a [`clear`](Self::clear) that follows.
    ///
    /// Setting an event that is already set does nothing; setting one with
    /// no waiter costs one compare-and-swap and one fence.
    pub fn set(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & SET != 0 {
                // Already set: the `set` that set it bumped the generation
                // and woke the waiters, and waiters since return at once.
                return;
            }
            // Set the flag and move to the next generation in one step.
            match self.state.compare_exchange_weak(
                s,
                s.wrapping_add(GENERATION) | SET,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(x) => s = x,
            }
        }
        self.event.notify_all();
    }

    /// Clears the flag; later waits block until it is set again. Waits that
    /// a [`set`](Self::set) already released still return.
    pub fn clear(&self) {
        self.state.fetch_and(!SET, Ordering::Release);
    }

    /// Blocks until the flag is set (or was set since this call began).
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait(&self) {
        let mut seen = None;
        block_on!(Event, &self.event, None, |_| set_since(
            &self.state,
            &mut seen
        ));
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it
    /// was set (Python's `wait(timeout)`): `true` also when a `set` during
    /// the wait was followed by a `clear`. A timeout too large to represent
    /// (such as `Duration::MAX`) waits without a limit.
    #[cfg_attr(feature = "deadlock-detection", track_caller)]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let mut seen = None;
        block_on!(Event, &self.event, deadline_after(timeout), |_| {
            set_since(&self.state, &mut seen)
        })
        .is_some()
    }

    /// Waits for the flag without blocking the thread; usable from any
    /// executor, and cancel-safe. The wait starts at the first poll: a
    /// `set` after that releases it even if a `clear` follows.
    pub fn wait_async(&self) -> EventWaitFuture<'_> {
        EventWaitFuture {
            wait: EventWait::new(&self.event, (self, None), |(e, seen), _| {
                set_since(&e.state, seen)
            }),
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
    wait: EventWait<'a, (&'a Event, Option<usize>), ()>,
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
