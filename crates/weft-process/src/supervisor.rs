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
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{TryRecvError, select};
use ipc_channel::ipc::{IpcOneShotServer, OpaqueIpcReceiver};
use weft_sync::{TaskError, WorkerExit};

use crate::boot::{Accepted, BootEnv, accept_watched, constant_time_eq, exit_from};
use crate::cancel::CancelCell;
use crate::channel::Incoming;
use crate::link::{Link, Received};
use crate::pool::{Error, Inner, Results, Sink, lock};
use crate::registry;
use crate::sys;
use crate::wire::{self, BlobIn, FromWorkerIn, Hello, ItemOut, Status, ToWorker};
use crate::worker::ENV_WORKER;

/// Jobs a worker may hold at once: the one it runs and the next one. This
/// is also the credit window that keeps every send non-blocking: the
/// parent never has more than this many jobs and one `Release` unread in
/// a worker's channel, each message at most about 70 KiB (payloads above
/// 32 KiB travel in shared memory), well within the socket's send buffer,
/// so a send never waits for a worker to read, even one that has stopped
/// reading; and a worker has at most as many replies to send.
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
    /// Set for a task that can be cancelled while it runs.
    pub(crate) cancel: Option<Arc<CancelCell>>,
    /// The arguments with their channels (see `channel::carry`), until
    /// sent: they can be sent once only.
    pub(crate) carrier: Option<OpaqueIpcReceiver>,
    /// Whether the arguments hold channels (`carrier` or not).
    pub(crate) carried: bool,
}

impl Job {
    pub(crate) fn fail(self, error: TaskError) {
        self.finish(Err(error));
    }

    /// Delivers the job's outcome. What that runs of the user's code (a
    /// result's `Deserialize` and `Drop`, done-callbacks) cannot take the
    /// calling thread down: a panic there is reported and ignored.
    pub(crate) fn finish(self, outcome: Result<Results, TaskError>) {
        if let Some(cell) = &self.cancel {
            cell.finished();
        }
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
    /// A message from the watcher once the child has exited, so that a
    /// reap waits for exactly that (no polling).
    exited: Option<crossbeam_channel::Receiver<()>>,
    /// Whom the watcher wakes when the child exits: its slot's supervisor,
    /// or the spare keeper while the worker is the pool's spare (changed
    /// when a slot takes it; see `spare.rs`).
    pub(crate) notify: Arc<Mutex<crossbeam_channel::Sender<()>>>,
    pub(crate) link: Link<FromWorkerIn>,
    /// Where a job's offsets are encoded (reused).
    scratch: Vec<u8>,
    pub(crate) sent: u64,
}

pub(crate) enum Recv {
    Msg(FromWorkerIn),
    TimedOut,
    Closed,
    Bad(String),
}

/// Why a job could not be sent.
pub(crate) enum SendError {
    /// The channel is broken: the worker died.
    Channel,
}

/// Receives the next message from a worker, never blocking past
/// `deadline` (unless the worker stalls half-way through a fragmented
/// message: see the crate documentation); a message that does not decode,
/// or whose decoding panics, is [`Recv::Bad`].
pub(crate) fn recv_from(link: &Link<FromWorkerIn>, deadline: Option<Instant>) -> Recv {
    match link.recv(deadline) {
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
        let exit = reap(slot, &mut self.child, grace, self.exited.as_ref());
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
        carrier: Option<OpaqueIpcReceiver>,
    ) -> Result<(), SendError> {
        self.scratch.clear();
        registry::encode_ends(ends, &mut self.scratch);
        let placed_ends = self.link.place(&self.scratch, None);
        let placed_args = self.link.place(args, Some(id));
        let sent = self.link.send(&ToWorker::Run {
            job: id,
            func,
            ends: self.link.blob(&placed_ends, &self.scratch),
            args: self.link.blob(&placed_args, args),
            carrier: carrier.as_ref(),
        });
        if sent.is_err() {
            self.link.release(id);
            return Err(SendError::Channel);
        }
        self.sent += 1;
        Ok(())
    }
}

/// Checks a worker's reply to job `id` (of `count` arguments, in a pool
/// whose `max_result_bytes` is `max`) and copies its payload out; `spare`
/// is a buffer the result may reuse. On error, says why and whether the
/// worker broke the protocol (and must be replaced).
pub(crate) fn take_reply(
    link: &mut Link<FromWorkerIn>,
    id: u64,
    max: usize,
    count: usize,
    status: BlobIn,
    data: BlobIn,
    spare: Vec<u8>,
) -> Result<Results, (String, bool)> {
    // The worker answered, so it is done with the job's arguments.
    link.release(id);
    // In the worker's region: it keeps it until the parent releases it.
    let in_region = matches!(data, BlobIn::Region { .. } | BlobIn::NewRegion { .. });
    let data_len = data.len();
    let refused = |e: String| (format!("the worker's reply was refused: {e}"), true);
    let outcome = (|| {
        // An honest worker sends its status list in the message or in
        // shared memory of its own, never in its region (which the result
        // may be in).
        if !matches!(status, BlobIn::Inline(_) | BlobIn::OneShot(_)) {
            return Err(refused(
                "its status list was not in the message or shared memory of its own".into(),
            ));
        }
        let status = link
            .resolve(status, wire::status_limit(count))
            .map_err(refused)?;
        if data_len > max as u64 {
            // Never read. A new region is still kept, so that parent and
            // worker agree on it once it is released below.
            if matches!(data, BlobIn::NewRegion { .. }) {
                link.resolve(data, usize::MAX).map_err(refused)?;
            }
            return Err((over_limit(data_len, max), false));
        }
        let data = link.resolve(data, max).map_err(refused)?;
        let status = check_reply(max, count, link.bytes(&status).map_err(refused)?, data_len)?;
        let data = link.take_payload(data, spare).map_err(refused)?;
        Ok(Results {
            status,
            data,
            carriers: Vec::new(),
        })
    })();
    if in_region && !matches!(outcome, Err((_, true))) {
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

    /// Publishes this slot's counts of running and waiting jobs (for
    /// `ProcessPool::running` and `queued`).
    fn publish(&self) {
        let held = self.inflight.len();
        self.inner.running[self.slot].store(held.min(1), Ordering::Relaxed);
        self.inner.waiting[self.slot]
            .store(held.saturating_sub(1) + self.retry.len(), Ordering::Relaxed);
    }

    fn run(&mut self) {
        loop {
            self.publish();
            if self.terminating() {
                break;
            }
            self.fill();
            self.publish();
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
        self.publish();
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
        if job.cancel.as_ref().is_some_and(|c| c.requested()) {
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
        if let Some(cell) = &job.cancel
            && !cell.claim(self.slot, job.id)
        {
            job.fail(TaskError::Cancelled);
            return;
        }
        if job.carried && job.carrier.is_none() {
            job.fail(TaskError::WorkerLost {
                exit: WorkerExit::Unknown(
                    "the worker was lost after it was sent this task, whose argument holds \
                     channels or shared memory: they travel once, so the task cannot run again"
                        .into(),
                ),
            });
            return;
        }
        match w.send_run(job.id, job.func, &job.ends, &job.args, job.carrier.take()) {
            Ok(()) => {
                let since = self.inflight.is_empty().then(Instant::now);
                self.inflight.push_back(InFlight { job, since });
            }
            Err(SendError::Channel) => {
                // The worker is gone. The job never reached it: run it on
                // the replacement. If other jobs are in flight, reading
                // from the worker reports the death and fails the one it
                // was running.
                if let Some(cell) = &job.cancel {
                    cell.unsent();
                }
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
        match recv_from(&w.link, deadline) {
            Recv::Msg(FromWorkerIn::Done {
                job,
                status,
                data,
                carriers,
            }) if job == head_id => {
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
                match take_reply(&mut w.link, job, max, count, status, data, spare)
                    .map(|r| r.with_carriers(carriers))
                {
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
                    FromWorkerIn::Ready { .. } => "an unrequested initializer reply",
                    FromWorkerIn::Done { .. } => "a reply to a job it was not running",
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
        // Killed to cancel one of its jobs (see `cancel.rs`): only that
        // job fails; the others were not at fault.
        let killed_for = lock(&self.inner.cancel_kills[self.slot]).take();
        let mut inflight = std::mem::take(&mut self.inflight);
        let mut again = Vec::new();
        if let Some(head) = inflight.pop_front() {
            let error = match loss {
                _ if killed_for == Some(head.job.id) => Some(TaskError::Cancelled),
                Loss::Died if killed_for.is_some() => None,
                Loss::Died => Some(TaskError::WorkerLost { exit }),
                Loss::TimedOut => Some(TaskError::TimedOut {
                    timeout: head.job.timeout.unwrap_or_default(),
                }),
                Loss::Bad(message) => Some(TaskError::Serialization { message }),
                Loss::BadReply(message) => Some(TaskError::WorkerLost {
                    exit: WorkerExit::Unknown(format!(
                        "killed by the pool, after it broke the protocol in its reply to \
                         another task ({message}); it was running this task"
                    )),
                }),
            };
            match error {
                Some(error) => head.job.fail(error),
                None => again.push(head.job),
            }
        }
        again.extend(inflight.into_iter().map(|f| f.job));
        for job in again.into_iter().rev() {
            if killed_for == Some(job.id) || job.cancel.as_ref().is_some_and(|c| c.requested()) {
                job.fail(TaskError::Cancelled);
                continue;
            }
            if let Some(cell) = &job.cancel {
                cell.unsent();
            }
            self.retry.push_front(job);
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

    /// A worker for this slot: the pool's spare if it has one ready (or
    /// booting), otherwise one started now.
    fn spawn(&self) -> Result<Worker, Error> {
        if let Some(w) = crate::spare::take(&self.inner, self.slot) {
            return Ok(w);
        }
        spawn_worker(
            &self.inner,
            &self.inner.slots[self.slot],
            self.inner.nudge[self.slot].0.clone(),
            format!("weft-process-watch-{}", self.slot),
        )
    }
}

/// Starts a worker and completes the authenticated handshake (and the
/// initializer); its pid is kept in `pid_slot` until it is reaped, and
/// `notify` is woken when it exits. Never blocks past the start timeout:
/// the accept of the worker's connection is watched (see `boot.rs`), and
/// the initializer's answer is awaited with a deadline.
pub(crate) fn spawn_worker(
    inner: &Inner,
    pid_slot: &Mutex<Option<u32>>,
    notify: crossbeam_channel::Sender<()>,
    watcher_name: String,
) -> Result<Worker, Error> {
    {
        let cfg = &inner.config;
        let spawn_error = |source| Error::Spawn {
            program: cfg.program.clone(),
            source,
        };
        let (server, name) = IpcOneShotServer::<Incoming<Hello>>::new().map_err(spawn_error)?;
        let secret = sys::random_secret().map_err(spawn_error)?;
        let mut cmd = Command::new(&cfg.program);
        cmd.env(ENV_WORKER, BootEnv::encode(&name, &secret))
            .stdin(Stdio::null());
        // Its own process group: a terminal's Ctrl-C (SIGINT to the
        // foreground group) reaches the parent only, which decides.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        crate::boot::apply_env(&mut cmd, &cfg.env);
        if let Some(dir) = &cfg.cwd {
            cmd.current_dir(dir);
        }
        cfg.stdout.apply_stdout(&mut cmd).map_err(spawn_error)?;
        cfg.stderr.apply_stderr(&mut cmd).map_err(spawn_error)?;
        let mut child = cmd.spawn().map_err(spawn_error)?;
        {
            let mut pid = lock(pid_slot);
            if inner.terminating.load(Ordering::SeqCst) {
                drop(pid);
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Terminated);
            }
            *pid = Some(child.id());
        }
        inner.started.fetch_add(1, Ordering::Relaxed);
        // Notices the worker's death even while its supervisor is idle (a
        // worker killed from outside is then reaped and replaced at once).
        // Without it (no thread could be started) an idle worker's death
        // is noticed when the slot next gets work.
        let pid = child.id();
        let notify = Arc::new(Mutex::new(notify));
        let nudge = notify.clone();
        let (exited_tx, exited) = crossbeam_channel::bounded(1);
        let mut watcher = thread::Builder::new()
            .name(watcher_name)
            .stack_size(64 * 1024)
            .spawn(move || {
                sys::wait_exited(pid);
                let _ = exited_tx.try_send(());
                let _ = lock(&nudge).try_send(());
            })
            .ok();
        let exited = watcher.as_ref().map(|_| exited);
        let deadline = deadline(Instant::now(), cfg.start_timeout);
        let fail = |child: &mut Child, watcher: &mut Option<thread::JoinHandle<()>>, e: Error| {
            let _ = child.kill();
            reap(pid_slot, child, Duration::ZERO, None);
            if let Some(w) = watcher.take() {
                let _ = w.join();
            }
            e
        };
        let link = match handshake_with(inner, &mut child, server, &name, &secret, deadline) {
            Ok(link) => link,
            Err(e) => return Err(fail(&mut child, &mut watcher, e)),
        };
        let mut worker = Worker {
            child,
            watcher,
            exited,
            notify,
            link,
            scratch: Vec::new(),
            sent: 0,
        };
        if let Err(e) = initialize(inner, &mut worker, deadline) {
            return Err(fail(&mut worker.child, &mut worker.watcher, e));
        }
        Ok(worker)
    }
}

/// Accepts the worker's connection and checks its greeting: the
/// secret, its pid, its table of registered functions.
fn handshake_with(
    inner: &Inner,
    child: &mut Child,
    server: IpcOneShotServer<Incoming<Hello>>,
    name: &str,
    secret: &[u8],
    deadline: Option<Instant>,
) -> Result<Link<FromWorkerIn>, Error> {
    let cfg = &inner.config;
    let hint = if sys::HAS_INIT_HOOK {
        ""
    } else {
        " (on this platform the program must call weft_process::main_hook() first thing in main)"
    };
    let pid = child.id();
    let cancelled = || inner.terminating.load(Ordering::SeqCst);
    let (rx, hello) = match accept_watched(server, name, pid, deadline, &cancelled) {
        Accepted::Hello(_, Hello::Died) => {
            let exit = sys::peek_exit(pid).map_or_else(
                || "it closed its channel".to_string(),
                |report| exit_from(report).to_string(),
            );
            return Err(handshake(format!(
                "the worker exited ({exit}) before connecting{hint}"
            )));
        }
        Accepted::Hello(rx, hello) => (rx, hello),
        Accepted::TimedOut => {
            return Err(handshake(format!(
                "the worker did not connect within {:?}{hint}",
                cfg.start_timeout
            )));
        }
        Accepted::Cancelled => return Err(Error::Terminated),
        Accepted::Refused(why) => {
            return Err(handshake(format!(
                "the worker's handshake was refused: {why}"
            )));
        }
    };
    let Hello::Worker {
        secret: s,
        pid: p,
        fingerprint,
        to_worker,
    } = hello
    else {
        return Err(handshake(
            "the worker's first message was not a handshake".into(),
        ));
    };
    if s.0.len() != secret.len() {
        return Err(handshake(format!(
            "the worker's secret is {} bytes, over the limit of {} a secret takes",
            s.0.len(),
            secret.len()
        )));
    }
    if !constant_time_eq(&s.0, secret) {
        return Err(handshake(
            "a process that does not know the pool's secret tried to join it".into(),
        ));
    }
    if p != pid {
        return Err(handshake(format!(
            "the process that answered (pid {p}) is not the worker started (pid {pid})"
        )));
    }
    if fingerprint != registry::fingerprint() {
        return Err(handshake(format!(
            "the worker's table of registered functions differs from the parent's: \
                 {} was replaced or rebuilt after this program started",
            cfg.program.display()
        )));
    }
    Ok(Link::new(to_worker, rx.to_opaque().to()))
}

/// Runs the pool's initializer, if any, in a new worker.
fn initialize(inner: &Inner, w: &mut Worker, deadline: Option<Instant>) -> Result<(), Error> {
    let cfg = &inner.config;
    let Some((func, arg)) = &cfg.initializer else {
        return Ok(());
    };
    let placed = w.link.place(arg, Some(0));
    let sent = w.link.send(&ToWorker::Init {
        func,
        arg: w.link.blob(&placed, arg),
    });
    if sent.is_err() {
        return Err(Error::Initializer(
            "the worker died before running it".into(),
        ));
    }
    let answer = recv_from(&w.link, deadline);
    // The worker has read the argument, if it answered.
    w.link.release(0);
    match answer {
        Recv::Msg(FromWorkerIn::Ready { error: None }) => Ok(()),
        Recv::Msg(FromWorkerIn::Ready { error: Some(e) }) => Err(Error::Initializer(e)),
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

/// Waits up to `grace` for the child to exit, then kills it; always
/// reaps it. The slot's pid is cleared under the same lock as the reap,
/// so `terminate` never signals a reaped (reusable) pid.
///
/// With `exited` (the watcher's word that the child has exited), it waits
/// for that between checks rather than sleeping: a worker that dies is
/// reaped as soon as it is a zombie, not up to a nap later.
fn reap(
    slot: &Mutex<Option<u32>>,
    child: &mut Child,
    grace: Duration,
    exited: Option<&crossbeam_channel::Receiver<()>>,
) -> WorkerExit {
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
        let left = deadline.map_or(Duration::from_millis(100), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match exited.map(|rx| rx.recv_timeout(left.min(Duration::from_millis(100)))) {
            Some(Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Timeout)) => {}
            Some(Err(crossbeam_channel::RecvTimeoutError::Disconnected)) | None => sys::nap(),
        }
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
