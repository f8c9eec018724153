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
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{TryRecvError, select};
use weft_sync::{TaskError, WorkerExit};

use crate::link::{Link, Received};
use crate::pool::{Error, Inner, Results, Sink, lock};
use crate::registry;
use crate::sys;
use crate::wire::{Blob, FromWorker, ItemOut, PROTOCOL, Raw, Status, ToWorker, fast};
use crate::worker::ENV_WORKER;

/// Jobs a worker may hold at once: the one it runs and the next one.
const PIPELINE: usize = 2;

/// How long a send to a worker may wait for room in its channel before the
/// worker is taken as lost (see `sys::set_send_timeout`).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

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

/// A live worker process and its channel.
pub(crate) struct Worker {
    pub(crate) child: Child,
    pub(crate) link: Link,
    /// Where messages from the worker are received (reused).
    pub(crate) rbuf: Vec<u8>,
    /// Where a job's offsets are encoded (reused).
    scratch: Vec<u8>,
    pub(crate) sent: u64,
}

pub(crate) enum Recv<'a> {
    Msg(FromWorker<'a>),
    TimedOut,
    Closed,
    Bad(String),
}

/// Why a job could not be sent.
pub(crate) enum SendError {
    /// Its payload could not be placed in shared memory: the job fails,
    /// the worker is fine.
    Payload(String),
    /// The channel is broken: the worker died.
    Channel,
}

/// Receives the next message from a worker into `buf`, never blocking past
/// `deadline`; the channel refuses oversized messages and excess
/// descriptors before allocating anything for them.
pub(crate) fn recv_from<'b>(
    link: &mut Link,
    buf: &'b mut Vec<u8>,
    deadline: Option<Instant>,
) -> Recv<'b> {
    match link.recv(buf, deadline) {
        Received::Msg(msg) => Recv::Msg(msg),
        Received::TimedOut => Recv::TimedOut,
        Received::Closed => Recv::Closed,
        Received::Bad(why) => Recv::Bad(format!("the worker broke the protocol: {why}")),
    }
}

impl Worker {
    /// Sends job `id`: `func` over the arguments `args` (ending at `ends`).
    pub(crate) fn send_run(
        &mut self,
        id: u64,
        func: &str,
        ends: &[u64],
        args: &[u8],
    ) -> Result<(), SendError> {
        let payload = |e: std::io::Error| {
            SendError::Payload(format!(
                "the job's arguments could not be placed in shared memory: {e}"
            ))
        };
        self.scratch.clear();
        registry::encode_ends(ends, &mut self.scratch);
        let blobs = self
            .link
            .blob(&self.scratch, None)
            .and_then(|ends| Ok((ends, self.link.blob(args, Some(id))?)));
        let (ends, args) = match blobs {
            Ok(blobs) => blobs,
            Err(e) => {
                self.link.cancel(id);
                return Err(payload(e));
            }
        };
        self.link
            .send_with(|out| {
                fast::encode_run(out, id, func.as_bytes(), &ends, &args);
                Ok(())
            })
            .map_err(|_| SendError::Channel)?;
        self.sent += 1;
        Ok(())
    }
}

/// Checks a worker's reply to job `id` (of `count` arguments, in a pool
/// whose `max_result_bytes` is `max`) and copies its payload out; `spare`
/// is a buffer the result may reuse. On error, says why and whether the
/// worker broke the protocol (and must be replaced).
pub(crate) fn take_reply(
    link: &mut Link,
    id: u64,
    max: usize,
    count: usize,
    status: Blob<'_>,
    data: Blob<'_>,
    spare: Vec<u8>,
) -> Result<Results, (String, bool)> {
    // The worker answered, so it is done with the job's arguments.
    link.release(id);
    // Handed over in the worker's region or by address: the worker keeps
    // it until the parent releases it.
    let handed_over = matches!(
        data,
        Blob::Region { .. } | Blob::NewRegion { .. } | Blob::Remote { .. }
    );
    let data_len = data.len();
    let refused = |e: String| (format!("the worker's reply was refused: {e}"), true);
    let outcome = (|| {
        if matches!(status, Blob::Remote { .. }) {
            return Err(refused("its status list was handed over by address".into()));
        }
        let status = link.resolve(status, max).map_err(refused)?;
        if data_len > max as u64 {
            // Never read. A new region of the worker's is still mapped (not
            // read: mapping costs no memory), so that parent and worker
            // agree on it once it is released below.
            if matches!(data, Blob::NewRegion { .. }) {
                link.resolve(data, usize::MAX).map_err(refused)?;
            }
            link.drop_fds();
            return Err((over_limit(data_len, max), false));
        }
        let data = link.resolve(data, max).map_err(refused)?;
        link.no_spare_fds().map_err(refused)?;
        let status = check_reply(max, count, link.bytes(&status), data_len)?;
        let data = link.take_payload(data, spare).map_err(refused)?;
        Ok(Results { status, data })
    })();
    if handed_over && !matches!(outcome, Err((_, true))) {
        // Done with it, read or refused. A failed send means the worker
        // died; the next receive says so.
        let _ = link.send(&ToWorker::Release);
    }
    outcome
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
        match w.send_run(job.id, job.func, &job.ends, &job.args) {
            Ok(()) => {
                let since = self.inflight.is_empty().then(Instant::now);
                self.inflight.push_back(InFlight { job, since });
            }
            Err(SendError::Payload(message)) => {
                job.fail(TaskError::Serialization { message });
            }
            Err(SendError::Channel) => {
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
        let Some(w) = self.worker.as_mut() else {
            // Cannot happen (jobs are in flight only on a live worker); be safe.
            for f in std::mem::take(&mut self.inflight) {
                self.retry.push_back(f.job);
            }
            return;
        };
        let Some(head) = self.inflight.front() else {
            return;
        };
        let head_id = head.job.id;
        let deadline = head
            .job
            .timeout
            .map(|t| head.since.unwrap_or_else(Instant::now) + t);
        match recv_from(&mut w.link, &mut w.rbuf, deadline) {
            Recv::Msg(FromWorker::Done { job, status, data }) if job == head_id => {
                let Some(mut done) = self.inflight.pop_front() else {
                    return;
                };
                if let Some(next) = self.inflight.front_mut() {
                    next.since = Some(Instant::now());
                }
                // The arguments' buffer is no longer needed: the result
                // may reuse it.
                let spare = std::mem::take(&mut done.job.args);
                let max = self.inner.config.max_result_bytes;
                let count = done.job.ends.len();
                match take_reply(&mut w.link, job, max, count, status, data, spare) {
                    Ok(results) => done.job.sink.finish(Ok(results)),
                    Err((message, protocol)) => {
                        done.job.fail(TaskError::Serialization {
                            message: message.clone(),
                        });
                        if protocol {
                            self.lose_worker(Loss::Bad(message));
                        }
                    }
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
            let _ = w.link.send(&ToWorker::Shutdown);
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
            let _ = w.link.send(&ToWorker::Shutdown);
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
    /// initializer). Never blocks past the start timeout: every read of
    /// what the worker sends is bounded in size and time.
    fn spawn(&self) -> Result<Worker, Error> {
        let cfg = &self.inner.config;
        let spawn_error = |source| Error::Spawn {
            program: cfg.program.clone(),
            source,
        };
        let (ours, theirs) = sys::socketpair().map_err(spawn_error)?;
        sys::set_send_timeout(ours.as_raw_fd(), SEND_TIMEOUT).map_err(spawn_error)?;
        let secret = sys::random_secret().map_err(spawn_error)?;
        let mut cmd = Command::new(&cfg.program);
        cmd.env(ENV_WORKER, "1").stdin(Stdio::from(theirs));
        for (key, value) in &cfg.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let spawned = cmd.spawn();
        // Close our copy of the worker's end, so that its death closes the
        // channel.
        drop(cmd);
        let mut child = spawned.map_err(spawn_error)?;
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
        let mut worker = Worker {
            child,
            link: Link::new(ours),
            rbuf: Vec::new(),
            scratch: Vec::new(),
            sent: 0,
        };
        let deadline = Instant::now() + cfg.start_timeout;
        if let Err(e) = self.handshake(&mut worker, &secret, deadline) {
            let _ = worker.child.kill();
            self.reap(&mut worker.child, Duration::ZERO);
            return Err(e);
        }
        Ok(worker)
    }

    /// Sends the bootstrap, checks the worker's answer, and runs the
    /// initializer.
    fn handshake(&self, w: &mut Worker, secret: &[u8], deadline: Instant) -> Result<(), Error> {
        let cfg = &self.inner.config;
        let hint = if sys::HAS_INIT_HOOK {
            ""
        } else {
            " (on this platform the program must call weft_process::main_hook() first thing in main)"
        };
        let boot = ToWorker::Boot {
            protocol: PROTOCOL,
            parent: std::process::id(),
            secret: Raw(secret),
        };
        // A failed send means the child died; the loop below reports it.
        let _ = w.link.send(&boot);
        loop {
            // Short waits, so that `terminate` is noticed.
            let slice = (Instant::now() + Duration::from_millis(20)).min(deadline);
            match w.link.recv::<FromWorker<'_>>(&mut w.rbuf, Some(slice)) {
                Received::Msg(FromWorker::Hello {
                    secret: s,
                    pid,
                    fingerprint,
                    probe,
                }) => {
                    w.link.no_spare_fds().map_err(handshake)?;
                    if !constant_time_eq(s.0, secret) {
                        return Err(handshake(
                            "a process that does not know the pool's secret tried to join it"
                                .into(),
                        ));
                    }
                    if pid != w.child.id() {
                        return Err(handshake(format!(
                            "the process that answered (pid {pid}) is not the worker started (pid {})",
                            w.child.id()
                        )));
                    }
                    if fingerprint != registry::fingerprint() {
                        return Err(handshake(format!(
                            "the worker's table of registered functions differs from the parent's: \
                             {} was replaced or rebuilt after this program started",
                            cfg.program.display()
                        )));
                    }
                    // Large results can be read straight from the worker's
                    // memory if this process may read it (the same user,
                    // and no policy against it): try on the secret's copy.
                    let mut seen = Vec::new();
                    if sys::read_remote(pid, probe, secret.len(), &mut seen).is_ok()
                        && constant_time_eq(&seen, secret)
                        && w.link.send(&ToWorker::RemoteOk).is_ok()
                    {
                        w.link.peer = Some(pid);
                    }
                    break;
                }
                Received::Msg(_) => {
                    return Err(handshake(
                        "the worker's first message was not a handshake".into(),
                    ));
                }
                Received::Bad(why) => {
                    return Err(handshake(format!(
                        "the worker's handshake was refused: {why}"
                    )));
                }
                Received::Closed => {
                    // It exited (or closed the channel): say how, if it is
                    // gone within a moment.
                    let until = Instant::now() + Duration::from_millis(200);
                    loop {
                        if let Ok(Some(status)) = w.child.try_wait() {
                            return Err(handshake(format!(
                                "the worker exited ({}) before connecting{hint}",
                                exit_of(status)
                            )));
                        }
                        if Instant::now() >= until {
                            return Err(handshake(format!(
                                "the worker closed its channel before connecting{hint}"
                            )));
                        }
                        sys::nap();
                    }
                }
                Received::TimedOut => {
                    if self.terminating() {
                        return Err(Error::Terminated);
                    }
                    if let Ok(Some(status)) = w.child.try_wait() {
                        return Err(handshake(format!(
                            "the worker exited ({}) before connecting{hint}",
                            exit_of(status)
                        )));
                    }
                    if Instant::now() >= deadline {
                        return Err(handshake(format!(
                            "the worker did not connect within {:?}{hint}",
                            cfg.start_timeout
                        )));
                    }
                }
            }
        }
        let Some((func, arg)) = &cfg.initializer else {
            return Ok(());
        };
        let init = w.link.blob(arg, Some(0)).map(|arg| ToWorker::Init {
            func: Raw(func.as_bytes()),
            arg,
        });
        let sent = match init {
            Ok(init) => w.link.send(&init).is_ok(),
            Err(e) => {
                return Err(Error::Initializer(format!(
                    "its argument could not be placed in shared memory: {e}"
                )));
            }
        };
        if !sent {
            return Err(Error::Initializer(
                "the worker died before running it".into(),
            ));
        }
        let answer = recv_from(&mut w.link, &mut w.rbuf, Some(deadline));
        // The worker has read the argument, if it answered.
        w.link.release(0);
        match answer {
            Recv::Msg(FromWorker::Ready { error: None }) => Ok(()),
            Recv::Msg(FromWorker::Ready { error: Some(e) }) => Err(Error::Initializer(e.into())),
            Recv::Msg(_) => Err(handshake(
                "the worker did not answer the initializer".into(),
            )),
            Recv::TimedOut => Err(Error::Initializer(format!(
                "it did not finish within the start timeout of {:?}",
                cfg.start_timeout
            ))),
            Recv::Closed => Err(Error::Initializer(
                "the worker died while running it".into(),
            )),
            Recv::Bad(why) => Err(handshake(why)),
        }
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

/// Decodes a reply's `postcard`-encoded `Vec<ItemOut>`, with a short cut
/// for the usual reply to a task: one successful item.
fn decode_status(bytes: &[u8]) -> postcard::Result<Status> {
    if let [1, 0, rest @ ..] = bytes
        && let Ok((end, [])) = postcard::take_from_bytes::<u64>(rest)
    {
        return Ok(Status::One(ItemOut::Ok(end)));
    }
    let mut items: Vec<ItemOut> = postcard::from_bytes(bytes)?;
    Ok(match items.len() {
        1 => Status::One(items.remove(0)),
        _ => Status::Many(items),
    })
}

fn over_limit(len: u64, max: usize) -> String {
    format!("the worker's result is {len} bytes, over the pool's max_result_bytes of {max}")
}

/// Checks a worker's reply to a job of `count` arguments: its encoded
/// per-item `status` list, against the length of its result payload. On
/// error, says why and whether the worker broke the protocol (and must be
/// replaced).
pub(crate) fn check_reply(
    max: usize,
    count: usize,
    status: &[u8],
    data_len: u64,
) -> Result<Status, (String, bool)> {
    if data_len > max as u64 {
        return Err((over_limit(data_len, max), false));
    }
    let status = decode_status(status).map_err(|e| {
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
    for s in status.iter() {
        if let ItemOut::Ok(end) = s {
            if *end < last || *end > data_len {
                return Err(("the worker's reply has offsets out of bounds".into(), true));
            }
            last = *end;
        }
    }
    Ok(status)
}

fn handshake(reason: String) -> Error {
    Error::Handshake { reason }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ErrKind;

    #[test]
    fn the_status_short_cut_agrees_with_postcard() {
        for status in [
            vec![ItemOut::Ok(0)],
            vec![ItemOut::Ok(300)],
            vec![ItemOut::Ok(u64::MAX)],
            vec![ItemOut::Err(ErrKind::Panicked, "boom".into())],
            vec![ItemOut::Ok(1), ItemOut::Ok(2)],
            vec![],
        ] {
            let enc = postcard::to_stdvec(&status).unwrap();
            assert_eq!(*decode_status(&enc).unwrap(), status[..]);
            assert!(decode_status(&enc[..enc.len().saturating_sub(1)]).is_err() || enc.len() <= 1);
        }
        // Trailing bytes after one item are not the short cut's to accept.
        assert!(decode_status(&[1, 0, 5, 0]).is_ok_and(|s| *s == [ItemOut::Ok(5)]));
        assert!(check_reply(1 << 20, 1, &[1, 0, 5], 4).is_err());
        assert!(check_reply(1 << 20, 1, &[1, 0, 5], 5).is_ok());
        assert!(check_reply(4, 1, &[1, 0, 5], 5).is_err_and(|(_, protocol)| !protocol));
    }
}
