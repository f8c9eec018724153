//! Jobs and latches: the small unsafe core of the pool.
//!
//! A [`JobRef`] is a type-erased pointer to a job plus the function that runs
//! it, so the deques can hold jobs of any closure type. Two kinds of job stand
//! behind it:
//!
//! * [`StackJob`]: lives in the stack frame of a `join` (or `install`) that
//!   waits for it. The frame never returns, not even by unwinding, before the
//!   job is either taken back unexecuted or its latch is set, so the pointer
//!   stays valid for as long as any thread can reach it.
//! * [`HeapJob`]: a boxed closure that frees itself when run (`spawn`,
//!   `scope` spawns, `map_unordered` chunks, broadcasts use their own).
//!
//! A latch is set exactly once, by whoever finished the job, and that is the
//! last thing the setter does with the job's memory: the waiter may free it at
//! once. [`WakeLatch::set`] therefore copies the wake target out of the latch
//! before the store that publishes it.

use std::any::Any;
use std::cell::UnsafeCell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::thread::Thread;

use crate::registry::{ChainNode, Registry, WorkerThread};

/// A type-erased pointer to a job. Copyable; whoever pops it from a queue
/// owns the right to run it once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JobRef {
    pointer: *const (),
    execute_fn: unsafe fn(*const ()),
    /// `0` for `join` jobs; the address of the owning scope for scope jobs;
    /// `1` for everything else.
    pub(crate) tag: usize,
}

// SAFETY: a `JobRef` only points at jobs whose closures and results are
// `Send`; the job kinds below guarantee it in their constructors.
unsafe impl Send for JobRef {}

/// Tag of a `join` job.
pub(crate) const TAG_JOIN: usize = 0;
/// Tag of a job that belongs to no scope or join (spawns, broadcasts...).
pub(crate) const TAG_OTHER: usize = 1;

impl JobRef {
    /// A reference to a job of another kind.
    pub(crate) fn from_raw(
        pointer: *const (),
        execute_fn: unsafe fn(*const ()),
        tag: usize,
    ) -> Self {
        JobRef {
            pointer,
            execute_fn,
            tag,
        }
    }

    /// Whether `self` is the job that starts with `header`.
    #[inline]
    pub(crate) fn is(self, header: *const JobHeader) -> bool {
        std::ptr::eq(self.pointer, header.cast())
    }

    /// Runs the job.
    ///
    /// # Safety
    ///
    /// The job must still be alive and not yet run; a `JobRef` popped from a
    /// queue satisfies this, and must then be run exactly once.
    #[inline]
    pub(crate) unsafe fn execute(self) {
        // SAFETY: the caller guarantees the job is alive and not yet run.
        unsafe { (self.execute_fn)(self.pointer) }
    }
}

/// A raw pointer that may cross threads: for the scope and chain pointers
/// that jobs carry, whose targets outlive the jobs (see their users).
#[derive(Debug)]
pub(crate) struct SendPtr<T>(*const T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

// SAFETY: a `SendPtr` is only dereferenced where its user documents why the
// target is alive and may be shared (`Scope` is `Sync`, `ChainNode` is only
// read).
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    pub(crate) fn new(ptr: *const T) -> Self {
        SendPtr(ptr)
    }

    /// The pointer (a method, so closures capture the whole `SendPtr`).
    pub(crate) fn get(self) -> *const T {
        self.0
    }
}

/// Drops `value` (a user value or a panic payload) on a thread weft owns,
/// or on a path that is about to resume another panic, through
/// [`weft_sync::drop_quietly`]: a panic in its `Drop` fails nothing else and
/// never unwinds out of a worker. Its message is not wanted here.
pub(crate) fn drop_quietly<T>(value: T) {
    let _ = weft_sync::drop_quietly(value);
}

/// What a job produced.
pub(crate) enum JobResult<R> {
    None,
    Ok(R),
    Panic(Box<dyn Any + Send>),
}

impl<R> JobResult<R> {
    pub(crate) fn call(f: impl FnOnce() -> R) -> Self {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(v) => JobResult::Ok(v),
            Err(p) => JobResult::Panic(p),
        }
    }

    /// The value, or the job's panic resumed on this thread.
    pub(crate) fn into_return_value(self) -> R {
        match self {
            JobResult::Ok(v) => v,
            JobResult::Panic(p) => resume_unwind(p),
            JobResult::None => unreachable!("a finished job holds a result"),
        }
    }
}

/// A latch: set once, waited on by one thread.
pub(crate) trait Latch {
    /// Sets the latch and wakes its waiter.
    ///
    /// # Safety
    ///
    /// `this` must be alive; it may be freed by the waiter as soon as this
    /// call has made the latch set, so the call touches nothing of it after.
    unsafe fn set(this: *const Self);
}

const UNSET: u8 = 0;
const SLEEPING: u8 = 1;
const SET: u8 = 2;

/// The state word of a latch whose waiter may park.
#[derive(Debug)]
pub(crate) struct CoreLatch {
    state: AtomicU8,
}

impl CoreLatch {
    pub(crate) const fn new() -> Self {
        CoreLatch {
            state: AtomicU8::new(UNSET),
        }
    }

    /// Whether the latch is set. Acquire: everything the setter wrote
    /// before setting it is visible after this returns `true`.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        self.state.load(Ordering::Acquire) == SET
    }

    /// The waiter announces that it is about to park. Returns `false` if the
    /// latch is already set (then it must not park).
    pub(crate) fn get_sleepy(&self) -> bool {
        self.state
            .compare_exchange(UNSET, SLEEPING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The waiter is back from parking (or changed its mind).
    pub(crate) fn wake_up(&self) {
        let _ = self
            .state
            .compare_exchange(SLEEPING, UNSET, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Sets the latch; `true` if the waiter had announced that it parks.
    #[inline]
    fn set(&self) -> bool {
        self.state.swap(SET, Ordering::AcqRel) == SLEEPING
    }
}

/// Who to wake when a [`WakeLatch`] is set.
pub(crate) enum WakeTarget {
    /// A worker of the registry the setter belongs to: the registry is kept
    /// alive by the setter's own worker, so a raw pointer is enough.
    Worker {
        registry: *const Registry,
        index: usize,
    },
    /// A worker of another pool (cross-pool `install`): keep it alive.
    OtherPool {
        registry: Arc<Registry>,
        index: usize,
    },
    /// A thread outside any pool, parked with `std::thread::park`.
    Thread(Thread),
}

enum Wake {
    Raw(*const Registry, usize),
    Arc(Arc<Registry>, usize),
    Thread(Thread),
}

/// A latch that parks its waiter and wakes it through a [`WakeTarget`].
pub(crate) struct WakeLatch {
    pub(crate) core: CoreLatch,
    target: WakeTarget,
}

// SAFETY: the only non-thread-safe field is the raw registry pointer of a
// `WakeTarget::Worker`, which is only dereferenced (to unpark a thread,
// through `&Registry`, which is `Sync`) while the registry is kept alive by
// the setting worker.
unsafe impl Send for WakeLatch {}
// SAFETY: as above; every other field is `Sync`.
unsafe impl Sync for WakeLatch {}

impl WakeLatch {
    pub(crate) fn new(target: WakeTarget) -> Self {
        WakeLatch {
            core: CoreLatch::new(),
            target,
        }
    }

    /// Blocks the calling thread (which must be the `Thread` target) until
    /// the latch is set: a short spin, then `std::thread::park`.
    pub(crate) fn wait_blocking(&self) {
        for i in 0..64u32 {
            if self.core.probe() {
                return;
            }
            if i < 16 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        while !self.core.probe() {
            if self.core.get_sleepy() {
                // Spurious returns and stray tokens only cost a loop.
                std::thread::park();
                self.core.wake_up();
            }
        }
    }
}

impl Latch for WakeLatch {
    unsafe fn set(this: *const Self) {
        // SAFETY: `this` is alive until the `core.set` below (caller's
        // contract); copy what we need first.
        let wake = match unsafe { &(*this).target } {
            WakeTarget::Worker { registry, index } => Wake::Raw(*registry, *index),
            WakeTarget::OtherPool { registry, index } => Wake::Arc(Arc::clone(registry), *index),
            WakeTarget::Thread(t) => Wake::Thread(t.clone()),
        };
        // SAFETY: still alive here; after this line we never touch `this`.
        if unsafe { (*this).core.set() } {
            match wake {
                // SAFETY: a `Worker` target is only built for latches set by
                // threads of that same registry, which keep it alive.
                Wake::Raw(registry, index) => unsafe { (*registry).unpark(index) },
                Wake::Arc(registry, index) => registry.unpark(index),
                Wake::Thread(t) => t.unpark(),
            }
        }
    }
}

/// A latch set when a counter drops to zero (scopes, broadcasts).
pub(crate) struct CountLatch {
    counter: AtomicUsize,
    pub(crate) latch: WakeLatch,
}

impl CountLatch {
    pub(crate) fn new(count: usize, target: WakeTarget) -> Self {
        CountLatch {
            counter: AtomicUsize::new(count),
            latch: WakeLatch::new(target),
        }
    }

    pub(crate) fn increment(&self) {
        self.counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one finished job down; the last one sets the latch.
    ///
    /// # Safety
    ///
    /// As [`Latch::set`]: `this` may be freed once the count reaches zero.
    pub(crate) unsafe fn count_down(this: *const Self) {
        // SAFETY: alive until our decrement makes the count zero; only the
        // thread that makes it zero touches it afterwards, to set the latch,
        // and the waiter waits for the latch, not for the count.
        unsafe {
            if (*this).counter.fetch_sub(1, Ordering::AcqRel) == 1 {
                Latch::set(&raw const (*this).latch);
            }
        }
    }
}

/// The first field of a [`StackJob`]: what a [`JobRef`] needs besides the
/// address, so that the private queue can hold plain pointers (one 8-byte
/// store per `join`).
pub(crate) struct JobHeader {
    execute_fn: unsafe fn(*const ()),
    tag: usize,
}

impl JobHeader {
    /// The [`JobRef`] of the job that starts with this header.
    ///
    /// # Safety
    ///
    /// `this` must point at the live header of a job.
    #[inline]
    pub(crate) unsafe fn job_ref(this: *const JobHeader) -> JobRef {
        // SAFETY: the header is alive (caller).
        let h = unsafe { &*this };
        JobRef {
            pointer: this.cast(),
            execute_fn: h.execute_fn,
            tag: h.tag,
        }
    }
}

/// A latch for `join`: wakes a worker of the setter's own pool, and has
/// nothing to drop.
pub(crate) struct SpinLatch {
    pub(crate) core: CoreLatch,
    registry: *const Registry,
    index: usize,
}

impl SpinLatch {
    /// A latch whose waiter is worker `index` of `registry`; it must only be
    /// set by threads of that registry (which keep it alive).
    #[inline]
    pub(crate) fn new(registry: *const Registry, index: usize) -> Self {
        SpinLatch {
            core: CoreLatch::new(),
            registry,
            index,
        }
    }
}

impl Latch for SpinLatch {
    #[inline]
    unsafe fn set(this: *const Self) {
        // SAFETY: alive until `core.set` (caller); copy what we need first.
        let (registry, index) = unsafe { ((*this).registry, (*this).index) };
        // SAFETY: still alive here; after this line we never touch `this`.
        if unsafe { (*this).core.set() } {
            // SAFETY: the setter belongs to this registry and keeps it alive.
            unsafe { (*registry).unpark(index) };
        }
    }
}

/// Index stored in [`StackJob::thief`] until a thief runs the job.
pub(crate) const NO_THIEF: usize = usize::MAX;

/// A job in the stack frame of the `join`/`install` that waits for it.
#[repr(C)]
pub(crate) struct StackJob<L, F, R> {
    /// First, so that the job's address is its header's.
    header: JobHeader,
    pub(crate) latch: L,
    func: UnsafeCell<Option<F>>,
    result: UnsafeCell<JobResult<R>>,
    /// The index of the worker that stole and runs it (for leapfrogging).
    pub(crate) thief: AtomicUsize,
    /// The cross-pool wait chain in force where the job was made.
    chain: *const ChainNode,
}

impl<L: Latch, F: FnOnce() -> R + Send, R: Send> StackJob<L, F, R> {
    #[inline]
    pub(crate) fn new(func: F, latch: L, chain: *const ChainNode, tag: usize) -> Self {
        StackJob {
            header: JobHeader {
                execute_fn: Self::execute,
                tag,
            },
            latch,
            func: UnsafeCell::new(Some(func)),
            result: UnsafeCell::new(JobResult::None),
            thief: AtomicUsize::new(NO_THIEF),
            chain,
        }
    }

    /// A reference to this job for the queues.
    ///
    /// # Safety
    ///
    /// `self` must not move and must stay alive until the job has been taken
    /// back unexecuted or its latch has been set.
    #[inline]
    pub(crate) unsafe fn as_job_ref(&self) -> JobRef {
        // SAFETY: our own header, alive.
        unsafe { JobHeader::job_ref(self.header()) }
    }

    /// The header pointer the private queue holds; same contract as
    /// [`as_job_ref`](Self::as_job_ref).
    #[inline]
    pub(crate) fn header(&self) -> *const JobHeader {
        // Derived from the whole job, not from `&self.header`, so that the
        // pointer keeps the right to reach the other fields (`repr(C)`: the
        // header is at offset 0).
        (self as *const Self).cast()
    }

    /// Runs the closure on this thread, as a plain call.
    ///
    /// # Safety
    ///
    /// Only when the job was taken back from the queues unexecuted, so no
    /// other thread can run it.
    #[inline]
    pub(crate) unsafe fn run_inline(&self) -> R {
        // SAFETY: no other thread can reach the job any more (caller).
        let f = unsafe { (*self.func.get()).take() }.expect("job run twice");
        f()
    }

    /// The result of a job run by another thread.
    ///
    /// # Safety
    ///
    /// Only after the latch was seen set (with acquire ordering).
    pub(crate) unsafe fn into_result(self) -> R {
        self.result.into_inner().into_return_value()
    }

    unsafe fn execute(this: *const ()) {
        // SAFETY: `this` came from `as_job_ref` and the job is alive and
        // unrun (`JobRef::execute`'s contract).
        let this = unsafe { &*this.cast::<Self>() };
        let worker = WorkerThread::current();
        let saved = worker.map(|w| {
            this.thief.store(w.index(), Ordering::Release);
            w.swap_chain(this.chain)
        });
        // SAFETY: we are the only runner (we popped it), and the owner does
        // not touch `func`/`result` until the latch is set.
        let f = unsafe { (*this.func.get()).take() }.expect("job run twice");
        let result = JobResult::call(f);
        // SAFETY: as above.
        unsafe { *this.result.get() = result };
        if let (Some(w), Some(saved)) = (worker, saved) {
            w.swap_chain(saved);
        }
        // SAFETY: the last access to the job.
        unsafe { Latch::set(&this.latch) };
    }
}

/// A boxed job that frees itself when run.
pub(crate) struct HeapJob<F> {
    func: F,
    chain: *const ChainNode,
}

impl<F: FnOnce() + Send> HeapJob<F> {
    /// Boxes `func` into a job that runs with `chain` as its wait chain.
    ///
    /// # Safety
    ///
    /// Everything `func` borrows must outlive its execution, and the
    /// returned job must be run exactly once (else it leaks).
    pub(crate) unsafe fn into_job_ref(func: F, chain: *const ChainNode, tag: usize) -> JobRef {
        let boxed = Box::new(HeapJob { func, chain });
        JobRef {
            pointer: Box::into_raw(boxed).cast_const().cast(),
            execute_fn: Self::execute,
            tag,
        }
    }

    unsafe fn execute(this: *const ()) {
        // SAFETY: made by `Box::into_raw` in `into_job_ref`, run once.
        let job = unsafe { Box::from_raw(this.cast::<Self>().cast_mut()) };
        let HeapJob { func, chain } = *job;
        let worker = WorkerThread::current();
        let saved = worker.map(|w| w.swap_chain(chain));
        // Every kind of heap job catches the panics of the user code it
        // runs; what can still unwind here is a panic in a `Drop` of user
        // data on the way out (a task's result nobody waits for, a closure
        // dropped unrun because its task was cancelled, a panic payload).
        // The default hook has reported it; it must not take the worker
        // down with the jobs it still holds.
        if let Err(p) = catch_unwind(AssertUnwindSafe(func)) {
            drop_quietly(p);
        }
        if let (Some(w), Some(saved)) = (worker, saved) {
            w.swap_chain(saved);
        }
    }
}

/// How many words of closure a [`SpawnJob`] holds in the queue itself.
const SPAWN_INLINE_WORDS: usize = 3;
type SpawnData = MaybeUninit<[usize; SPAWN_INLINE_WORDS]>;

/// A task spawned from anywhere onto the pool (`spawn`), queued by value:
/// a closure of up to three words (a task handle's completer and two words
/// of captures) is stored in the queue slot itself, so submitting it
/// allocates nothing beyond the task handle; a bigger one is boxed, as a
/// [`HeapJob`] is.
pub(crate) struct SpawnJob {
    data: SpawnData,
    run: unsafe fn(SpawnData),
}

// SAFETY: made only from `Send` closures (see `new`).
unsafe impl Send for SpawnJob {}

impl SpawnJob {
    /// Wraps `f`, which must then be [`run`](Self::run) exactly once (a job
    /// dropped unrun leaks its closure, as a queued `HeapJob` would).
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> SpawnJob {
        let mut data = SpawnData::uninit();
        if size_of::<F>() <= size_of::<SpawnData>() && align_of::<F>() <= align_of::<SpawnData>() {
            // SAFETY: `F` fits in `data` (size and alignment checked).
            unsafe { data.as_mut_ptr().cast::<F>().write(f) };
            SpawnJob {
                data,
                run: Self::run_inline::<F>,
            }
        } else {
            // SAFETY: a pointer fits in `data`.
            unsafe {
                data.as_mut_ptr()
                    .cast::<*mut F>()
                    .write(Box::into_raw(Box::new(f)))
            };
            SpawnJob {
                data,
                run: Self::run_boxed::<F>,
            }
        }
    }

    /// Runs the closure; a panic that escapes it (only from the `Drop` of
    /// user data: tasks catch their own panics) is contained, as in
    /// [`HeapJob`].
    pub(crate) fn run(self) {
        // SAFETY: `data` and `run` were made together by `new`, and `self`
        // is consumed, so this runs once.
        unsafe { (self.run)(self.data) }
    }

    unsafe fn run_inline<F: FnOnce()>(data: SpawnData) {
        // SAFETY: `new` wrote an `F` here; read once (by `run`).
        let f = unsafe { data.as_ptr().cast::<F>().read() };
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            drop_quietly(p);
        }
    }

    unsafe fn run_boxed<F: FnOnce()>(data: SpawnData) {
        // SAFETY: `new` wrote a pointer from `Box::into_raw` here; read once.
        let f = unsafe { Box::from_raw(data.as_ptr().cast::<*mut F>().read()) };
        if let Err(p) = catch_unwind(AssertUnwindSafe(move || (*f)())) {
            drop_quietly(p);
        }
    }
}

/// What a [`JoinJob`] needs once it is shared with other threads: filled in
/// by [`JoinPrefix::publish`], never before, so a `join` whose job is never
/// shared does not pay for it.
pub(crate) struct JoinShared {
    pub(crate) latch: SpinLatch,
    pub(crate) thief: AtomicUsize,
}

/// The type-independent start of a [`JoinJob`], which is what the private
/// queue holds pointers to.
#[repr(C)]
pub(crate) struct JoinPrefix {
    header: JobHeader,
    shared: UnsafeCell<MaybeUninit<JoinShared>>,
    chain: *const ChainNode,
}

impl JoinPrefix {
    /// Makes the job shareable: initialises its latch (waking worker
    /// `index` of `registry`) and returns the reference to queue.
    ///
    /// # Safety
    ///
    /// `this` must be a live, unrun, unpublished job in the private queue of
    /// the calling thread, which must be worker `index` of `registry`.
    pub(crate) unsafe fn publish(
        this: *const JoinPrefix,
        registry: *const Registry,
        index: usize,
    ) -> JobRef {
        // SAFETY: no other thread can see the job yet (caller), so this
        // write races with nothing; the queue push that publishes the
        // `JobRef` happens after it.
        unsafe {
            (*(*this).shared.get()).write(JoinShared {
                latch: SpinLatch::new(registry, index),
                thief: AtomicUsize::new(NO_THIEF),
            });
            JobHeader::job_ref(this.cast())
        }
    }

    /// The shared part.
    ///
    /// # Safety
    ///
    /// Only after [`publish`](Self::publish).
    pub(crate) unsafe fn shared(&self) -> &JoinShared {
        // SAFETY: initialised by `publish` (caller).
        unsafe { (*self.shared.get()).assume_init_ref() }
    }
}

/// The job a `join` offers for its second closure. It lives in the `join`'s
/// frame, like a [`StackJob`], but initialises only what the fast path
/// needs; see [`JoinShared`].
#[repr(C)]
pub(crate) struct JoinJob<F, R> {
    /// First, so that the job's address is its prefix's and header's.
    prefix: JoinPrefix,
    func: UnsafeCell<ManuallyDrop<F>>,
    result: UnsafeCell<MaybeUninit<JobResult<R>>>,
}

impl<F: FnOnce() -> R + Send, R: Send> JoinJob<F, R> {
    #[inline]
    pub(crate) fn new(func: F, chain: *const ChainNode) -> Self {
        JoinJob {
            prefix: JoinPrefix {
                header: JobHeader {
                    execute_fn: Self::execute,
                    tag: TAG_JOIN,
                },
                shared: UnsafeCell::new(MaybeUninit::uninit()),
                chain,
            },
            func: UnsafeCell::new(ManuallyDrop::new(func)),
            result: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The pointer the private queue holds. Derived from the whole job so
    /// that it may reach every field (`repr(C)`: the prefix is at offset 0).
    #[inline]
    pub(crate) fn prefix(&self) -> *const JoinPrefix {
        (self as *const Self).cast()
    }

    /// The shared part; only after the job was published.
    ///
    /// # Safety
    ///
    /// As [`JoinPrefix::shared`].
    #[inline]
    pub(crate) unsafe fn shared(&self) -> &JoinShared {
        // SAFETY: forwarded contract.
        unsafe { self.prefix.shared() }
    }

    /// Runs the closure here, as a plain call.
    ///
    /// # Safety
    ///
    /// Only when the job was taken back unexecuted, and only once; the job
    /// must not be used afterwards except to be forgotten.
    #[inline]
    pub(crate) unsafe fn run_inline(&self) -> R {
        // SAFETY: no other thread can reach the job, and `func` is taken
        // once (caller).
        let f = unsafe { ManuallyDrop::take(&mut *self.func.get()) };
        f()
    }

    /// Drops the closure of a job taken back unexecuted.
    ///
    /// # Safety
    ///
    /// As [`run_inline`](Self::run_inline), instead of it.
    pub(crate) unsafe fn drop_unrun(&self) {
        // SAFETY: as `run_inline`.
        unsafe { ManuallyDrop::drop(&mut *self.func.get()) }
    }

    /// The result of a job another thread ran.
    ///
    /// # Safety
    ///
    /// Only after its latch was seen set, and only once.
    pub(crate) unsafe fn take_result(&self) -> JobResult<R> {
        // SAFETY: written by the runner before it set the latch (caller).
        unsafe { (*self.result.get()).assume_init_read() }
    }

    unsafe fn execute(this: *const ()) {
        // SAFETY: `this` is a published `JoinJob<F, R>`, alive and unrun
        // (`JobRef::execute`'s contract).
        let this = unsafe { &*this.cast::<Self>() };
        // SAFETY: it was published before it could be popped by us.
        let shared = unsafe { this.shared() };
        let worker = WorkerThread::current();
        let saved = worker.map(|w| {
            shared.thief.store(w.index(), Ordering::Release);
            w.swap_chain(this.prefix.chain)
        });
        // SAFETY: we are its only runner; the owner does not touch `func`
        // or `result` until the latch is set.
        let f = unsafe { ManuallyDrop::take(&mut *this.func.get()) };
        let result = JobResult::call(f);
        // SAFETY: as above.
        unsafe { (*this.result.get()).write(result) };
        if let (Some(w), Some(saved)) = (worker, saved) {
            w.swap_chain(saved);
        }
        // SAFETY: the last access to the job.
        unsafe { Latch::set(&shared.latch) };
    }
}
