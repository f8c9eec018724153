//! The one waiting loop behind every primitive's three forms (blocking, with
//! a deadline, async): try; register a listener; try again; wait; repeat.
//!
//! `attempt(contended)` tries to complete the operation without waiting. It
//! is called with `contended == true` once this waiter has registered a
//! listener or been woken, so a primitive can flag that someone is waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use event_listener::{Event, EventListener, IntoNotification, Listener};

use crate::shim::{AtomicUsize, Ordering, fence};

/// An `event_listener::Event` with a count of the waiters registered on it,
/// so that a notification with nobody waiting costs one fence and one load
/// instead of event-listener's internal lock (which `Event::notify` always
/// takes). Puts, gets and releases notify on every call, so this is the
/// difference between a lock-free fast path and a mutex per operation.
///
/// The count is a Dekker-style handshake: a waiter increments it, registers
/// its listener, fences, then re-checks its condition; a notifier changes
/// the state, fences, then reads the count. Either the notifier sees the
/// waiter (and notifies it, or it is not yet listening and its re-check
/// will see the new state) or the waiter's re-check sees the change.
pub(crate) struct WaitList {
    event: Event,
    waiters: AtomicUsize,
}

impl WaitList {
    crate::shim::const_unless_loom! {
        pub(crate) fn new() -> WaitList {
            WaitList {
                event: Event::new(),
                waiters: AtomicUsize::new(0),
            }
        }
    }

    /// Registers a waiter. Re-check the condition after this, before waiting.
    pub(crate) fn listen(&self) -> Listening<'_> {
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let listener = self.event.listen();
        fence(Ordering::SeqCst);
        Listening {
            list: self,
            listener: Some(listener),
        }
    }

    /// Whether any waiter is registered now (a hint: it may change at once).
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) > 0
    }

    #[inline]
    fn anyone_waiting(&self) -> bool {
        fence(Ordering::SeqCst);
        self.has_waiters()
    }

    /// Wakes `n` more waiters (each release or put wakes one more).
    #[inline]
    pub(crate) fn notify_additional(&self, n: usize) {
        if self.anyone_waiting() {
            self.event.notify(n.additional());
        }
    }

    /// [`notify_additional`](Self::notify_additional) without the fence,
    /// for a caller whose state change was a `SeqCst` read-modify-write
    /// that a waiter's re-check reads after its own `SeqCst` fence.
    ///
    /// Sound by the `SeqCst` total order: if this load misses a waiter's
    /// increment, it comes before that increment in the order, so the
    /// state change does too, and the waiter's re-check (after the fence
    /// that follows its increment) must see it. `Queue` relies on this for
    /// concurrent-queue 2.5.0, pinned exactly: its pushes and pops publish
    /// with a `SeqCst` compare-and-swap (of the tail, head or state word),
    /// and a pop that finds the queue empty (or a push that finds it full)
    /// re-reads the other index after a full fence, waiting out a slot
    /// that is claimed but not yet written. On x86 this saves an `mfence`
    /// per put and per get, which stalls on the store of the slot just
    /// written while the other thread polls it: about a third of a put and
    /// get's time between two threads.
    ///
    /// Under loom, which treats `SeqCst` accesses as acquire/release (so
    /// cannot check this argument), the fence stays.
    #[inline]
    pub(crate) fn notify_additional_after_seqcst_rmw(&self, n: usize) {
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            self.event.notify(n.additional());
        }
    }

    /// Makes sure at least `n` waiters are notified.
    #[inline]
    pub(crate) fn notify(&self, n: usize) {
        if self.anyone_waiting() {
            self.event.notify(n);
        }
    }

    /// Wakes every waiter.
    #[inline]
    pub(crate) fn notify_all(&self) {
        self.notify(usize::MAX);
    }
}

impl Default for WaitList {
    fn default() -> Self {
        WaitList::new()
    }
}

/// A registered waiter of a [`WaitList`]; unregisters when dropped (a
/// notification it received and did not use passes to another waiter).
pub(crate) struct Listening<'a> {
    list: &'a WaitList,
    listener: Option<EventListener>,
}

impl Listening<'_> {
    pub(crate) fn wait(mut self) {
        if let Some(listener) = self.listener.take() {
            listener.wait();
        }
    }

    /// Returns `false` if the deadline passed without a notification.
    pub(crate) fn wait_deadline(mut self, deadline: Instant) -> bool {
        self.listener
            .take()
            .is_some_and(|l| l.wait_deadline(deadline).is_some())
    }
}

impl Future for Listening<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.listener.as_mut() {
            Some(listener) => Pin::new(listener).poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        // Drop the listener first (passing on an unused notification), then
        // stop counting this waiter.
        self.listener = None;
        self.list.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many times a waiter yields while its [peer](block_on_event) is
/// waking up before it parks anyway: a few hundred microseconds at most.
/// (Once under loom, which explores every interleaving of each attempt.)
const PEER_YIELDS: u32 = if cfg!(loom) { 1 } else { 200 };

/// Blocks the current thread until `attempt` succeeds, or until `deadline`
/// (if any) passes, in which case it returns `None` after one last attempt.
///
/// `peer`, for the two sides of a bounded channel, is the list the *other*
/// side waits on (a getter's peer is the putters' list). When a getter
/// finds the queue empty while a putter is registered on `peer`, that
/// putter has been (or is about to be) woken and will put soon; parking now
/// would only make the putter, once it has filled the queue, wake this
/// getter in turn. On a machine whose wake-ups take tens of microseconds (a
/// VM's cross-CPU futex wake), that convoy of parks is what a two-thread
/// producer/consumer settles into, at about 1 µs an item. So the waiter
/// keeps yielding, a bounded number of times, while the peer list is
/// non-empty, and parks only if the peer stays away.
#[cfg_attr(feature = "deadlock-detection", allow(dead_code))]
pub(crate) fn block_on_event<R>(
    event: &WaitList,
    peer: Option<&WaitList>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    if let Some(r) = attempt(false) {
        return Some(r);
    }
    wait_after_first_attempt(event, peer, deadline, attempt)
}

/// [`block_on_event`] once the first attempt has failed: spin, yield while
/// the peer is waking, then listen and park.
fn wait_after_first_attempt<R>(
    event: &WaitList,
    peer: Option<&WaitList>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    // The other side is often about to act (a producer between two puts, a
    // holder about to release): spin, then yield, briefly before paying for
    // a listener and a park, as crossbeam's channels and parking_lot's locks
    // do (parking_lot_core's SpinWait: 3 short spins, then 7 yields).
    if deadline.is_none_or(|d| Instant::now() < d) {
        let mut spin = parking_lot_core::SpinWait::new();
        while spin.spin() {
            if let Some(r) = attempt(false) {
                return Some(r);
            }
        }
        if let Some(peer) = peer {
            let mut yields = 0;
            while yields < PEER_YIELDS
                && peer.has_waiters()
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                crate::shim::yield_now();
                yields += 1;
                if let Some(r) = attempt(false) {
                    return Some(r);
                }
            }
        }
    }
    loop {
        let listener = event.listen();
        if let Some(r) = attempt(true) {
            return Some(r);
        }
        match deadline {
            None => listener.wait(),
            Some(deadline) => {
                if !listener.wait_deadline(deadline) {
                    return attempt(true);
                }
            }
        }
    }
}

/// [`block_on_event`] that registers the wait with the watchdog (feature
/// `deadlock-detection`) once the first attempt fails.
#[cfg(feature = "deadlock-detection")]
#[track_caller]
pub(crate) fn block_on_event_as<R>(
    primitive: crate::deadlock::Primitive,
    event: &WaitList,
    peer: Option<&WaitList>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    if let Some(r) = attempt(false) {
        return Some(r);
    }
    let _wait = crate::deadlock::wait_begins(primitive, std::panic::Location::caller());
    wait_after_first_attempt(event, peer, deadline, attempt)
}

/// `block_on!(Primitive, event, [peer: list,] deadline, attempt)`:
/// [`block_on_event`], registered with the watchdog as a wait on
/// `Primitive` when the `deadlock-detection` feature is on (the calling
/// function should then be `#[track_caller]`, so the wait's site is the
/// user's call).
#[cfg(feature = "deadlock-detection")]
macro_rules! block_on {
    ($primitive:ident, $event:expr, peer: $peer:expr, $($arg:expr),+ $(,)?) => {
        $crate::waiting::block_on_event_as(
            $crate::deadlock::Primitive::$primitive, $event, Some($peer), $($arg),+
        )
    };
    ($primitive:ident, $event:expr, $($arg:expr),+ $(,)?) => {
        $crate::waiting::block_on_event_as(
            $crate::deadlock::Primitive::$primitive, $event, None, $($arg),+
        )
    };
}
#[cfg(not(feature = "deadlock-detection"))]
macro_rules! block_on {
    ($primitive:ident, $event:expr, peer: $peer:expr, $($arg:expr),+ $(,)?) => {
        $crate::waiting::block_on_event($event, Some($peer), $($arg),+)
    };
    ($primitive:ident, $event:expr, $($arg:expr),+ $(,)?) => {
        $crate::waiting::block_on_event($event, None, $($arg),+)
    };
}
pub(crate) use block_on;

/// The async form of [`block_on_event`], nameable in public future types:
/// `ctx` is the operation's state (a reference to the primitive, maybe an
/// item to put) and `attempt` a plain function over it.
///
/// Cancel-safe: dropping it drops the listener, and a notification it had
/// received passes on to another listener.
pub(crate) struct EventWait<'a, C, R> {
    event: &'a WaitList,
    listener: Option<Listening<'a>>,
    contended: bool,
    ctx: C,
    attempt: fn(&mut C, bool) -> Option<R>,
}

impl<'a, C, R> EventWait<'a, C, R> {
    pub(crate) fn new(event: &'a WaitList, ctx: C, attempt: fn(&mut C, bool) -> Option<R>) -> Self {
        EventWait {
            event,
            listener: None,
            contended: false,
            ctx,
            attempt,
        }
    }

    pub(crate) fn ctx(&self) -> &C {
        &self.ctx
    }
}

impl<C, R> Unpin for EventWait<'_, C, R> {}

impl<C, R> Future for EventWait<'_, C, R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        loop {
            if let Some(r) = (this.attempt)(&mut this.ctx, this.contended) {
                this.listener = None;
                return Poll::Ready(r);
            }
            match &mut this.listener {
                None => {
                    this.listener = Some(this.event.listen());
                    this.contended = true;
                }
                Some(listener) => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.listener = None;
                }
            }
        }
    }
}
