//! `broadcast`: run a closure once on every worker.

use std::sync::Arc;
use std::thread;

use crate::PoolError;
use crate::job::{CountLatch, JobRef, JobResult, TAG_OTHER, WakeTarget, drop_quietly};
use crate::registry::{Registry, WorkerThread};

/// Where a [`broadcast`](crate::ThreadPool::broadcast) closure is running.
#[derive(Debug, Clone, Copy)]
pub struct BroadcastContext {
    index: usize,
    num_threads: usize,
}

impl BroadcastContext {
    /// The index of the worker running this call, in `0..num_threads()`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers the pool has (and so how many calls there are).
    pub fn num_threads(&self) -> usize {
        self.num_threads
    }
}

struct Shared<'f, F, R> {
    f: &'f F,
    results: Vec<parking_lot::Mutex<JobResult<R>>>,
    latch: CountLatch,
}

struct BroadcastJob<'f, F, R> {
    shared: *const Shared<'f, F, R>,
    index: usize,
}

impl<F, R> BroadcastJob<'_, F, R>
where
    F: Fn(BroadcastContext) -> R + Sync,
    R: Send,
{
    /// # Safety
    ///
    /// `self` and its `Shared` must stay alive until the job has run.
    unsafe fn as_job_ref(&self) -> JobRef {
        JobRef::from_raw((self as *const Self).cast(), Self::execute, TAG_OTHER)
    }

    unsafe fn execute(this: *const ()) {
        // SAFETY: `broadcast` keeps the jobs and `Shared` alive until the
        // count latch, which this job counts down last, is set.
        let this = unsafe { &*this.cast::<Self>() };
        // SAFETY: as above.
        let shared = unsafe { &*this.shared };
        let ctx = BroadcastContext {
            index: this.index,
            num_threads: shared.results.len(),
        };
        let r = JobResult::call(|| (shared.f)(ctx));
        *shared.results[this.index].lock() = r;
        // SAFETY: our last access.
        unsafe { CountLatch::count_down(&shared.latch) };
    }
}

pub(crate) fn broadcast<F, R>(registry: &Arc<Registry>, f: F) -> Result<Vec<R>, PoolError>
where
    F: Fn(BroadcastContext) -> R + Sync,
    R: Send,
{
    let n = registry.num_threads();
    let current = WorkerThread::current();
    let me = current.filter(|w| Arc::ptr_eq(w.registry(), registry));
    // A worker of another pool waits as in a cross-pool `install` (running
    // `install` jobs sent to its pool meanwhile), not blocked outright: the
    // broadcast closure may itself `install` into that worker's pool.
    let foreign = current.filter(|_| me.is_none());
    let target = match (me, foreign) {
        (Some(w), _) => WakeTarget::Worker {
            registry: &**registry,
            index: w.index(),
        },
        (None, Some(w)) => WakeTarget::OtherPool {
            registry: Arc::clone(w.registry()),
            index: w.index(),
        },
        (None, None) => WakeTarget::Thread(thread::current()),
    };
    let shared = Shared {
        f: &f,
        results: (0..n)
            .map(|_| parking_lot::Mutex::new(JobResult::None))
            .collect(),
        latch: CountLatch::new(n, target),
    };
    let jobs: Vec<BroadcastJob<'_, F, R>> = (0..n)
        .map(|index| BroadcastJob {
            shared: &shared,
            index,
        })
        .collect();
    {
        let gate = registry.enter().ok_or(PoolError::ShutDown)?;
        for job in &jobs {
            if me.is_some_and(|w| w.index() == job.index) {
                continue;
            }
            // SAFETY: we wait below until every job has run.
            registry.push_broadcast(&gate, job.index, unsafe { job.as_job_ref() });
        }
    }
    registry.sleep.notify_all();
    match (me, foreign) {
        (Some(w), _) => {
            // SAFETY: our own part, never queued; alive (on this frame).
            unsafe { jobs[w.index()].as_job_ref().execute() };
            w.wait_until(&shared.latch.latch.core, None, None, None, false);
        }
        (None, Some(w)) => w.wait_until(&shared.latch.latch.core, None, None, None, true),
        (None, None) => shared.latch.latch.wait_blocking(),
    }
    let results: Vec<JobResult<R>> = shared
        .results
        .into_iter()
        .map(parking_lot::Mutex::into_inner)
        .collect();
    if results.iter().any(|r| matches!(r, JobResult::Panic(_))) {
        // Resume the first panic; drop every other result (and payload)
        // first, since a `Drop` that panicked while unwinding would abort.
        let mut first = None;
        for r in results {
            match r {
                JobResult::Panic(p) if first.is_none() => first = Some(p),
                other => drop_quietly(other),
            }
        }
        if let Some(p) = first {
            std::panic::resume_unwind(p);
        }
        unreachable!("a panic was found above");
    }
    Ok(results
        .into_iter()
        .map(JobResult::into_return_value)
        .collect())
}
