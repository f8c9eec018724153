//! The crate's one error type.

/// What can go wrong when building or using a [`ThreadPool`](crate::ThreadPool).
///
/// Every message says what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// `num_threads(0)` was asked for.
    #[error(
        "a thread pool needs at least one thread: pass num_threads(n) with n >= 1, or leave it unset to use the available parallelism"
    )]
    ZeroThreads,
    /// `stack_size(0)` was asked for.
    #[error(
        "a worker thread's stack size must be more than zero bytes: leave stack_size unset for the platform default"
    )]
    ZeroStackSize,
    /// A stack size below the least a worker needs was asked for.
    #[error(
        "a worker thread's stack must be at least {min} bytes, and {requested} were asked for: pass a larger stack_size, or leave it unset for the platform default"
    )]
    StackTooSmall {
        /// What `stack_size` was given.
        requested: usize,
        /// The least allowed ([`ThreadPoolBuilder::MIN_STACK_SIZE`](crate::ThreadPoolBuilder::MIN_STACK_SIZE)).
        min: usize,
    },
    /// More threads were asked for than one pool may have.
    #[error(
        "a thread pool may have at most {max} threads, and {requested} were asked for: pass a smaller num_threads"
    )]
    TooManyThreads {
        /// What `num_threads` was given.
        requested: usize,
        /// The most a pool may have ([`ThreadPoolBuilder::MAX_THREADS`](crate::ThreadPoolBuilder::MAX_THREADS)).
        max: usize,
    },
    /// The `thread_name` closure returned a name with a NUL byte, which the
    /// operating system cannot take. No worker is left running.
    #[error(
        "the name given to worker {index}, {name:?}, contains a NUL byte, which thread names may not: remove it from the thread_name closure's result"
    )]
    InvalidThreadName {
        /// The worker the name was for.
        index: usize,
        /// The name, as the closure returned it.
        name: String,
    },
    /// The `thread_name` closure panicked. No worker is left running.
    #[error("the thread_name closure panicked when naming worker {index}: {message}")]
    ThreadNamePanicked {
        /// The worker the name was for.
        index: usize,
        /// The panic's message.
        message: String,
    },
    /// The operating system refused to start a worker thread. The workers
    /// started before it were stopped (their exit hooks ran) and joined.
    #[error(
        "the operating system could not start a worker thread ({source}): try fewer threads or a smaller stack size"
    )]
    ThreadSpawn {
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A worker's start hook ([`start_handler`](crate::ThreadPoolBuilder::start_handler),
    /// Python's `initializer`) panicked, so the pool takes no new work
    /// (Python's `BrokenThreadPool`). Fix the hook and build a new pool.
    #[error(
        "the thread pool is broken and accepts no new work ({message}): fix the start hook and build a new pool"
    )]
    Broken {
        /// Which worker's hook panicked, and its panic message.
        message: String,
    },
    /// New work was submitted to a pool after [`shutdown`](crate::ThreadPool::shutdown).
    #[error("the thread pool has been shut down and accepts no new work: build a new pool")]
    ShutDown,
    /// [`build_global`](crate::ThreadPoolBuilder::build_global) was called
    /// after the global pool already existed.
    #[error(
        "the global thread pool already exists (made by an earlier build_global or by a first use of the free functions): call build_global once, before anything else uses the global pool"
    )]
    GlobalAlreadyInitialized,
}
