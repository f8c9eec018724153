//! [`Timer`]: Python's `threading.Timer`, on one shared timer thread; and
//! the alarms that give async waits a deadline without a runtime.
//!
//! # The timer thread
//!
//! Python gives every `Timer` a thread of its own. weft keeps every pending
//! timer in one binary heap (earliest deadline on top) watched by one
//! thread, started on first use, which sleeps on a condition variable
//! until the earliest deadline (or until a timer due earlier is added),
//! runs what is due, and goes away after a while with nothing to do (a
//! later timer starts it again). Ten thousand timers cost ten thousand
//! heap entries, not ten thousand threads.
//!
//! The protocol, all under one lock (`Service::state`):
//! - `schedule` pushes an entry; if no thread is running it marks one
//!   running and spawns it; else, if the entry is now the earliest, it
//!   notifies the thread, so a sleeping thread re-reads the top.
//! - the thread pops due entries (releasing the lock to run each) and
//!   cancelled ones, sleeps until the top's deadline otherwise, and exits
//!   only after finding no finite deadline, clearing `running` under the
//!   same lock, so a concurrent `schedule` either sees it running (and its
//!   entry will be seen) or not running (and spawns a new thread).
//! - a cancel that leaves a dead entry on top wakes the thread, so that a
//!   cancelled far timer does not keep it up until its deadline.
//! - [`Timer::wait_idle`] counts itself in `idle_waiters` (the thread then
//!   exits without its idle wait), waits for `running` to clear, and joins
//!   the thread whose handle `schedule` kept (`joining` makes a second
//!   caller wait for that join), so that it returns only once no timer
//!   thread is left.
//!
//! Cancel-versus-fire has one winner, decided by the timer's
//! [`TaskHandle`]: the thread runs the callback through
//! [`Completer::run`], which refuses to start a cancelled task, and
//! [`TaskHandle::cancel`] refuses to cancel a started one. A cancelled
//! timer's callback is dropped at once (not at its deadline); its small
//! heap entry is skipped when due, and the heap is compacted when
//! cancelled entries outnumber the live ones.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::shim::{Arc, Condvar, JoinHandle, Mutex};
use crate::task::{Completer, TaskError, TaskHandle, drop_quietly};
use crate::waker::deadline_after;

type Job = Box<dyn FnOnce() + Send>;

/// A timer's callback until the thread or a cancel takes it.
struct JobSlot(Mutex<Option<Job>>);

impl JobSlot {
    fn take(&self) -> Option<Job> {
        self.0.lock().take()
    }

    fn is_live(&self) -> bool {
        self.0.lock().is_some()
    }
}

struct Entry {
    /// `None`: never (a delay too long for the clock).
    deadline: Option<Instant>,
    /// Arrival order: timers with equal deadlines fire in start order.
    seq: u64,
    slot: Arc<JobSlot>,
}

impl Ord for Entry {
    /// `BinaryHeap` pops the greatest: here the earliest deadline (never
    /// comes last), then the earliest started.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        let by_deadline = match (self.deadline, other.deadline) {
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => CmpOrdering::Greater,
            (None, Some(_)) => CmpOrdering::Less,
            (None, None) => CmpOrdering::Equal,
        };
        by_deadline.then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}

impl Eq for Entry {}

struct State {
    heap: BinaryHeap<Entry>,
    next_seq: u64,
    /// Whether a timer thread is running (or about to).
    running: bool,
    /// The last timer thread started, until a [`Timer::wait_idle`] joins
    /// it (a new thread's start drops an old handle nobody joined: that
    /// thread has cleared `running` and is on its way out).
    thread: Option<JoinHandle>,
    /// Whether a [`Timer::wait_idle`] is joining the last thread (with the
    /// lock released): the other callers wait for that join to end.
    joining: bool,
    /// Callers in [`Timer::wait_idle`]: while there are any, the thread
    /// exits as soon as nothing is due, without its idle wait.
    idle_waiters: usize,
    /// Cancels since the last compaction (an over-estimate of the dead
    /// entries in the heap: a cancelled entry may have been popped since).
    cancelled: usize,
}

/// How long the timer thread waits with nothing to do before it exits.
/// Under loom it exits at once, so that models end (and the exit races a
/// new `schedule`).
const IDLE: Duration = if cfg!(loom) {
    Duration::ZERO
} else {
    Duration::from_secs(2)
};

/// Compaction starts above this many cancels, so that small heaps never
/// pay for it.
const COMPACT_MIN: usize = 64;

struct Service {
    state: Mutex<State>,
    /// Wakes the timer thread: an earlier timer, a dead earliest entry, or
    /// a caller waiting for it to go idle.
    wake: Condvar,
    /// Wakes the callers of [`Timer::wait_idle`]: the thread exited, or a
    /// join ended.
    exited: Condvar,
}

impl Service {
    crate::shim::const_unless_loom! {
        fn new() -> Service {
            Service {
                state: Mutex::new(State {
                    heap: BinaryHeap::new(),
                    next_seq: 0,
                    running: false,
                    thread: None,
                    joining: false,
                    idle_waiters: 0,
                    cancelled: 0,
                }),
                wake: Condvar::new(),
                exited: Condvar::new(),
            }
        }
    }

    fn schedule(this: ServiceRef, deadline: Option<Instant>, slot: Arc<JobSlot>) {
        let mut st = this.state.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        let entry = Entry {
            deadline,
            seq,
            slot,
        };
        let earliest = st.heap.peek().is_none_or(|top| entry > *top);
        st.heap.push(entry);
        if !st.running {
            st.running = true;
            #[cfg(not(loom))]
            let service = this;
            #[cfg(loom)]
            let service = this.clone();
            match crate::shim::spawn_named("weft-timer", move || service.run()) {
                // An old handle left here is a thread that has cleared
                // `running` and is returning: dropping it detaches it.
                Ok(handle) => st.thread = Some(handle),
                Err(e) => {
                    st.running = false;
                    drop(st);
                    panic!(
                        "weft-sync could not start its timer thread: {e} (the timer stays \
                         scheduled, and fires once a later Timer::start succeeds)"
                    );
                }
            }
        } else if earliest {
            this.wake.notify_all();
        }
    }

    /// A timer was cancelled (its entry is dead): compacts the heap when
    /// dead entries may outnumber the live ones.
    fn note_cancelled(&self) {
        let mut st = self.state.lock();
        st.cancelled += 1;
        if st.cancelled > COMPACT_MIN && st.cancelled > st.heap.len() / 2 {
            st.heap.retain(|e| e.slot.is_live());
            st.cancelled = 0;
        }
        // The thread sleeps until the earliest deadline: if that entry is
        // dead now, wake it to drop the entry (and go idle if nothing else
        // is pending), rather than stay up until a cancelled deadline.
        if st.running
            && st
                .heap
                .peek()
                .is_some_and(|e| e.deadline.is_some() && !e.slot.is_live())
        {
            self.wake.notify_all();
        }
    }

    /// The timer thread.
    fn run(&self) {
        let mut st = self.state.lock();
        loop {
            match st.heap.peek().map(|e| (e.deadline, e.slot.is_live())) {
                // Cancelled: nothing to wait for.
                Some((Some(_), false)) => {
                    st.heap.pop();
                }
                Some((Some(deadline), true)) => {
                    if Instant::now() >= deadline {
                        let entry = st.heap.pop().expect("peeked");
                        drop(st);
                        fire(entry);
                        st = self.state.lock();
                    } else {
                        self.wake.wait_until(&mut st, deadline);
                    }
                }
                // Nothing that will ever be due: idle a while (not at all
                // while someone waits for the thread to go), then go.
                _ => {
                    let idle_over = if IDLE.is_zero() || st.idle_waiters > 0 {
                        true
                    } else {
                        let timed_out = deadline_after(IDLE)
                            .is_none_or(|until| self.wake.wait_until(&mut st, until));
                        // Woken early by a caller of `wait_idle`: go now.
                        timed_out || st.idle_waiters > 0
                    };
                    let due_some_day = st.heap.peek().is_some_and(|e| e.deadline.is_some());
                    if idle_over && !due_some_day {
                        st.running = false;
                        self.exited.notify_all();
                        return;
                    }
                }
            }
        }
    }

    /// [`Timer::wait_idle`]: asks the thread to exit once nothing is due,
    /// and joins it.
    fn wait_idle(&self, deadline: Option<Instant>) -> bool {
        let mut st = self.state.lock();
        #[cfg(not(loom))]
        if st.running
            && st
                .thread
                .as_ref()
                .is_some_and(|t| t.thread().id() == std::thread::current().id())
        {
            // Called from a timer's function: the thread cannot exit while
            // it runs this call.
            return false;
        }
        st.idle_waiters += 1;
        if st.running {
            self.wake.notify_all();
        }
        let mut timed_out = false;
        let gone = loop {
            if !st.running {
                if let Some(thread) = st.thread.take() {
                    // It cleared `running` on its way out: the join is short.
                    st.joining = true;
                    drop(st);
                    let joined = thread.join();
                    st = self.state.lock();
                    st.joining = false;
                    self.exited.notify_all();
                    // Its body catches every callback's panic: a join
                    // error would be a bug in this module.
                    debug_assert!(joined.is_ok(), "the timer thread panicked");
                    break true;
                }
                if !st.joining {
                    break true;
                }
            }
            if timed_out {
                break false;
            }
            match deadline {
                None => self.exited.wait(&mut st),
                Some(deadline) => timed_out = self.exited.wait_until(&mut st, deadline),
            }
        };
        st.idle_waiters -= 1;
        gone
    }
}

/// Runs a due entry's callback, if it was not cancelled; nothing it does
/// (panic, or panic while being dropped) escapes onto the timer thread.
fn fire(entry: Entry) {
    let job = entry.slot.take();
    drop(entry);
    if let Some(job) = job
        && let Err(payload) = catch_unwind(AssertUnwindSafe(job))
    {
        drop_quietly(payload);
    }
}

/// How the timer thread holds the service: the static itself, or under
/// loom a counted reference, since loom drops its statics as soon as a
/// model's main thread returns, while the timer thread may still be on its
/// way out.
#[cfg(not(loom))]
type ServiceRef = &'static Service;
#[cfg(loom)]
type ServiceRef = Arc<Service>;

#[cfg(not(loom))]
fn service() -> ServiceRef {
    static SERVICE: Service = Service::new();
    &SERVICE
}

#[cfg(loom)]
fn service() -> ServiceRef {
    loom::lazy_static! {
        static ref SERVICE: Arc<Service> = Arc::new(Service::new());
    }
    SERVICE.clone()
}

/// Drops a callback taken back by a cancel; a panic in its `Drop` is
/// contained (a cancel never panics because of the callback).
fn discard(slot: &JobSlot) {
    if let Some(job) = slot.take() {
        drop_quietly(job);
        service().note_cancelled();
    }
}

/// Runs a function once after a delay, unless cancelled first (Python's
/// `threading.Timer`).
///
/// [`Timer::start`] schedules it at once (Python's `Timer(t, f).start()`).
/// [`cancel`](Timer::cancel) returns `true` only if the function will never
/// run, even when the cancel races the deadline. The function's result (or
/// its panic, as [`TaskError::Panicked`]) is kept in a [`TaskHandle`]: wait
/// for it with [`join`](Timer::join), [`wait`](Timer::wait), or `.await`
/// (a `Timer` is a `Future`, usable from any executor).
///
/// **One thread for all timers.** Python starts a thread per `Timer`; weft
/// runs every timer's function on one shared timer thread (started on first
/// use, gone after two seconds with nothing pending, or at once while
/// [`Timer::wait_idle`] waits for it), which sleeps until the
/// earliest deadline. Ten thousand timers cost ten thousand small heap
/// entries, not ten thousand threads. The price: functions run one after
/// another, so one that takes long delays the timers due after it. Keep
/// them short, and hand long work to a pool or a thread from the function.
/// A function that panics does not harm the timer thread: its panic goes to
/// the timer's handle.
///
/// Dropping a `Timer` does not cancel it (as with a Python `Timer` you lose
/// track of): call [`cancel`](Timer::cancel).
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use weft_sync::Timer;
///
/// let (tx, rx) = mpsc::channel();
/// let _reminder = Timer::start(Duration::from_millis(10), move || tx.send("tea!").unwrap());
/// assert_eq!(rx.recv().unwrap(), "tea!");
///
/// let never = Timer::start(Duration::from_secs(3600), || unreachable!());
/// assert!(never.cancel()); // it will never run
/// assert!(never.is_finished());
///
/// let answer = Timer::start(Duration::from_millis(1), || 6 * 7);
/// assert_eq!(answer.join(), Ok(42));
/// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
/// ```
pub struct Timer<T = ()> {
    handle: TaskHandle<T>,
    slot: Arc<JobSlot>,
}

impl<T: Send + 'static> Timer<T> {
    /// Schedules `f` to run once, `delay` from now, on the timer thread.
    ///
    /// A delay too long for the clock (`Duration::MAX`) means never: the
    /// timer stays pending until cancelled.
    ///
    /// # Panics
    ///
    /// If the timer thread is not running and cannot be started (the
    /// system is out of threads), as `std::thread::spawn` does.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = weft_sync::Timer::start(Duration::ZERO, || "now");
    /// assert_eq!(t.join(), Ok("now"));
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn start<F>(delay: Duration, f: F) -> Timer<T>
    where
        F: FnOnce() -> T + Send + 'static,
    {
        let (completer, handle): (Completer<T>, _) = TaskHandle::pair();
        let job: Job = Box::new(move || {
            completer.run(f);
        });
        let slot = Arc::new(JobSlot(Mutex::new(Some(job))));
        Service::schedule(service(), deadline_after(delay), slot.clone());
        Timer { handle, slot }
    }
}

impl Timer {
    /// Waits, at most `timeout`, until the shared timer thread has nothing
    /// left to run and has exited; returns whether it has (or was never
    /// started). Meanwhile the thread skips its idle wait: it goes as soon
    /// as no timer is due, rather than two seconds later.
    ///
    /// For a program or test that must end with no thread of weft-sync's
    /// left running: Miri's leak check, which fails a test binary whose
    /// process exits with the idle thread still up, and tools that count
    /// threads. Pending timers keep the thread (and this wait) going until
    /// they fire or are cancelled; a timer that never fires
    /// (`Duration::MAX`) does not. Async waits with a time limit (such as
    /// [`Barrier::wait_async`](crate::Barrier::wait_async) with a default
    /// timeout) use the same thread. A timer started afterwards starts the
    /// thread again. Called from a timer's own function, it returns `false`
    /// at once: the thread cannot exit while it runs that function.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::Timer;
    ///
    /// let t = Timer::start(Duration::from_millis(1), || 42);
    /// assert_eq!(t.join(), Ok(42));
    /// assert!(Timer::wait_idle(Duration::from_secs(10))); // the thread is gone
    ///
    /// let far = Timer::start(Duration::from_secs(3600), || ());
    /// assert!(!Timer::wait_idle(Duration::from_millis(10))); // it waits for `far`
    /// far.cancel();
    /// assert!(Timer::wait_idle(Duration::from_secs(10)));
    /// ```
    pub fn wait_idle(timeout: Duration) -> bool {
        service().wait_idle(deadline_after(timeout))
    }
}

impl<T> Timer<T> {
    /// Cancels the timer if its function has not started: it will then
    /// never run, and the timer finishes with [`TaskError::Cancelled`].
    /// Returns `true` if the timer is cancelled (now or before), `false` if
    /// the function has started or finished: a `true` is a promise that it
    /// never runs, whatever the timing. The function is dropped at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{TaskError, Timer};
    /// let t = Timer::start(Duration::from_secs(60), || ());
    /// assert!(t.cancel());
    /// assert!(t.cancel()); // still cancelled
    /// assert_eq!(t.join(), Err(TaskError::Cancelled));
    ///
    /// let done = Timer::start(Duration::ZERO, || ());
    /// done.wait();
    /// assert!(!done.cancel()); // too late: it ran
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn cancel(&self) -> bool {
        if !self.handle.cancel() {
            return false;
        }
        discard(&self.slot);
        true
    }

    /// Whether the timer is done: its function ran (or panicked), or it was
    /// cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = weft_sync::Timer::start(Duration::from_secs(60), || ());
    /// assert!(!t.is_finished());
    /// t.cancel();
    /// assert!(t.is_finished());
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Whether the timer was cancelled before its function ran.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = weft_sync::Timer::start(Duration::from_secs(60), || ());
    /// t.cancel();
    /// assert!(t.is_cancelled());
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.handle.is_cancelled()
    }

    /// Blocks until the timer is done (its function ran, or it was
    /// cancelled).
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = weft_sync::Timer::start(Duration::from_millis(1), || ());
    /// t.wait();
    /// assert!(t.is_finished());
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn wait(&self) {
        self.handle.wait();
    }

    /// As [`wait`](Self::wait), giving up after `timeout`; returns whether
    /// the timer is done.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = weft_sync::Timer::start(Duration::from_secs(60), || ());
    /// assert!(!t.wait_timeout(Duration::from_millis(1)));
    /// t.cancel();
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.handle.wait_timeout(timeout)
    }

    /// Waits for the timer and returns its function's result:
    /// [`TaskError::Cancelled`] if it was cancelled, [`TaskError::Panicked`]
    /// if the function panicked.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{TaskError, Timer};
    /// let t = Timer::start(Duration::ZERO, || -> u8 { panic!("boom") });
    /// assert_eq!(t.join(), Err(TaskError::Panicked { message: "boom".into() }));
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        self.into_handle().join()
    }

    /// The timer's task handle, to add done-callbacks or wait on it with
    /// [`wait`](crate::wait) and [`as_completed`](crate::as_completed)
    /// among other tasks.
    ///
    /// ```
    /// use std::time::Duration;
    /// let t = weft_sync::Timer::start(Duration::ZERO, || 1);
    /// t.handle().wait();
    /// assert!(t.handle().is_finished());
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn handle(&self) -> &TaskHandle<T> {
        &self.handle
    }

    /// The timer's task handle, giving up the `Timer` (which does not
    /// cancel it).
    ///
    /// ```
    /// use std::time::Duration;
    /// let h = weft_sync::Timer::start(Duration::ZERO, || 1).into_handle();
    /// assert_eq!(h.join(), Ok(1));
    /// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
    /// ```
    pub fn into_handle(self) -> TaskHandle<T> {
        self.handle
    }
}

/// A `Timer` is a future of its function's result (as
/// [`join`](Timer::join)), from any executor.
///
/// ```
/// use std::time::Duration;
/// let t = weft_sync::Timer::start(Duration::from_millis(1), || "late");
/// assert_eq!(futures_lite::future::block_on(t), Ok("late"));
/// # assert!(weft_sync::Timer::wait_idle(std::time::Duration::from_secs(60)));
/// ```
impl<T> Future for Timer<T> {
    type Output = Result<T, TaskError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

impl<T> fmt::Debug for Timer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("finished", &self.is_finished())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A deadline for an async wait, on the timer thread: `poll` is ready
/// once the deadline has passed, and wakes the task then. Dropping it
/// cancels the wake-up.
pub(crate) struct Alarm {
    state: Arc<AlarmState>,
    slot: Arc<JobSlot>,
}

struct AlarmState {
    rang: crate::shim::AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl Alarm {
    /// An alarm at `deadline` (`None`: never).
    pub(crate) fn at(deadline: Option<Instant>) -> Alarm {
        let state = Arc::new(AlarmState {
            rang: crate::shim::AtomicUsize::new(0),
            waker: Mutex::new(None),
        });
        let ring = state.clone();
        let job: Job = Box::new(move || {
            ring.rang.store(1, crate::shim::Ordering::Release);
            let waker = ring.waker.lock().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        let slot = Arc::new(JobSlot(Mutex::new(Some(job))));
        Service::schedule(service(), deadline, slot.clone());
        Alarm { state, slot }
    }

    fn rang(&self) -> bool {
        self.state.rang.load(crate::shim::Ordering::Acquire) == 1
    }

    /// Ready once the deadline has passed; otherwise the task is woken then.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.rang() {
            return Poll::Ready(());
        }
        *self.state.waker.lock() = Some(cx.waker().clone());
        // Rung between the check and the store: the ringer found no waker.
        if self.rang() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        discard(&self.slot);
    }
}
