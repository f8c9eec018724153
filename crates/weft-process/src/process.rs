//! [`Process`]: one registered function run in a fresh child process
//! (Python's `multiprocessing.Process`), over ipc-channel.
//!
//! # How a child starts
//!
//! 1. The parent makes an `IpcOneShotServer` and starts the current
//!    executable with the server's name, a 256-bit secret and its own pid
//!    in [`ENV_PROCESS`] (stdin is `/dev/null`; stdout and stderr are
//!    shared; no other descriptor is inherited).
//! 2. The child, before `main` (the init hook, or [`main_hook`]), arms
//!    death-with-parent, connects to the server and sends its `Hello`: the
//!    secret, its pid, the fingerprint of its table of registered
//!    functions, and the sending end of a channel for its boot messages.
//! 3. The parent checks all three, then sends the function's registered
//!    name with the sending end of the result channel, and then the
//!    argument, as a value of the function's own argument type (so it may
//!    carry [`Pipe`](crate::Pipe) ends, [`Queue`](crate::Queue) handles
//!    and any other ipc-channel channel or shared memory).
//! 4. The child runs the function (a panic is caught) and sends back its
//!    result or the panic's message, then exits (code 0, or 1 after a
//!    panic, as Python's children do).
//!
//! A keeper thread per child watches it while the parent waits in
//! `accept` (ipc-channel's accept has no timeout): if the child dies before
//! connecting, the keeper connects to the server itself with a `Died`
//! message, so `accept` returns and `start` fails with the child's exit
//! status; if it neither connects nor dies within the start timeout, the
//! keeper kills it (which ends an `accept` stuck on a half-sent message
//! too). Afterwards the keeper receives the result (a panic while decoding
//! it fails the result, not the parent), waits for the child to exit,
//! reaps it and completes the [`TaskHandle`] that `join` waits on. The
//! keeper is the only reaper: signals are sent under the same lock as the
//! reap, so a pid is never signalled after it could have been reused.

use std::ffi::OsString;
use std::fmt;
use std::future::IntoFuture;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use ipc_channel::ipc::{self, IpcOneShotServer, IpcReceiver, IpcSender, OpaqueIpcSender};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weft_sync::{Completer, TaskError, TaskHandle, WorkerExit};

use crate::boot::{Accepted, BootEnv, accept_watched, constant_time_eq, exit_from};
use crate::channel::{Incoming, RecvFail, SendFail, Wait, recv_caught, send_ref};
use crate::pool::{Error, lock};
use crate::registry;
use crate::sys;
use crate::worker::EXIT_BOOTSTRAP;

/// The environment variable that starts a [`Process`] child: the server's
/// name, the secret (hex) and the parent's pid, one a line.
pub(crate) const ENV_PROCESS: &str = "WEFT_PROCESS_CHILD";

/// A test hook: makes the child fail its start in the way named
/// (`exit-before-connect`, `abort-before-connect`, `hang-before-connect`,
/// `wrong-secret`, `garbage-hello`). It can only make this child fail.
const ENV_TEST_CHILD: &str = "WEFT_PROCESS_TEST_CHILD";

/// Exit status of a child (or a pool worker) whose own bootstrap or serving
/// code panicked.
pub(crate) const EXIT_PANIC: i32 = 70;

/// How long a child waits for its boot messages once connected.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// The start timeout of a [`Process`] unless set.
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The child's first message.
#[derive(Serialize, Deserialize)]
enum Hello {
    Child {
        secret: Vec<u8>,
        pid: u32,
        fingerprint: u64,
        /// Where the parent sends [`Boot`] and then the argument.
        boot: OpaqueIpcSender,
    },
    /// Sent by the start's watchdog when the child died before connecting.
    Died,
}

impl crate::boot::Greeting for Hello {
    fn died() -> Self {
        Hello::Died
    }
}

/// What the child is to run, and where its outcome goes.
#[derive(Serialize, Deserialize)]
struct Boot {
    func: String,
    result: OpaqueIpcSender,
}

/// What the child sends back.
#[derive(Serialize, Deserialize)]
enum Outcome<R> {
    Ok(R),
    Panicked(String),
    Serialization(String),
}

/// A child's boot channel and result sender, handed to the registered
/// function's entry. Used by [`register!`](crate::register); not part of
/// the public API.
#[doc(hidden)]
pub struct ChildIo {
    rx: IpcReceiver<Incoming<Boot>>,
    result: OpaqueIpcSender,
}

/// Runs `f` in a child: receives its argument, runs it, sends the
/// outcome. Returns the exit code. Used by [`register!`](crate::register).
#[doc(hidden)]
pub fn run_process<F, A, R>(io: ChildIo, f: F) -> i32
where
    F: Fn(A) -> R,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
{
    let rx = io.rx.to_opaque().to::<Incoming<A>>();
    let outcome: Outcome<R> = match recv_caught(&rx, Wait::For(BOOT_TIMEOUT)) {
        Ok(arg) => match catch_unwind(AssertUnwindSafe(|| f(arg))) {
            Ok(r) => Outcome::Ok(r),
            Err(payload) => Outcome::Panicked(weft_sync::into_panic_message(payload)),
        },
        Err(fail) => Outcome::Serialization(format!(
            "the child could not receive its argument: {}",
            fail_text(fail)
        )),
    };
    let mut code = if matches!(outcome, Outcome::Ok(_)) {
        0
    } else {
        1
    };
    if let Err(SendFail::Serialization(text)) = send_ref(&io.result, &outcome) {
        code = 1;
        let _ = send_ref(
            &io.result,
            &Outcome::<()>::Serialization(format!("the child could not send its result: {text}")),
        );
    }
    registry::drop_quietly(outcome);
    code
}

fn fail_text(fail: RecvFail) -> String {
    match fail {
        RecvFail::Empty => "nothing arrived in time".into(),
        RecvFail::Closed => "the sender is gone".into(),
        RecvFail::Serialization(text) | RecvFail::Io(text) => text,
    }
}

/// What a child runs instead of `main`. Returns its exit code.
pub(crate) fn serve_child(boot: OsString) -> i32 {
    sys::ignore_sigpipe();
    let Some(BootEnv {
        server,
        mut secret,
        parent,
    }) = BootEnv::parse(&boot)
    else {
        eprintln!("weft-process: child started without a valid bootstrap; exiting");
        return EXIT_BOOTSTRAP;
    };
    if !sys::die_with_parent(parent) {
        return EXIT_BOOTSTRAP;
    }
    let hook = std::env::var(ENV_TEST_CHILD).unwrap_or_default();
    match hook.as_str() {
        "exit-before-connect" => return 3,
        "abort-before-connect" => std::process::abort(),
        "hang-before-connect" => {
            thread::sleep(Duration::from_secs(60));
            return 0;
        }
        "wrong-secret" => secret.iter_mut().for_each(|b| *b ^= 0xff),
        _ => {}
    }
    let Ok((boot_tx, boot_rx)) = ipc::channel::<Incoming<Boot>>() else {
        return EXIT_BOOTSTRAP;
    };
    if hook == "garbage-hello" {
        if let Ok(tx) = IpcSender::<Vec<u8>>::connect(server.to_string()) {
            let _ = tx.send(vec![0xff; 64]);
        }
        thread::sleep(Duration::from_secs(60));
        return 0;
    }
    let Ok(hello_tx) = IpcSender::<Incoming<Hello>>::connect(server.to_string()) else {
        return EXIT_BOOTSTRAP;
    };
    let hello = Hello::Child {
        secret,
        pid: std::process::id(),
        fingerprint: registry::fingerprint(),
        boot: boot_tx.to_opaque(),
    };
    if send_ref(&hello_tx.to_opaque(), &hello).is_err() {
        return EXIT_BOOTSTRAP;
    }
    drop(hello);
    let boot = match recv_caught(&boot_rx, Wait::For(BOOT_TIMEOUT)) {
        Ok(boot) => boot,
        Err(_) => return EXIT_BOOTSTRAP,
    };
    let Some(entry) = registry::lookup_name(&boot.func) else {
        // Outcome::Serialization encodes the same whatever the result type.
        let _ = send_ref(
            &boot.result,
            &Outcome::<()>::Serialization(format!(
                "the child has no function registered as `{}`: the executable does not match \
                 the parent (was it rebuilt while the program ran?)",
                boot.func
            )),
        );
        return EXIT_BOOTSTRAP;
    };
    (entry.process)(ChildIo {
        rx: boot_rx,
        result: boot.result,
    })
}

/// What the parent knows of a started child.
struct Shared {
    state: Mutex<ChildState>,
}

struct ChildState {
    /// How the child ended, once the keeper has reaped it.
    reaped: Option<WorkerExit>,
}

impl Shared {
    /// How the child ended, if it has (reaped or not).
    fn exit(&self, pid: u32) -> Option<WorkerExit> {
        let st = lock(&self.state);
        match &st.reaped {
            Some(exit) => Some(exit.clone()),
            // Not reaped: the pid is still this child's.
            None => sys::peek_exit(pid).map(exit_from),
        }
    }

    /// Sends `signal` to the child unless it has been reaped.
    fn signal(&self, pid: u32, signal: libc::c_int) {
        let st = lock(&self.state);
        if st.reaped.is_none() {
            sys::signal(pid, signal);
        }
    }
}

/// What the starting thread hands its keeper.
enum ToKeeper<R> {
    Child(Child),
    Run(IpcReceiver<Incoming<Outcome<R>>>, Completer<R>),
}

/// Settings that apply when the process starts.
#[derive(Clone)]
struct Settings {
    start_timeout: Duration,
    env: Vec<(OsString, Option<OsString>)>,
}

type Starter<R> = Box<dyn FnOnce(&str, &Settings) -> Result<Running<R>, Error> + Send>;

enum Phase<R> {
    New(Starter<R>),
    Running(Running<R>),
    /// `start` failed: the process never ran.
    Failed,
}

struct Running<R> {
    pid: u32,
    shared: Arc<Shared>,
    handle: TaskHandle<R>,
}

/// One registered function run with its argument in a fresh child process:
/// Python's `multiprocessing.Process`.
///
/// The child is this executable, started in process mode before `main`
/// (see [What you write](crate#what-you-write)); the function is found
/// there by its registered name ([`register!`](crate::register)), and its
/// argument and result are `serde` values, carried by ipc-channel, so they
/// may hold [`Pipe`](crate::Pipe) ends, [`Queue`](crate::Queue) handles
/// or other ipc-channel channels and shared memory.
///
/// - [`start`](Self::start) (or [`Process::spawn`]) starts the child and
///   sends the argument; it fails with a clear [`Error`] for a function
///   that is not registered, an argument that will not serialize, or a
///   child that dies, or does not connect, before it gets the argument.
/// - [`join`](Self::join) waits for the child to exit and gives the
///   function's result, or a [`TaskError`] saying how it failed:
///   [`Panicked`](TaskError::Panicked) with the message,
///   [`WorkerLost`](TaskError::WorkerLost) with the exit code or signal
///   for a child that died without a result (a crash, `exit`,
///   [`terminate`](Self::terminate), [`kill`](Self::kill)),
///   [`Serialization`](TaskError::Serialization) for an argument the child
///   could not decode or a result that would not travel back. A `Process`
///   is also a `Future` of the same outcome (`process.await`).
/// - [`is_alive`](Self::is_alive), [`pid`](Self::pid),
///   [`exit_status`](Self::exit_status) (Python's `exitcode`),
///   [`terminate`](Self::terminate) (`SIGTERM`), [`kill`](Self::kill)
///   (`SIGKILL`), [`name`](Self::name).
///
/// A child dies with its parent (`PR_SET_PDEATHSIG` on Linux), holds only
/// stdin (`/dev/null`), stdout, stderr and its channels, and is always
/// reaped, joined or not: dropping a `Process` detaches it (the child runs
/// on; a thread of the parent reaps it when it exits). The child exits with
/// code 0 after the function returns and 1 after it panics (the panic is
/// printed on its stderr, as Python prints the traceback).
///
/// # Examples
///
/// The seed's snippet, one to one:
///
/// ```
/// use weft_process::Process;
///
/// fn task1(_: ()) {
///     println!("Task 1");
/// }
/// fn task2(_: ()) {
///     println!("Task 2");
/// }
/// weft_process::register!(task1, task2);
///
/// let mut p1 = Process::new(task1, ());
/// let mut p2 = Process::new(task2, ());
/// p1.start().unwrap();
/// p2.start().unwrap();
/// p1.join().unwrap();
/// p2.join().unwrap();
/// ```
///
/// A result, a panic, and a child that is terminated:
///
/// ```
/// use std::time::Duration;
/// use weft_process::{Process, TaskError, WorkerExit};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// fn fail(why: String) -> u64 {
///     panic!("{why}")
/// }
/// fn sleep(ms: u64) {
///     std::thread::sleep(Duration::from_millis(ms));
/// }
/// weft_process::register!(square, fail, sleep);
///
/// assert_eq!(Process::spawn(square, 12).unwrap().join(), Ok(144));
/// let err = Process::spawn(fail, "no".to_string()).unwrap().join().unwrap_err();
/// assert_eq!(err, TaskError::Panicked { message: "no".into() });
///
/// let p = Process::spawn(sleep, 60_000).unwrap();
/// assert!(p.is_alive());
/// p.terminate();
/// assert!(p.wait_timeout(Duration::from_secs(30)));
/// assert_eq!(p.exit_status(), Some(WorkerExit::Signal(15)));
/// assert!(matches!(p.join(), Err(TaskError::WorkerLost { .. })));
/// ```
pub struct Process<R> {
    name: String,
    settings: Settings,
    phase: Phase<R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Process");
        d.field("name", &self.name);
        match &self.phase {
            Phase::New(_) => d.field("state", &"not started"),
            Phase::Failed => d.field("state", &"failed to start"),
            Phase::Running(r) => d.field("pid", &r.pid).field("exit", &r.shared.exit(r.pid)),
        };
        d.finish()
    }
}

static NEXT_NAME: AtomicU64 = AtomicU64::new(1);

impl<R> Process<R>
where
    R: DeserializeOwned + Send + 'static,
{
    /// A process that will run `target(arg)` once [started](Self::start)
    /// (Python's `Process(target=f, args=(x,))`). `target` must be
    /// registered with [`register!`](crate::register); that is checked at
    /// `start`. Its default name is `Process-N`, as in Python.
    pub fn new<F, A>(target: F, arg: A) -> Process<R>
    where
        F: Fn(A) -> R + 'static,
        A: Serialize + Send + 'static,
    {
        let _ = target;
        let starter: Starter<R> =
            Box::new(move |name, settings| start_child::<F, A, R>(name, settings, &arg));
        Process {
            name: format!("Process-{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed)),
            settings: Settings {
                start_timeout: DEFAULT_START_TIMEOUT,
                env: Vec::new(),
            },
            phase: Phase::New(starter),
        }
    }

    /// [`new`](Self::new) and [`start`](Self::start) in one call.
    ///
    /// ```
    /// fn double(x: i32) -> i32 {
    ///     2 * x
    /// }
    /// weft_process::register!(double);
    ///
    /// let p = weft_process::Process::spawn(double, 21).unwrap();
    /// assert_eq!(p.join(), Ok(42));
    /// ```
    pub fn spawn<F, A>(target: F, arg: A) -> Result<Process<R>, Error>
    where
        F: Fn(A) -> R + 'static,
        A: Serialize + Send + 'static,
    {
        let mut p = Process::new(target, arg);
        p.start()?;
        Ok(p)
    }

    /// Starts the child and sends it the argument (Python's `start()`).
    /// Returns once the child has connected and received its argument; the
    /// function then runs while this thread goes on.
    ///
    /// Errors: [`Error::UnregisteredTarget`], [`Error::Argument`] (the
    /// child is killed), [`Error::ChildDied`] (it died before connecting,
    /// with its exit status), [`Error::StartTimeout`] (it did not connect
    /// within [`start_timeout`](Self::start_timeout); it is killed),
    /// [`Error::AlreadyStarted`], [`Error::Spawn`], [`Error::Channel`] and
    /// [`Error::ProcessStart`]. A process whose start failed never ran;
    /// joining it gives [`TaskError::Cancelled`].
    pub fn start(&mut self) -> Result<(), Error> {
        let phase = std::mem::replace(&mut self.phase, Phase::Failed);
        let starter = match phase {
            Phase::New(starter) => starter,
            other => {
                self.phase = other;
                return Err(Error::AlreadyStarted {
                    name: self.name.clone(),
                });
            }
        };
        let running = starter(&self.name, &self.settings)?;
        self.phase = Phase::Running(running);
        Ok(())
    }
}

impl<R> Process<R> {
    /// Names the process (Python's `name=`); shown in errors and in the
    /// name of its keeper thread.
    pub fn with_name(mut self, name: impl Into<String>) -> Process<R> {
        self.name = name.into();
        self
    }

    /// How long [`start`](Self::start) waits for the child to connect
    /// before killing it (default 60 s; a huge duration: no limit).
    pub fn start_timeout(mut self, timeout: Duration) -> Process<R> {
        self.settings.start_timeout = timeout;
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Process<R> {
        self.settings.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Process<R> {
        self.settings.env.push((key.into(), None));
        self
    }

    /// The process's name (`Process-N` unless set with
    /// [`with_name`](Self::with_name)).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process id, once started (Python's `pid`).
    pub fn pid(&self) -> Option<u32> {
        match &self.phase {
            Phase::Running(r) => Some(r.pid),
            _ => None,
        }
    }

    /// Whether the child has been started and has not exited yet (Python's
    /// `is_alive()`).
    pub fn is_alive(&self) -> bool {
        match &self.phase {
            Phase::Running(r) => r.shared.exit(r.pid).is_none(),
            _ => false,
        }
    }

    /// How the child ended: `None` while it runs or before it starts
    /// (Python's `exitcode`, where a negative code is a signal).
    pub fn exit_status(&self) -> Option<WorkerExit> {
        match &self.phase {
            Phase::Running(r) => r.shared.exit(r.pid),
            _ => None,
        }
    }

    /// Sends `SIGTERM` to the child (Python's `terminate()`); nothing if it
    /// has not started or has already exited. Its result, if it had none
    /// yet, becomes [`TaskError::WorkerLost`] with
    /// [`WorkerExit::Signal`]`(15)` (`SIGTERM`) (unless it handles the signal).
    pub fn terminate(&self) {
        if let Phase::Running(r) = &self.phase {
            r.shared.signal(r.pid, libc::SIGTERM);
        }
    }

    /// Sends `SIGKILL` to the child (Python's `kill()`); nothing if it has
    /// not started or has already exited.
    pub fn kill(&self) {
        if let Phase::Running(r) = &self.phase {
            r.shared.signal(r.pid, libc::SIGKILL);
        }
    }

    /// Waits for the child to exit (and be reaped), without taking its
    /// result (Python's `join()`). Returns at once if it never started.
    pub fn wait(&self) {
        if let Phase::Running(r) = &self.phase {
            r.handle.wait();
        }
    }

    /// Waits at most `timeout` for the child to exit (Python's
    /// `join(timeout)`): `true` if it has exited (or never started).
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        match &self.phase {
            Phase::Running(r) => r.handle.wait_timeout(timeout),
            _ => true,
        }
    }

    /// Waits for the child to exit and gives the function's result, or how
    /// it failed (see the [type's documentation](Process)).
    pub fn join(self) -> Result<R, TaskError> {
        match self.phase {
            Phase::Running(r) => r.handle.join(),
            _ => Err(TaskError::Cancelled),
        }
    }

    /// [`join`](Self::join) with a time limit: the outcome, or the process
    /// back if it is still running after `timeout` (it is not stopped:
    /// [`terminate`](Self::terminate) or [`kill`](Self::kill) it, then join
    /// again).
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_process::{Process, TaskError};
    ///
    /// fn nap(ms: u64) {
    ///     std::thread::sleep(Duration::from_millis(ms));
    /// }
    /// weft_process::register!(nap);
    ///
    /// let p = Process::spawn(nap, 60_000).unwrap();
    /// let p = p.join_timeout(Duration::from_millis(10)).unwrap_err();
    /// p.kill();
    /// assert!(matches!(p.join(), Err(TaskError::WorkerLost { .. })));
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<R, TaskError>, Process<R>> {
        if self.wait_timeout(timeout) {
            Ok(self.join())
        } else {
            Err(self)
        }
    }
}

impl<R> IntoFuture for Process<R> {
    type Output = Result<R, TaskError>;
    type IntoFuture = TaskHandle<R>;

    /// The outcome of [`join`](Process::join), as a future.
    fn into_future(self) -> TaskHandle<R> {
        match self.phase {
            Phase::Running(r) => r.handle,
            _ => TaskHandle::ready(Err(TaskError::Cancelled)),
        }
    }
}

/// The hint added to start errors where the init hook is not built in.
fn hint() -> String {
    if sys::HAS_INIT_HOOK {
        String::new()
    } else {
        " (on this platform the program must call weft_process::main_hook() first thing in main)"
            .into()
    }
}

fn start_child<F, A, R>(name: &str, settings: &Settings, arg: &A) -> Result<Running<R>, Error>
where
    F: 'static,
    A: Serialize,
    R: DeserializeOwned + Send + 'static,
{
    let entry = registry::lookup_type::<F>()
        .ok_or_else(|| Error::UnregisteredTarget(registry::unregistered_message::<F>()))?;
    let fail = |reason: String| Error::ProcessStart {
        name: name.to_string(),
        reason,
    };
    if std::env::var_os(ENV_PROCESS).is_some() {
        return Err(fail(
            "this process was itself started as a weft-process child but is running `main` \
             instead of its target: call weft_process::main_hook() first thing in main"
                .into(),
        ));
    }
    let program = std::env::current_exe()
        .map_err(|e| fail(format!("the current executable cannot be found: {e}")))?;
    let (server, server_name) =
        IpcOneShotServer::<Incoming<Hello>>::new().map_err(Error::Channel)?;
    let (result_tx, result_rx) = ipc::channel::<Incoming<Outcome<R>>>().map_err(Error::Channel)?;
    let secret = sys::random_secret().map_err(|e| fail(format!("no random secret: {e}")))?;

    let shared = Arc::new(Shared {
        state: Mutex::new(ChildState { reaped: None }),
    });
    // The keeper first, so that a child is never started without one.
    let (to_keeper, keeper_rx) = mpsc::channel::<ToKeeper<R>>();
    let deadline = Instant::now().checked_add(settings.start_timeout);
    {
        let shared = shared.clone();
        thread::Builder::new()
            .name(format!("weft-process-keeper-{name}"))
            .stack_size(256 * 1024)
            .spawn(move || keep(keeper_rx, shared))
            .map_err(|e| fail(format!("no thread to watch the child: {e}")))?;
    }

    let mut cmd = Command::new(&program);
    cmd.env(ENV_PROCESS, BootEnv::encode(&server_name, &secret))
        .stdin(Stdio::null());
    crate::boot::apply_env(&mut cmd, &settings.env);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id();
    if to_keeper.send(ToKeeper::Child(child)).is_err() {
        // The keeper is gone (it cannot be): nobody could reap the child.
        return Err(fail("the child's keeper thread stopped".into()));
    }

    // Kills the child (the keeper reaps it) and gives `e`.
    let abandon = |e: Error| {
        shared.signal(pid, libc::SIGKILL);
        e
    };
    let boot = match accept_watched(server, &server_name, pid, deadline, &|| false) {
        Accepted::Hello(
            _,
            Hello::Child {
                secret: s,
                pid: p,
                fingerprint,
                boot,
            },
        ) => {
            if !constant_time_eq(&s, &secret) {
                return Err(abandon(fail(
                    "a process that does not know the child's secret connected in its place".into(),
                )));
            }
            if p != pid {
                return Err(abandon(fail(format!(
                    "the process that connected (pid {p}) is not the child started (pid {pid})"
                ))));
            }
            if fingerprint != registry::fingerprint() {
                return Err(abandon(fail(format!(
                    "the child's table of registered functions differs from the parent's: {} \
                     was replaced or rebuilt after this program started",
                    program.display()
                ))));
            }
            boot
        }
        Accepted::Hello(_, Hello::Died) => {
            // Not reaped before the keeper learns the start failed.
            let exit = shared
                .exit(pid)
                .unwrap_or_else(|| WorkerExit::Unknown("it closed its channel".into()));
            return Err(Error::ChildDied {
                name: name.to_string(),
                exit,
                hint: hint(),
            });
        }
        Accepted::TimedOut | Accepted::Cancelled => {
            return Err(Error::StartTimeout {
                name: name.to_string(),
                timeout: settings.start_timeout,
                hint: hint(),
            });
        }
        Accepted::Refused(why) => {
            return Err(abandon(fail(format!(
                "the child's first message was refused: {why}"
            ))));
        }
    };
    let boot_msg = Boot {
        func: entry.name.to_string(),
        result: result_tx.to_opaque(),
    };
    // A closed channel means the child died: `join` says how.
    match send_ref(&boot, &boot_msg) {
        Ok(()) | Err(SendFail::Closed) => {}
        Err(SendFail::Serialization(e) | SendFail::Io(e)) => {
            return Err(abandon(fail(format!(
                "the child's boot message failed: {e}"
            ))));
        }
    }
    // Our copy of the result sender goes: only the child holds one now.
    drop(boot_msg);
    match send_ref(&boot, arg) {
        Ok(()) | Err(SendFail::Closed) => {}
        Err(SendFail::Serialization(reason) | SendFail::Io(reason)) => {
            return Err(abandon(Error::Argument {
                name: name.to_string(),
                reason,
            }));
        }
    }
    drop(boot);
    let (completer, handle) = TaskHandle::pair();
    // The keeper lives until it has reaped the child.
    let _ = to_keeper.send(ToKeeper::Run(result_rx, completer));
    Ok(Running {
        pid,
        shared,
        handle,
    })
}

/// The keeper thread of one child: receives its outcome, reaps it,
/// completes its handle. Until the start has succeeded or failed (the
/// starting thread sends `Run` or drops its sender) it only waits: the
/// start's own watchdog never reaps, so the pid stays this child's.
fn keep<R>(rx: mpsc::Receiver<ToKeeper<R>>, shared: Arc<Shared>)
where
    R: DeserializeOwned,
{
    let Ok(ToKeeper::Child(mut child)) = rx.recv() else {
        return;
    };
    let pid = child.id();
    let run = match rx.recv() {
        Ok(ToKeeper::Run(result_rx, completer)) => {
            // Blocks until the child sends its outcome or exits (it holds
            // the only sender).
            Some((recv_caught(&result_rx, Wait::Block), completer))
        }
        _ => None,
    };
    sys::wait_exited(pid);
    let exit = {
        let mut st = lock(&shared.state);
        let exit = child
            .wait()
            .map(crate::supervisor::exit_of)
            .unwrap_or_else(|e| WorkerExit::Unknown(e.to_string()));
        st.reaped = Some(exit.clone());
        exit
    };
    if let Some((got, completer)) = run {
        let outcome = match got {
            Ok(Outcome::Ok(r)) => Ok(r),
            Ok(Outcome::Panicked(message)) => Err(TaskError::Panicked { message }),
            Ok(Outcome::Serialization(message)) | Err(RecvFail::Serialization(message)) => {
                Err(TaskError::Serialization { message })
            }
            Err(RecvFail::Closed | RecvFail::Empty | RecvFail::Io(_)) => {
                Err(TaskError::WorkerLost { exit })
            }
        };
        completer.complete(outcome);
    }
}
