//! The I/O reactor behind [`net`](crate::net): a registered socket
//! ([`Source`]) and, on Linux, the runtime's own epoll instance.
//!
//! # Why weft has a reactor of its own
//!
//! `async-io` (which the runtime still drives, for timers and for anything
//! built on `async-io::Async`) registers every source in one-shot mode: each
//! wait re-arms the source with an `epoll_ctl`, and each reactor poll costs
//! five system calls. On a request/response workload that is one extra system
//! call per wait, which is most of what separated weft from tokio on the TCP
//! echo benchmark. weft's reactor registers each socket once, edge-triggered
//! (as tokio and mio do), and a poll of it is one `epoll_wait`.
//!
//! # The protocol (Linux)
//!
//! * A [`Source`] is registered lazily, with the reactor of the runtime that
//!   first polls it, for both directions, edge-triggered, and starts out
//!   "ready" both ways (the first operation is simply tried).
//! * An operation that fails with `WouldBlock` clears its direction's ready
//!   bit and leaves the task's waker; so does a read or write that moved
//!   fewer bytes than asked (the kernel buffer was drained or filled, and the
//!   edge-triggered registration reports the next change).
//! * [`Reactor::poll_events`] (a non-blocking `epoll_wait`) sets the ready
//!   bits of the sources that changed and wakes their waiting tasks. The run
//!   loop calls it whenever its queue runs dry and at the end of every slice.
//! * When the runtime has nothing to run, it sleeps in `async-io`'s reactor
//!   with the epoll descriptor registered there as one more readable source
//!   ([`Reactor::poll_wake`]), so a socket event, a timer or a wake-up from
//!   another thread all end the sleep.
//!
//! Everything is single-threaded: the reactor lives in the runtime's
//! thread-local core and a [`Source`] is `!Send`, so no ready bit is ever
//! cleared after an event that set it was processed (the race a multi-threaded
//! reactor needs readiness ticks for cannot happen).
//!
//! A socket whose first runtime has ended moves to the runtime that polls it
//! next on the same thread; polled outside any runtime it fails with a clear
//! error.
//!
//! On other Unix platforms (and with `--cfg weft_async_portable_io`, which
//! the test suite uses to check this path on Linux) a [`Source`] is an
//! `async_io::Async`, so the same types run on `async-io`'s reactor. Without
//! `std::os::fd` (Windows) there is no `net` module yet.

/// The direction of an operation, as a ready bit.
#[cfg(unix)]
pub(crate) const READ: u8 = 0b01;
/// The direction of an operation, as a ready bit.
#[cfg(unix)]
pub(crate) const WRITE: u8 = 0b10;

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(weft_async_portable_io)
))]
mod imp {
    use std::cell::{Cell, RefCell};
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    use rustix::event::{Timespec, epoll};

    use super::{READ, WRITE};

    /// The peer has shut its write half down, or the connection has
    /// failed: reads return end-of-file or the error at once, with no
    /// further edge to come. Never cleared.
    const READ_CLOSED: u8 = 0b0100;
    /// The connection has hung up or failed: writes fail at once. Never
    /// cleared.
    const WRITE_CLOSED: u8 = 0b1000;

    /// The sticky "closed" bit of the direction `dir`.
    fn closed(dir: u8) -> u8 {
        if dir == READ {
            READ_CLOSED
        } else {
            WRITE_CLOSED
        }
    }

    /// How many events one `epoll_wait` can return; a full buffer is
    /// followed by another wait at once.
    const EVENTS: usize = 256;

    /// One registered source's state.
    struct Slot {
        /// Bumped whenever the slot is reused, so that an event for a
        /// source that has gone (a stale key) is recognised and ignored.
        generation: u32,
        /// Whether a source holds the slot.
        live: bool,
        /// `READ` and/or `WRITE`: the direction may proceed without waiting;
        /// `READ_CLOSED` and/or `WRITE_CLOSED`: it always may.
        ready: u8,
        /// Tasks waiting for the source to become readable.
        readers: Vec<Waker>,
        /// Tasks waiting for the source to become writable.
        writers: Vec<Waker>,
    }

    impl Slot {
        fn waiters(&mut self, dir: u8) -> &mut Vec<Waker> {
            if dir == READ {
                &mut self.readers
            } else {
                &mut self.writers
            }
        }
    }

    /// A runtime's epoll instance and the state of its sources.
    pub(crate) struct Reactor {
        /// The runtime's id (`Core::rt`), which a [`Source`] compares with
        /// the running one to find out whether it must move.
        rt: u64,
        epoll: OwnedFd,
        slots: RefCell<Vec<Slot>>,
        free: RefCell<Vec<u32>>,
        /// How many sources are registered.
        live: Cell<usize>,
        /// `epoll_wait`'s buffer, reused.
        events: RefCell<Vec<epoll::Event>>,
        /// The wakers one poll wakes, gathered before any is woken (so that
        /// no borrow is held while foreign code runs), reused.
        woken: RefCell<Vec<Waker>>,
        /// A duplicate of `epoll`, registered with `async-io`'s reactor so
        /// that an idle runtime sleeping there wakes on a socket event.
        /// Made the first time the runtime sleeps with sources registered.
        waiter: RefCell<Option<async_io::Async<OwnedFd>>>,
    }

    impl Reactor {
        pub(crate) fn new(rt: u64) -> io::Result<Reactor> {
            Ok(Reactor {
                rt,
                epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
                slots: RefCell::new(Vec::new()),
                free: RefCell::new(Vec::new()),
                live: Cell::new(0),
                events: RefCell::new(Vec::with_capacity(EVENTS)),
                woken: RefCell::new(Vec::new()),
                waiter: RefCell::new(None),
            })
        }

        /// Whether any source is registered (if not, there is nothing to poll).
        pub(crate) fn has_sources(&self) -> bool {
            self.live.get() > 0
        }

        /// Registers `fd` for both directions, edge-triggered; returns its key.
        fn register(&self, fd: impl AsFd) -> io::Result<Key> {
            let mut slots = self.slots.borrow_mut();
            let index = match self.free.borrow_mut().pop() {
                Some(i) => i,
                None => {
                    let i = u32::try_from(slots.len()).map_err(|_| {
                        io::Error::other("weft-async: more than u32::MAX sockets on one runtime")
                    })?;
                    slots.push(Slot {
                        generation: 0,
                        live: false,
                        ready: 0,
                        readers: Vec::new(),
                        writers: Vec::new(),
                    });
                    i
                }
            };
            let slot = &mut slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            let key = Key {
                index,
                generation: slot.generation,
            };
            let flags = epoll::EventFlags::IN
                | epoll::EventFlags::OUT
                | epoll::EventFlags::RDHUP
                | epoll::EventFlags::ET;
            if let Err(e) = epoll::add(
                &self.epoll,
                fd,
                epoll::EventData::new_u64(key.data()),
                flags,
            ) {
                self.free.borrow_mut().push(index);
                return Err(e.into());
            }
            slot.live = true;
            slot.ready = READ | WRITE;
            self.live.set(self.live.get() + 1);
            Ok(key)
        }

        /// Removes the source `key` (whose descriptor is `fd`).
        fn deregister(&self, fd: impl AsFd, key: Key) {
            // Fails only if the descriptor was never added or is already
            // closed; either way it is out of the interest list.
            let _ = epoll::delete(&self.epoll, fd);
            let wakers = {
                let mut slots = self.slots.borrow_mut();
                let Some(slot) = slots.get_mut(key.index as usize) else {
                    return;
                };
                if !slot.live || slot.generation != key.generation {
                    return;
                }
                slot.live = false;
                slot.ready = 0;
                let mut wakers = std::mem::take(&mut slot.readers);
                wakers.append(&mut slot.writers);
                wakers
            };
            self.free.borrow_mut().push(key.index);
            self.live.set(self.live.get() - 1);
            // Dropped, not woken: a task can only be waiting on a source it
            // can still reach, and this one is gone.
            drop(wakers);
        }

        /// Whether `dir` of the source `key` may proceed without waiting.
        fn is_ready(&self, key: Key, dir: u8) -> bool {
            self.slots
                .borrow()
                .get(key.index as usize)
                .is_some_and(|s| s.ready & (dir | closed(dir)) != 0)
        }

        /// `dir` of the source `key` has no more to give: the next operation
        /// waits for an event (unless the direction is closed, for which no
        /// event will come).
        fn clear_ready(&self, key: Key, dir: u8) {
            if let Some(slot) = self.slots.borrow_mut().get_mut(key.index as usize) {
                slot.ready &= !dir;
            }
        }

        /// Leaves `waker` to be woken when `dir` of the source `key` is ready
        /// (once per task: a waker that would wake the same task is not
        /// added twice).
        fn park(&self, key: Key, dir: u8, waker: &Waker) {
            if let Some(slot) = self.slots.borrow_mut().get_mut(key.index as usize) {
                let waiters = slot.waiters(dir);
                if !waiters.iter().any(|w| w.will_wake(waker)) {
                    waiters.push(waker.clone());
                }
            }
        }

        /// Takes the events the kernel has, without blocking: marks their
        /// sources ready and wakes the tasks waiting on them. Returns whether
        /// it woke any.
        pub(crate) fn poll_events(&self) -> bool {
            let mut batch = std::mem::take(&mut *self.woken.borrow_mut());
            loop {
                let mut events = self.events.borrow_mut();
                events.clear();
                let zero = Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                // An error (EINTR) reads as "no events": the loop polls again
                // soon, and the kernel keeps the events until then.
                if epoll::wait(
                    &self.epoll,
                    rustix::buffer::spare_capacity(&mut events),
                    Some(&zero),
                )
                .is_err()
                {
                    break;
                }
                let mut slots = self.slots.borrow_mut();
                for event in events.iter() {
                    let key = Key::from_data(event.data.u64());
                    let flags = event.flags;
                    let Some(slot) = slots.get_mut(key.index as usize) else {
                        continue;
                    };
                    if !slot.live || slot.generation != key.generation {
                        continue;
                    }
                    let mut bits = 0;
                    if flags.intersects(epoll::EventFlags::IN | epoll::EventFlags::PRI) {
                        bits |= READ;
                    }
                    if flags.intersects(
                        epoll::EventFlags::RDHUP | epoll::EventFlags::HUP | epoll::EventFlags::ERR,
                    ) {
                        bits |= READ_CLOSED;
                    }
                    if flags.contains(epoll::EventFlags::OUT) {
                        bits |= WRITE;
                    }
                    if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
                        bits |= WRITE_CLOSED;
                    }
                    if bits & (READ | READ_CLOSED) != 0 {
                        batch.append(&mut slot.readers);
                    }
                    if bits & (WRITE | WRITE_CLOSED) != 0 {
                        batch.append(&mut slot.writers);
                    }
                    slot.ready |= bits;
                }
                if events.len() < EVENTS {
                    break;
                }
            }
            let woke = !batch.is_empty();
            for waker in batch.drain(..) {
                // User code: a waker that panics must not stop the others
                // being woken, nor the runtime.
                crate::task::wake_contained(waker);
            }
            *self.woken.borrow_mut() = batch;
            woke
        }

        /// Arms the wake-up of an idle runtime: `cx` is woken when the epoll
        /// instance has events. `Ready` means it already has some (poll
        /// them and look again).
        pub(crate) fn poll_wake(&self, cx: &mut Context<'_>) -> Poll<()> {
            let mut waiter = self.waiter.borrow_mut();
            if waiter.is_none() {
                let dup = self
                    .epoll
                    .try_clone()
                    .and_then(async_io::Async::new_nonblocking);
                match dup {
                    Ok(w) => *waiter = Some(w),
                    // Without the registration the runtime cannot sleep on
                    // its sockets: keep it awake (it polls them each turn)
                    // rather than miss an event.
                    Err(_) => {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                }
            }
            match waiter.as_ref().map(|w| w.poll_readable(cx)) {
                Some(Poll::Pending) => Poll::Pending,
                Some(Poll::Ready(Ok(()))) => Poll::Ready(()),
                // Arming failed (async-io's epoll_ctl): drop the registration
                // so that the next sleep makes a new one, and stay awake.
                _ => {
                    *waiter = None;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    /// Where a source's state lives in its reactor.
    #[derive(Clone, Copy)]
    struct Key {
        index: u32,
        generation: u32,
    }

    impl Key {
        fn data(self) -> u64 {
            u64::from(self.index) | (u64::from(self.generation) << 32)
        }

        fn from_data(data: u64) -> Key {
            Key {
                index: data as u32,
                generation: (data >> 32) as u32,
            }
        }
    }

    /// A source's registration with one runtime's reactor.
    struct Registration {
        reactor: Rc<Reactor>,
        key: Key,
    }

    /// A non-blocking socket registered (lazily) with the running runtime's
    /// reactor.
    pub(crate) struct Source<T: AsFd> {
        /// `None` only inside [`Source::into_inner`].
        io: Option<T>,
        registration: RefCell<Option<Registration>>,
    }

    impl<T: AsFd> Source<T> {
        /// Wraps `io`, putting it in non-blocking mode. Registration waits
        /// for the first operation, so this works outside a runtime too.
        pub(crate) fn new(io: T) -> io::Result<Source<T>> {
            rustix::io::ioctl_fionbio(&io, true)?;
            Ok(Source {
                io: Some(io),
                registration: RefCell::new(None),
            })
        }

        pub(crate) fn get_ref(&self) -> &T {
            self.io
                .as_ref()
                .expect("weft-async: Source used during into_inner")
        }

        /// Deregisters the socket and gives it back (still non-blocking).
        pub(crate) fn into_inner(mut self) -> io::Result<T> {
            self.deregister();
            Ok(self
                .io
                .take()
                .expect("weft-async: Source used during into_inner"))
        }

        fn deregister(&mut self) {
            if let (Some(reg), Some(io)) = (self.registration.get_mut().take(), &self.io) {
                reg.reactor.deregister(io, reg.key);
            }
        }

        /// The registration with the running runtime's reactor, made (or
        /// moved from a runtime that has ended) when needed.
        fn registration(&self) -> io::Result<std::cell::Ref<'_, Registration>> {
            let rt = crate::runtime::current_runtime_id().ok_or_else(super::outside_runtime)?;
            let current = matches!(&*self.registration.borrow(), Some(r) if r.reactor.rt == rt);
            if !current {
                let mut slot = self.registration.borrow_mut();
                if let Some(old) = slot.take() {
                    old.reactor.deregister(self.get_ref(), old.key);
                }
                let reactor = crate::runtime::reactor()?;
                let key = reactor.register(self.get_ref())?;
                *slot = Some(Registration { reactor, key });
            }
            Ok(std::cell::Ref::map(self.registration.borrow(), |r| {
                r.as_ref().expect("registered just above")
            }))
        }

        /// Runs `op` if `dir` is ready; when it would block, parks the task
        /// until the reactor says `dir` is ready again.
        pub(crate) fn poll_io<R>(
            &self,
            dir: u8,
            cx: &mut Context<'_>,
            mut op: impl FnMut(&T) -> io::Result<R>,
        ) -> Poll<io::Result<R>> {
            let reg = match self.registration() {
                Ok(reg) => reg,
                Err(e) => return Poll::Ready(Err(e)),
            };
            if reg.reactor.is_ready(reg.key, dir) {
                match op(self.get_ref()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        reg.reactor.clear_ready(reg.key, dir);
                    }
                    result => return Poll::Ready(result),
                }
            }
            reg.reactor.park(reg.key, dir, cx.waker());
            Poll::Pending
        }

        /// [`poll_io`](Self::poll_io) for a read or write of `len` bytes
        /// that returns how many it moved. One that moved fewer (but some)
        /// drained the kernel's buffer, or filled it: the next operation
        /// waits for the reactor instead of failing with `WouldBlock` first.
        pub(crate) fn poll_transfer(
            &self,
            dir: u8,
            cx: &mut Context<'_>,
            len: usize,
            op: impl FnMut(&T) -> io::Result<usize>,
        ) -> Poll<io::Result<usize>> {
            let result = self.poll_io(dir, cx, op);
            if let Poll::Ready(Ok(n)) = result
                && n > 0
                && n < len
                && let Some(reg) = &*self.registration.borrow()
            {
                reg.reactor.clear_ready(reg.key, dir);
            }
            result
        }
    }

    impl<T: AsFd> Drop for Source<T> {
        fn drop(&mut self) {
            self.deregister();
        }
    }
}

#[cfg(all(
    unix,
    not(all(
        any(target_os = "linux", target_os = "android"),
        not(weft_async_portable_io)
    ))
))]
mod portable {
    use std::io;
    use std::os::fd::AsFd;
    use std::task::{Context, Poll};

    use super::READ;

    /// A non-blocking socket registered with `async-io`'s reactor.
    pub(crate) struct Source<T: AsFd>(async_io::Async<T>);

    impl<T: AsFd> Source<T> {
        pub(crate) fn new(io: T) -> io::Result<Source<T>> {
            async_io::Async::new(io).map(Source)
        }

        pub(crate) fn get_ref(&self) -> &T {
            self.0.get_ref()
        }

        pub(crate) fn into_inner(self) -> io::Result<T> {
            self.0.into_inner()
        }

        pub(crate) fn poll_io<R>(
            &self,
            dir: u8,
            cx: &mut Context<'_>,
            mut op: impl FnMut(&T) -> io::Result<R>,
        ) -> Poll<io::Result<R>> {
            if !crate::runtime::in_runtime() {
                return Poll::Ready(Err(super::outside_runtime()));
            }
            loop {
                match op(self.0.get_ref()) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    result => return Poll::Ready(result),
                }
                let ready = if dir == READ {
                    self.0.poll_readable(cx)
                } else {
                    self.0.poll_writable(cx)
                };
                match ready {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }

        /// [`poll_io`](Self::poll_io): `async-io` has no readiness to clear.
        pub(crate) fn poll_transfer(
            &self,
            dir: u8,
            cx: &mut Context<'_>,
            _len: usize,
            op: impl FnMut(&T) -> io::Result<usize>,
        ) -> Poll<io::Result<usize>> {
            self.poll_io(dir, cx, op)
        }
    }
}

/// Without the epoll reactor (other platforms, or
/// `--cfg weft_async_portable_io`) the runtime has no reactor of its own:
/// sockets, where there are any, run on `async-io`'s, and there is nothing
/// for the loop to poll.
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(weft_async_portable_io)
)))]
mod stub {
    use std::io;
    use std::task::{Context, Poll};

    pub(crate) struct Reactor;

    impl Reactor {
        #[allow(dead_code, reason = "no socket registers with this reactor")]
        pub(crate) fn new(_rt: u64) -> io::Result<Reactor> {
            Ok(Reactor)
        }

        pub(crate) fn has_sources(&self) -> bool {
            false
        }

        pub(crate) fn poll_events(&self) -> bool {
            false
        }

        pub(crate) fn poll_wake(&self, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
}

#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(weft_async_portable_io)
))]
pub(crate) use imp::{Reactor, Source};
#[cfg(all(
    unix,
    not(all(
        any(target_os = "linux", target_os = "android"),
        not(weft_async_portable_io)
    ))
))]
pub(crate) use portable::Source;
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(weft_async_portable_io)
)))]
pub(crate) use stub::Reactor;

/// The error of a socket polled where no runtime runs.
#[cfg_attr(not(unix), allow(dead_code))]
pub(crate) fn outside_runtime() -> std::io::Error {
    std::io::Error::other(
        "weft-async: a weft_async::net socket was used outside weft_async::run; \
         it is driven by the runtime of the thread that polls it (on \
         weft_async::multi, use async-net's sockets instead)",
    )
}
