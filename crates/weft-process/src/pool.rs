//! [`ProcessPool`], its builder, and [`MapResults`]. The threads that own
//! the worker processes are in `supervisor.rs`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::task::Poll;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_sync::{Completer, TaskError, TaskHandle};

use crate::cancel::{CancelCell, Canceller};
use crate::channel;
use crate::registry::{self, decode, decode_owned, encode_into};
use crate::spare::Spare;
use crate::supervisor::{
    Job, Loss, Recv, SendError, Worker, deadline, recv_from, supervise, take_reply,
};
use crate::sys;
use crate::wire::{ErrKind, FromWorkerIn, ItemOut, Status};

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`ProcessPoolBuilder::shutdown_on_ctrl_c`] was asked for, but SIGINT
    /// could not be watched (the text says why); no worker is left running.
    #[error("the pool cannot shut down on Ctrl-C: {0}")]
    CtrlC(String),
    /// `processes(0)` was asked for.
    #[error("a process pool needs at least one process: pass processes(n) with n >= 1")]
    NoProcesses,
    /// A duration setting was zero.
    #[error("the {what} must be longer than zero; got {value:?}")]
    InvalidDuration {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: Duration,
    },
    /// More processes were asked for than one pool may have
    /// ([`ProcessPool::MAX_PROCESSES`]).
    #[error(
        "a process pool may have at most {max} processes; processes({requested}) asks for more"
    )]
    TooManyProcesses {
        /// The number asked for.
        requested: usize,
        /// The most a pool may have.
        max: usize,
    },
    /// `max_tasks_per_child(0)` was asked for.
    #[error("max_tasks_per_child must be at least 1; leave it unset for workers that never retire")]
    ZeroMaxTasks,
    /// The initializer is not a registered function.
    #[error("the pool initializer cannot run in workers: {0}")]
    Unregistered(String),
    /// The initializer's argument could not be serialized.
    #[error("the pool initializer's argument could not be serialized: {0}")]
    InitializerArgument(String),
    /// A worker process could not be started.
    #[error("could not start a worker process from {program}: {source}")]
    Spawn {
        /// The executable the pool runs as its workers.
        program: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A worker started but did not complete the authenticated handshake.
    #[error("a worker process did not complete its start-up handshake: {reason}")]
    Handshake {
        /// What went wrong.
        reason: String,
    },
    /// The initializer failed (panicked) in a worker.
    #[error("the pool initializer failed in a worker: {0}")]
    Initializer(String),
    /// [`ProcessPool::terminate`] ran while a worker was starting.
    #[error("the pool was terminated while a worker was starting")]
    Terminated,
    /// A [`Process`](crate::Process)'s target is not a registered function.
    #[error("the process target cannot run in a child process: {0}")]
    UnregisteredTarget(String),
    /// [`Process::start`](crate::Process::start) was called twice.
    #[error(
        "the process `{name}` was already started: a Process starts once; make a new one to run the function again"
    )]
    AlreadyStarted {
        /// The process's name.
        name: String,
    },
    /// A [`Process`](crate::Process)'s child died before it connected to
    /// its parent (it never ran the target).
    #[error("the process `{name}` died ({exit}) before connecting to its parent{hint}")]
    ChildDied {
        /// The process's name.
        name: String,
        /// How the child ended.
        exit: crate::WorkerExit,
        /// A hint on the likely cause, or empty.
        hint: String,
    },
    /// A [`Process`](crate::Process)'s child did not connect within its
    /// start timeout; it was killed.
    #[error(
        "the process `{name}` did not connect to its parent within {timeout:?} and was killed{hint}"
    )]
    StartTimeout {
        /// The process's name.
        name: String,
        /// The start timeout.
        timeout: Duration,
        /// A hint on the likely cause, or empty.
        hint: String,
    },
    /// A [`Process`](crate::Process) could not be started for another
    /// reason (the text says which).
    #[error("could not start the process `{name}`: {reason}")]
    ProcessStart {
        /// The process's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A [`Process`](crate::Process)'s argument could not be sent to its
    /// child (it would not serialize); the child was killed.
    #[error("the argument of the process `{name}` could not be sent to it: {reason}")]
    Argument {
        /// The process's name.
        name: String,
        /// The serializer's message.
        reason: String,
    },
    /// An ipc-channel channel (for a [`Pipe`](crate::Pipe), a
    /// [`Queue`](crate::Queue) or a process's start) could not be made:
    /// usually too many open files.
    #[error("could not create an ipc-channel channel: {0}")]
    Channel(#[source] std::io::Error),
}

/// Everything a supervisor needs to know about the pool's settings.
pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) program: PathBuf,
    pub(crate) env: Vec<(OsString, Option<OsString>)>,
    pub(crate) initializer: Option<(&'static str, Vec<u8>)>,
    pub(crate) max_tasks_per_child: Option<u64>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) start_timeout: Duration,
    pub(crate) max_result_bytes: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdout: Output,
    pub(crate) stderr: Output,
}

/// Where a worker's standard output or error goes
/// ([`ProcessPoolBuilder::stdout`], [`ProcessPoolBuilder::stderr`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// The parent's (the default, as Python's workers do).
    #[default]
    Inherit,
    /// Nowhere (`/dev/null`).
    Null,
    /// Appended to this file (created if missing), shared by every worker.
    File(PathBuf),
}

impl Output {
    fn stdio(&self) -> std::io::Result<Option<std::process::Stdio>> {
        Ok(match self {
            Output::Inherit => None,
            Output::Null => Some(std::process::Stdio::null()),
            Output::File(path) => Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?
                    .into(),
            ),
        })
    }

    pub(crate) fn apply_stdout(&self, cmd: &mut std::process::Command) -> std::io::Result<()> {
        if let Some(s) = self.stdio()? {
            cmd.stdout(s);
        }
        Ok(())
    }

    pub(crate) fn apply_stderr(&self, cmd: &mut std::process::Command) -> std::io::Result<()> {
        if let Some(s) = self.stdio()? {
            cmd.stderr(s);
        }
        Ok(())
    }
}

/// Configures and builds a [`ProcessPool`]; made by [`ProcessPool::builder`].
///
/// ```
/// use std::time::Duration;
/// fn ping(x: u32) -> u32 { x }
/// weft_process::register!(ping);
///
/// let pool = weft_process::ProcessPool::builder()
///     .processes(1)
///     .task_timeout(Duration::from_secs(30))
///     .max_tasks_per_child(1000)
///     .env("MY_SETTING", "1")
///     .build()
///     .unwrap();
/// assert_eq!(pool.apply(ping, 7), Ok(7));
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct ProcessPoolBuilder {
    processes: Option<usize>,
    executable: Option<PathBuf>,
    env: Vec<(OsString, Option<OsString>)>,
    initializer: Option<Result<(&'static str, Vec<u8>), Error>>,
    max_tasks_per_child: Option<u64>,
    task_timeout: Option<Duration>,
    start_timeout: Duration,
    max_result_bytes: usize,
    shutdown_grace: Duration,
    cwd: Option<PathBuf>,
    stdout: Output,
    stderr: Output,
    ctrl_c: bool,
    spare: bool,
}

impl fmt::Debug for ProcessPoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPoolBuilder")
            .field("processes", &self.processes)
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("task_timeout", &self.task_timeout)
            .field("start_timeout", &self.start_timeout)
            .field("max_result_bytes", &self.max_result_bytes)
            .finish_non_exhaustive()
    }
}

impl Default for ProcessPoolBuilder {
    fn default() -> Self {
        ProcessPoolBuilder {
            processes: None,
            executable: None,
            env: Vec::new(),
            initializer: None,
            max_tasks_per_child: None,
            task_timeout: None,
            start_timeout: Duration::from_secs(30),
            max_result_bytes: 1 << 30,
            shutdown_grace: Duration::from_secs(5),
            cwd: None,
            stdout: Output::Inherit,
            stderr: Output::Inherit,
            ctrl_c: false,
            spare: false,
        }
    }
}

impl ProcessPoolBuilder {
    /// Number of worker processes (Python's `processes` / `max_workers`),
    /// from 1 to [`ProcessPool::MAX_PROCESSES`]; anything else makes
    /// [`build`](Self::build) fail. Default:
    /// [`std::thread::available_parallelism`] (at most `MAX_PROCESSES`).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(arg)` in each worker when it starts, before it takes any task
    /// (Python's `initializer`/`initargs`). `f` must be registered with
    /// [`register!`](crate::register). If it panics, [`build`](Self::build)
    /// fails with [`Error::Initializer`].
    pub fn initializer<F, A>(mut self, f: F, arg: A) -> Self
    where
        F: Fn(A) + Copy + 'static,
        A: Serialize + 'static,
    {
        let _ = f;
        self.initializer = Some(match registry::lookup_type::<F>() {
            None => Err(Error::Unregistered(registry::unregistered_message::<F>())),
            Some(entry) => {
                let mut bytes = Vec::new();
                match encode_into(arg, &mut bytes) {
                    Ok(()) => Ok((entry.name, bytes)),
                    Err(e) => Err(Error::InitializerArgument(e)),
                }
            }
        });
        self
    }

    /// Retires a worker after it has run `n` tasks (a chunk of a `map`
    /// counts as one task) and starts a fresh one (Python's
    /// `maxtasksperchild`). Default: workers never retire.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// The time limit of every task that does not set its own (see
    /// [`ProcessPool::submit_with_timeout`]). A task past its limit fails
    /// with [`TaskError::TimedOut`] and its worker is killed and replaced.
    /// For `map`, the limit applies to each chunk. Default: none. Zero
    /// makes [`build`](Self::build) fail; a duration too long for the
    /// clock (`Duration::MAX`) means no limit.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// The program started as each worker (Python's
    /// `multiprocessing.set_executable`). Default: this program
    /// ([`std::env::current_exe`]). It must be a build of the same code:
    /// a worker whose table of registered functions differs is refused when
    /// it connects. Useful to start workers through a wrapper (`nice`,
    /// `taskset`, a container entry point) that `exec`s this program.
    pub fn executable(mut self, program: impl Into<PathBuf>) -> Self {
        self.executable = Some(program.into());
        self
    }

    /// Sets an environment variable for the worker processes.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an environment variable from the worker processes'
    /// environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// How long a new worker may take to start and complete its handshake
    /// (and initializer). Default: 30 s. Zero makes
    /// [`build`](Self::build) fail; a duration too long for the clock
    /// (`Duration::MAX`) means no limit (a worker that exits is still
    /// noticed at once).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// The largest result payload (in bytes, per task or `map` chunk) the
    /// pool accepts from a worker; a larger one fails that task with
    /// [`TaskError::Serialization`]. Default: 1 GiB.
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = bytes;
        self
    }

    /// How long [`ProcessPool::shutdown`] waits for a worker to exit after
    /// asking it to, before killing it. Default: 5 s. Zero kills at once; a
    /// duration too long for the clock (`Duration::MAX`) waits as long as
    /// the worker takes.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The working directory of the worker processes. Default: the
    /// parent's. A directory that does not exist makes
    /// [`build`](Self::build) fail with [`Error::Spawn`].
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Where the workers' standard output goes. Default:
    /// [`Output::Inherit`]. (Their stdin is always `/dev/null`.)
    pub fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    /// Where the workers' standard error goes (panic messages included).
    /// Default: [`Output::Inherit`].
    pub fn stderr(mut self, output: Output) -> Self {
        self.stderr = output;
        self
    }

    /// Whether a Ctrl-C (SIGINT) terminates this pool (default: no).
    ///
    /// Workers run in their own process group, so a terminal's Ctrl-C
    /// reaches this process only. With `true`, the first SIGINT that
    /// arrives while the pool is alive terminates it as
    /// [`ProcessPool::terminate`] would (from a thread of weft's; the
    /// signal handler itself only writes to a pipe, through
    /// `async-signal`): its workers are killed and reaped, and its running
    /// and queued tasks fail with [`TaskError::Cancelled`], so a program
    /// blocked on their results wakes up and goes on (Python's
    /// `KeyboardInterrupt`, then the `with` block's `terminate`). The
    /// program is not killed by that SIGINT: it ends when it chooses to.
    /// A SIGINT that finds no such pool alive (a second Ctrl-C, or one
    /// after the pools are dropped) ends the program as a Ctrl-C does by
    /// default: SIGINT's default action is restored and the signal raised.
    ///
    /// It takes over SIGINT for the whole program, once (every pool that
    /// opts in shares one thread): a program that handles SIGINT itself
    /// should not use it, and should call [`ProcessPool::terminate`] from
    /// its own handling instead. Linux and macOS.
    pub fn shutdown_on_ctrl_c(mut self, yes: bool) -> Self {
        self.ctrl_c = yes;
        self
    }

    /// Whether the pool keeps a spare worker ready (default: no).
    ///
    /// With `true`, one more worker than [`processes`](Self::processes)
    /// is started (in the background, once the pool is built), completes
    /// its handshake and initializer, and waits idle. A slot that loses
    /// its worker (it crashed, was killed, timed out, had a running task
    /// cancelled, or retired after [`max_tasks_per_child`](Self::max_tasks_per_child))
    /// takes the spare at once instead of starting a process, and the next
    /// spare is started in the background. Starting a worker is a `fork` +
    /// `exec` of the whole program and its handshake, milliseconds; taking
    /// the spare is a hand-over between threads. If the spare is still
    /// starting, the slot waits for it rather than start a second process.
    ///
    /// It costs one idle process (its memory, and a start after each
    /// loss). The spare runs no task, is not in [`ProcessPool::pids`] and
    /// counts in [`ProcessPool::workers_started`]; [`ProcessPool::spare_pid`]
    /// gives its pid once it is ready. It is killed by `terminate`, asked
    /// to exit by `shutdown` and `close`, dies with the parent, and is
    /// replaced if it dies while idle. A spare that fails to start (an
    /// initializer error) is tried again only when a slot next needs one.
    ///
    /// ```
    /// fn square(x: u64) -> u64 { x * x }
    /// weft_process::register!(square);
    ///
    /// let pool = weft_process::ProcessPool::builder()
    ///     .processes(1)
    ///     .spare_worker(true)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.apply(square, 3), Ok(9));
    /// ```
    pub fn spare_worker(mut self, yes: bool) -> Self {
        self.spare = yes;
        self
    }

    /// Starts the workers and returns the pool once every one of them has
    /// completed its handshake (and initializer).
    pub fn build(self) -> Result<ProcessPool, Error> {
        let processes = match self.processes {
            Some(0) => return Err(Error::NoProcesses),
            Some(n) if n > ProcessPool::MAX_PROCESSES => {
                return Err(Error::TooManyProcesses {
                    requested: n,
                    max: ProcessPool::MAX_PROCESSES,
                });
            }
            Some(n) => n,
            None => thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(ProcessPool::MAX_PROCESSES),
        };
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::ZeroMaxTasks);
        }
        for (what, value) in [
            ("task timeout", self.task_timeout),
            ("start timeout", Some(self.start_timeout)),
        ] {
            if let Some(value) = value.filter(|v| v.is_zero()) {
                return Err(Error::InvalidDuration { what, value });
            }
        }
        let initializer = self.initializer.transpose()?;
        let program = match self.executable {
            Some(program) => program,
            None => std::env::current_exe().map_err(|source| Error::Spawn {
                program: PathBuf::from("<current executable>"),
                source,
            })?,
        };
        let config = Config {
            processes,
            program,
            env: self.env,
            initializer,
            max_tasks_per_child: self.max_tasks_per_child,
            task_timeout: self.task_timeout,
            start_timeout: self.start_timeout,
            max_result_bytes: self.max_result_bytes,
            shutdown_grace: self.shutdown_grace,
            cwd: self.cwd,
            stdout: self.stdout,
            stderr: self.stderr,
        };
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let inner = Arc::new(Inner {
            slots: (0..processes).map(|_| Mutex::new(None)).collect(),
            parked: (0..processes).map(|_| Mutex::new(None)).collect(),
            config,
            jobs_tx: Mutex::new(Some(jobs_tx)),
            jobs_rx,
            stop_tx: Mutex::new(Some(stop_tx)),
            stop_rx,
            terminating: AtomicBool::new(false),
            next_job: AtomicU64::new(1),
            started: AtomicU64::new(0),
            nudge: (0..processes)
                .map(|_| crossbeam_channel::bounded(1))
                .collect(),
            cancel_kills: (0..processes).map(|_| Mutex::new(None)).collect(),
            running: (0..processes).map(|_| AtomicUsize::new(0)).collect(),
            waiting: (0..processes).map(|_| AtomicUsize::new(0)).collect(),
            spare: self.spare.then(Spare::new),
        });
        let pool = ProcessPool {
            inner: inner.clone(),
            threads: Mutex::new(Vec::new()),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        // Disconnected once every supervisor thread has ended (each holds a
        // sender): the spare's keeper outlives them all (see below).
        let (alive_tx, alive_rx) = crossbeam_channel::bounded::<()>(0);
        for slot in 0..processes {
            let inner = inner.clone();
            let ready = ready_tx.clone();
            let alive = alive_tx.clone();
            let spawned = thread::Builder::new()
                .name(format!("weft-process-{slot}"))
                .spawn(move || {
                    supervise(inner, slot, ready);
                    drop(alive);
                });
            match spawned {
                Ok(t) => lock(&pool.threads).push(t),
                Err(source) => {
                    pool.terminate();
                    return Err(Error::Spawn {
                        program: pool.inner.config.program.clone(),
                        source,
                    });
                }
            }
        }
        drop(ready_tx);
        drop(alive_tx);
        let mut first_error = None;
        for _ in 0..processes {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    // A supervisor ended without saying whether its worker
                    // started: the pool is not whole.
                    first_error.get_or_insert(Error::Spawn {
                        program: pool.inner.config.program.clone(),
                        source: std::io::Error::other(
                            "a worker's supervisor thread ended before the worker started",
                        ),
                    });
                    break;
                }
            }
        }
        if let Some(e) = first_error {
            pool.terminate();
            return Err(e);
        }
        if pool.inner.spare.is_some() {
            // A worker dies with the thread that started it
            // (PR_SET_PDEATHSIG), so the keeper, which starts spares that
            // slots then use, ends only after every slot's supervisor.
            let inner = inner.clone();
            match thread::Builder::new()
                .name("weft-process-spare".into())
                .spawn(move || crate::spare::keep(inner, alive_rx))
            {
                Ok(t) => lock(&pool.threads).push(t),
                Err(source) => {
                    pool.terminate();
                    return Err(Error::Spawn {
                        program: pool.inner.config.program.clone(),
                        source,
                    });
                }
            }
        }
        if self.ctrl_c
            && let Err(reason) = crate::ctrlc::watch(&pool.inner)
        {
            pool.terminate();
            return Err(Error::CtrlC(reason));
        }
        Ok(pool)
    }
}

/// State shared by the pool handle and its supervisor threads.
pub(crate) struct Inner {
    pub(crate) config: Config,
    /// `None` once the pool is shut down: no new jobs.
    pub(crate) jobs_tx: Mutex<Option<Sender<Job>>>,
    pub(crate) jobs_rx: Receiver<Job>,
    /// Dropped by `terminate` to wake idle supervisors.
    pub(crate) stop_tx: Mutex<Option<Sender<()>>>,
    pub(crate) stop_rx: Receiver<()>,
    pub(crate) terminating: AtomicBool,
    /// The pid of each slot's live, unreaped worker.
    pub(crate) slots: Vec<Mutex<Option<u32>>>,
    /// Each slot's worker while its supervisor is idle, so that
    /// [`ProcessPool::apply`](crate::ProcessPool::apply) can use it directly from the calling thread
    /// (no hand-off to the supervisor and back). Locked for the whole call.
    pub(crate) parked: Vec<Mutex<Option<Worker>>>,
    pub(crate) next_job: AtomicU64,
    pub(crate) started: AtomicU64,
    /// Per slot: wakes its idle supervisor to look at its worker (it
    /// exited, or a direct call lost it). At most one notice is pending.
    pub(crate) nudge: Vec<(Sender<()>, Receiver<()>)>,
    /// Per slot: the job its worker was killed to cancel (see `cancel.rs`).
    pub(crate) cancel_kills: Vec<Mutex<Option<u64>>>,
    /// Per slot: whether its worker is running a job (0 or 1), and how
    /// many more jobs wait in its supervisor or behind that one.
    pub(crate) running: Vec<AtomicUsize>,
    pub(crate) waiting: Vec<AtomicUsize>,
    /// The spare worker, with [`ProcessPoolBuilder::spare_worker`].
    pub(crate) spare: Option<Spare>,
}

/// Encodes one task's argument into `out`; an argument that holds weft
/// channel ends, queues or shared memory also gets the channel that
/// carries them (see `channel::carry`).
fn encode_arg<A: Serialize + 'static>(
    arg: A,
    out: &mut Vec<u8>,
) -> Result<Option<ipc_channel::ipc::OpaqueIpcReceiver>, String> {
    let (encoded, met) = channel::encode_counting(|| encode_into(arg, out));
    match encoded {
        Err(e) => {
            if met > 0 {
                channel::discard_stash();
            }
            Err(e)
        }
        Ok(()) if met == 0 => Ok(None),
        Ok(()) => channel::carry(1, out).map(Some),
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pool of worker processes: Python's `multiprocessing.Pool` and
/// `concurrent.futures.ProcessPoolExecutor`.
///
/// Functions run in the workers must be registered with
/// [`register!`](crate::register). Every task returns a
/// [`TaskHandle`], which can be joined from a thread or awaited. A worker
/// that crashes, exits, is killed or hangs past its task's timeout fails
/// that task alone and is replaced; the pool goes on.
///
/// Dropping the pool is [`shutdown`](Self::shutdown): queued tasks finish
/// first.
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// weft_process::register!(square);
///
/// let pool = weft_process::ProcessPool::builder().processes(2).build().unwrap();
/// let handle = pool.submit(square, 12);
/// assert_eq!(handle.join(), Ok(144));
/// let squares: Vec<u64> = pool.map(square, 1..=4).map(Result::unwrap).collect();
/// assert_eq!(squares, [1, 4, 9, 16]);
/// ```
pub struct ProcessPool {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("processes", &self.inner.config.processes)
            .field("pids", &self.pids())
            .finish_non_exhaustive()
    }
}

impl ProcessPool {
    /// The most worker processes one pool may have.
    pub const MAX_PROCESSES: usize = 4096;

    /// The task timeout set with [`ProcessPoolBuilder::task_timeout`].
    pub(crate) fn default_task_timeout(&self) -> Option<Duration> {
        self.inner.config.task_timeout
    }

    /// A builder with the default settings.
    pub fn builder() -> ProcessPoolBuilder {
        ProcessPoolBuilder::default()
    }

    /// A pool with one worker per available CPU and default settings.
    pub fn new() -> Result<ProcessPool, Error> {
        ProcessPool::builder().build()
    }

    /// The number of worker slots.
    pub fn processes(&self) -> usize {
        self.inner.config.processes
    }

    /// The process ids of the workers alive now (a slot whose worker is
    /// being replaced has none).
    pub fn pids(&self) -> Vec<u32> {
        self.inner.slots.iter().filter_map(|s| *lock(s)).collect()
    }

    /// The pid of the pool's spare worker, if it has one ready now (see
    /// [`ProcessPoolBuilder::spare_worker`]); `None` without a spare, or
    /// while the next one starts.
    pub fn spare_pid(&self) -> Option<u32> {
        self.inner.spare.as_ref().and_then(Spare::ready_pid)
    }

    /// How many worker processes this pool has started so far, replacements
    /// (and spares) included.
    pub fn workers_started(&self) -> u64 {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// How many tasks a worker is running now (at most
    /// [`processes`](Self::processes); a `map` chunk counts as one).
    pub fn running(&self) -> usize {
        self.inner
            .running
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// How many tasks wait for a worker (submitted, not started; a `map`
    /// chunk counts as one). With [`running`](Self::running), Python's
    /// view of a pool's backlog, which `concurrent.futures` keeps private.
    pub fn queued(&self) -> usize {
        self.inner.jobs_rx.len()
            + self
                .inner
                .waiting
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .sum::<usize>()
    }

    /// [`submit`](Self::submit), with a [`Canceller`] that can cancel the
    /// task even while it runs: its worker is then killed and replaced
    /// (pebble's `future.cancel()`), and the task fails with
    /// [`TaskError::Cancelled`]. The handle's own
    /// [`cancel`](TaskHandle::cancel) still cancels only a task that has not
    /// started (Python's `Future.cancel()`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_process::{ProcessPool, TaskError};
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    /// weft_process::register!(nap);
    ///
    /// let pool = ProcessPool::builder().processes(1).build().unwrap();
    /// let (handle, canceller) = pool.submit_cancellable(nap, 60_000);
    /// while !handle.is_running() {
    ///     std::thread::sleep(Duration::from_millis(1));
    /// }
    /// assert!(canceller.cancel());
    /// assert_eq!(handle.join(), Err(TaskError::Cancelled));
    /// assert_eq!(pool.apply(nap, 1), Ok(1)); // on the replacement
    /// ```
    pub fn submit_cancellable<F, A, R>(&self, f: F, arg: A) -> (TaskHandle<R>, Canceller)
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let cell = Arc::new(CancelCell::default());
        let handle = self.submit_job(f, arg, self.inner.config.task_timeout, Some(cell.clone()));
        (handle, Canceller::new(cell, self.inner.clone()))
    }

    /// Runs `f(arg)` in a worker (Python's `executor.submit` /
    /// `pool.apply_async`). Uses the pool's default task timeout, if any.
    ///
    /// An unregistered `f` or an argument that cannot be serialized gives a
    /// handle that is already failed with [`TaskError::Serialization`]; a
    /// pool that was shut down gives [`TaskError::Abandoned`].
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.submit_inner(f, arg, self.inner.config.task_timeout)
    }

    /// [`submit`](Self::submit) with a time limit for this task: past it the
    /// task fails with [`TaskError::TimedOut`] and its worker is killed and
    /// replaced. The clock starts when the worker begins the task. A zero
    /// `timeout` fails the task at once with `TimedOut`, without running it;
    /// one too long for the clock (`Duration::MAX`) means no limit.
    pub fn submit_with_timeout<F, A, R>(&self, f: F, arg: A, timeout: Duration) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        if timeout.is_zero() {
            return TaskHandle::ready(Err(TaskError::TimedOut { timeout }));
        }
        self.submit_inner(f, arg, Some(timeout))
    }

    /// Runs `f(arg)` in a worker and waits for the result (Python's
    /// `pool.apply`), with the pool's default task timeout, if any.
    ///
    /// When a worker is idle, the calling thread talks to it directly
    /// instead of handing the task to the worker's supervisor thread and
    /// waiting to be woken: a round trip then costs about what a bare
    /// ipc-channel ping-pong costs. Failures are handled exactly as for
    /// [`submit`](Self::submit).
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Result<R, TaskError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        let Some(entry) = registry::lookup_type::<F>() else {
            return Err(TaskError::Serialization {
                message: registry::unregistered_message::<F>(),
            });
        };
        let mut args = registry::small_buffer();
        let carrier = match encode_arg(arg, &mut args) {
            Ok(carrier) => carrier,
            Err(e) => {
                return Err(TaskError::Serialization {
                    message: format!("the argument could not be serialized: {e}"),
                });
            }
        };
        // Direct path: run it on an idle worker from this thread, without a
        // hand-off to the supervisor thread and back (not for arguments
        // with channels, which only the supervisor sends).
        for slot in (0..self.inner.config.processes).filter(|_| carrier.is_none()) {
            let Ok(mut parked) = self.inner.parked[slot].try_lock() else {
                continue;
            };
            if parked.is_none() {
                continue;
            }
            match self.direct::<R>(slot, &mut parked, entry.name, &mut args) {
                Some(outcome) => return outcome,
                // The worker had died before it got the task: queue it.
                None => break,
            }
        }
        let (completer, handle) = TaskHandle::pair();
        self.enqueue(Job {
            id: 0,
            func: entry.name,
            ends: vec![args.len() as u64],
            args,
            timeout: self.inner.config.task_timeout,
            sink: Box::new(SingleSink {
                completer: Some(completer),
            }),
            started: false,
            cancel: None,
            carried: carrier.is_some(),
            carrier,
        });
        handle.join()
    }

    /// Runs a one-argument job on the parked worker of `slot`, from the
    /// calling thread. `None` if the task could not be sent (the worker is
    /// then dropped, and the caller queues the task instead).
    fn direct<R: DeserializeOwned + 'static>(
        &self,
        slot: usize,
        parked: &mut Option<Worker>,
        func: &str,
        args: &mut Vec<u8>,
    ) -> Option<Result<R, TaskError>> {
        let w = parked.as_mut()?;
        let job = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let timeout = self.inner.config.task_timeout;
        let loss = match w.send_run(job, func, &[args.len() as u64], args, None) {
            Err(SendError::Channel) => None,
            Ok(()) => {
                let deadline = timeout.and_then(|t| deadline(Instant::now(), t));
                match recv_from(&w.link, deadline) {
                    Recv::Msg(FromWorkerIn::Done {
                        job: id,
                        status,
                        data,
                        carriers,
                    }) if id == job => {
                        let max = self.inner.config.max_result_bytes;
                        // The arguments are no longer needed: the result
                        // may reuse their buffer.
                        let spare = std::mem::take(args);
                        match take_reply(&mut w.link, job, max, 1, status, data, spare) {
                            Ok(results) => {
                                return Some(single_result(results.with_carriers(carriers)));
                            }
                            Err((message, false)) => {
                                return Some(Err(TaskError::Serialization { message }));
                            }
                            Err((message, true)) => Some(Loss::Bad(message)),
                        }
                    }
                    Recv::Msg(_) => Some(Loss::Bad(
                        "the worker broke the protocol: it sent an unexpected message".into(),
                    )),
                    Recv::TimedOut => Some(Loss::TimedOut),
                    Recv::Closed => Some(Loss::Died),
                    Recv::Bad(why) => Some(Loss::Bad(why)),
                }
            }
        };
        // The worker is lost: reap it here; its supervisor starts a new one
        // when it next has work.
        let mut w = parked.take()?;
        if !matches!(loss, Some(Loss::Died)) {
            let _ = w.child.kill();
        }
        let exit = w.reap(&self.inner.slots[slot], Duration::from_secs(2));
        // Its supervisor starts the replacement now.
        let _ = self.inner.nudge[slot].0.try_send(());
        let loss = loss?;
        if self.inner.terminating.load(Ordering::SeqCst) {
            return Some(Err(TaskError::Cancelled));
        }
        Some(Err(match loss {
            Loss::Died => TaskError::WorkerLost { exit },
            Loss::TimedOut => TaskError::TimedOut {
                timeout: timeout.unwrap_or_default(),
            },
            Loss::Bad(message) | Loss::BadReply(message) => TaskError::Serialization { message },
        }))
    }

    fn submit_inner<F, A, R>(&self, f: F, arg: A, timeout: Option<Duration>) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.submit_job(f, arg, timeout, None)
    }

    fn submit_job<F, A, R>(
        &self,
        f: F,
        arg: A,
        timeout: Option<Duration>,
        cancel: Option<Arc<CancelCell>>,
    ) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let _ = f;
        let Some(entry) = registry::lookup_type::<F>() else {
            return TaskHandle::ready(Err(TaskError::Serialization {
                message: registry::unregistered_message::<F>(),
            }));
        };
        let mut args = Vec::new();
        let carrier = match encode_arg(arg, &mut args) {
            Ok(carrier) => carrier,
            Err(e) => {
                return TaskHandle::ready(Err(TaskError::Serialization {
                    message: format!("the argument could not be serialized: {e}"),
                }));
            }
        };
        let (completer, handle) = TaskHandle::pair();
        self.enqueue(Job {
            id: 0,
            func: entry.name,
            ends: vec![args.len() as u64],
            args,
            timeout,
            sink: Box::new(SingleSink {
                completer: Some(completer),
            }),
            started: false,
            cancel,
            carried: carrier.is_some(),
            carrier,
        });
        handle
    }

    /// Applies `f` to every item, in chunks, and yields the results in input
    /// order (Python's `pool.map` / `executor.map`). The chunk size is
    /// chosen as Python does (about four chunks per process); see
    /// [`map_chunked`](Self::map_chunked). The items are all queued before
    /// this returns. Each result is `Ok` or the item's [`TaskError`]; a
    /// worker lost or timed out fails the items of its chunk only.
    /// Dropping the iterator cancels the chunks not yet started.
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> MapResults<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, 0, true)
    }

    /// [`map`](Self::map) with an explicit number of items per chunk (one
    /// message and one task each way per chunk). `0` picks it
    /// automatically.
    pub fn map_chunked<F, A, R, I>(&self, f: F, items: I, chunksize: usize) -> MapResults<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, chunksize, true)
    }

    /// Like [`map`](Self::map), but yields each chunk's results as soon as
    /// it completes (Python's `pool.imap_unordered`).
    pub fn map_unordered<F, A, R, I>(&self, f: F, items: I) -> MapResults<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, 0, false)
    }

    /// [`map_unordered`](Self::map_unordered) with an explicit chunk size
    /// (`0` picks it automatically).
    pub fn map_unordered_chunked<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
    ) -> MapResults<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, chunksize, false)
    }

    fn map_inner<F, A, R, I>(
        &self,
        f: F,
        items: I,
        chunksize: usize,
        ordered: bool,
    ) -> MapResults<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        let _ = f;
        let items: Vec<A> = items.into_iter().collect();
        let total = items.len();
        let chunk = if chunksize > 0 {
            chunksize
        } else {
            total
                .div_ceil(self.inner.config.processes.saturating_mul(4))
                .max(1)
        };
        let entry = registry::lookup_type::<F>();
        let (tx, rx) = crossbeam_channel::unbounded();
        let cancelled = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None));
        let mut chunks = 0;
        let mut counts = Vec::new();
        let mut it = items.into_iter();
        loop {
            let batch: Vec<A> = it.by_ref().take(chunk).collect();
            if batch.is_empty() {
                break;
            }
            let index = chunks;
            chunks += 1;
            let count = batch.len();
            counts.push(count);
            let mut sink = Box::new(ChunkSink::<R> {
                index,
                count,
                prefailed: Vec::new(),
                tx: Some(tx.clone()),
                cancelled: cancelled.clone(),
                waker: waker.clone(),
            });
            let Some(entry) = entry else {
                let err = TaskError::Serialization {
                    message: registry::unregistered_message::<F>(),
                };
                sink.finish(Err(err));
                continue;
            };
            let mut args = Vec::new();
            let mut ends = Vec::with_capacity(count);
            let ((), met) = channel::encode_counting(|| {
                for (i, item) in batch.into_iter().enumerate() {
                    match encode_into(item, &mut args) {
                        Ok(()) => ends.push(args.len() as u64),
                        Err(e) => sink.prefailed.push((
                            i,
                            TaskError::Serialization {
                                message: format!("the argument could not be serialized: {e}"),
                            },
                        )),
                    }
                }
            });
            let carrier = if met == 0 {
                None
            } else if ends.is_empty() {
                channel::discard_stash();
                None
            } else {
                match channel::carry(ends.len(), &args) {
                    Ok(carrier) => Some(carrier),
                    Err(message) => {
                        sink.finish(Err(TaskError::Serialization { message }));
                        continue;
                    }
                }
            };
            if ends.is_empty() {
                sink.finish(Ok(Results {
                    status: Status::Many(Vec::new()),
                    data: Vec::new(),
                    carriers: Vec::new(),
                }));
                continue;
            }
            self.enqueue(Job {
                id: 0,
                func: entry.name,
                ends,
                args,
                timeout: self.inner.config.task_timeout,
                sink,
                started: false,
                cancel: None,
                carried: carrier.is_some(),
                carrier,
            });
        }
        MapResults {
            rx,
            chunks,
            counts,
            received: 0,
            next: 0,
            pending: BTreeMap::new(),
            current: Vec::new().into_iter(),
            ordered,
            remaining: total,
            cancelled,
            waker,
        }
    }

    pub(crate) fn enqueue(&self, job: Job) {
        let refused = {
            let tx = lock(&self.inner.jobs_tx);
            match tx.as_ref() {
                Some(tx) => tx.send(job).err().map(|e| e.0),
                None => Some(job),
            }
        };
        if let Some(job) = refused {
            job.fail(TaskError::Abandoned);
        }
    }

    /// Stops taking new tasks, lets the queued and running ones finish, asks
    /// every worker to exit and reaps it (Python's `close()` + `join()`, or
    /// `executor.shutdown(wait=True)`). Tasks submitted afterwards fail with
    /// [`TaskError::Abandoned`]. Idempotent; dropping the pool does this.
    pub fn shutdown(&self) {
        self.stop_taking();
        self.join_supervisors();
    }

    /// Stops taking new tasks and returns at once (Python's `close()`, or
    /// `executor.shutdown(wait=False)`): queued and running tasks go on,
    /// and each worker exits when its slot has nothing left. Tasks
    /// submitted afterwards fail with [`TaskError::Abandoned`].
    /// [`shutdown`](Self::shutdown) (or dropping the pool) then waits for
    /// the workers.
    pub fn close(&self) {
        self.stop_taking();
    }

    /// Refuses new tasks from now on; the spare's keeper (if any) retires
    /// the spare.
    fn stop_taking(&self) {
        drop(lock(&self.inner.jobs_tx).take());
        if let Some(spare) = &self.inner.spare {
            spare.wake();
        }
    }

    /// Stops taking new tasks, cancels the queued ones (they fail with
    /// [`TaskError::Cancelled`]), lets the running ones finish, then asks
    /// every worker to exit and reaps it (Python's
    /// `executor.shutdown(cancel_futures=True)`). With `wait == false` it
    /// returns once the queued tasks are cancelled, without waiting for the
    /// running ones (`shutdown(wait=False, cancel_futures=True)`).
    pub fn shutdown_cancel_queued(&self, wait: bool) {
        self.stop_taking();
        while let Ok(job) = self.inner.jobs_rx.try_recv() {
            job.fail(TaskError::Cancelled);
        }
        if wait {
            self.join_supervisors();
        }
    }

    /// Kills every worker now (Python's `pool.terminate()`): running and
    /// queued tasks fail with [`TaskError::Cancelled`]. Waits until every
    /// worker is reaped. Idempotent.
    pub fn terminate(&self) {
        terminate_inner(&self.inner);
        self.join_supervisors();
        while let Ok(job) = self.inner.jobs_rx.try_recv() {
            job.fail(TaskError::Cancelled);
        }
    }

    fn join_supervisors(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        let me = thread::current().id();
        for t in threads {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

/// What [`ProcessPool::terminate`] does before it waits for the
/// supervisors (which reap the workers and cancel their tasks): also what
/// a Ctrl-C does (see `ctrlc.rs`), from a thread that cannot join them.
pub(crate) fn terminate_inner(inner: &Inner) {
    inner.terminating.store(true, Ordering::SeqCst);
    drop(lock(&inner.jobs_tx).take());
    drop(lock(&inner.stop_tx).take());
    for slot in inner
        .slots
        .iter()
        .chain(inner.spare.as_ref().map(|s| &s.pid))
    {
        if let Some(pid) = *lock(slot) {
            sys::kill(pid);
        }
    }
    while let Ok(job) = inner.jobs_rx.try_recv() {
        job.fail(TaskError::Cancelled);
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The results of [`ProcessPool::map`] and friends: an iterator of
/// `Result<R, TaskError>`, one per input item, that blocks until the next
/// result is in.
///
/// Dropping it cancels the chunks that have not started yet.
pub struct MapResults<R> {
    rx: Receiver<(usize, Vec<Result<R, TaskError>>)>,
    chunks: usize,
    /// The number of items of each chunk.
    counts: Vec<usize>,
    received: usize,
    next: usize,
    pending: BTreeMap<usize, Vec<Result<R, TaskError>>>,
    current: std::vec::IntoIter<Result<R, TaskError>>,
    ordered: bool,
    remaining: usize,
    cancelled: Arc<AtomicBool>,
    /// The task polling it as a `Stream`, woken when a chunk comes in.
    waker: Arc<Mutex<Option<std::task::Waker>>>,
}

impl<R> fmt::Debug for MapResults<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapResults")
            .field("remaining", &self.remaining)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<R> Iterator for MapResults<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.poll_item(true) {
            Poll::Ready(item) => item,
            // A blocking poll is always ready.
            Poll::Pending => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<R> MapResults<R> {
    /// The same results as a `Stream`, for async code: each is yielded as
    /// soon as it is in, without blocking the executor's thread (Python has
    /// no async `map`; `asyncio` users wrap the executor's futures).
    ///
    /// ```
    /// use futures_lite::StreamExt;
    ///
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// weft_process::register!(square);
    ///
    /// let pool = weft_process::ProcessPool::builder().processes(2).build().unwrap();
    /// let squares: Vec<u64> = futures_lite::future::block_on(
    ///     pool.map(square, 1..=4).into_stream().map(Result::unwrap).collect(),
    /// );
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// ```
    pub fn into_stream(self) -> MapStream<R> {
        MapStream(self)
    }
}

/// [`MapResults`] as a `Stream` ([`MapResults::into_stream`]). Dropping it
/// cancels the chunks that have not started yet.
pub struct MapStream<R>(MapResults<R>);

impl<R> fmt::Debug for MapStream<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MapStream").field(&self.0).finish()
    }
}

// Results are moved out, never pinned in place.
impl<R> Unpin for MapStream<R> {}

impl<R> futures_core::Stream for MapStream<R> {
    type Item = Result<R, TaskError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let results = &mut self.0;
        if let Poll::Ready(item) = results.poll_item(false) {
            return Poll::Ready(item);
        }
        *lock(&results.waker) = Some(cx.waker().clone());
        // A chunk that came in before the waker was set is seen here.
        results.poll_item(false)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.remaining, Some(self.0.remaining))
    }
}

impl<R> MapResults<R> {
    /// The next result: `Pending` only when `block` is false and the next
    /// result is not in yet.
    fn poll_item(&mut self, block: bool) -> Poll<Option<Result<R, TaskError>>> {
        loop {
            if let Some(item) = self.current.next() {
                self.remaining = self.remaining.saturating_sub(1);
                return Poll::Ready(Some(item));
            }
            if self.ordered {
                if let Some(chunk) = self.pending.remove(&self.next) {
                    self.next += 1;
                    self.current = chunk.into_iter();
                    continue;
                }
                if self.next >= self.chunks {
                    return Poll::Ready(None);
                }
            } else if self.received >= self.chunks {
                return Poll::Ready(None);
            }
            // Every chunk's sink sends exactly once, even when dropped, so
            // this cannot wait forever while chunks are outstanding.
            let got = if block {
                self.rx.recv().ok()
            } else {
                match self.rx.try_recv() {
                    Ok(got) => Some(got),
                    Err(crossbeam_channel::TryRecvError::Empty) => return Poll::Pending,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => None,
                }
            };
            let Some((index, items)) = got else {
                // Every sink is gone and some never sent (cannot happen; be
                // safe): what is missing is abandoned, never left out.
                let missing = if self.ordered {
                    let n = self.counts.get(self.next).copied().unwrap_or(0);
                    self.next += 1;
                    n
                } else {
                    self.received = self.chunks;
                    self.remaining
                };
                self.current = (0..missing)
                    .map(|_| Err(TaskError::Abandoned))
                    .collect::<Vec<_>>()
                    .into_iter();
                continue;
            };
            self.received += 1;
            if self.ordered {
                self.pending.insert(index, items);
            } else {
                self.current = items.into_iter();
            }
        }
    }
}

impl<R> ExactSizeIterator for MapResults<R> {}

impl<R> Drop for MapResults<R> {
    fn drop(&mut self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// A job's per-item results, as decoded from a worker's reply.
pub(crate) struct Results {
    pub(crate) status: Status,
    pub(crate) data: Vec<u8>,
    /// The results that hold channels, with them, by item (see
    /// `channel::carry`): decoded from there, not from `data`.
    pub(crate) carriers: Vec<(u32, ipc_channel::ipc::OpaqueIpcReceiver)>,
}

impl Results {
    pub(crate) fn with_carriers(
        mut self,
        carriers: Vec<(u32, ipc_channel::ipc::OpaqueIpcReceiver)>,
    ) -> Results {
        self.carriers = carriers;
        self
    }

    /// The values of the results that came with their channels, by item
    /// (`None` for the others, decoded from `data`). Each carrier's message
    /// was sent before the reply, so it is there already: an honest
    /// worker's never makes this wait.
    fn carried<R: DeserializeOwned>(&mut self) -> Vec<Option<Result<R, TaskError>>> {
        let carriers = std::mem::take(&mut self.carriers);
        let mut values: Vec<Option<Result<R, TaskError>>> = Vec::new();
        if carriers.is_empty() {
            return values;
        }
        values.resize_with(self.status.len(), || None);
        for (item, rx) in carriers {
            let Some(slot) = values.get_mut(item as usize) else {
                continue;
            };
            let rx = rx.to::<channel::Incoming<Vec<R>>>();
            let error = |message| TaskError::Serialization { message };
            *slot = Some(match channel::recv_caught(&rx, channel::Wait::Poll) {
                Ok(mut one) if one.len() == 1 => Ok(one.remove(0)),
                Ok(other) => Err(error(format!(
                    "the worker's result came with {} values instead of one",
                    other.len()
                ))),
                Err(e) => Err(error(format!(
                    "the result with its channels did not arrive: {e:?}"
                ))),
            });
        }
        values
    }

    fn items(&self) -> impl Iterator<Item = Result<&[u8], TaskError>> + '_ {
        let mut start = 0usize;
        self.status.iter().map(move |s| match s {
            ItemOut::Ok(end) => {
                let end = *end as usize;
                let bytes = self.data.get(start..end).unwrap_or_default();
                start = end;
                Ok(bytes)
            }
            ItemOut::Err(ErrKind::Panicked, message) => Err(TaskError::Panicked {
                message: message.clone(),
            }),
            ItemOut::Err(_, message) => Err(TaskError::Serialization {
                message: message.clone(),
            }),
        })
    }
}

/// Where a job's outcome goes.
pub(crate) trait Sink: Send {
    /// Marks the job started; `false` if it was cancelled and must not run.
    fn start(&mut self) -> bool;
    /// Delivers the outcome.
    fn finish(self: Box<Self>, outcome: Result<Results, TaskError>);
}

struct SingleSink<R> {
    completer: Option<Completer<R>>,
}

impl<R: DeserializeOwned + Send + 'static> Sink for SingleSink<R> {
    fn start(&mut self) -> bool {
        self.completer.as_ref().is_some_and(Completer::start)
    }

    fn finish(mut self: Box<Self>, outcome: Result<Results, TaskError>) {
        let Some(completer) = self.completer.take() else {
            return;
        };
        completer.complete(outcome.and_then(single_result));
    }
}

/// The value of a one-argument job's results.
fn single_result<R: DeserializeOwned + 'static>(mut results: Results) -> Result<R, TaskError> {
    if let Some(Some(value)) = results.carried::<R>().into_iter().next()
        && matches!(results.status.first(), Some(ItemOut::Ok(_)))
    {
        return value;
    }
    if let [ItemOut::Ok(end)] = results.status[..]
        && end as usize == results.data.len()
    {
        // The usual case: move the buffer (a `Vec<u8>` result is not copied
        // again).
        let (value, leftover) = decode_owned(results.data);
        if let Some(buf) = leftover {
            registry::recycle(buf);
        }
        return value.map_err(|e| TaskError::Serialization {
            message: format!("the result could not be deserialized: {e}"),
        });
    }
    match results.items().next() {
        Some(Ok(bytes)) => decode_result(bytes),
        Some(Err(e)) => Err(e),
        None => Err(TaskError::Serialization {
            message: "the worker returned no result".into(),
        }),
    }
}

impl Results {
    /// The result bytes of a one-argument job, undecoded (moved, not
    /// copied, in the usual case).
    pub(crate) fn into_single_bytes(self) -> Result<Vec<u8>, TaskError> {
        if !self.carriers.is_empty() {
            return Err(TaskError::Serialization {
                message: "the result holds weft channels or shared memory, which cannot be \
                          returned encoded"
                    .into(),
            });
        }
        if let [ItemOut::Ok(end)] = self.status[..]
            && end as usize == self.data.len()
        {
            return Ok(self.data);
        }
        match self.items().next() {
            Some(Ok(bytes)) => Ok(bytes.to_vec()),
            Some(Err(e)) => Err(e),
            None => Err(TaskError::Serialization {
                message: "the worker returned no result".into(),
            }),
        }
    }
}

fn decode_result<R: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<R, TaskError> {
    decode(bytes).map_err(|e| TaskError::Serialization {
        message: format!("the result could not be deserialized: {e}"),
    })
}

type ChunkOut<R> = (usize, Vec<Result<R, TaskError>>);

struct ChunkSink<R> {
    index: usize,
    count: usize,
    /// Items whose argument could not be encoded, by position.
    prefailed: Vec<(usize, TaskError)>,
    tx: Option<Sender<ChunkOut<R>>>,
    cancelled: Arc<AtomicBool>,
    waker: Arc<Mutex<Option<std::task::Waker>>>,
}

impl<R: DeserializeOwned + Send + 'static> Sink for ChunkSink<R> {
    fn start(&mut self) -> bool {
        !self.cancelled.load(Ordering::Relaxed)
    }

    fn finish(mut self: Box<Self>, outcome: Result<Results, TaskError>) {
        if self.tx.is_none() {
            return;
        }
        let mut prefailed = std::mem::take(&mut self.prefailed).into_iter().peekable();
        let mut out = Vec::with_capacity(self.count);
        match outcome {
            Ok(mut results) => {
                let mut carried = results.carried::<R>().into_iter();
                let mut items = results.items();
                for i in 0..self.count {
                    if prefailed.peek().is_some_and(|(p, _)| *p == i) {
                        out.extend(prefailed.next().map(|(_, e)| Err(e)));
                        continue;
                    }
                    let value = carried.next().flatten();
                    out.push(match items.next() {
                        Some(Ok(bytes)) => value.unwrap_or_else(|| decode_result(bytes)),
                        Some(Err(e)) => Err(e),
                        None => Err(TaskError::Serialization {
                            message: "the worker returned too few results".into(),
                        }),
                    });
                }
            }
            Err(e) => {
                for i in 0..self.count {
                    if prefailed.peek().is_some_and(|(p, _)| *p == i) {
                        out.extend(prefailed.next().map(|(_, e)| Err(e)));
                    } else {
                        out.push(Err(e.clone()));
                    }
                }
            }
        }
        // Taken only now: until here, a panic would still send the chunk
        // (as abandoned) from `Drop`.
        let Some(tx) = self.tx.take() else { return };
        if let Err(unsent) = tx.send((self.index, out)) {
            // The iterator is gone: the results are dropped here, on the
            // pool's thread, and their `Drop` is user code.
            registry::drop_quietly(unsent.0);
        }
        wake(&self.waker);
    }
}

/// Wakes the task polling a [`MapResults`] stream, if any. An executor's
/// waker that panics is reported and ignored: it cannot take a pool thread
/// down.
fn wake(waker: &Mutex<Option<std::task::Waker>>) {
    if let Some(w) = lock(waker).take()
        && let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| w.wake()))
    {
        eprintln!(
            "weft-process: waking a task panicked (ignored): {}",
            weft_sync::into_panic_message(payload)
        );
    }
}

impl<R> Drop for ChunkSink<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let out = (0..self.count).map(|_| Err(TaskError::Abandoned)).collect();
            let _ = tx.send((self.index, out));
            wake(&self.waker);
        }
    }
}
