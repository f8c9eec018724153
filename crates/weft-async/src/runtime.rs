//! The executor: a thread-local run queue, a queue for wake-ups from other
//! threads, the live-task registry, and the loop that [`run`] drives inside
//! `async_io::block_on` so that timers and I/O wake it.
//!
//! # How it fits together
//!
//! * Every thread has one [`Local`] (a `const` thread-local). While a runtime
//!   runs on the thread, `Local::rt` holds its id; `0` means "no runtime".
//! * Tasks are `async-task` tasks whose metadata ([`Meta`]) records the id of
//!   the runtime that owns them. The schedule function is a plain `fn` (a
//!   zero-sized schedule, which `async-task` handles with the least reference
//!   counting). It looks at the current thread's `Local`: when that thread runs
//!   the owning runtime, the task goes to the back of a
//!   `RefCell<VecDeque<Runnable>>` (no lock, no atomic). Otherwise the wake-up
//!   came from another thread: the task goes to the owner's [`Remote`] queue (a
//!   `ConcurrentQueue`) and the owner's loop is woken.
//! * The loop is a future polled by `async_io::block_on`. When it has nothing
//!   to run it returns `Pending`, and `block_on` parks the thread on the
//!   `async-io` reactor (epoll/kqueue), so a timer, an I/O event or a wake-up
//!   from another thread (which unparks it) resumes it. After running tasks
//!   for [`SLICE`] it yields to `block_on` so that the reactor is polled even
//!   under constant load.
//! * A registry (a slab in `Local`) holds every live task's waker, id and name:
//!   it backs [`all_tasks`](crate::all_tasks) and lets the runtime cancel the
//!   tasks still alive when [`run`] returns.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use concurrent_queue::ConcurrentQueue;

use crate::task::Outcome;

use crate::error::RuntimeError;

/// How long the loop runs tasks before it lets `block_on` poll the reactor.
///
/// `async-io`'s fallback thread takes the reactor over when it sees no
/// reactor tick for about 50 µs, after which I/O wake-ups arrive from that
/// thread (a slower path); polling the reactor at least this often keeps I/O
/// on the runtime's own thread.
const SLICE: Duration = Duration::from_micros(40);

/// How many polls run between two looks at the clock (a power of two).
const CHECK_EVERY: usize = 32;
const _: () = assert!(CHECK_EVERY.is_power_of_two());

/// Per-task metadata kept by `async-task` in the task's single allocation.
#[derive(Debug)]
pub(crate) struct Meta {
    /// The id of the runtime that owns the task.
    pub(crate) rt: u64,
    /// The task's id, unique within its runtime.
    pub(crate) id: u64,
    /// The task's name, if it has one.
    pub(crate) name: Option<Arc<str>>,
}

pub(crate) type Runnable = async_task::Runnable<Meta>;

/// The `async-task` handle of a task with output `T`.
pub(crate) type RawTask<T> = async_task::Task<Outcome<T>, Meta>;

/// What the rest of the crate needs to know about a live task.
pub(crate) struct Entry {
    waker: Option<Waker>,
    pub(crate) id: u64,
    pub(crate) name: Option<Arc<str>>,
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

    fn insert(&mut self, id: u64, name: Option<Arc<str>>, waker: Waker) -> u32 {
        let entry = Entry {
            waker: Some(waker),
            id,
            name,
        };
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

/// The state of the runtime running on this thread, if any.
pub(crate) struct Local {
    /// Id of the runtime running on this thread; 0 when none.
    pub(crate) rt: Cell<u64>,
    /// The local run queue.
    pub(crate) queue: RefCell<VecDeque<Runnable>>,
    /// True while the loop has returned `Pending` to `block_on`.
    sleeping: Cell<bool>,
    /// The runtime's remote half, to wake the loop from a reactor callback.
    pub(crate) remote: RefCell<Option<Arc<Remote>>>,
    /// Live tasks.
    pub(crate) registry: RefCell<Registry>,
    /// Id of the task being polled; 0 while the main future runs.
    pub(crate) current: Cell<u64>,
    /// Name of the task being polled, if it has one.
    pub(crate) current_name: RefCell<Option<Arc<str>>>,
    /// The next task id (ids are unique within a runtime).
    next_id: Cell<u64>,
}

thread_local! {
    pub(crate) static LOCAL: Local = const {
        Local {
            rt: Cell::new(0),
            queue: RefCell::new(VecDeque::new()),
            sleeping: Cell::new(false),
            remote: RefCell::new(None),
            registry: RefCell::new(Registry::new()),
            current: Cell::new(0),
            current_name: RefCell::new(None),
            next_id: Cell::new(1),
        }
    };
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
    // Fast path: woken on the thread that runs its runtime.
    let _ = LOCAL.try_with(|local| {
        if local.rt.get() == rt {
            if let Some(r) = runnable.take() {
                local.queue.borrow_mut().push_back(r);
            }
            if local.sleeping.replace(false) {
                // Woken by a reactor callback while the loop sleeps in block_on.
                if let Some(remote) = local.remote.borrow().as_ref() {
                    remote.notify();
                }
            }
        }
    });
    let Some(runnable) = runnable else { return };
    // Slow path: woken from another thread.
    let remote = remotes().iter().find(|r| r.rt == rt).cloned();
    match remote {
        Some(remote) => {
            // The queue is unbounded and never closed, so push cannot fail.
            let _ = remote.queue.push(runnable);
            remote.notify();
        }
        None => {
            // The runtime is gone. It dropped the futures of all its tasks
            // before it went, so a task can only be scheduled here if its
            // future is already dropped; its runnable must not be dropped on
            // this thread, so it is leaked (this does not happen in practice).
            std::mem::forget(runnable);
        }
    }
}

/// Spawns `future` on the current thread's runtime, or fails with
/// `NoRuntime`. Returns the `async-task` handle and the task's id.
///
/// A task enters the registry (which backs `all_tasks` and the cancellation
/// of leftover tasks when `run` returns) only when it first returns
/// `Pending`: until then it is in the run queue, where both can find it. So
/// a task that completes in its first poll costs no registry work at all.
pub(crate) fn spawn_raw<F>(
    future: F,
    name: Option<Arc<str>>,
) -> Result<(RawTask<F::Output>, u64), RuntimeError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    LOCAL.with(|local| {
        let rt = local.rt.get();
        if rt == 0 {
            return Err(RuntimeError::NoRuntime);
        }
        let id = local.next_id.get();
        local.next_id.set(id + 1);
        let future = TaskFuture {
            future,
            slot: NO_SLOT,
        };
        let (runnable, task) = async_task::Builder::new()
            .metadata(Meta { rt, id, name })
            .spawn_local(move |_| future, schedule);
        local.queue.borrow_mut().push_back(runnable);
        Ok((task, id))
    })
}

const NO_SLOT: u32 = u32::MAX;

pin_project_lite::pin_project! {
    /// The future a task runs: the user's future, with panics caught and the
    /// registry entry made on the first `Pending` and removed on drop.
    struct TaskFuture<F> {
        #[pin]
        future: F,
        slot: u32,
    }

    impl<F> PinnedDrop for TaskFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let slot = *this.project().slot;
            if slot != NO_SLOT {
                let _ = LOCAL.try_with(|local| {
                    let entry = local.registry.borrow_mut().remove(slot);
                    drop(entry);
                });
            }
        }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let future = this.future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Outcome::ok(v)),
            Ok(Poll::Pending) => {
                if *this.slot == NO_SLOT {
                    *this.slot = register(cx.waker());
                }
                Poll::Pending
            }
            Err(payload) => Poll::Ready(Outcome::panicked(&*payload)),
        }
    }
}

/// Enters the task being polled into the registry.
fn register(waker: &Waker) -> u32 {
    LOCAL
        .try_with(|local| {
            let name = local.current_name.borrow().clone();
            local
                .registry
                .borrow_mut()
                .insert(local.current.get(), name, waker.clone())
        })
        .unwrap_or(NO_SLOT)
}

/// Runs `future` to completion on this thread, as the public `run` does.
pub(crate) fn try_run<F: Future>(future: F) -> Result<F::Output, RuntimeError> {
    let rt = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
    let remote = Arc::new(Remote {
        rt,
        queue: ConcurrentQueue::unbounded(),
        notified: AtomicBool::new(true),
        main_woken: AtomicBool::new(true),
        waker: Mutex::new(None),
    });
    LOCAL.with(|local| {
        if local.rt.get() != 0 {
            return Err(RuntimeError::NestedRun);
        }
        local.rt.set(rt);
        local.next_id.set(1);
        *local.remote.borrow_mut() = Some(remote.clone());
        Ok(())
    })?;
    remotes().push(remote.clone());
    let _shutdown = Shutdown {
        remote: remote.clone(),
    };
    let main_waker = Waker::from(remote.clone());
    let main = pin!(future);
    let driver = Driver {
        main,
        main_waker,
        remote,
        loop_waker: None,
    };
    Ok(async_io::block_on(driver))
}

/// The loop, as a future for `async_io::block_on`.
struct Driver<'a, F> {
    main: Pin<&'a mut F>,
    main_waker: Waker,
    remote: Arc<Remote>,
    loop_waker: Option<Waker>,
}

impl<F: Future> Future for Driver<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        LOCAL.with(|local| {
            local.sleeping.set(false);
            let slice_start = Instant::now();
            // Polls made in this call (main future and tasks alike): every
            // CHECK_EVERY of them, the clock says whether the slice is over.
            let mut polls = 0usize;
            let mut out_of_time = false;
            loop {
                if this.remote.main_woken.swap(false, Ordering::SeqCst) {
                    local.current.set(0);
                    let mut main_cx = Context::from_waker(&this.main_waker);
                    if let Poll::Ready(out) = this.main.as_mut().poll(&mut main_cx) {
                        return Poll::Ready(out);
                    }
                    polls += 1;
                    if polls & (CHECK_EVERY - 1) == 0 && slice_start.elapsed() >= SLICE {
                        out_of_time = true;
                    }
                }
                if !this.remote.queue.is_empty() {
                    let mut queue = local.queue.borrow_mut();
                    while let Ok(r) = this.remote.queue.pop() {
                        queue.push_back(r);
                    }
                }
                let mut ran = 0;
                while !out_of_time {
                    let next = local.queue.borrow_mut().pop_front();
                    let Some(runnable) = next else { break };
                    let meta = runnable.metadata();
                    local.current.set(meta.id);
                    if let Some(name) = &meta.name {
                        *local.current_name.borrow_mut() = Some(name.clone());
                        runnable.run();
                        *local.current_name.borrow_mut() = None;
                    } else {
                        runnable.run();
                    }
                    ran += 1;
                    polls += 1;
                    if polls & (CHECK_EVERY - 1) == 0 && slice_start.elapsed() >= SLICE {
                        out_of_time = true;
                    }
                }
                local.current.set(0);
                if out_of_time {
                    // Let block_on poll the reactor, then come straight back.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                if ran > 0 || this.remote.main_woken.load(Ordering::SeqCst) {
                    continue;
                }
                // Nothing to do: sleep in block_on until something wakes us.
                let stale = match &this.loop_waker {
                    Some(w) => !w.will_wake(cx.waker()),
                    None => true,
                };
                if stale {
                    this.loop_waker = Some(cx.waker().clone());
                    *this
                        .remote
                        .waker
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
                }
                local.sleeping.set(true);
                this.remote.notified.store(false, Ordering::SeqCst);
                if !this.remote.queue.is_empty()
                    || this.remote.main_woken.load(Ordering::SeqCst)
                    || !local.queue.borrow().is_empty()
                {
                    local.sleeping.set(false);
                    this.remote.notified.store(true, Ordering::SeqCst);
                    continue;
                }
                return Poll::Pending;
            }
        })
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
        let _ = LOCAL.try_with(|local| {
            let mut spins = 0u32;
            loop {
                // Wake every live task: each one lands in a queue, and
                // dropping its runnable drops its future.
                let wakers = local.registry.borrow().wakers();
                for w in wakers {
                    w.wake();
                }
                loop {
                    let next = local
                        .queue
                        .borrow_mut()
                        .pop_front()
                        .or_else(|| self.remote.queue.pop().ok());
                    match next {
                        Some(runnable) => drop(runnable),
                        None => break,
                    }
                }
                if local.registry.borrow().len == 0 {
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
            local.rt.set(0);
            local.sleeping.set(false);
            local.current.set(0);
            *local.remote.borrow_mut() = None;
            *local.registry.borrow_mut() = Registry::new();
        });
        remotes().retain(|r| !Arc::ptr_eq(r, &self.remote));
        *self
            .remote
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Whether a weft-async runtime is running on the current thread.
pub fn in_runtime() -> bool {
    LOCAL.try_with(|l| l.rt.get() != 0).unwrap_or(false)
}
