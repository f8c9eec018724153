//! weft-sync (work in progress)
#![deny(missing_docs)]

mod error;
mod shim;
mod task;
mod wait;
mod waker;

pub use error::{BrokenBarrierError, GetError, PutError, ReleaseError, Timeout};
pub use task::{Completer, TaskError, TaskHandle, WorkerExit, panic_message};
pub use wait::{AsCompleted, ReturnWhen, WaitAsync, WaitResult, as_completed, wait, wait_async};
