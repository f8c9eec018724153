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
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{TryRecvError, select};
use weft_sync::{TaskError, WorkerExit};

use crate::link::{Link, Received, Unread};
use crate::pool::{Error, Inner, Results, Sink, lock};
use crate::registry;
use crate::sys;
use crate::wire::{self, Blob, FromWorker, ItemOut, PROTOCOL, Raw, Status, ToWorker, fast};
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
        self.finish(Err(error));
    }

    /// Delivers the job's outcome. What that runs of the user's code (a
    /// result's `Deserialize` and `Drop`, done-callbacks) cannot take the
    /// calling thread down: a panic there is reported and ignored.
    pub(crate) fn finish(self, outcome: Result<Results, TaskError>) {
        let sink = self.sink;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || sink.finish(outcome))) {
            eprintln!(
                "weft-process: delivering a task's outcome panicked (ignored): {}",
                weft_sync::into_panic_message(payload)
            );
        }
    }
}

/// `from + d`, or `None` (no deadline) where that is past what an
/// [`Instant`] can hold: a huge timeout means no timeout.
pub(crate) fn deadline(from: Instant, d: Duration) -> Option<Instant> {
    from.checked_add(d)
}

pub(crate) struct InFlight {
    job: Job,
    /// When the job became the one the worker runs (its timeout's start).
    since: Option<Instant>,
}

/// A live worker process and its channel.
pub(crate) struct Worker {
    pub(crate) child: Child,
    /// The thread that waits for the child to exit and then nudges its
    /// supervisor (joined once the child is reaped).
    watcher: Option<thread::JoinHandle<()>>,
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
    /// Waits up to `grace` (a huge one: for ever) for the worker to exit,
    /// then kills it; reaps it, clears `slot`, and joins its watcher.
    pub(crate) fn reap(&mut self, slot: &Mutex<Option<u32>>, grace: Duration) -> WorkerExit {
        let exit = reap(slot, &mut self.child, grace);
        if let Some(watcher) = self.watcher.take() {
            // It returns once the child has exited, which it now has.
            let _ = watcher.join();
        }
        exit
    }

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
    let mut denied = false;
    let outcome = (|| {
        // An honest worker sends its status list in the message or in a
        // memfd of its own, never in its region (resolving the result's
        // new region would unmap it) nor by address.
        if !matches!(status, Blob::Inline(_) | Blob::OneShot { .. }) {
            return Err(refused(
                "its status list was not in the message or a memfd of its own".into(),
            ));
        }
        let status = link
            .resolve(status, wire::status_limit(count))
            .map_err(refused)?;
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
        let status = check_reply(max, count, link.bytes(&status).map_err(refused)?, data_len)?;
        let data = link.take_payload(data, spare).map_err(|e| match e {
            Unread::Refused(e) => refused(e),
            Unread::Denied(e) => {
                denied = true;
                (
                    format!("the worker's result could not be read from its memory: {e}"),
                    false,
                )
            }
        })?;
        Ok(Results { status, data })
    })();
    if handed_over && !matches!(outcome, Err((_, true))) {
        // Done with it, read or refused. A failed send means the worker
        // died; the next receive says so.
        let _ = link.send(&ToWorker::Release);
    }
    if denied && !link.remote_off {
        // Only this job fails: the worker hands its next results over in
        // shared memory (replies already sent by address are still read,
        // and fail alone if they cannot be).
        link.remote_off = true;
        let _ = link.send(&ToWorker::RemoteOff);
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

/// What woke an idle supervisor.
enum Woke {
    Job(Result<Job, crossbeam_channel::RecvError>),
    Stop,
    Nudged,
}

/// Why a supervisor is giving up on its worker.
pub(crate) enum Loss {
    /// The worker's channel closed: it died.
    Died,
    /// The head job ran past its timeout.
    TimedOut,
    /// The worker broke the protocol.
    Bad(String),
    /// The worker broke the protocol in its reply to a job that has
    /// already failed for it; the job it runs now is lost with it.
    BadReply(String),
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
    let first = catch_unwind(AssertUnwindSafe(|| sup.spawn())).unwrap_or_else(|payload| {
        Err(Error::Spawn {
            program: sup.inner.config.program.clone(),
            source: std::io::Error::other(format!(
                "the worker's supervisor thread failed while starting it: {}",
                weft_sync::into_panic_message(payload)
            )),
        })
    });
    match first {
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
    // A panic of the supervisor's own (a bug) must not leave the slot dead
    // with its worker unreaped and its tasks hanging: the job the worker
    // was running fails, the worker is replaced, and the slot goes on.
    while let Err(payload) = catch_unwind(AssertUnwindSafe(|| sup.run())) {
        sup.recover(&weft_sync::into_panic_message(payload));
    }
}

impl Supervisor {
    /// After a panic in [`run`](Self::run): fails the job the worker was
    /// running, queues the ones behind it again, and kills and reaps the
    /// worker; the next dispatch starts a new one.
    fn recover(&mut self, why: &str) {
        eprintln!("weft-process: a worker's supervisor thread failed ({why}); recovering");
        if self.worker.is_none() {
            self.worker = lock(&self.inner.parked[self.slot]).take();
        }
        if let Some(mut w) = self.worker.take() {
            let _ = w.child.kill();
            self.reap(&mut w, Duration::from_secs(2));
        }
        self.broken = false;
        let mut inflight = std::mem::take(&mut self.inflight);
        if let Some(head) = inflight.pop_front() {
            head.job.fail(TaskError::WorkerLost {
                exit: WorkerExit::Unknown(format!(
                    "the pool's supervisor thread failed ({why}) while the worker ran this \
                     task; the worker was replaced"
                )),
            });
        }
        for f in inflight.into_iter().rev() {
            self.retry.push_front(f.job);
        }
        // Never spin if the failure repeats.
        thread::sleep(Duration::from_millis(20));
    }

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
                let woke = select! {
                    recv(inner.jobs_rx) -> msg => Woke::Job(msg),
                    recv(inner.stop_rx) -> _ => Woke::Stop,
                    recv(inner.nudge[self.slot].1) -> _ => Woke::Nudged,
                };
                if parked {
                    // Waits for a direct call in progress to end; the worker
                    // is gone if that call lost it.
                    self.worker = lock(&inner.parked[self.slot]).take();
                }
                match woke {
                    Woke::Job(Ok(job)) => job,
                    Woke::Job(Err(_)) => {
                        self.closing = true;
                        break;
                    }
                    Woke::Stop => break,
                    Woke::Nudged => {
                        self.check_idle_worker();
                        continue;
                    }
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

    /// The idle worker's watcher saw it exit (it was killed from outside,
    /// or exited), or a direct call lost it: reap it and start its
    /// replacement now, not when the next task comes.
    fn check_idle_worker(&mut self) {
        if self.terminating() {
            return;
        }
        match self.worker.as_mut().map(|w| w.child.try_wait()) {
            // Still running: the notice was about a worker already replaced.
            Some(Ok(None)) => {}
            Some(_) => self.lose_worker(Loss::Died),
            None => {
                if let Ok(w) = self.spawn() {
                    self.worker = Some(w);
                }
            }
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
            .and_then(|t| deadline(head.since.unwrap_or_else(Instant::now), t));
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
                    Ok(results) => done.job.finish(Ok(results)),
                    Err((message, protocol)) => {
                        done.job.fail(TaskError::Serialization {
                            message: message.clone(),
                        });
                        if protocol {
                            self.lose_worker(Loss::BadReply(message));
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
                self.reap(&mut w, Duration::from_secs(2))
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
                Loss::BadReply(message) => TaskError::WorkerLost {
                    exit: WorkerExit::Unknown(format!(
                        "killed by the pool, after it broke the protocol in its reply to \
                         another task ({message}); it was running this task"
                    )),
                },
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
            self.reap(&mut w, grace);
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
                self.reap(&mut w, Duration::from_secs(2));
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
            self.reap(&mut w, grace);
        }
    }

    /// Waits up to `grace` for the child to exit, then kills it; always
    /// reaps it. The slot's pid is cleared under the same lock as the reap,
    /// so `terminate` never signals a reaped (reusable) pid.
    fn reap(&self, w: &mut Worker, grace: Duration) -> WorkerExit {
        w.reap(&self.inner.slots[self.slot], grace)
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
        // The worker holds its channel and stdio, nothing else of ours.
        sys::inherit_only_stdio(&mut cmd);
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
        // Notices the worker's death even while its supervisor is idle (a
        // worker killed from outside is then reaped and replaced at once).
        // Without it (no thread could be started) an idle worker's death
        // is noticed when the slot next gets work.
        let pid = child.id();
        let nudge = self.inner.nudge[self.slot].0.clone();
        let watcher = thread::Builder::new()
            .name(format!("weft-process-watch-{}", self.slot))
            .stack_size(64 * 1024)
            .spawn(move || {
                sys::wait_exited(pid);
                let _ = nudge.try_send(());
            })
            .ok();
        let mut worker = Worker {
            child,
            watcher,
            link: Link::new(ours),
            rbuf: Vec::new(),
            scratch: Vec::new(),
            sent: 0,
        };
        let deadline = deadline(Instant::now(), cfg.start_timeout);
        if let Err(e) = self.handshake(&mut worker, &secret, deadline) {
            let _ = worker.child.kill();
            self.reap(&mut worker, Duration::ZERO);
            return Err(e);
        }
        Ok(worker)
    }

    /// Sends the bootstrap, checks the worker's answer, and runs the
    /// initializer.
    fn handshake(
        &self,
        w: &mut Worker,
        secret: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
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
            let slice = Instant::now() + Duration::from_millis(20);
            let slice = deadline.map_or(slice, |d| slice.min(d));
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
                    if deadline.is_some_and(|d| Instant::now() >= d) {
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
        let answer = recv_from(&mut w.link, &mut w.rbuf, deadline);
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
fn reap(slot: &Mutex<Option<u32>>, child: &mut Child, grace: Duration) -> WorkerExit {
    let deadline = deadline(Instant::now(), grace);
    loop {
        {
            let mut pid = lock(slot);
            match child.try_wait() {
                Ok(Some(status)) => {
                    *pid = None;
                    return exit_of(status);
                }
                Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
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
    // Bounded, and the count checked before anything is decoded, so that
    // a lying worker cannot make the parent build a huge list.
    if status.len() > wire::status_limit(count) {
        return Err((
            format!(
                "the worker's status list is {} bytes, over the {} an honest one takes",
                status.len(),
                wire::status_limit(count)
            ),
            true,
        ));
    }
    match postcard::take_from_bytes::<u64>(status) {
        Ok((n, _)) if n != count as u64 => {
            return Err((
                format!("the worker returned {n} results for {count} arguments"),
                true,
            ));
        }
        _ => {}
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

/// What a worker could send the parent, received and checked as the pool
/// does: replies built by hand, with descriptors the tests choose.
#[cfg(test)]
#[allow(unsafe_code)]
mod reply_tests {
    use super::*;
    use crate::sys::{self, Shm};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    /// Sends `done` (job 7) with `fds` from the worker's end, and checks
    /// the reply as the pool does for a job of `count` arguments.
    fn reply(
        link: &mut Link,
        worker: &OwnedFd,
        status: Blob<'_>,
        data: Blob<'_>,
        fds: &[i32],
        count: usize,
    ) -> Result<Results, (String, bool)> {
        let mut out = Vec::new();
        fast::encode_done(&mut out, 7, &status, &data);
        sys::send_msg(worker.as_raw_fd(), &out, fds).unwrap();
        let mut buf = Vec::new();
        let Received::Msg(FromWorker::Done { job, status, data }) =
            link.recv::<FromWorker<'_>>(&mut buf, Some(Instant::now() + Duration::from_secs(5)))
        else {
            panic!("not a reply")
        };
        take_reply(link, job, 1 << 30, count, status, data, Vec::new())
    }

    /// What the parent sent the worker, if anything, within a moment.
    fn sent_to_worker(worker: &OwnedFd) -> Vec<String> {
        let mut link = Link::new(worker.try_clone().unwrap());
        let mut seen = Vec::new();
        let mut buf = Vec::new();
        while let Received::Msg(msg) =
            link.recv::<ToWorker<'_>>(&mut buf, Some(Instant::now() + Duration::from_millis(50)))
        {
            seen.push(format!("{msg:?}"));
        }
        seen
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn a_status_list_in_a_region_is_refused_not_a_panic() {
        // Regression: resolving the result's new region replaced the region
        // the status list was in, and reading the status then panicked the
        // parent's thread.
        let (parent, worker) = sys::socketpair().unwrap();
        let mut link = Link::new(parent);
        let a = Shm::create(65536).unwrap();
        let b = Shm::create(1).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reply(
                &mut link,
                &worker,
                Blob::NewRegion { len: 65536 },
                Blob::NewRegion { len: 1 },
                &[a.fd(), b.fd()],
                1,
            )
            .map(|_| ())
        }))
        .expect("the parent panicked on a worker's reply");
        assert!(matches!(outcome, Err((why, true)) if why.contains("status")));
        // Nor in its old region, nor by address.
        for status in [Blob::Region { len: 3 }, Blob::Remote { addr: 8, len: 3 }] {
            let outcome = reply(&mut link, &worker, status, Blob::Inline(Raw(&[])), &[], 1);
            assert!(matches!(outcome, Err((why, true)) if why.contains("status")));
        }
        // A status list in a memfd of its own and the result in a new
        // region (both out of the message, in field order) are accepted.
        let mut region = Shm::create(65536).unwrap();
        region.write(&[5; 40_000]);
        let status = {
            let mut s = Vec::new();
            crate::wire::encode_to(&vec![ItemOut::Ok(40_000)], &mut s).unwrap();
            s
        };
        let oneshot = sys::memfd_with(&status).unwrap();
        let fds = [oneshot.as_raw_fd(), region.fd()];
        let results = reply(
            &mut link,
            &worker,
            Blob::OneShot {
                len: status.len() as u64,
            },
            Blob::NewRegion { len: 40_000 },
            &fds,
            1,
        )
        .unwrap();
        assert_eq!(results.data, vec![5; 40_000]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn an_empty_region_cannot_make_the_parent_fault() {
        // Regression: an empty sealed memfd was taken as a one-byte region,
        // and a later one-byte payload in it raised SIGBUS in the parent
        // (this test then dies instead of failing).
        let (parent, worker) = sys::socketpair().unwrap();
        let mut link = Link::new(parent);
        // SAFETY: a NUL-terminated name; the result is checked and owned.
        let raw = unsafe {
            libc::memfd_create(c"z".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        assert!(raw >= 0);
        // SAFETY: a new descriptor we own.
        let empty = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: fcntl on a descriptor we own; no pointers.
        let sealed = unsafe { libc::fcntl(raw, libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
        assert_eq!(sealed, 0);
        let one = Blob::Inline(Raw(&[1, 0, 0]));
        let first = reply(
            &mut link,
            &worker,
            one.clone(),
            Blob::NewRegion { len: 0 },
            &[empty.as_raw_fd()],
            1,
        );
        assert!(matches!(first, Err((_, true))));
        let one = Blob::Inline(Raw(&[1, 0, 1]));
        let second = reply(&mut link, &worker, one, Blob::Region { len: 1 }, &[], 1);
        assert!(matches!(second, Err((_, true))));
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn a_status_list_is_bounded_by_its_count_before_it_is_decoded() {
        // Regression: the list was read up to max_result_bytes (1 GiB by
        // default) and decoded whole before its count was compared.
        let (parent, worker) = sys::socketpair().unwrap();
        let mut link = Link::new(parent);
        let many = postcard::to_stdvec(&vec![ItemOut::Ok(0); 600_000]).unwrap();
        assert!(many.len() > wire::status_limit(1));
        let memfd = sys::memfd_with(&many).unwrap();
        let outcome = reply(
            &mut link,
            &worker,
            Blob::OneShot {
                len: many.len() as u64,
            },
            Blob::Inline(Raw(&[])),
            &[memfd.as_raw_fd()],
            1,
        );
        assert!(matches!(outcome, Err((why, true)) if why.contains("over the limit")));
        // A count prefix that is not the job's: refused before the rest
        // (garbage here) is decoded.
        assert!(matches!(
            check_reply(1 << 30, 1, &[5, 0xff, 0xff, 0xff], 0),
            Err((why, true)) if why.contains("5 results for 1")
        ));
        assert!(matches!(
            check_reply(1 << 30, 1, &many[..wire::status_limit(1)], 0),
            Err((why, true)) if why.contains("results for 1")
        ));
        let long = vec![0u8; wire::status_limit(2) + 1];
        assert!(matches!(
            check_reply(1 << 30, 2, &long, 0),
            Err((why, true)) if why.contains("status list")
        ));
        // Honest long error texts are cut to fit.
        let mut status = vec![ItemOut::Err(crate::wire::ErrKind::Panicked, "é".repeat(5000)); 400];
        crate::wire::cap_error_texts(&mut status);
        let enc = postcard::to_stdvec(&status).unwrap();
        assert!(enc.len() <= wire::status_limit(400));
        assert!(check_reply(1 << 30, 400, &enc, 0).is_ok());
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn a_result_whose_memory_cannot_be_read_fails_alone() {
        // Regression: a denied read of the worker's memory (it made itself
        // non-dumpable, or exited) was taken as a protocol violation.
        let (parent, worker) = sys::socketpair().unwrap();
        let mut link = Link::new(parent);
        // A pid that no process has any more: the read fails with ESRCH.
        let mut child = Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        link.peer = Some(gone);
        let data = vec![1u8; 40_000];
        let remote = || Blob::Remote {
            addr: data.as_ptr() as u64,
            len: data.len() as u64,
        };
        let status = || Blob::Inline(Raw(&[1, 0, 0xc0, 0xb8, 0x02]));
        let outcome = reply(&mut link, &worker, status(), remote(), &[], 1);
        assert!(matches!(outcome, Err((why, false)) if why.contains("could not be read")));
        // The worker is told it may reuse the buffer, and to stop handing
        // results over by address, once.
        assert_eq!(sent_to_worker(&worker), ["Release", "RemoteOff"]);
        let outcome = reply(&mut link, &worker, status(), remote(), &[], 1);
        assert!(matches!(outcome, Err((_, false))));
        assert_eq!(sent_to_worker(&worker), ["Release"]);
        // An address that is not mapped is the worker's lie.
        link.peer = Some(std::process::id());
        let bad = Blob::Remote {
            addr: 8,
            len: 40_000,
        };
        assert!(matches!(
            reply(&mut link, &worker, status(), bad, &[], 1),
            Err((_, true))
        ));
        // Where it can be read, it is.
        let results = reply(&mut link, &worker, status(), remote(), &[], 1).unwrap();
        assert_eq!(results.data, data);
    }
}
