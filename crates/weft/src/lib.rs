//! # weft
//!
//! Python's multitasking toolkit — threads, processes, async/await and the
//! locks that keep them correct — rebuilt in Rust as a set of small crates,
//! re-exported here under one roof.
//!
//! | Module | Crate | Python |
//! |--------|-------|--------|
//! | [`sync`] | `weft-sync` | `threading` locks, `queue.Queue`, `concurrent.futures.Future` |
//!
//! The thread pool (`weft::pool`), the process pool (`weft::process`) and the
//! async runtime (`weft::aio`) join this map as their crates land.
//!
//! ## Python -> weft
//!
//! | Python | weft |
//! |--------|------|
//! | `threading.Lock()` | [`sync::Lock`], [`sync::Mutex`] |
//! | `threading.RLock()` | [`sync::RLock`] |
//! | `threading.Condition()` | [`sync::Condition`] |
//! | `threading.Semaphore(n)` | [`sync::Semaphore`] |
//! | `threading.Event()` | [`sync::Event`] |
//! | `threading.Barrier(n)` | [`sync::Barrier`] |
//! | `queue.Queue(maxsize)` | [`sync::Queue`] |
//! | `concurrent.futures.Future` | [`sync::TaskHandle`] |
//!
//! ```
//! use weft::prelude::*;
//!
//! let counter = Mutex::new(0);
//! std::thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| *counter.lock() += 1);
//!     }
//! });
//! assert_eq!(*counter.lock(), 4);
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// Locks, semaphores, events, barriers, queues and the task handle: the
/// `weft-sync` crate.
pub use weft_sync as sync;

/// The names most programs need, in one import: `use weft::prelude::*;`.
pub mod prelude {
    pub use weft_sync::{
        Barrier, BoundedSemaphore, Condition, Event, Lock, Mutex, Queue, RLock, ReturnWhen,
        Semaphore, TaskError, TaskHandle, as_completed, wait,
    };
}
