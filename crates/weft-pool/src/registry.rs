//! The pool's engine: worker threads, their deques, stealing, waiting.
//!
//! Each worker owns two queues of jobs:
//!
//! * a **private** stack (`local`) that only the owner touches, without any
//!   atomic operation: a `join` pushes its second closure here and, in the
//!   common case, pops it back and runs it inline a few nanoseconds later.
//!   It holds at most `PRIVATE_WINDOW` private jobs, those of the outermost
//!   pending joins; a `join` below a full window is plain sequential code
//!   (`a()` then `b()`), since a hungry worker would take one of the bigger
//!   jobs above it anyway;
//! * a **shared** crossbeam deque (`deque`) that other workers steal from.
//!
//! Work moves from the first to the second only on demand: a worker that
//! runs out of work raises a *share request* flag on the others, and a busy
//! worker that sees its flag at its next `join` promotes its **oldest**
//! private jobs (the biggest pieces of its tree; two of them, see
//! `SHARE_BATCH`) to the shared deque and wakes one sleeper (and any worker
//! parked waiting on it) if there is one.
//! Fine-grained `join`s therefore cost two plain calls (or a push and pop)
//! unless someone is actually hungry, which is how lazy or heartbeat-style
//! splitting beats eager deques. The outermost `EAGER_DEPTH` pending joins
//! of a worker are shared at once, so coarse-grained work (long stretches
//! between joins) does not leave idle workers waiting for the owner's next
//! `join`.
//!
//! Waiting never picks up unrelated work (rayon #592): a `join` whose second
//! half was stolen only runs jobs taken from the thief's deque while the thief
//! is still inside that half (so they are descendants of it), plus jobs sent
//! to its mailbox by a cross-pool `install` it is itself waiting on; a scope
//! only runs its own spawns. Idle workers sleep in [`crate::sleep`].
//!
//! The one exception is a worker blocked in a cross-pool `install` (its job
//! runs in another pool): it also runs the `install` jobs that other pools'
//! workers send to its own pool (queue `cross`), as rayon's `in_worker_cross`
//! runs any job while it waits. Each of those jobs blocks a worker of another
//! pool, so leaving them queued behind blocked workers could close a cycle:
//! two threads running `a.install(|| b.install(|| a.install(f)))` and
//! `b.install(|| a.install(|| b.install(f)))` on one-thread pools would each
//! hold the worker the other needs. Spawned tasks and `join` halves are never
//! run there.

use std::cell::{Cell, UnsafeCell};
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle, Thread};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

use crate::PoolError;
use crate::job::{
    CoreLatch, HeapJob, JobRef, JobResult, JoinJob, JoinPrefix, Latch, NO_THIEF, SpawnJob,
    StackJob, TAG_JOIN, TAG_OTHER, WakeLatch, WakeTarget, drop_quietly,
};
use crate::sleep::{Sleep, Waiters};

/// Called on each worker thread with its index.
pub(crate) type Hook = Arc<dyn Fn(usize) + Send + Sync>;

/// A link of the cross-pool wait chain: worker `index` of `registry` is
/// blocked in an `install` into another pool, waiting for a job whose
/// descendants may need to run on it (pool A -> pool B -> pool A).
pub(crate) struct ChainNode {
    registry: *const Registry,
    index: usize,
    parent: *const ChainNode,
}

/// What the other threads know about one worker.
pub(crate) struct WorkerInfo {
    stealer: Stealer<JobRef>,
    share: Arc<CachePadded<AtomicBool>>,
    /// Jobs that must run on this very worker while it waits (cross-pool).
    mailbox: Injector<JobRef>,
    /// Broadcast jobs for this worker, run when it is idle.
    broadcasts: Injector<JobRef>,
    /// Jobs stolen from this worker's deque by a waiting worker that then
    /// could not run them (see `find_related`): logically still part of the
    /// deque. The owner takes them back like its own; idle workers may
    /// steal them; waiting workers never do.
    returned: Injector<JobRef>,
    /// Workers (bit per index, the first 64) parked in a `join` whose job
    /// this worker stole: they want to hear when it shares work.
    leapfroggers: AtomicU64,
    thread: OnceLock<Thread>,
}

/// State shared by a pool's handle and its workers.
pub(crate) struct Registry {
    infos: Vec<WorkerInfo>,
    injector: Injector<JobRef>,
    /// Spawned tasks (`spawn`), held by value (see [`SpawnJob`]), on
    /// `SPAWN_STRIPES` queues: a submitting thread uses the one of its gate
    /// stripe, so threads submitting at once do not all push on one tail
    /// (each thread's own tasks stay in order).
    spawns: Box<[Injector<SpawnJob>]>,
    /// `install` jobs from workers of other pools (see the module docs).
    cross: Injector<JobRef>,
    pub(crate) sleep: Sleep,
    /// Workers blocked in a cross-pool `install`, to wake for `cross` jobs.
    cross_waiters: Waiters,
    /// Submitters between their check of `closed` and the end of their
    /// push, counted on stripes (one chosen per submitting thread) so that
    /// threads submitting at once do not all hit one cache line.
    gate: Box<[CachePadded<AtomicUsize>]>,
    /// Closed to new work (set once, by `shutdown`).
    closed: AtomicBool,
    terminate: AtomicBool,
    pub(crate) cancel_pending: AtomicBool,
    joiner: Joiner,
    start_handler: Option<Hook>,
    exit_handler: Option<Hook>,
    /// Set (once) when a start hook panicked: Python's broken pool. The
    /// message says which worker and why.
    broken: OnceLock<String>,
    /// Workers whose start hook has returned (or panicked); `build` waits
    /// for all of them when there is a start hook, so that a pool broken by
    /// its hook says so from the first submit on.
    started: parking_lot::Mutex<usize>,
    started_cv: parking_lot::Condvar,
    /// Workers started and not yet exited, and the latches of workers of
    /// other pools waiting (in `shutdown`) for them all to exit.
    exits: parking_lot::Mutex<Exits>,
}

/// See `Registry::exits`.
struct Exits {
    alive: usize,
    waiters: Vec<Arc<WakeLatch>>,
}

/// Configuration the builder hands to [`Registry::new`].
pub(crate) struct Config {
    pub(crate) num_threads: usize,
    pub(crate) thread_name: Option<Box<dyn FnMut(usize) -> String>>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) start_handler: Option<Hook>,
    pub(crate) exit_handler: Option<Hook>,
}

/// The workers' join handles, joined once, by the first thread that stops
/// the pool; every other thread that stops it waits until that is done.
struct Joiner {
    state: parking_lot::Mutex<JoinState>,
    done: parking_lot::Condvar,
}

struct JoinState {
    handles: Vec<JoinHandle<()>>,
    /// A thread is joining the handles (it took them out of `handles`).
    joining: bool,
    /// Every worker has been joined.
    joined: bool,
}

impl Joiner {
    fn new(n: usize) -> Self {
        Joiner {
            state: parking_lot::Mutex::new(JoinState {
                handles: Vec::with_capacity(n),
                joining: false,
                joined: false,
            }),
            done: parking_lot::Condvar::new(),
        }
    }

    /// Joins every worker, or waits for the thread that is joining them.
    fn join_all(&self) {
        let mut st = self.state.lock();
        while !st.joined {
            if st.joining {
                self.done.wait(&mut st);
                continue;
            }
            st.joining = true;
            let handles = std::mem::take(&mut st.handles);
            drop(st);
            for h in handles {
                // A worker never panics (user code runs under
                // `catch_unwind`); if one did, it has stopped all the same.
                let _ = h.join();
            }
            st = self.state.lock();
            st.joined = true;
            self.done.notify_all();
        }
    }
}

/// Held while pushing new work from outside; see [`Registry::enter`].
pub(crate) struct GateGuard<'a> {
    counter: &'a AtomicUsize,
    /// The submitting thread's stripe.
    stripe: usize,
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Release);
    }
}

/// How many queues spawned tasks are spread over (see `Registry::spawns`).
const SPAWN_STRIPES: usize = 4;

/// How many stripes the gate counter has (a power of two).
const GATE_STRIPES: usize = 16;

thread_local! {
    /// This thread's gate stripe: threads take stripes in turn.
    static GATE_STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % GATE_STRIPES
    };
}

impl Registry {
    /// Starts the workers. If one cannot be started (its name is not valid,
    /// the `thread_name` closure panicked, the OS refused the thread), the
    /// workers already started are stopped as by a shutdown (running their
    /// exit hooks) and joined before the error is returned.
    pub(crate) fn new(mut config: Config) -> Result<Arc<Registry>, PoolError> {
        let n = config.num_threads;
        let deques: Vec<Worker<JobRef>> = (0..n).map(|_| Worker::new_lifo()).collect();
        let infos = deques
            .iter()
            .map(|d| WorkerInfo {
                stealer: d.stealer(),
                share: Arc::new(CachePadded::new(AtomicBool::new(false))),
                mailbox: Injector::new(),
                broadcasts: Injector::new(),
                returned: Injector::new(),
                leapfroggers: AtomicU64::new(0),
                thread: OnceLock::new(),
            })
            .collect();
        let registry = Arc::new(Registry {
            infos,
            injector: Injector::new(),
            spawns: (0..SPAWN_STRIPES).map(|_| Injector::new()).collect(),
            cross: Injector::new(),
            sleep: Sleep::new(n),
            cross_waiters: Waiters::new(n),
            gate: (0..GATE_STRIPES)
                .map(|_| CachePadded::new(AtomicUsize::new(0)))
                .collect(),
            closed: AtomicBool::new(false),
            terminate: AtomicBool::new(false),
            cancel_pending: AtomicBool::new(false),
            joiner: Joiner::new(n),
            start_handler: config.start_handler.take(),
            exit_handler: config.exit_handler.take(),
            broken: OnceLock::new(),
            started: parking_lot::Mutex::new(0),
            started_cv: parking_lot::Condvar::new(),
            exits: parking_lot::Mutex::new(Exits {
                alive: 0,
                waiters: Vec::new(),
            }),
        });
        for (index, deque) in deques.into_iter().enumerate() {
            if let Err(e) = registry.start_worker(&mut config, index, deque) {
                registry.shutdown(true);
                registry.join_workers();
                return Err(e);
            }
        }
        if registry.start_handler.is_some() {
            let mut started = registry.started.lock();
            while *started < n {
                registry.started_cv.wait(&mut started);
            }
        }
        Ok(registry)
    }

    /// Why the pool is broken (a start hook panicked), if it is.
    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }

    /// Names, configures and starts worker `index`.
    fn start_worker(
        self: &Arc<Self>,
        config: &mut Config,
        index: usize,
        deque: Worker<JobRef>,
    ) -> Result<(), PoolError> {
        let mut b = thread::Builder::new();
        if let Some(name_of) = config.thread_name.as_mut() {
            let name = catch_unwind(AssertUnwindSafe(|| name_of(index))).map_err(|p| {
                let message = weft_sync::into_panic_message(p);
                PoolError::ThreadNamePanicked { index, message }
            })?;
            // `thread::Builder::spawn` panics on such a name.
            if name.contains('\0') {
                return Err(PoolError::InvalidThreadName { index, name });
            }
            b = b.name(name);
        }
        if let Some(size) = config.stack_size {
            b = b.stack_size(size);
        }
        let reg = Arc::clone(self);
        // Counted before it runs, so that it cannot count its exit first.
        self.exits.lock().alive += 1;
        // `spawn` returns an error for what the OS refuses; the
        // `catch_unwind` is for any assertion of std's on the way there.
        let spawned = catch_unwind(AssertUnwindSafe(move || {
            b.spawn(move || main_loop(reg, index, deque))
        }));
        if !matches!(spawned, Ok(Ok(_))) {
            self.exits.lock().alive -= 1;
        }
        match spawned {
            Ok(Ok(h)) => {
                self.joiner.state.lock().handles.push(h);
                Ok(())
            }
            Ok(Err(source)) => Err(PoolError::ThreadSpawn { source }),
            Err(p) => {
                let message = weft_sync::into_panic_message(p);
                Err(PoolError::ThreadSpawn {
                    source: std::io::Error::other(message),
                })
            }
        }
    }

    /// Joins every worker (after [`shutdown`](Self::shutdown)); a second
    /// caller waits until the first has joined them all. Must not be called
    /// from one of this pool's workers; from a worker of another pool, call
    /// [`wait_for_exit_in_worker`](Self::wait_for_exit_in_worker) first.
    pub(crate) fn join_workers(&self) {
        self.joiner.join_all();
    }

    /// Called by each worker as the last thing it does: the last one wakes
    /// the workers of other pools waiting in `wait_for_exit_in_worker`.
    fn worker_exited(&self) {
        let waiters = {
            let mut exits = self.exits.lock();
            exits.alive -= 1;
            if exits.alive > 0 {
                return;
            }
            std::mem::take(&mut exits.waiters)
        };
        for latch in waiters {
            // SAFETY: `latch` (an `Arc`) keeps it alive through the call.
            unsafe { Latch::set(Arc::as_ptr(&latch)) };
        }
    }

    /// Waits, on `w`, a worker of another pool, until every worker of this
    /// (shut down) pool has exited, so that [`join_workers`](Self::join_workers)
    /// then returns at once. Meanwhile `w` runs what a worker blocked in a
    /// cross-pool `install` runs (`wait_until` with `cross`): `install`
    /// jobs other pools send to its pool, and jobs sent to its mailbox. A
    /// task of this pool that calls `install` into `w`'s pool therefore
    /// finishes even when `w` is that pool's only free worker (a blocking
    /// thread join deadlocked there).
    ///
    /// Returns `false`, without waiting, when a worker of this pool is
    /// itself blocked, up `w`'s cross-pool wait chain, until `w`'s current
    /// job returns (`b.install(|| a.install(|| b.shutdown(..)))`): that
    /// worker cannot exit before this call returns, so the caller must not
    /// wait for it (as when a pool's own worker shuts it down).
    pub(crate) fn wait_for_exit_in_worker(&self, w: &WorkerThread) -> bool {
        let mut link = w.chain();
        // SAFETY: chain nodes live in the frames of `install_cross` calls
        // that are blocked until the jobs carrying them (and so this code)
        // finish.
        while let Some(n) = unsafe { link.as_ref() } {
            if ptr::eq(n.registry, self) {
                return false;
            }
            link = n.parent;
        }
        let latch = Arc::new(WakeLatch::new(WakeTarget::OtherPool {
            registry: Arc::clone(w.registry()),
            index: w.index,
        }));
        {
            let mut exits = self.exits.lock();
            if exits.alive == 0 {
                return true;
            }
            exits.waiters.push(Arc::clone(&latch));
        }
        w.wait_until(&latch.core, None, None, None, true);
        true
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.infos.len()
    }

    /// Wakes worker `index` if it is parked in a wait.
    pub(crate) fn unpark(&self, index: usize) {
        if let Some(t) = self.infos[index].thread.get() {
            t.unpark();
        }
    }

    /// Opens the gate for one submission, or `None` if the pool is shut down.
    ///
    /// A Dekker handshake with [`shutdown`](Self::shutdown): the submitter
    /// counts itself on its stripe, then reads `closed`; shutdown sets
    /// `closed`, then reads every stripe (all `SeqCst`). Either the
    /// submitter sees the pool closed and backs off, or shutdown sees it and
    /// waits until its push is done: no job is pushed after the workers
    /// were told to finish.
    #[inline]
    pub(crate) fn enter(&self) -> Option<GateGuard<'_>> {
        let stripe = GATE_STRIPE.with(|s| *s);
        let counter = &*self.gate[stripe];
        counter.fetch_add(1, Ordering::SeqCst);
        let guard = GateGuard { counter, stripe };
        if self.closed.load(Ordering::SeqCst) {
            None
        } else {
            Some(guard)
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Pushes a job on the global queue (the caller holds the gate).
    pub(crate) fn inject(&self, _gate: &GateGuard<'_>, job: JobRef) {
        self.injector.push(job);
        self.sleep.notify_one();
    }

    /// Queues a spawned task (the caller holds the gate) and wakes an idle
    /// worker if none is searching.
    #[inline]
    pub(crate) fn inject_spawn(&self, gate: &GateGuard<'_>, job: SpawnJob) {
        self.spawns[gate.stripe % SPAWN_STRIPES].push(job);
        self.sleep.notify_one();
    }

    /// A spawned task, looking at the queues from `start` on.
    fn steal_spawn(&self, start: usize) -> Option<SpawnJob> {
        (0..SPAWN_STRIPES)
            .find_map(|k| steal_loop(|| self.spawns[(start + k) % SPAWN_STRIPES].steal()))
    }

    /// Pushes a scope's job, spawned from outside the pool's workers, where
    /// the scope's owner (worker `owner`) takes its own jobs back from, and
    /// wakes it and an idle worker.
    pub(crate) fn push_returned(&self, _gate: &GateGuard<'_>, owner: usize, job: JobRef) {
        self.infos[owner].returned.push(job);
        self.unpark(owner);
        self.sleep.notify_one();
    }

    /// Pushes an `install` job from a worker of another pool (the caller
    /// holds the gate) and wakes an idle worker and every worker blocked in
    /// a cross-pool `install` of its own (see the module docs).
    pub(crate) fn inject_cross(&self, _gate: &GateGuard<'_>, job: JobRef) {
        self.cross.push(job);
        self.sleep.notify_one();
        self.cross_waiters.notify(|i| self.unpark(i));
    }

    /// Queues a broadcast job for worker `index`.
    pub(crate) fn push_broadcast(&self, _gate: &GateGuard<'_>, index: usize, job: JobRef) {
        self.infos[index].broadcasts.push(job);
    }

    /// Closes the gate, waits for submitters in flight, and tells the
    /// workers to finish the work left and exit. Idempotent.
    pub(crate) fn shutdown(&self, cancel_pending: bool) {
        if cancel_pending {
            self.cancel_pending.store(true, Ordering::SeqCst);
        }
        self.closed.store(true, Ordering::SeqCst);
        for stripe in self.gate.iter() {
            while stripe.load(Ordering::SeqCst) > 0 {
                thread::yield_now();
            }
        }
        self.terminate.store(true, Ordering::SeqCst);
        self.sleep.terminate();
    }

    pub(crate) fn is_current_worker(self: &Arc<Self>) -> bool {
        WorkerThread::current().is_some_and(|w| Arc::ptr_eq(w.registry(), self))
    }

    /// Whether a job is visible to an idle worker `index`.
    fn has_visible_work(&self, index: usize) -> bool {
        !self.injector.is_empty()
            || self.spawns.iter().any(|q| !q.is_empty())
            || !self.cross.is_empty()
            || !self.infos[index].broadcasts.is_empty()
            || self
                .infos
                .iter()
                .any(|i| !i.stealer.is_empty() || !i.returned.is_empty())
    }
}

/// How many `join` jobs a worker keeps private before it shares the
/// deeper ones at once (a bound that balanced fork/join trees never reach).
const LOCAL_CAPACITY: usize = 128;

/// The outermost this-many pending `join`s of a worker share their job at
/// once (rayon-style): they are the biggest pieces, there are few of them,
/// and an idle worker can take one without waiting for the owner's next
/// `join`, which matters when the work between `join`s is long.
const EAGER_DEPTH: usize = 3;

/// Rounds of `spin_loop` hints (2, 4 and 8: well under a µs) that an
/// idle worker, or one waiting in `wait_until`, spins before it turns to
/// `yield_now` (and later parks). Kept short: a spinning worker holds its
/// core, and the thread it waits for may be queued behind it on that very
/// core (the caller of `install`, woken on the core of the worker that set
/// its latch; a thief on a loaded machine). Spinning 32 rounds (some 1,800
/// hints, 40-50 µs on the 2-core bench machine) made a ~µs `install` from
/// outside take 50-90 µs; yielding hands the core over at once.
const SPIN_ROUNDS: u32 = 3;

/// How many private jobs, oldest first, one share request promotes. A
/// request is only answered at this worker's next `join`, which may be a
/// long time coming when the work between joins is coarse (the partition
/// step of a quicksort); promoting the next-oldest job too lets the next
/// hungry worker (or the same one, once done) find it at once. A promoted
/// job nobody takes costs its owner one deque pop when its `join` ends.
const SHARE_BATCH: usize = 2;

/// At most this many private jobs per worker: a `join` that finds the window
/// full runs its halves sequentially without offering `b` (see
/// [`join_in_worker`]). The window holds the outermost pending joins, the
/// biggest pieces, which are what a hungry worker takes; the many small
/// joins below them then cost no more than the plain calls (how heartbeat
/// schedulers such as chili amortise their joins, but keeping the biggest
/// pieces on offer rather than every 64th).
const PRIVATE_WINDOW: usize = 4;

/// Where [`LocalStack::push_back`] put a job.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pushed {
    /// In this slot, private: only this worker can see it.
    Private(usize),
    /// In this slot, but to be shared now: one of the outermost joins.
    Eager(usize),
    /// No slot (the stack is full): to be shared now.
    Overflow,
}

/// The private job stack. Every `join` (but those past `LOCAL_CAPACITY`)
/// takes the top slot and gives it back when it ends; joins nest, so the
/// slot a `join` gives back is always the top one. Slots below `front` hold
/// jobs that were shared (eagerly, or promoted from the front, oldest first,
/// when someone asked for work); the others are private. A fixed array, so a
/// push is one store and one length update.
pub(crate) struct LocalStack {
    jobs: [*const JoinPrefix; LOCAL_CAPACITY],
    len: usize,
    /// Slots before this index hold shared jobs.
    front: usize,
}

impl LocalStack {
    fn new() -> Self {
        LocalStack {
            jobs: [ptr::null(); LOCAL_CAPACITY],
            len: 0,
            front: 0,
        }
    }

    #[inline]
    fn push_back(&mut self, job: *const JoinPrefix) -> Pushed {
        let len = self.len;
        if len >= LOCAL_CAPACITY {
            return Pushed::Overflow;
        }
        self.jobs[len] = job;
        self.len = len + 1;
        if len < EAGER_DEPTH {
            // Every slot below is eager too, so `front == len` here.
            self.front = len + 1;
            Pushed::Eager(len)
        } else {
            Pushed::Private(len)
        }
    }

    /// The `join` owning the top slot, `slot` (holding `job`), ends: frees
    /// the slot and says whether the job was still private.
    ///
    /// The caller passes the slot it got from `push_back` rather than this
    /// reading `len` back: the store is then the only access to `len`, so
    /// consecutive joins do not form a chain of store-to-load forwards
    /// through it (a few cycles each, on the critical path of every join).
    #[inline]
    fn pop(&mut self, slot: usize, job: *const JoinPrefix) -> bool {
        debug_assert_eq!(self.len, slot + 1, "joins nest");
        debug_assert!(ptr::eq(self.jobs[slot], job), "joins nest");
        let _ = job;
        self.len = slot;
        if slot >= self.front {
            true
        } else {
            self.front = slot;
            false
        }
    }

    /// Whether `PRIVATE_WINDOW` private jobs are pending already.
    #[inline]
    fn window_full(&self) -> bool {
        self.len - self.front >= PRIVATE_WINDOW
    }

    /// Shares the oldest private job, if any.
    fn pop_front(&mut self) -> Option<*const JoinPrefix> {
        if self.front == self.len {
            return None;
        }
        let job = self.jobs[self.front];
        self.front += 1;
        Some(job)
    }
}

thread_local! {
    static CURRENT: Cell<*const WorkerThread> = const { Cell::new(ptr::null()) };
}

/// The per-thread state of a worker, living in its `main_loop` frame.
pub(crate) struct WorkerThread {
    index: usize,
    registry: Arc<Registry>,
    deque: Worker<JobRef>,
    /// Our share-request flag (also in our `WorkerInfo`), one load away.
    share: Arc<CachePadded<AtomicBool>>,
    /// Private `join` jobs, as header pointers: touched only by this
    /// thread, never while user code runs inside the borrow.
    local: UnsafeCell<LocalStack>,
    chain: Cell<*const ChainNode>,
    rng: Cell<u64>,
}

impl WorkerThread {
    /// The worker running on this thread, if any.
    #[inline]
    pub(crate) fn current<'a>() -> Option<&'a WorkerThread> {
        let p = CURRENT.with(Cell::get);
        // SAFETY: `CURRENT` points at the `WorkerThread` in this thread's
        // `main_loop` frame while that frame runs, and is null otherwise; all
        // code that can read it runs inside that frame on this thread, and
        // `WorkerThread` is `!Sync`, so the reference cannot leave the
        // thread.
        unsafe { p.as_ref() }
    }

    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    #[inline]
    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    pub(crate) fn swap_chain(&self, chain: *const ChainNode) -> *const ChainNode {
        self.chain.replace(chain)
    }

    pub(crate) fn chain(&self) -> *const ChainNode {
        self.chain.get()
    }

    fn info(&self) -> &WorkerInfo {
        &self.registry.infos[self.index]
    }

    #[inline]
    fn with_local<R>(&self, f: impl FnOnce(&mut LocalStack) -> R) -> R {
        // SAFETY: only this thread reaches `local` (`WorkerThread` is
        // `!Sync` and only reachable through `CURRENT` on its own thread),
        // and the closures passed here never call back into the pool, so
        // the borrow is unique.
        f(unsafe { &mut *self.local.get() })
    }

    /// Pushes a job on the shared deque and wakes a sleeper for it.
    pub(crate) fn push_shared(&self, job: JobRef) {
        self.deque.push(job);
        // The fence in `notify_one` orders the push before the load below.
        self.registry.sleep.notify_one();
        let info = self.info();
        if info.leapfroggers.load(Ordering::SeqCst) != 0 {
            let waiting = info.leapfroggers.swap(0, Ordering::SeqCst);
            for i in 0..64 {
                if waiting & (1 << i) != 0 {
                    self.registry.unpark(i);
                }
            }
        }
    }

    /// Someone is hungry: move our oldest private jobs (up to
    /// `SHARE_BATCH`) where they can be stolen.
    #[cold]
    #[inline(never)]
    fn share(&self) {
        for _ in 0..SHARE_BATCH {
            // Keep the request up while there is nothing to promote, so the
            // next `join` (which will have a job) answers it.
            let Some(job) = self.with_local(|l| l.pop_front()) else {
                return;
            };
            self.share.store(false, Ordering::Relaxed);
            // SAFETY: a job in our private queue is alive (its `join` frame
            // waits for it), unrun and unpublished, and we are its owner.
            self.push_shared(unsafe { JoinPrefix::publish(job, &*self.registry, self.index) });
        }
    }

    /// Takes `job` back if no one has stolen it: from the private stack
    /// (unless it was shared) or from the shared deque.
    #[inline]
    fn take_back(&self, header: *const JoinPrefix, pushed: Pushed) -> bool {
        if let Pushed::Private(slot) | Pushed::Eager(slot) = pushed
            && self.with_local(|l| l.pop(slot, header))
        {
            return true;
        }
        self.take_back_shared(|j| j.is(header.cast())).is_some()
    }

    /// Pops jobs from our shared deque until one matches `want`; puts the
    /// others back in their order.
    #[cold]
    fn take_back_shared(&self, want: impl Fn(JobRef) -> bool) -> Option<JobRef> {
        let mut aside = Vec::new();
        let mut found = None;
        while let Some(j) = self.deque.pop() {
            if want(j) {
                found = Some(j);
                break;
            }
            aside.push(j);
        }
        for j in aside.into_iter().rev() {
            self.deque.push(j);
        }
        if found.is_none() && !self.info().returned.is_empty() {
            found = self.take_returned(want);
        }
        found
    }

    /// Takes a job matching `want` from our `returned` queue.
    #[cold]
    fn take_returned(&self, want: impl Fn(JobRef) -> bool) -> Option<JobRef> {
        let returned = &self.info().returned;
        let mut aside = Vec::new();
        let mut found = None;
        while let Some(j) = steal_loop(|| returned.steal()) {
            if want(j) {
                found = Some(j);
                break;
            }
            aside.push(j);
        }
        for j in aside {
            returned.push(j);
        }
        found
    }

    fn request_share(&self, victim: usize) {
        let flag = &self.registry.infos[victim].share;
        if !flag.load(Ordering::Relaxed) {
            flag.store(true, Ordering::Release);
        }
    }

    fn request_share_all(&self) {
        for i in 0..self.registry.infos.len() {
            if i != self.index {
                self.request_share(i);
            }
        }
    }

    fn next_random(&self) -> usize {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as usize
    }

    /// Work for an idle worker: its own shared deque, its broadcasts, other
    /// workers' deques (from a random victim), then the global queue.
    fn find_work(&self) -> Option<JobRef> {
        if let Some(j) = self.deque.pop() {
            return Some(j);
        }
        if let Some(j) = steal_loop(|| self.info().returned.steal()) {
            return Some(j);
        }
        if let Some(j) = steal_loop(|| self.info().broadcasts.steal()) {
            return Some(j);
        }
        let n = self.registry.infos.len();
        if n > 1 {
            let start = self.next_random() % n;
            for k in 0..n {
                let i = (start + k) % n;
                if i == self.index {
                    continue;
                }
                let info = &self.registry.infos[i];
                if let Some(j) = steal_loop(|| info.stealer.steal()) {
                    return Some(j);
                }
                if let Some(j) = steal_loop(|| info.returned.steal()) {
                    return Some(j);
                }
            }
        }
        if let Some(j) = steal_loop(|| self.registry.cross.steal()) {
            return Some(j);
        }
        steal_loop(|| self.registry.injector.steal())
    }

    /// Whether an idle worker has asked this one for work and not been
    /// given any yet (the share request `join` answers).
    #[inline]
    pub(crate) fn share_requested(&self) -> bool {
        self.share.load(Ordering::Relaxed)
    }

    /// Runs one job any idle worker could take (as the main loop finds
    /// them), if there is one: `yield_now`.
    pub(crate) fn run_one_pending(&self) -> bool {
        if let Some(job) = self.find_work() {
            self.execute(job);
            return true;
        }
        match self.registry.steal_spawn(self.index) {
            Some(spawned) => {
                spawned.run();
                true
            }
            None => false,
        }
    }

    /// Runs a job popped from a queue.
    #[inline]
    pub(crate) fn execute(&self, job: JobRef) {
        // SAFETY: popped from a queue, so alive and ours to run once.
        unsafe { job.execute() }
    }

    /// Waits until `latch` is set. Meanwhile this worker only runs work that
    /// cannot be unrelated to what it waits for: jobs from its mailbox
    /// (descendants of the cross-pool install it blocks in), the scope's own
    /// spawns when `scope_tag` is given, and, when `thief` names the worker
    /// running the awaited job, `join` jobs stolen back from that worker while
    /// it is still inside the awaited job; and, when `cross` is set (it waits
    /// for a job running in another pool), other pools' `install` jobs sent
    /// to this pool (see the module docs).
    pub(crate) fn wait_until(
        &self,
        latch: &CoreLatch,
        thief: Option<&AtomicUsize>,
        scope_tag: Option<usize>,
        awaited: Option<*const JoinPrefix>,
        cross: bool,
    ) {
        let mut rounds = 0u32;
        while !latch.probe() {
            if let Some(job) = self.find_related(latch, thief, scope_tag, awaited, cross) {
                self.execute(job);
                rounds = 0;
                continue;
            }
            rounds += 1;
            if rounds <= SPIN_ROUNDS {
                for _ in 0..(1u32 << rounds) {
                    std::hint::spin_loop();
                }
            } else if rounds <= 64 {
                thread::yield_now();
            } else if latch.get_sleepy() {
                // Ask the thief (if any) to wake us when it shares work we
                // may take, then check once more before parking.
                let thief = thief.map(|t| t.load(Ordering::Acquire)).filter(|&t| {
                    t < self.registry.infos.len() && t != self.index && self.index < 64
                });
                let bit = 1u64 << (self.index % 64);
                if let Some(t) = thief {
                    self.registry.infos[t]
                        .leapfroggers
                        .fetch_or(bit, Ordering::SeqCst);
                }
                let work = || {
                    !self.info().mailbox.is_empty()
                        || (awaited.is_some() && !self.info().returned.is_empty())
                        || thief.is_some_and(|t| !self.registry.infos[t].stealer.is_empty())
                        || (cross && !self.registry.cross.is_empty())
                };
                if cross {
                    // Announce ourselves to `inject_cross` before the last
                    // look (a Dekker handshake, modelled in tests/loom.rs).
                    self.registry
                        .cross_waiters
                        .wait(self.index, work, thread::park);
                } else if !work() {
                    thread::park();
                }
                if let Some(t) = thief {
                    self.registry.infos[t]
                        .leapfroggers
                        .fetch_and(!bit, Ordering::SeqCst);
                }
                latch.wake_up();
                rounds = 32;
            }
        }
    }

    fn find_related(
        &self,
        latch: &CoreLatch,
        thief: Option<&AtomicUsize>,
        scope_tag: Option<usize>,
        awaited: Option<*const JoinPrefix>,
        cross: bool,
    ) -> Option<JobRef> {
        if let Some(j) = steal_loop(|| self.info().mailbox.steal()) {
            return Some(j);
        }
        if cross && let Some(j) = steal_loop(|| self.registry.cross.steal()) {
            return Some(j);
        }
        if let Some(j) = scope_tag.and_then(|tag| self.take_back_shared(|j| j.tag == tag)) {
            return Some(j);
        }
        // Our own job, handed back by a worker that stole but could not run
        // it: run it ourselves.
        if let Some(j) = awaited
            .filter(|_| !self.info().returned.is_empty())
            .and_then(|job| self.take_returned(|j| j.is(job.cast())))
        {
            return Some(j);
        }
        let t = thief?.load(Ordering::Acquire);
        if t == NO_THIEF || t == self.index {
            return None;
        }
        match steal_loop(|| self.registry.infos[t].stealer.steal()) {
            Some(job) => {
                // The thief's deque holds only descendants of the awaited job
                // while it runs that job. If the latch is still unset after
                // the steal, the steal happened while it did; otherwise (or
                // for a non-join job) hand the job to the pool instead.
                if job.tag == TAG_JOIN && !latch.probe() {
                    Some(job)
                } else {
                    // Give it back to its owner, which takes its jobs back
                    // from there (and waits for none it cannot find), and
                    // let an idle worker take it meanwhile.
                    let owner = &self.registry.infos[t];
                    owner.returned.push(job);
                    self.registry.unpark(t);
                    self.registry.sleep.notify_one();
                    None
                }
            }
            None => {
                self.request_share(t);
                None
            }
        }
    }
}

fn steal_loop<T>(mut steal: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match steal() {
            Steal::Success(j) => return Some(j),
            Steal::Empty => return None,
            Steal::Retry => std::hint::spin_loop(),
        }
    }
}

struct CurrentGuard;

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(ptr::null()));
    }
}

fn main_loop(registry: Arc<Registry>, index: usize, deque: Worker<JobRef>) {
    let _ = registry.infos[index].thread.set(thread::current());
    let worker = WorkerThread {
        index,
        share: Arc::clone(&registry.infos[index].share),
        registry,
        deque,
        local: UnsafeCell::new(LocalStack::new()),
        chain: Cell::new(ptr::null()),
        rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) << 17)),
    };
    CURRENT.with(|c| c.set(&worker));
    let _guard = CurrentGuard;
    let registry = Arc::clone(&worker.registry);
    if let Some(h) = &registry.start_handler {
        if let Err(message) = run_hook(h, index) {
            // Python's `BrokenThreadPool`: the pool refuses new work from
            // now on (this worker still runs what it is given, so nothing
            // already queued or waiting hangs).
            let _ = registry.broken.set(format!(
                "the start hook of worker {index} panicked: {message}"
            ));
        }
        *registry.started.lock() += 1;
        registry.started_cv.notify_all();
    }
    let mut idle = 0u32;
    // Counted as searching in `registry.sleep` (see the `sleep` module).
    let mut searching = false;
    loop {
        let work = match worker.find_work() {
            Some(job) => Some(Ok(job)),
            None => registry.steal_spawn(index).map(Err),
        };
        if let Some(work) = work {
            if searching {
                searching = false;
                registry
                    .sleep
                    .found_work(|| registry.has_visible_work(index));
            }
            match work {
                Ok(job) => worker.execute(job),
                Err(spawned) => spawned.run(),
            }
            idle = 0;
            continue;
        }
        if registry.terminate.load(Ordering::Acquire) {
            if !registry.has_visible_work(index) {
                break;
            }
            continue;
        }
        if !searching {
            searching = true;
            registry.sleep.start_searching();
        }
        idle += 1;
        if idle <= 64 {
            worker.request_share_all();
            if idle <= SPIN_ROUNDS {
                for _ in 0..(1u32 << idle) {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
        } else {
            worker.request_share_all();
            // Returns searching, whether it slept or not.
            registry.sleep.sleep(index, || {
                registry.has_visible_work(index) || registry.terminate.load(Ordering::SeqCst)
            });
            idle = 0;
        }
    }
    if let Some(h) = &registry.exit_handler {
        let _ = run_hook(h, index);
    }
    registry.worker_exited();
}

/// Runs a start or exit hook. A panic in it is reported on stderr and
/// returned as its message: the worker goes on (a start hook, which breaks
/// the pool) or exits as planned (an exit hook). Its payload is dropped here
/// too, under `catch_unwind`, so not even a payload whose `Drop` panics can
/// take the worker down.
fn run_hook(h: &Hook, index: usize) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| h(index))).map_err(|p| {
        let message = weft_sync::into_panic_message(p);
        // Not `eprintln!`, which panics if stderr cannot be written.
        let _ = writeln!(
            std::io::stderr(),
            "weft-pool: a worker start/exit hook panicked: {message}"
        );
        message
    })
}

/// `join` on a worker of the pool: see the module documentation.
///
/// When this worker already holds `PRIVATE_WINDOW` private jobs, all from
/// enclosing `join`s (so each bigger than anything this one could offer),
/// nobody needs this `b` to be offered: the call is then plain sequential
/// code, `a()` then `b()`, with no job built, pushed or popped. A hungry
/// worker takes the oldest private job (answered here too), which frees a
/// place in the window, and the next `join` offers its `b` again.
///
/// Never inlined: the caller of `join` is typically a recursive function
/// that first tests for its base case (`if n < 2 { return n; }`). Inlined,
/// this frame (the job, the saved registers) becomes part of that function
/// and every base-case call pays for it; out of line, the base case stays a
/// few instructions and only real joins pay for the frame (the closures are
/// still inlined in here).
#[inline(never)]
pub(crate) fn join_in_worker<A, B, RA, RB>(w: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    if w.with_local(|l| l.window_full()) {
        if w.share.load(Ordering::Relaxed) {
            w.share();
        }
        // A panic in `a` unwinds from here without running `b`, as when a
        // job is taken back after a panic.
        let ra = a();
        return (ra, b());
    }
    join_offered(w, a, b)
}

/// `join` that offers `b`: pushes it on the private stack (or shares it at
/// once), runs `a`, then takes `b` back or waits for whoever took it.
#[inline(never)]
fn join_offered<A, B, RA, RB>(w: &WorkerThread, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let job_b = JoinJob::new(b, w.chain());
    let job = job_b.prefix();
    // The frame below does not return or unwind before the job is taken
    // back (then run or dropped here) or its latch is set.
    let pushed = w.with_local(|l| l.push_back(job));
    if !matches!(pushed, Pushed::Private(_)) {
        // SAFETY: ours, alive, unrun and unpublished.
        w.push_shared(unsafe { JoinPrefix::publish(job, &**w.registry(), w.index) });
    } else if w.share.load(Ordering::Relaxed) {
        w.share();
    }
    let ra = catch_unwind(AssertUnwindSafe(a));
    if w.take_back(job, pushed) {
        return match ra {
            // SAFETY: taken back unexecuted: no other thread can reach it.
            Ok(ra) => (ra, unsafe { job_b.run_inline() }),
            Err(p) => {
                // SAFETY: as above, instead of running it. A panic in the
                // closure's `Drop` must not replace (or, while unwinding,
                // abort on) the panic of `a`.
                if let Err(q) = catch_unwind(AssertUnwindSafe(|| unsafe { job_b.drop_unrun() })) {
                    drop_quietly(q);
                }
                std::panic::resume_unwind(p)
            }
        };
    }
    // SAFETY: not in our private queue any more, so it was published.
    let shared = unsafe { job_b.shared() };
    w.wait_until(
        &shared.latch.core,
        Some(&shared.thief),
        None,
        Some(job),
        false,
    );
    // SAFETY: the latch is set; taken once.
    let rb = unsafe { job_b.take_result() };
    // On a panic, the other side's result is dropped before the panic is
    // resumed (a `Drop` that panicked during the unwinding would abort).
    match (ra, rb) {
        (Ok(ra), JobResult::Ok(rb)) => (ra, rb),
        (Ok(ra), JobResult::Panic(p)) => {
            drop_quietly(ra);
            std::panic::resume_unwind(p)
        }
        (Ok(_), JobResult::None) => unreachable!("a finished job holds a result"),
        (Err(p), rb) => {
            drop_quietly(rb);
            std::panic::resume_unwind(p)
        }
    }
}

/// Runs `f` on a worker of `registry` and returns its result; the calling
/// thread is not one of its workers.
pub(crate) fn install_from_outside<F, R>(registry: &Arc<Registry>, f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    match WorkerThread::current() {
        Some(w) => install_cross(w, registry, f),
        None => {
            let Some(gate) = registry.enter() else {
                // Shut down: there is no worker left to run it.
                return f();
            };
            let job = StackJob::new(
                f,
                WakeLatch::new(WakeTarget::Thread(thread::current())),
                ptr::null(),
                TAG_OTHER,
            );
            // SAFETY: we block below until the latch is set.
            registry.inject(&gate, unsafe { job.as_job_ref() });
            drop(gate);
            job.latch.wait_blocking();
            // SAFETY: the latch is set.
            unsafe { job.into_result() }
        }
    }
}

/// `install` from a worker of another pool: the waiting worker records
/// itself in the wait chain so that work sent back to its own pool from
/// inside `f` comes to it instead of queueing behind it.
fn install_cross<F, R>(w: &WorkerThread, target: &Arc<Registry>, f: F) -> R
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    let node = ChainNode {
        registry: &**w.registry(),
        index: w.index,
        parent: w.chain(),
    };
    let job = StackJob::new(
        f,
        WakeLatch::new(WakeTarget::OtherPool {
            registry: Arc::clone(w.registry()),
            index: w.index,
        }),
        &node,
        TAG_OTHER,
    );
    // SAFETY: we wait below until the latch is set, and `node` outlives it.
    let job_ref = unsafe { job.as_job_ref() };
    // Is a worker of `target` up the chain, waiting on us?
    let mut link = w.chain();
    let mut waiting = None;
    // SAFETY: chain nodes live in the frames of `install_cross` calls that
    // are blocked until the jobs carrying them (and so this code) finish.
    while let Some(n) = unsafe { link.as_ref() } {
        if ptr::eq(n.registry, &**target) {
            waiting = Some(n.index);
            break;
        }
        link = n.parent;
    }
    if let Some(index) = waiting {
        target.infos[index].mailbox.push(job_ref);
        target.unpark(index);
    } else {
        match target.enter() {
            Some(gate) => target.inject_cross(&gate, job_ref),
            None => {
                // SAFETY: never queued: this thread is the only one with it.
                return unsafe { job.run_inline() };
            }
        }
    }
    // Meanwhile run other pools' `install` jobs sent to ours: see the
    // module documentation.
    w.wait_until(&job.latch.core, None, None, None, true);
    // SAFETY: the latch is set.
    unsafe { job.into_result() }
}

/// Queues a boxed job from outside any scope or join: on the current
/// worker's shared deque if it belongs to `registry`, else the global queue.
/// Gives the closure back if the pool is shut down.
pub(crate) fn spawn_job<F>(registry: &Arc<Registry>, f: F) -> Result<(), F>
where
    F: FnOnce() + Send + 'static,
{
    let Some(gate) = registry.enter() else {
        return Err(f);
    };
    // SAFETY: `f` is 'static and the job is run exactly once by a worker
    // (workers drain the queues before exiting, and the gate was open).
    let job = unsafe { HeapJob::into_job_ref(f, ptr::null(), TAG_OTHER) };
    registry.inject(&gate, job);
    Ok(())
}
