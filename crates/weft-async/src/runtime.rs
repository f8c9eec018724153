//! The executor: a thread-local run queue, a queue for wake-ups from other
//! threads, the live-task registry, and the loop that [`run`](crate::run) drives inside
//! `async_io::block_on` so that timers and I/O wake it.
//!
//! # How it fits together
//!
//! * Every thread has one [`Core`] (a `const` thread-local, so reaching it
//!   costs no lazy initialisation). While a runtime runs on the thread,
//!   `Core::rt` holds its id; `0` means "no runtime". The core's run queue
//!   keeps its capacity from one `run` to the next.
//! * Tasks are `async-task` tasks whose metadata ([`Meta`]) records the id of
//!   the runtime that owns them. The schedule function is a plain `fn` (a
//!   zero-sized schedule, which `async-task` handles with the least reference
//!   counting). It looks at the current thread's `Core`: when that thread
//!   runs the owning runtime, the task goes to the back of its [`RunQueue`]
//!   (a `Cell` for a task pushed into an empty queue, a `RefCell<VecDeque>`
//!   for the rest: no lock, no atomic). Otherwise the wake-up came from another thread: the task goes
//!   to the owner's [`Remote`] queue (a `ConcurrentQueue`) and the owner's
//!   loop is woken.
//! * The loop is a future polled by `async_io::block_on`. When it has nothing
//!   to run it returns `Pending`, and `block_on` parks the thread on the
//!   `async-io` reactor (epoll/kqueue), so a timer, an I/O event or a wake-up
//!   from another thread (which unparks it) resumes it. The runtime's own
//!   [`Reactor`] (sockets of [`net`](crate::net)) is polled whenever the
//!   queue runs dry and after every [`SLICE`] of running tasks, and its epoll
//!   descriptor is registered with `async-io` while the loop sleeps. After a
//!   slice the loop also yields to `block_on`, so that `async-io`'s reactor
//!   is polled even under constant load: after every slice while that
//!   reactor delivers events, backing off to every [`MAX_HANDOVER`] while it
//!   delivers none. The tasks queued at that moment then run before the
//!   main future is polled again (first come, first served).
//! * A registry (a slab in `Core`) holds every live task's waker, id and name:
//!   it backs [`all_tasks`](crate::all_tasks) and lets the runtime cancel the
//!   tasks still alive when [`run`](crate::run) returns.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use concurrent_queue::ConcurrentQueue;

use crate::task::Outcome;

use crate::error::RuntimeError;
use crate::reactor::Reactor;

/// How long the loop runs tasks between two looks at the reactors: its own
/// (every slice) and `async-io`'s (every slice while it delivers events, see
/// [`MAX_HANDOVER`]).
///
/// `async-io`'s fallback thread takes its reactor over when it sees no
/// reactor tick for about 50 µs, after which `async-io`'s wake-ups arrive
/// from that thread (a slower path); polling that reactor at least this
/// often, while it is busy, keeps them on the runtime's own thread.
const SLICE: Duration = Duration::from_micros(40);

/// The longest the loop runs tasks before it hands over to `async-io`'s
/// reactor, while that reactor has had nothing for the runtime.
///
/// At the end of each [`SLICE`] the loop polls its own reactor (one
/// `epoll_wait`, for [`net`](crate::net)'s sockets). Handing over to
/// `async-io` costs five system calls, so the loop does it after every
/// slice only while `async-io` delivers events (its timers, `async-net`
/// sockets); when a hand-over has delivered nothing, the next comes half as
/// late again, up to this. The back-off follows the one of `async-io`'s
/// fallback thread (50 µs growing to 10 ms), so that thread still sees the
/// reactor tick and leaves it to the runtime. Under constant load an
/// `async-io` timer therefore fires at most about this late.
const MAX_HANDOVER: Duration = Duration::from_millis(1);

/// At most how many polls run between two looks at the clock.
///
/// The loop looks after every poll at first and doubles the stride up to
/// this while polls are quick; a stride of polls that takes more than
/// [`SLICE`] / 8 halves it again. So cheap polls (a few tens of ns) pay for
/// one clock read in 32, while slow ones (I/O-bound tasks that make system
/// calls) cannot overrun the slice by much: a fixed stride of 32 polls of a
/// few µs each overran it several times over, and `async-io`'s fallback
/// thread took the reactor away from the runtime's thread.
const CHECK_EVERY: usize = 32;

/// Per-task metadata kept by `async-task` in the task's single allocation:
/// two words, so that a task with a small future fits `malloc`'s 80-byte
/// size class. (A task's name, when it has one, lives in its registry entry,
/// made when it is spawned.)
#[derive(Debug)]
pub(crate) struct Meta {
    /// The id of the runtime that owns the task.
    pub(crate) rt: u64,
    /// The task's id, unique within its runtime; 0 for a task spawned from
    /// another thread ([`Handle::spawn`](crate::Handle::spawn)) until the
    /// runtime's thread takes it from the remote queue and numbers it. (An
    /// atomic only so that such a task can be made on another thread; its
    /// loads are plain loads.)
    pub(crate) id: AtomicU64,
}

impl Meta {
    pub(crate) fn new(rt: u64, id: u64) -> Meta {
        Meta {
            rt,
            id: AtomicU64::new(id),
        }
    }

    /// The task's id (0: not numbered yet).
    #[inline]
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }
}

pub(crate) type Runnable = async_task::Runnable<Meta>;

/// A task's name: a thin pointer (an `Arc<str>` would be two words), so that
/// the [`Task`](crate::Task) handle's out-of-line part stays small.
pub(crate) type Name = Arc<String>;

/// The `async-task` handle of a task with output `T`.
pub(crate) type RawTask<T> = async_task::Task<Outcome<T>, Meta>;

/// What the rest of the crate needs to know about a live task.
pub(crate) struct Entry {
    waker: Option<Waker>,
    pub(crate) id: u64,
    pub(crate) name: Option<Name>,
}

/// A slab of live tasks.
pub(crate) struct Registry {
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    len: usize,
}

impl Registry {
    const fn new() -> Registry {
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    fn insert(&mut self, id: u64, name: Option<Name>, waker: Option<Waker>) -> u32 {
        let entry = Entry { waker, id, name };
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .expect("weft-async: more than u32::MAX live tasks on one runtime");
                self.slots.push(Some(entry));
                slot
            }
        }
    }

    fn set_waker(&mut self, slot: u32, waker: Waker) {
        if let Some(Some(entry)) = self.slots.get_mut(slot as usize) {
            entry.waker = Some(waker);
        }
    }

    /// The entry in `slot`, if it holds one.
    pub(crate) fn get(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    fn remove(&mut self, slot: u32) -> Option<Entry> {
        let entry = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(entry)
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten()
    }

    fn wakers(&self) -> Vec<Waker> {
        self.slots
            .iter()
            .flatten()
            .filter_map(|e| e.waker.clone())
            .collect()
    }
}

/// The local run queue: first in, first out.
///
/// A runnable pushed while the queue is empty goes to `head`, a `Cell`; any
/// other goes to the back of `rest`. So when a task wakes the next one and
/// the queue was empty (a ping-pong, a chain of hand-offs), the push and the
/// pop that follows only move a pointer in and out of that cell, without the
/// ring buffer's bookkeeping; a long queue pays one extra check per push and
/// pop.
pub(crate) struct RunQueue {
    /// The oldest queued runnable, when it was pushed into an empty queue.
    head: Cell<Option<Runnable>>,
    /// The others, oldest first (all younger than `head`).
    rest: RefCell<VecDeque<Runnable>>,
}

impl RunQueue {
    const fn new() -> RunQueue {
        RunQueue {
            head: Cell::new(None),
            rest: RefCell::new(VecDeque::new()),
        }
    }

    #[inline]
    fn push(&self, runnable: Runnable) {
        let mut rest = self.rest.borrow_mut();
        if rest.is_empty() {
            match self.head.take() {
                None => {
                    self.head.set(Some(runnable));
                    return;
                }
                Some(head) => self.head.set(Some(head)),
            }
        }
        rest.push_back(runnable);
    }

    #[inline]
    fn pop(&self) -> Option<Runnable> {
        match self.head.take() {
            Some(head) => Some(head),
            None => self.rest.borrow_mut().pop_front(),
        }
    }

    fn has_head(&self) -> bool {
        let head = self.head.take();
        let has = head.is_some();
        self.head.set(head);
        has
    }

    fn is_empty(&self) -> bool {
        !self.has_head() && self.rest.borrow().is_empty()
    }

    fn len(&self) -> usize {
        usize::from(self.has_head()) + self.rest.borrow().len()
    }

    /// Calls `f` on every queued runnable, oldest first (`f` must not touch
    /// the queue).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Runnable)) {
        let head = self.head.take();
        if let Some(head) = &head {
            f(head);
        }
        self.head.set(head);
        self.rest.borrow().iter().for_each(f);
    }
}

/// The single-threaded state of the runtime running on this thread, if any.
pub(crate) struct Core {
    /// Id of the runtime running on this thread; 0 when none.
    rt: Cell<u64>,
    /// The local run queue.
    pub(crate) queue: RunQueue,
    /// True while the loop has returned `Pending` to `block_on`.
    sleeping: Cell<bool>,
    /// The runtime's remote half, to wake the loop from a reactor callback.
    remote: RefCell<Option<Arc<Remote>>>,
    /// Live tasks.
    pub(crate) registry: RefCell<Registry>,
    /// Id of the task being polled; 0 while the main future runs.
    pub(crate) current: Cell<u64>,
    /// The next task id (ids are unique within a runtime).
    next_id: Cell<u64>,
    /// The runtime's own I/O reactor (for `net`), made when the first
    /// socket registers.
    reactor: RefCell<Option<Rc<Reactor>>>,
    /// Ids of tasks whose cancellation was requested through
    /// [`CurrentTask::cancel`](crate::CurrentTask::cancel): the loop drops
    /// such a task instead of polling it the next time it is scheduled.
    cancels: RefCell<Vec<u64>>,
    /// Whether `cancels` is not empty (one `Cell` load per poll when not).
    cancel_any: Cell<bool>,
}

impl Core {
    /// Whether the cancellation of task `id` was requested; forgets the
    /// request.
    fn take_cancel(&self, id: u64) -> bool {
        let mut cancels = self.cancels.borrow_mut();
        match cancels.iter().position(|&c| c == id) {
            Some(pos) => {
                cancels.swap_remove(pos);
                self.cancel_any.set(!cancels.is_empty());
                true
            }
            None => false,
        }
    }

    /// Whether the cancellation of task `id` was requested (and not served
    /// yet).
    fn cancel_requested(&self, id: u64) -> bool {
        self.cancel_any.get() && self.cancels.borrow().contains(&id)
    }

    /// The id of the running runtime (0: none).
    pub(crate) fn rt(&self) -> u64 {
        self.rt.get()
    }

    /// The running runtime's remote half.
    pub(crate) fn remote(&self) -> Option<Arc<Remote>> {
        self.remote.borrow().clone()
    }

    /// Requests the cancellation of task `id` of this runtime: it is dropped
    /// instead of being polled the next time it is scheduled, and it is
    /// woken now so that this happens soon. Returns false if no such task is
    /// alive (it finished, or never existed).
    pub(crate) fn request_cancel(&self, id: u64) -> bool {
        if id == 0 {
            return false;
        }
        let registered = {
            let registry = self.registry.borrow();
            registry
                .entries()
                .find(|e| e.id == id)
                .map(|e| e.waker.clone())
        };
        let alive = match &registered {
            Some(_) => true,
            None => {
                // Not registered: the task being polled (in its first poll;
                // it is woken when it registers), or queued, never polled.
                let mut queued = false;
                self.queue.for_each(|r| queued |= r.metadata().id() == id);
                queued || self.current.get() == id
            }
        };
        if !alive {
            return false;
        }
        if !self.cancel_requested(id) {
            self.cancels.borrow_mut().push(id);
            self.cancel_any.set(true);
        }
        if let Some(Some(waker)) = registered {
            crate::task::wake_contained(waker);
        }
        true
    }
}

/// A runtime's single-threaded state while it is not installed in a thread's
/// [`Core`]: a [`Runtime`](crate::Runtime) between two `block_on` calls, or
/// whatever a `Runtime` displaced while it was entered. [`swap`] exchanges it
/// with the core's.
pub(crate) struct State {
    rt: u64,
    head: Option<Runnable>,
    rest: VecDeque<Runnable>,
    sleeping: bool,
    remote: Option<Arc<Remote>>,
    registry: Registry,
    current: u64,
    next_id: u64,
    reactor: Option<Rc<Reactor>>,
    cancels: Vec<u64>,
}

impl State {
    /// The state of a fresh runtime `rt` whose remote half is `remote`.
    pub(crate) fn new(rt: u64, remote: Arc<Remote>) -> State {
        State {
            rt,
            head: None,
            rest: VecDeque::new(),
            sleeping: false,
            remote: Some(remote),
            registry: Registry::new(),
            current: 0,
            next_id: 1,
            reactor: None,
            cancels: Vec::new(),
        }
    }
}

/// Exchanges the core's runtime state with `state`: installs a runtime on
/// the thread, or takes it off again (restoring what was there).
pub(crate) fn swap(core: &Core, state: &mut State) {
    state.rt = core.rt.replace(state.rt);
    state.head = core.queue.head.replace(state.head.take());
    std::mem::swap(&mut *core.queue.rest.borrow_mut(), &mut state.rest);
    state.sleeping = core.sleeping.replace(state.sleeping);
    std::mem::swap(&mut *core.remote.borrow_mut(), &mut state.remote);
    std::mem::swap(&mut *core.registry.borrow_mut(), &mut state.registry);
    state.current = core.current.replace(state.current);
    state.next_id = core.next_id.replace(state.next_id);
    std::mem::swap(&mut *core.reactor.borrow_mut(), &mut state.reactor);
    let mut cancels = core.cancels.borrow_mut();
    std::mem::swap(&mut *cancels, &mut state.cancels);
    core.cancel_any.set(!cancels.is_empty());
}

/// Calls `f` with this thread's core (whether or not a runtime runs here);
/// `None` while the thread's locals are being destroyed.
pub(crate) fn with_thread_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    CORE.try_with(f).ok()
}

thread_local! {
    static CORE: Core = const {
        Core {
            rt: Cell::new(0),
            queue: RunQueue::new(),
            sleeping: Cell::new(false),
            remote: RefCell::new(None),
            registry: RefCell::new(Registry::new()),
            current: Cell::new(0),
            next_id: Cell::new(1),
            reactor: RefCell::new(None),
            cancels: RefCell::new(Vec::new()),
            cancel_any: Cell::new(false),
        }
    };
}

/// Calls `f` with the current thread's running runtime, if there is one.
#[inline]
pub(crate) fn with_core<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    CORE.try_with(|core| {
        if core.rt.get() == 0 {
            None
        } else {
            Some(f(core))
        }
    })
    .ok()
    .flatten()
}

/// The id of the runtime running on this thread, if any.
#[cfg_attr(
    not(all(
        any(target_os = "linux", target_os = "android"),
        not(weft_async_portable_io)
    )),
    allow(dead_code, reason = "only the epoll reactor registers sockets itself")
)]
pub(crate) fn current_runtime_id() -> Option<u64> {
    with_core(|core| core.rt.get())
}

/// The running runtime's reactor, made on first use.
#[cfg_attr(
    not(all(
        any(target_os = "linux", target_os = "android"),
        not(weft_async_portable_io)
    )),
    allow(dead_code, reason = "only the epoll reactor registers sockets itself")
)]
pub(crate) fn reactor() -> std::io::Result<Rc<Reactor>> {
    with_core(|core| {
        let mut slot = core.reactor.borrow_mut();
        match &*slot {
            Some(reactor) => Ok(reactor.clone()),
            None => {
                let reactor = Rc::new(Reactor::new(core.rt.get())?);
                *slot = Some(reactor.clone());
                Ok(reactor)
            }
        }
    })
    .unwrap_or_else(|| Err(crate::reactor::outside_runtime()))
}

/// The running runtime's reactor, if it has sockets to poll.
fn reactor_with_sources(core: &Core) -> Option<Rc<Reactor>> {
    core.reactor
        .borrow()
        .as_ref()
        .filter(|r| r.has_sources())
        .cloned()
}

/// Process-wide counter for runtime ids (0 is never used).
static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

/// The thread-safe half of a runtime: wake-ups from other threads land here.
pub(crate) struct Remote {
    rt: u64,
    queue: ConcurrentQueue<Runnable>,
    /// Set once the loop has been told to wake up; cleared just before it sleeps.
    notified: AtomicBool,
    /// Set when the main future has been woken.
    main_woken: AtomicBool,
    /// `block_on`'s waker, which unparks the thread (and interrupts the reactor).
    waker: Mutex<Option<Waker>>,
}

impl Remote {
    /// The remote half of a new runtime `rt`.
    pub(crate) fn new(rt: u64) -> Remote {
        Remote {
            rt,
            queue: ConcurrentQueue::unbounded(),
            notified: AtomicBool::new(true),
            main_woken: AtomicBool::new(true),
            waker: Mutex::new(None),
        }
    }

    /// The runtime's id.
    pub(crate) fn rt(&self) -> u64 {
        self.rt
    }

    /// Whether the runtime has ended (nothing can be queued any more).
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Queues a task made on another thread (or on this one, by
    /// [`Handle::spawn`](crate::Handle::spawn)) and wakes the loop; gives the
    /// runnable back if the runtime has ended.
    pub(crate) fn push(&self, runnable: Runnable) -> Result<(), Runnable> {
        match self.queue.push(runnable) {
            Ok(()) => {
                self.notify();
                Ok(())
            }
            Err(e) => Err(e.into_inner()),
        }
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) {
            let waker = self
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

/// The main future's waker.
impl Wake for Remote {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.main_woken.store(true, Ordering::SeqCst);
        self.notify();
    }
}

/// Every running runtime's remote half, for wake-ups from other threads.
static REMOTES: Mutex<Vec<Arc<Remote>>> = Mutex::new(Vec::new());

fn remotes() -> std::sync::MutexGuard<'static, Vec<Arc<Remote>>> {
    REMOTES.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The schedule function of every task.
pub(crate) fn schedule(runnable: Runnable) {
    let rt = runnable.metadata().rt;
    let mut runnable = Some(runnable);
    let _ = CORE.try_with(|core| {
        if core.rt.get() == rt {
            // Fast path: woken on the thread that runs its runtime.
            if let Some(runnable) = runnable.take() {
                core.queue.push(runnable);
            }
            if core.sleeping.get() {
                // Woken by a reactor callback while the loop sleeps in block_on.
                core.sleeping.set(false);
                if let Some(remote) = &*core.remote.borrow() {
                    remote.notify();
                }
            }
        }
    });
    if let Some(runnable) = runnable {
        schedule_remote(runnable);
    }
}

/// The slow path of [`schedule`]: a wake-up from another thread (or from a
/// thread running another runtime).
#[cold]
fn schedule_remote(runnable: Runnable) {
    let rt = runnable.metadata().rt;
    let remote = remotes().iter().find(|r| r.rt == rt).cloned();
    let refused = match remote {
        Some(remote) => remote.push(runnable).err(),
        None => Some(runnable),
    };
    if let Some(runnable) = refused {
        // The runtime is gone. It dropped the futures of all its tasks
        // before it went, so a task can only be scheduled here if its future
        // is already dropped; its runnable must not be dropped on this
        // thread, so it is leaked (this does not happen in practice).
        std::mem::forget(runnable);
    }
}

/// Spawns `future` on the current thread's runtime, or fails with
/// `NoRuntime`. Returns the `async-task` handle and the task's id.
///
/// A task enters the registry (which backs `all_tasks` and the cancellation
/// of leftover tasks when `run` returns) only when it first returns
/// `Pending`: until then it is in the run queue, where both can find it. So
/// a task that completes in its first poll costs no registry work at all. A
/// named task enters it at once, as its name is kept there.
pub(crate) fn spawn_raw<F>(
    future: F,
    name: Option<Name>,
) -> Result<(RawTask<F::Output>, u64), RuntimeError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    with_core(|core| {
        let id = core.next_id.get();
        core.next_id.set(id + 1);
        // A named task's entry is made now (its waker set just below).
        let slot = match name {
            Some(name) => core.registry.borrow_mut().insert(id, Some(name), None),
            None => NO_SLOT,
        };
        let future = TaskFuture {
            stage: Stage::Live { future, slot },
        };
        let (runnable, task) = async_task::Builder::new()
            .metadata(Meta::new(core.rt.get(), id))
            .spawn_local(move |_| future, schedule);
        if slot != NO_SLOT {
            core.registry.borrow_mut().set_waker(slot, runnable.waker());
        }
        core.queue.push(runnable);
        (task, id)
    })
    .ok_or(RuntimeError::NoRuntime)
}

/// Makes a task of the runtime whose remote half is `remote` from a `Send`
/// future, on any thread, and queues it on the remote queue (the runtime's
/// thread numbers it when it takes it from there). If the runtime has ended,
/// the task is dropped at once, here, and `false` is returned.
pub(crate) fn spawn_send<F>(future: F, remote: &Remote) -> bool
where
    F: Future<Output = ()> + Send + 'static,
{
    let future = TaskFuture {
        stage: Stage::Live {
            future,
            slot: NO_SLOT,
        },
    };
    let (runnable, task) = async_task::Builder::new()
        .metadata(Meta::new(remote.rt, 0))
        .spawn(move |_| future, schedule);
    task.detach();
    match remote.push(runnable) {
        Ok(()) => true,
        Err(refused) => {
            drop(refused);
            false
        }
    }
}

/// The slot of a task that has no registry entry (yet).
pub(crate) const NO_SLOT: u32 = u32::MAX;

pin_project_lite::pin_project! {
    /// The future a task runs: the user's future, with panics caught and the
    /// registry entry made on the first `Pending` and removed on drop.
    ///
    /// The user's future is dropped here, never by `async-task` (which drops
    /// a task's future under an abort-on-panic guard, so a destructor that
    /// panics would abort the process): in `poll` as soon as it completes or
    /// panics, and when the task is cancelled, in this type's own drop, under
    /// `catch_unwind` (`Pin::set` drops it in place). When `async-task`
    /// drops a `TaskFuture`, nothing that can panic is left in it.
    struct TaskFuture<F> {
        #[pin]
        stage: Stage<F>,
    }

    impl<F> PinnedDrop for TaskFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut stage = this.project().stage;
            let slot = stage.slot();
            if let StageProj::Live { .. } = stage.as_mut().project() {
                // Cancelled (its `Task` dropped or `cancel`led, or the
                // runtime shutting down): a panic in the future's destructor
                // is contained, and reported like a panic nobody awaited.
                if let Err(payload) =
                    catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Done { slot })))
                {
                    crate::task::report_cancel_panic(payload, slot);
                }
            }
            if slot != NO_SLOT {
                let entry = with_core(|core| {
                    let entry = core.registry.borrow_mut().remove(slot);
                    if let Some(entry) = &entry
                        && core.cancel_any.get()
                    {
                        // A cancellation requested too late: forget it.
                        core.take_cancel(entry.id);
                    }
                    entry
                });
                drop(entry);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The user's future while it lives, then nothing; with the task's
    /// registry slot either way. (The slot lives in both variants, not beside
    /// the enum, so that the tag takes the slot's padding: an `Option` of a
    /// compiler-made future takes a word more.)
    #[project = StageProj]
    enum Stage<F> {
        Live {
            #[pin]
            future: F,
            slot: u32,
        },
        Done {
            slot: u32,
        },
    }
}

impl<F> Stage<F> {
    fn slot(&self) -> u32 {
        match self {
            Stage::Live { slot, .. } | Stage::Done { slot } => *slot,
        }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Outcome<F::Output>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.project().stage;
        let StageProj::Live { future, slot } = stage.as_mut().project() else {
            // Never happens: async-task polls no task after it completed.
            return Poll::Pending;
        };
        let polled =
            crate::waker::polling_with(cx, |cx| catch_unwind(AssertUnwindSafe(|| future.poll(cx))));
        let outcome = match polled {
            Ok(Poll::Pending) => {
                if *slot == NO_SLOT {
                    *slot = register(cx.waker());
                }
                return Poll::Pending;
            }
            Ok(Poll::Ready(v)) => Outcome::ok(v),
            Err(payload) => Outcome::panicked(payload, *slot),
        };
        // Finished: drop the future now, where a panic in its destructor can
        // be caught (it then counts as the task's panic, unless the task had
        // already panicked).
        let slot = *slot;
        match catch_unwind(AssertUnwindSafe(|| stage.set(Stage::Done { slot }))) {
            Ok(()) => Poll::Ready(outcome),
            Err(payload) => Poll::Ready(if outcome.is_err() {
                weft_sync::drop_quietly(payload);
                outcome
            } else {
                drop(outcome);
                Outcome::panicked(payload, slot)
            }),
        }
    }
}

/// Enters the task being polled into the registry.
fn register(waker: &Waker) -> u32 {
    with_core(|core| {
        let id = core.current.get();
        let slot = core
            .registry
            .borrow_mut()
            .insert(id, None, Some(waker.clone()));
        if core.cancel_requested(id) {
            // It asked for its own cancellation in its first poll: run it
            // again, so that the loop drops it.
            waker.wake_by_ref();
        }
        slot
    })
    .unwrap_or(NO_SLOT)
}

/// Runs `future` to completion on this thread, as the public `run` does.
pub(crate) fn try_run<F: Future>(future: F) -> Result<F::Output, RuntimeError> {
    let rt = new_runtime_id();
    let remote = Arc::new(Remote::new(rt));
    CORE.with(|core| {
        if core.rt.get() != 0 {
            return Err(RuntimeError::NestedRun);
        }
        core.rt.set(rt);
        core.next_id.set(1);
        *core.remote.borrow_mut() = Some(remote.clone());
        Ok(())
    })?;
    remotes().push(remote.clone());
    let _shutdown = Shutdown {
        remote: remote.clone(),
    };
    Ok(drive(future, remote))
}

/// A new runtime id (never 0).
pub(crate) fn new_runtime_id() -> u64 {
    NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed)
}

/// Makes `remote` findable by wake-ups from other threads.
pub(crate) fn register_remote(remote: &Arc<Remote>) {
    remotes().push(remote.clone());
}

/// Runs the loop of the runtime installed on this thread until `future`
/// completes.
pub(crate) fn drive<F: Future>(future: F, remote: Arc<Remote>) -> F::Output {
    remote.main_woken.store(true, Ordering::SeqCst);
    remote.notified.store(true, Ordering::SeqCst);
    let main_waker = Waker::from(remote.clone());
    let main = pin!(future);
    let driver = Driver {
        main,
        main_waker,
        remote,
        loop_waker: None,
        backlog: 0,
        handover_every: SLICE,
        handed_over: None,
    };
    async_io::block_on(driver)
}

/// The loop, as a future for `async_io::block_on`.
struct Driver<'a, F> {
    main: Pin<&'a mut F>,
    main_waker: Waker,
    remote: Arc<Remote>,
    loop_waker: Option<Waker>,
    /// How many of the queued tasks still run before the main future may be
    /// polled again: when a slice ends, the tasks queued at that moment were
    /// woken before anything that wakes the main future later, so they go
    /// first (first come, first served, slices or not).
    backlog: usize,
    /// How long the loop runs before it next hands over to `async-io`'s
    /// reactor ([`SLICE`] up to [`MAX_HANDOVER`]).
    handover_every: Duration,
    /// After a hand-over: the length of the run queue and whether the main
    /// future was woken when it began, to see whether `async-io` delivered
    /// anything.
    handed_over: Option<(usize, bool)>,
}

impl<F: Future> Future for Driver<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        CORE.with(|core| this.run_slice(core, cx))
    }
}

impl<F: Future> Driver<'_, F> {
    /// One poll of the loop, with this thread's core.
    fn run_slice(&mut self, core: &Core, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self;
        let remote = &*this.remote;
        core.sleeping.set(false);
        let slice_start = Instant::now();
        // Polls made in this call (main future and tasks alike); when they
        // reach `check_at`, the clock says whether the slice is over.
        let mut polls = 0usize;
        let mut stride = 1usize;
        let mut check_at = 1usize;
        let mut last_check = slice_start;
        let mut slice_end = slice_start + SLICE;
        this.handover_every = match this.handed_over.take() {
            // Back from a hand-over: did async-io's reactor wake anything
            // here (tasks queued meanwhile, from its callbacks or another
            // thread)? Then hand over after every slice; else back off.
            Some((queued, main_woken))
                if core.queue.len() <= queued
                    && remote.queue.is_empty()
                    && remote.main_woken.load(Ordering::Relaxed) == main_woken =>
            {
                (this.handover_every * 3 / 2).min(MAX_HANDOVER)
            }
            // A delivery, a sleep or the first poll: async-io may be busy.
            _ => SLICE,
        };
        let next_handover = slice_start + this.handover_every;
        loop {
            // A plain load first: the read-modify-write only when it is set.
            if this.backlog == 0
                && remote.main_woken.load(Ordering::Acquire)
                && remote.main_woken.swap(false, Ordering::SeqCst)
            {
                core.current.set(0);
                let mut main_cx = Context::from_waker(&this.main_waker);
                let main = this.main.as_mut();
                let polled = crate::waker::polling_with(&mut main_cx, |cx| main.poll(cx));
                if let Poll::Ready(out) = polled {
                    return Poll::Ready(out);
                }
                polls += 1;
            }
            if !remote.queue.is_empty() {
                while let Ok(r) = remote.queue.pop() {
                    let meta = r.metadata();
                    if meta.id() == 0 {
                        // Spawned from another thread: number it here.
                        let id = core.next_id.get();
                        core.next_id.set(id + 1);
                        meta.id.store(id, Ordering::Relaxed);
                    }
                    core.queue.push(r);
                }
            }
            let mut ran = false;
            let mut resliced = false;
            loop {
                if polls >= check_at {
                    let now = Instant::now();
                    if now >= slice_end {
                        // Take the sockets' events; then, when it is due,
                        // let block_on poll async-io's reactor, and come
                        // straight back.
                        core.current.set(0);
                        if let Some(reactor) = reactor_with_sources(core) {
                            reactor.poll_events();
                        }
                        if this.backlog == 0 {
                            this.backlog = core.queue.len();
                        }
                        if now >= next_handover {
                            this.handed_over =
                                Some((core.queue.len(), remote.main_woken.load(Ordering::Relaxed)));
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        slice_end = now + SLICE;
                        last_check = now;
                        check_at = polls + stride;
                        resliced = true;
                        break;
                    }
                    stride = if now.duration_since(last_check) > SLICE / 8 {
                        (stride / 2).max(1)
                    } else {
                        (stride * 2).min(CHECK_EVERY)
                    };
                    last_check = now;
                    check_at = polls + stride;
                }
                let next = core.queue.pop();
                let Some(runnable) = next else {
                    this.backlog = 0;
                    // The queue ran dry: the sockets' events may wake more.
                    if let Some(reactor) = reactor_with_sources(core)
                        && reactor.poll_events()
                    {
                        continue;
                    }
                    break;
                };
                let main_turn = this.backlog == 1;
                this.backlog = this.backlog.saturating_sub(1);
                let id = runnable.metadata().id();
                core.current.set(id);
                if core.cancel_any.get() && core.take_cancel(id) {
                    // Cancelled by `CurrentTask::cancel`: dropped instead of
                    // polled (its future's destructors run now).
                    drop(runnable);
                } else {
                    runnable.run();
                }
                ran = true;
                polls += 1;
                if main_turn {
                    // The tasks queued before the slice ended have run: the
                    // main future's turn, if it was woken meanwhile.
                    break;
                }
            }
            core.current.set(0);
            if ran || resliced || remote.main_woken.load(Ordering::SeqCst) {
                continue;
            }
            // Nothing to do: sleep in block_on until something wakes us.
            let stale = match &this.loop_waker {
                Some(w) => !w.will_wake(cx.waker()),
                None => true,
            };
            if stale {
                this.loop_waker = Some(cx.waker().clone());
                *remote.waker.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(cx.waker().clone());
            }
            // Sleeping in async-io's reactor: have it wake us on a socket
            // event too (its queue was just polled, above).
            if let Some(reactor) = reactor_with_sources(core)
                && reactor.poll_wake(cx).is_ready()
            {
                continue;
            }
            core.sleeping.set(true);
            remote.notified.store(false, Ordering::SeqCst);
            if !remote.queue.is_empty()
                || remote.main_woken.load(Ordering::SeqCst)
                || !core.queue.is_empty()
            {
                core.sleeping.set(false);
                remote.notified.store(true, Ordering::SeqCst);
                continue;
            }
            return Poll::Pending;
        }
    }
}

/// Tears the runtime down when `run` returns or unwinds: cancels the tasks
/// still alive (dropping their futures on this thread, so their destructors
/// run before `run` returns) and unregisters the runtime.
struct Shutdown {
    remote: Arc<Remote>,
}

impl Drop for Shutdown {
    fn drop(&mut self) {
        let _ = CORE.try_with(|core| {
            cancel_all(core, &self.remote);
            core.rt.set(0);
            core.sleeping.set(false);
            core.current.set(0);
            *core.remote.borrow_mut() = None;
            *core.registry.borrow_mut() = Registry::new();
            // Sockets that outlive the runtime keep its reactor alive; they
            // move to the next runtime that polls them.
            *core.reactor.borrow_mut() = None;
        });
        retire(&self.remote);
    }
}

/// Cancels every task of the runtime installed in `core` (dropping their
/// futures on this thread, so their destructors run now), then closes its
/// remote queue, so that [`Handle::spawn`](crate::Handle::spawn) from then on
/// fails, and drops what was queued there.
pub(crate) fn cancel_all(core: &Core, remote: &Remote) {
    let mut spins = 0u32;
    loop {
        // Wake every live task: each one lands in a queue, and
        // dropping its runnable drops its future.
        let wakers = core.registry.borrow().wakers();
        for w in wakers {
            w.wake();
        }
        loop {
            let next = core.queue.pop().or_else(|| remote.queue.pop().ok());
            match next {
                Some(runnable) => {
                    // Reports of panics in the destructors name the task.
                    core.current.set(runnable.metadata().id());
                    drop(runnable);
                }
                None => break,
            }
        }
        if core.registry.borrow().len == 0 {
            break;
        }
        // A wake-up from another thread is in flight: its runnable is
        // about to reach the remote queue.
        spins += 1;
        if spins > 64 {
            std::thread::sleep(std::time::Duration::from_micros(100));
        } else {
            std::thread::yield_now();
        }
    }
    // Tasks spawned from other threads meanwhile: refused from now on, and
    // those that made it into the queue are dropped (their handles then
    // report `Cancelled`).
    remote.queue.close();
    while let Ok(runnable) = remote.queue.pop() {
        core.current.set(runnable.metadata().id());
        drop(runnable);
    }
    core.current.set(0);
    core.cancels.borrow_mut().clear();
    core.cancel_any.set(false);
}

/// Unregisters a runtime that has ended: wake-ups from other threads no
/// longer find it, and its queue refuses new tasks.
pub(crate) fn retire(remote: &Arc<Remote>) {
    remote.queue.close();
    remotes().retain(|r| !Arc::ptr_eq(r, remote));
    *remote.waker.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Clears the loop's waker when a [`Runtime`](crate::Runtime) leaves
/// `block_on`: a wake-up while it is idle only queues the task, which runs
/// at the next `block_on`.
pub(crate) fn idle(remote: &Remote) {
    *remote.waker.lock().unwrap_or_else(PoisonError::into_inner) = None;
}

/// Whether a weft-async runtime is running on the current thread.
pub fn in_runtime() -> bool {
    with_core(|_| ()).is_some()
}
