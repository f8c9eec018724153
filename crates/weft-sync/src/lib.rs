//! weft-sync (work in progress)
#![deny(missing_docs)]

mod barrier;
mod condition;
mod error;
mod event;
mod mutex;
mod queue;
mod raw_lock;
mod rlock;
mod semaphore;
mod shim;
mod task;
mod wait;
mod waiting;
mod waker;

pub use barrier::Barrier;
pub use condition::Condition;
pub use error::{BrokenBarrierError, GetError, PutError, ReleaseError, TaskDoneError, Timeout};
pub use event::{Event, EventWaitFuture};
pub use mutex::{Lock, Mutex, MutexGuard, MutexLockFuture};
pub use queue::{GetFuture, PutFuture, Queue};
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{AcquireFuture, BoundedSemaphore, Semaphore, SemaphoreGuard};
pub use task::{Completer, TaskError, TaskHandle, WorkerExit, panic_message};
pub use wait::{
    AsCompleted, AsCompletedStream, ReturnWhen, WaitAsync, WaitResult, as_completed, wait,
    wait_async,
};
