//! Scopes: spawn work that borrows from the caller's stack.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use crate::job::{CountLatch, HeapJob, JobRef, SendPtr, WakeTarget, drop_quietly};
use crate::registry::ChainNode;
use crate::registry::{Registry, WorkerThread};

/// A scope in which to spawn tasks that borrow data living outside it
/// (anything that outlives `'scope`). Made by [`ThreadPool::scope`](crate::ThreadPool::scope)
/// or [`crate::scope`]; every task spawned in it has finished when the scope
/// returns.
///
/// ```
/// let mut words = vec!["a".to_string(), "b".to_string()];
/// let total = std::sync::atomic::AtomicUsize::new(0);
/// weft_pool::scope(|s| {
///     for w in &mut words {
///         let total = &total;
///         s.spawn(move |_| {
///             w.push('!');
///             total.fetch_add(w.len(), std::sync::atomic::Ordering::Relaxed);
///         });
///     }
/// });
/// assert_eq!(words, ["a!", "b!"]);
/// assert_eq!(total.into_inner(), 4);
/// ```
pub struct Scope<'scope> {
    registry: Arc<Registry>,
    latch: CountLatch,
    /// The worker that runs the scope (and waits for its tasks); `None`
    /// for an [`in_place_scope`](crate::in_place_scope) run by a thread
    /// outside the pool.
    owner: Option<usize>,
    panic: parking_lot::Mutex<Option<Box<dyn Any + Send>>>,
    /// The wait chain of the scope's owner (see `ChainNode`).
    chain: SendPtr<ChainNode>,
    /// Invariant in `'scope` (and `Sync`), as `std::thread::Scope`.
    marker: PhantomData<&'scope mut &'scope ()>,
}

impl std::fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope").finish_non_exhaustive()
    }
}

impl<'scope> Scope<'scope> {
    /// Spawns `f` into the scope. It may borrow anything that outlives the
    /// scope, and may spawn more tasks through the `&Scope` it receives. A
    /// panic in `f` is resumed by the scope once all its tasks are done.
    pub fn spawn<F>(&self, f: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        let job = self.job(f);
        match WorkerThread::current() {
            Some(w) if Arc::ptr_eq(w.registry(), &self.registry) => w.push_shared(job),
            // From another thread (a worker of another pool, a plain
            // thread): into the owner's `returned` queue, which its wait
            // takes its own spawns from (the global queue is out of its
            // reach: with every other worker busy, the owner would wait
            // for a job only an idle worker could run); idle workers may
            // take it from there too.
            _ => self.push_fifo(job),
        }
    }

    /// Counts `f` in and wraps it in a job that runs it and counts it out;
    /// the job must be queued or run exactly once.
    fn job<F>(&self, f: F) -> JobRef
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        self.latch.increment();
        let scope_ptr = SendPtr::new(self as *const Scope<'scope>);
        let body = move || {
            // SAFETY: the scope waits, in `scope_in_worker`, for its count
            // to reach zero before it is dropped, and this job holds one
            // count until the `count_down` below.
            let scope = unsafe { &*scope_ptr.get() };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| f(scope))) {
                let mut slot = scope.panic.lock();
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    drop(slot);
                    // Only the first panic is resumed; this payload's `Drop`
                    // must not skip the count-down below.
                    drop_quietly(p);
                }
            }
            // SAFETY: our last access to the scope.
            unsafe { CountLatch::count_down(&scope.latch) };
        };
        // SAFETY: `f` may borrow for `'scope` only, and the scope does not
        // end before every spawned job has run (count above); the job is
        // run exactly once: the callers (`spawn`, `spawn_fifo`) queue it or
        // run it right away.
        unsafe { HeapJob::into_job_ref(body, self.chain.get(), self as *const Self as usize) }
    }

    /// Spawns `f` into the scope in first-in, first-out order (rayon's
    /// `spawn_fifo`): tasks spawned this way start in the order they were
    /// spawned (as far as one worker takes them; idle workers may take
    /// later ones meanwhile), where [`spawn`](Self::spawn)ed tasks of a
    /// worker start newest first. Otherwise as [`spawn`](Self::spawn).
    ///
    /// ```
    /// let pool = weft_pool::ThreadPool::new(1)?;
    /// let order = std::sync::Mutex::new(Vec::new());
    /// pool.scope_fifo(|s| {
    ///     for i in 0..4 {
    ///         let order = &order;
    ///         s.spawn_fifo(move |_| order.lock().unwrap().push(i));
    ///     }
    /// });
    /// assert_eq!(order.into_inner().unwrap(), [0, 1, 2, 3]);
    /// # Ok::<(), weft_pool::PoolError>(())
    /// ```
    pub fn spawn_fifo<F>(&self, f: F)
    where
        F: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        let job = self.job(f);
        self.push_fifo(job);
    }

    /// Queues a job of this scope on a first-in, first-out queue the scope's
    /// waiter reaches: the owner's `returned` queue (which its wait takes
    /// its own spawns from, and idle workers steal from), or for an in-place
    /// scope the pool's global queue.
    fn push_fifo(&self, job: JobRef) {
        match self.registry.enter() {
            Some(gate) => match self.owner {
                Some(owner) => self.registry.push_returned(&gate, owner, job),
                None => self.registry.inject(&gate, job),
            },
            // SAFETY: never queued; we are its only runner.
            None => unsafe { job.execute() },
        }
    }
}

/// The scope of [`scope_fifo`](crate::scope_fifo): a [`Scope`], whose
/// [`spawn_fifo`](Scope::spawn_fifo) queues tasks first in, first out.
pub type ScopeFifo<'scope> = Scope<'scope>;

/// Runs an in-place scope: `op` on the calling thread (outside `registry`'s
/// workers), its spawns on `registry`; blocks until they have all finished.
pub(crate) fn scope_in_place<'scope, OP, R>(registry: &Arc<Registry>, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let scope = Scope {
        registry: Arc::clone(registry),
        latch: CountLatch::new(1, WakeTarget::Thread(std::thread::current())),
        owner: None,
        panic: parking_lot::Mutex::new(None),
        chain: SendPtr::new(std::ptr::null()),
        marker: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| op(&scope)));
    // SAFETY: the body's own count; the scope lives until the wait below.
    unsafe { CountLatch::count_down(&scope.latch) };
    // This thread runs no pool work while it waits: its spawns are queued
    // where the pool's workers take them (or ran inline after a shutdown).
    scope.latch.latch.wait_blocking();
    finish(&scope, result)
}

/// The scope's result, or the first panic (the body's first).
fn finish<R>(scope: &Scope<'_>, result: std::thread::Result<R>) -> R {
    // On a panic, what is not resumed is dropped first (a `Drop` that
    // panicked while unwinding would abort).
    let task_panic = scope.panic.lock().take();
    match (result, task_panic) {
        (Err(p), other) => {
            drop_quietly(other);
            resume_unwind(p)
        }
        (Ok(r), Some(p)) => {
            drop_quietly(r);
            resume_unwind(p)
        }
        (Ok(r), None) => r,
    }
}

/// Runs a scope whose owner is worker `w`.
pub(crate) fn scope_in_worker<'scope, OP, R>(w: &WorkerThread, op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    let scope = Scope {
        registry: Arc::clone(w.registry()),
        latch: CountLatch::new(
            1,
            WakeTarget::Worker {
                registry: &**w.registry(),
                index: w.index(),
            },
        ),
        owner: Some(w.index()),
        panic: parking_lot::Mutex::new(None),
        chain: SendPtr::new(w.chain()),
        marker: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| op(&scope)));
    // SAFETY: the body's own count; the scope lives until the wait below.
    unsafe { CountLatch::count_down(&scope.latch) };
    w.wait_until(
        &scope.latch.latch.core,
        None,
        Some(&scope as *const Scope<'_> as usize),
        None,
        false,
    );
    finish(&scope, result)
}
