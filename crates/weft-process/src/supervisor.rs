//! The supervisor thread that owns each worker process.
//!
//! Each worker slot has one supervisor thread. It takes jobs from the
//! pool's queue, keeps at most [`PIPELINE`] of them in flight on its worker
//! (so neither side's socket buffer can fill while the other waits), reads
//! the replies, enforces the head job's timeout, and replaces the worker
//! when it dies, hangs or misbehaves. Only the job the worker was running
//! fails; jobs queued behind it go to the replacement. While it has nothing
//! to do it parks its worker in [`Inner::parked`] for `ProcessPool::apply`'s
//! direct path.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{TryRecvError, select};
use ipc_channel::IpcError;
use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use weft_sync::{TaskError, WorkerExit};

use crate::pool::{Error, Inner, Results, Sink, lock};
use crate::registry;
use crate::sys::{self, Frame};
use crate::wire::{Blob, FromWorker, ItemOut, MAX_FRAME, PROTOCOL, ToWorker};
use crate::worker::{ENV_WORKER, to_hex};

/// Jobs a worker may hold at once: the one it runs and the next one.
const PIPELINE: usize = 2;

/// A unit of work: one task, or one chunk of a `map`.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) func: &'static str,
    pub(crate) ends: Vec<u64>,
    pub(crate) args: Vec<u8>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) sink: Box<dyn Sink>,
    pub(crate) started: bool,
}

impl Job {
    pub(crate) fn fail(self, error: TaskError) {
        self.sink.finish(Err(error));
    }
}

pub(crate) struct InFlight {
    job: Job,
    /// When the job became the one the worker runs (its timeout's start).
    since: Option<Instant>,
}

/// A live worker process and its channels.
pub(crate) struct Worker {
    pub(crate) child: Child,
    pub(crate) tasks: IpcSender<ToWorker>,
    pub(crate) results: IpcReceiver<FromWorker>,
    pub(crate) fd: Option<RawFd>,
    pub(crate) sent: u64,
}

pub(crate) enum Recv {
    Msg(FromWorker),
    TimedOut,
    Closed,
    Bad(String),
}

impl Worker {
    /// Receives the next message, refusing oversized or fragmented ones
    /// before ipc-channel reads them, and never blocking past `deadline`.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Recv {
        if let Some(fd) = self.fd {
            match sys::wait_frame(fd, deadline, MAX_FRAME) {
                Frame::Ready => {}
                Frame::TimedOut => return Recv::TimedOut,
                Frame::Closed => return Recv::Closed,
                Frame::Refused(why) => return Recv::Bad(why),
            }
            return match catch_unwind(AssertUnwindSafe(|| self.results.recv())) {
                Ok(Ok(msg)) => Recv::Msg(msg),
                Ok(Err(e)) => closed_or_bad(e),
                Err(_) => {
                    Recv::Bad("ipc-channel panicked while reading the worker's message".into())
                }
            };
        }
        // Fallback when the receiver's fd is unknown: ipc-channel's own
        // receive, without the size guard.
        loop {
            let outcome = match deadline {
                None => self
                    .results
                    .recv()
                    .map_err(ipc_channel::TryRecvError::IpcError),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Recv::TimedOut;
                    }
                    self.results.try_recv_timeout(left)
                }
            };
            match outcome {
                Ok(msg) => return Recv::Msg(msg),
                Err(ipc_channel::TryRecvError::Empty) => continue,
                Err(ipc_channel::TryRecvError::IpcError(e)) => return closed_or_bad(e),
            }
        }
    }
}

pub(crate) fn closed_or_bad(e: IpcError) -> Recv {
    match e {
        IpcError::Disconnected => Recv::Closed,
        IpcError::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            Recv::Closed
        }
        e => Recv::Bad(format!(
            "the worker sent a message that could not be decoded: {e}"
        )),
    }
}

pub(crate) fn exit_of(status: ExitStatus) -> WorkerExit {
    if let Some(code) = status.code() {
        WorkerExit::Code(code)
    } else if let Some(signal) = status.signal() {
        WorkerExit::Signal(signal)
    } else {
        WorkerExit::Unknown(status.to_string())
    }
}

/// Why a supervisor is giving up on its worker.
pub(crate) enum Loss {
    /// The worker's channel closed: it died.
    Died,
    /// The head job ran past its timeout.
    TimedOut,
    /// The worker broke the protocol.
    Bad(String),
}

struct Supervisor {
    inner: Arc<Inner>,
    slot: usize,
    worker: Option<Worker>,
    inflight: VecDeque<InFlight>,
    retry: VecDeque<Job>,
    closing: bool,
    /// A send to the worker failed: send nothing more to it, and replace it
    /// once the jobs it holds are accounted for.
    broken: bool,
}

pub(crate) fn supervise(inner: Arc<Inner>, slot: usize, ready: mpsc::Sender<Result<(), Error>>) {
    let mut sup = Supervisor {
        inner,
        slot,
        worker: None,
        inflight: VecDeque::new(),
        retry: VecDeque::new(),
        closing: false,
        broken: false,
    };
    match sup.spawn() {
        Ok(w) => {
            sup.worker = Some(w);
            let _ = ready.send(Ok(()));
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            sup.stop();
            return;
        }
    }
    drop(ready);
    sup.run();
}

impl Supervisor {
    fn terminating(&self) -> bool {
        self.inner.terminating.load(Ordering::SeqCst)
    }

    fn run(&mut self) {
        loop {
            if self.terminating() {
                break;
            }
            self.fill();
            if self.terminating() {
                break;
            }
            if self.inflight.is_empty() {
                if self.broken {
                    self.lose_worker(Loss::Died);
                    continue;
                }
                if self.worker.as_ref().is_some_and(|w| self.spent(w)) {
                    self.retire();
                }
                if self.closing && self.retry.is_empty() {
                    break;
                }
                continue;
            }
            self.wait_reply();
        }
        self.stop();
    }

    fn spent(&self, w: &Worker) -> bool {
        self.inner
            .config
            .max_tasks_per_child
            .is_some_and(|max| w.sent >= max)
    }

    /// Sends jobs to the worker until it holds [`PIPELINE`] of them. Blocks
    /// for a job only when the worker holds none.
    fn fill(&mut self) {
        let inner = self.inner.clone();
        while self.inflight.len() < PIPELINE && !self.broken {
            if self.worker.as_ref().is_some_and(|w| self.spent(w)) {
                break;
            }
            let job = if let Some(job) = self.retry.pop_front() {
                job
            } else if self.closing {
                break;
            } else if self.inflight.is_empty() {
                // Idle: lend the worker to direct callers while waiting.
                let parked = self.park();
                let msg = select! {
                    recv(inner.jobs_rx) -> msg => Some(msg),
                    recv(inner.stop_rx) -> _ => None,
                };
                if parked {
                    // Waits for a direct call in progress to end; the worker
                    // is gone if that call lost it.
                    self.worker = lock(&inner.parked[self.slot]).take();
                }
                match msg {
                    Some(Ok(job)) => job,
                    Some(Err(_)) => {
                        self.closing = true;
                        break;
                    }
                    None => break,
                }
            } else {
                match inner.jobs_rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.closing = true;
                        break;
                    }
                }
            };
            self.dispatch(job);
        }
    }

    /// Parks an idle, healthy worker for [`ProcessPool::apply`](crate::ProcessPool::apply)'s direct
    /// path. Not with `max_tasks_per_child`, whose retiring the supervisor
    /// does.
    fn park(&mut self) -> bool {
        if self.broken
            || !self.retry.is_empty()
            || self.inner.config.max_tasks_per_child.is_some()
            || self.worker.is_none()
        {
            return false;
        }
        *lock(&self.inner.parked[self.slot]) = self.worker.take();
        true
    }

    fn dispatch(&mut self, mut job: Job) {
        if self.terminating() {
            job.fail(TaskError::Cancelled);
            return;
        }
        if !job.started {
            if !job.sink.start() {
                // Cancelled by its owner before it started.
                return;
            }
            job.started = true;
        }
        if self.worker.is_none() {
            match self.spawn() {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    job.fail(TaskError::WorkerLost {
                        exit: WorkerExit::Unknown(format!(
                            "no worker process could be started to run the task: {e}"
                        )),
                    });
                    // Do not spin if workers cannot start at all.
                    thread::sleep(Duration::from_millis(20));
                    return;
                }
            }
        }
        let Some(w) = self.worker.as_mut() else {
            return;
        };
        job.id = self.inner.next_job.fetch_add(1, Ordering::Relaxed);
        let msg = ToWorker::Run {
            job: job.id,
            func: job.func.to_owned(),
            ends: Blob::new(postcard::to_stdvec(&job.ends).unwrap_or_default()),
            args: Blob::from_slice(&job.args),
        };
        match w.tasks.send(msg) {
            Ok(()) => {
                w.sent += 1;
                let since = self.inflight.is_empty().then(Instant::now);
                self.inflight.push_back(InFlight { job, since });
            }
            Err(_) => {
                // The worker is gone. The job never reached it: run it on
                // the replacement. If other jobs are in flight, reading
                // from the worker reports the death and fails the one it
                // was running.
                self.retry.push_front(job);
                self.broken = true;
            }
        }
    }

    fn wait_reply(&mut self) {
        let Some(w) = self.worker.as_ref() else {
            // Cannot happen (jobs are in flight only on a live worker); be safe.
            for f in std::mem::take(&mut self.inflight) {
                self.retry.push_back(f.job);
            }
            return;
        };
        let Some(head) = self.inflight.front() else {
            return;
        };
        let deadline = head
            .job
            .timeout
            .map(|t| head.since.unwrap_or_else(Instant::now) + t);
        match w.recv(deadline) {
            Recv::Msg(FromWorker::Done { job, status, data }) if job == head.job.id => {
                let Some(done) = self.inflight.pop_front() else {
                    return;
                };
                if let Some(next) = self.inflight.front_mut() {
                    next.since = Some(Instant::now());
                }
                if let Err(why) = self.complete(done.job, status, data) {
                    self.lose_worker(Loss::Bad(why));
                }
            }
            Recv::Msg(other) => {
                let what = match other {
                    FromWorker::Hello { .. } => "a second handshake",
                    FromWorker::Ready { .. } => "an unrequested initializer reply",
                    FromWorker::Done { .. } => "a reply to a job it was not running",
                };
                self.lose_worker(Loss::Bad(format!(
                    "the worker broke the protocol: it sent {what}"
                )));
            }
            Recv::TimedOut => self.lose_worker(Loss::TimedOut),
            Recv::Closed => self.lose_worker(Loss::Died),
            Recv::Bad(why) => self.lose_worker(Loss::Bad(why)),
        }
    }

    /// Checks a reply and delivers it. A malformed reply fails the job with
    /// `Serialization` and returns why, so that the worker is replaced.
    fn complete(&mut self, job: Job, status: Blob, data: Blob) -> Result<(), String> {
        match check_reply(
            self.inner.config.max_result_bytes,
            job.ends.len(),
            status,
            data,
        ) {
            Ok(results) => {
                job.sink.finish(Ok(results));
                Ok(())
            }
            Err((message, protocol)) => {
                job.fail(TaskError::Serialization {
                    message: message.clone(),
                });
                if protocol { Err(message) } else { Ok(()) }
            }
        }
    }

    /// Kills (or reaps) the worker, fails the job it was running, queues the
    /// jobs behind it for the replacement, and starts the replacement.
    fn lose_worker(&mut self, loss: Loss) {
        self.broken = false;
        let exit = match self.worker.take() {
            Some(mut w) => {
                if !matches!(loss, Loss::Died) {
                    let _ = w.child.kill();
                }
                self.reap(&mut w.child, Duration::from_secs(2))
            }
            None => WorkerExit::Unknown("no worker".into()),
        };
        if self.terminating() {
            return;
        }
        let mut inflight = std::mem::take(&mut self.inflight);
        if let Some(head) = inflight.pop_front() {
            let error = match loss {
                Loss::Died => TaskError::WorkerLost { exit },
                Loss::TimedOut => TaskError::TimedOut {
                    timeout: head.job.timeout.unwrap_or_default(),
                },
                Loss::Bad(message) => TaskError::Serialization { message },
            };
            head.job.fail(error);
        }
        for f in inflight.into_iter().rev() {
            self.retry.push_front(f.job);
        }
        if !self.closing || !self.retry.is_empty() {
            // Replace it now, so that the next task does not wait for a
            // start-up. If this fails, the next dispatch tries again.
            if let Ok(w) = self.spawn() {
                self.worker = Some(w);
            }
        }
    }

    /// Asks a worker that has run its `max_tasks_per_child` to exit, and
    /// starts its replacement.
    fn retire(&mut self) {
        self.broken = false;
        if let Some(mut w) = self.worker.take() {
            let _ = w.tasks.send(ToWorker::Shutdown);
            let grace = self.inner.config.shutdown_grace;
            self.reap(&mut w.child, grace);
        }
        if !self.closing
            && !self.terminating()
            && let Ok(w) = self.spawn()
        {
            self.worker = Some(w);
        }
    }

    /// Ends the supervisor: on terminate, kill the worker and cancel every
    /// job it holds or could take; on shutdown, ask the worker to exit.
    fn stop(&mut self) {
        if self.terminating() {
            if let Some(mut w) = self.worker.take() {
                let _ = w.child.kill();
                self.reap(&mut w.child, Duration::from_secs(2));
            }
            for f in std::mem::take(&mut self.inflight) {
                f.job.fail(TaskError::Cancelled);
            }
            for job in std::mem::take(&mut self.retry) {
                job.fail(TaskError::Cancelled);
            }
            while let Ok(job) = self.inner.jobs_rx.try_recv() {
                job.fail(TaskError::Cancelled);
            }
        } else if let Some(mut w) = self.worker.take() {
            let _ = w.tasks.send(ToWorker::Shutdown);
            let grace = self.inner.config.shutdown_grace;
            self.reap(&mut w.child, grace);
        }
    }

    /// Waits up to `grace` for the child to exit, then kills it; always
    /// reaps it. The slot's pid is cleared under the same lock as the reap,
    /// so `terminate` never signals a reaped (reusable) pid.
    fn reap(&self, child: &mut Child, grace: Duration) -> WorkerExit {
        reap(&self.inner.slots[self.slot], child, grace)
    }

    /// Starts a worker and completes the authenticated handshake (and the
    /// initializer). Never blocks past the start timeout, even if the child
    /// dies before connecting (ipc-channel's `accept` has no timeout: it is
    /// run on a helper thread that is unblocked by a dummy connection).
    fn spawn(&self) -> Result<Worker, Error> {
        let cfg = &self.inner.config;
        let spawn_error = |source| Error::Spawn {
            program: cfg.program.clone(),
            source,
        };
        let (server, name) = IpcOneShotServer::<FromWorker>::new().map_err(spawn_error)?;
        let secret = sys::random_secret().map_err(spawn_error)?;
        let mut cmd = Command::new(&cfg.program);
        cmd.env(ENV_WORKER, "1").stdin(Stdio::piped());
        for (key, value) in &cfg.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let mut child = cmd.spawn().map_err(spawn_error)?;
        {
            let mut pid = lock(&self.inner.slots[self.slot]);
            if self.terminating() {
                drop(pid);
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Terminated);
            }
            *pid = Some(child.id());
        }
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        let boot = format!(
            "{PROTOCOL}\n{}\n{name}\n{}\n",
            std::process::id(),
            to_hex(&secret)
        );
        if let Some(mut stdin) = child.stdin.take() {
            // A write error means the child died; the loop below reports it.
            let _ = stdin.write_all(boot.as_bytes());
        }
        let (done_tx, done_rx) = mpsc::channel();
        let acceptor = thread::Builder::new()
            .name("weft-process-accept".into())
            .spawn(move || {
                let _ = done_tx.send(server.accept());
            });
        let acceptor = match acceptor {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                self.reap(&mut child, Duration::ZERO);
                return Err(spawn_error(e));
            }
        };
        let hint = if sys::HAS_INIT_HOOK {
            ""
        } else {
            " (on this platform the program must call weft_process::main_hook() first thing in main)"
        };
        let deadline = Instant::now() + cfg.start_timeout;
        let outcome: Result<(IpcReceiver<FromWorker>, IpcSender<ToWorker>), Error> = loop {
            match done_rx.recv_timeout(Duration::from_millis(1)) {
                Ok(Ok((
                    rx,
                    FromWorker::Hello {
                        secret: s,
                        pid,
                        fingerprint,
                        tasks,
                    },
                ))) => {
                    if !constant_time_eq(&s.0, &secret) {
                        break Err(handshake(
                            "a process that does not know the pool's secret tried to join it"
                                .into(),
                        ));
                    }
                    if pid != child.id() {
                        break Err(handshake(format!(
                            "the process that connected (pid {pid}) is not the worker started (pid {})",
                            child.id()
                        )));
                    }
                    if fingerprint != registry::fingerprint() {
                        break Err(handshake(format!(
                            "the worker's table of registered functions differs from the parent's: \
                             {} was replaced or rebuilt after this program started",
                            cfg.program.display()
                        )));
                    }
                    break Ok((rx, tasks));
                }
                Ok(Ok(_)) => {
                    break Err(handshake(
                        "the worker's first message was not a handshake".into(),
                    ));
                }
                Ok(Err(e)) => break Err(handshake(format!("the worker's connection failed: {e}"))),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.terminating() {
                        break Err(Error::Terminated);
                    }
                    if let Ok(Some(status)) = child.try_wait() {
                        break Err(handshake(format!(
                            "the worker exited ({}) before connecting{hint}",
                            exit_of(status)
                        )));
                    }
                    if Instant::now() >= deadline {
                        break Err(handshake(format!(
                            "the worker did not connect within {:?}{hint}",
                            cfg.start_timeout
                        )));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(handshake("the handshake thread stopped".into()));
                }
            }
        };
        let (results, tasks) = match outcome {
            Ok(pair) => {
                let _ = acceptor.join();
                pair
            }
            Err(e) => {
                let _ = child.kill();
                self.reap(&mut child, Duration::ZERO);
                if !acceptor.is_finished() {
                    // Unblock `accept` with a connection of our own.
                    if let Ok(tx) = IpcSender::<FromWorker>::connect(name) {
                        let _ = tx.send(FromWorker::Ready { error: None });
                    }
                }
                let _ = acceptor.join();
                return Err(e);
            }
        };
        let fd = sys::receiver_fd(&results);
        let mut worker = Worker {
            child,
            tasks,
            results,
            fd,
            sent: 0,
        };
        if let Some((func, arg)) = &cfg.initializer {
            let init = ToWorker::Init {
                func: (*func).to_owned(),
                arg: Blob::from_slice(arg),
            };
            let error = if worker.tasks.send(init).is_err() {
                Some(Error::Initializer(
                    "the worker died before running it".into(),
                ))
            } else {
                match worker.recv(Some(deadline)) {
                    Recv::Msg(FromWorker::Ready { error: None }) => None,
                    Recv::Msg(FromWorker::Ready { error: Some(e) }) => Some(Error::Initializer(e)),
                    Recv::Msg(_) => Some(handshake(
                        "the worker did not answer the initializer".into(),
                    )),
                    Recv::TimedOut => Some(Error::Initializer(format!(
                        "it did not finish within the start timeout of {:?}",
                        cfg.start_timeout
                    ))),
                    Recv::Closed => Some(Error::Initializer(
                        "the worker died while running it".into(),
                    )),
                    Recv::Bad(why) => Some(handshake(why)),
                }
            };
            if let Some(e) = error {
                let _ = worker.child.kill();
                self.reap(&mut worker.child, Duration::ZERO);
                return Err(e);
            }
        }
        Ok(worker)
    }
}

/// Waits up to `grace` for the child to exit, then kills it; always
/// reaps it. The slot's pid is cleared under the same lock as the reap,
/// so `terminate` never signals a reaped (reusable) pid.
pub(crate) fn reap(slot: &Mutex<Option<u32>>, child: &mut Child, grace: Duration) -> WorkerExit {
    let deadline = Instant::now() + grace;
    loop {
        {
            let mut pid = lock(slot);
            match child.try_wait() {
                Ok(Some(status)) => {
                    *pid = None;
                    return exit_of(status);
                }
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let exit = child
                        .wait()
                        .map(exit_of)
                        .unwrap_or_else(|e| WorkerExit::Unknown(e.to_string()));
                    *pid = None;
                    return exit;
                }
                Ok(None) => {}
                Err(e) => {
                    *pid = None;
                    return WorkerExit::Unknown(e.to_string());
                }
            }
        }
        sys::nap();
    }
}

/// Checks a worker's reply to a job of `count` arguments and copies its
/// payload out of shared memory. On error, says why and whether the worker
/// broke the protocol (and must be replaced).
pub(crate) fn check_reply(
    max: usize,
    count: usize,
    status: Blob,
    data: Blob,
) -> Result<Results, (String, bool)> {
    if data.len() > max {
        return Err((
            format!(
                "the worker's result is {} bytes, over the pool's max_result_bytes of {max}",
                data.len()
            ),
            false,
        ));
    }
    let status_bytes = match &status {
        Blob::Inline(bytes) => std::borrow::Cow::Borrowed(&bytes.0[..]),
        Blob::Shared(shm) => {
            std::borrow::Cow::Owned(sys::copy_untrusted(shm).map_err(|e| (e, true))?)
        }
    };
    let status: Vec<ItemOut> = postcard::from_bytes(&status_bytes).map_err(|e| {
        (
            format!("the worker's reply could not be decoded: {e}"),
            true,
        )
    })?;
    if status.len() != count {
        return Err((
            format!(
                "the worker returned {} results for {count} arguments",
                status.len()
            ),
            true,
        ));
    }
    let mut last = 0u64;
    for s in &status {
        if let ItemOut::Ok(end) = s {
            if *end < last || *end > data.len() as u64 {
                return Err(("the worker's reply has offsets out of bounds".into(), true));
            }
            last = *end;
        }
    }
    let data = match data {
        Blob::Inline(bytes) => bytes.0,
        Blob::Shared(shm) => sys::copy_untrusted(&shm).map_err(|e| (e, true))?,
    };
    Ok(Results { status, data })
}

fn handshake(reason: String) -> Error {
    Error::Handshake { reason }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
