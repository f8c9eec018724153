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

use event_listener::{Event, EventListener, Listener};

/// Blocks the current thread until `attempt` succeeds, or until `deadline`
/// (if any) passes, in which case it returns `None` after one last attempt.
pub(crate) fn block_on_event<R>(
    event: &Event,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    if let Some(r) = attempt(false) {
        return Some(r);
    }
    loop {
        let listener = event.listen();
        if let Some(r) = attempt(true) {
            return Some(r);
        }
        match deadline {
            None => listener.wait(),
            Some(deadline) => {
                if listener.wait_deadline(deadline).is_none() {
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
    event: &Event,
    deadline: Option<Instant>,
    mut attempt: impl FnMut(bool) -> Option<R>,
) -> Option<R> {
    if let Some(r) = attempt(false) {
        return Some(r);
    }
    let _wait = crate::deadlock::wait_begins(primitive, std::panic::Location::caller());
    block_on_event(event, deadline, attempt)
}

/// `block_on!(Primitive, event, deadline, attempt)`: [`block_on_event`],
/// registered with the watchdog as a wait on `Primitive` when the
/// `deadlock-detection` feature is on (the calling function should then be
/// `#[track_caller]`, so the wait's site is the user's call).
#[cfg(feature = "deadlock-detection")]
macro_rules! block_on {
    ($primitive:ident, $($arg:expr),+ $(,)?) => {
        $crate::waiting::block_on_event_as($crate::deadlock::Primitive::$primitive, $($arg),+)
    };
}
#[cfg(not(feature = "deadlock-detection"))]
macro_rules! block_on {
    ($primitive:ident, $($arg:expr),+ $(,)?) => {
        $crate::waiting::block_on_event($($arg),+)
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
    event: &'a Event,
    listener: Option<EventListener>,
    contended: bool,
    ctx: C,
    attempt: fn(&mut C, bool) -> Option<R>,
}

impl<'a, C, R> EventWait<'a, C, R> {
    pub(crate) fn new(event: &'a Event, ctx: C, attempt: fn(&mut C, bool) -> Option<R>) -> Self {
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
