//! [`Worker`]: pulls tasks from the stream and runs them in a local
//! process pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer};
use futures_util::StreamExt;
use weft_process::{ProcessPool, decode, encode};
use weft_sync::{TaskError, TaskHandle};

use crate::connect::{Settings, block_on};
use crate::error::ClusterError;
use crate::options::connection_options;
use crate::wire::{Names, ResultMsg, TaskMsg, WIRE_VERSION, WireError};

/// Builds and runs a [`Worker`]; see [`Worker::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `.run()` or `.start()`"]
pub struct WorkerBuilder {
    settings: Settings,
    processes: usize,
    ack_wait: Duration,
    max_deliver: u32,
    prefetch: usize,
    retry_delay: Duration,
    task_timeout: Option<Duration>,
    fingerprint: Option<u64>,
}

impl WorkerBuilder {
    connection_options!();

    /// How many local processes run tasks (default: the number of CPUs).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = n;
        self
    }

    /// How long the server waits for a sign of life from the worker holding
    /// a task before it gives the task to another worker (default 30 s). A
    /// running task's worker confirms its claim every third of this
    /// (JetStream progress acks), so it bounds how soon a dead worker's
    /// task is redelivered, not how long a task may run. Set when the
    /// shared consumer is created (the first worker's setting stays).
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// How many times a task is delivered to a worker before it is given up
    /// (default 3): a task whose process dies (crash, abort, kill of the
    /// whole worker) on every delivery then fails with
    /// [`TaskError::WorkerLost`]. Set when the shared consumer is created.
    pub fn max_deliver(mut self, deliveries: u32) -> Self {
        self.max_deliver = deliveries;
        self
    }

    /// How many tasks the worker holds at once, running or waiting for a
    /// free process (default: twice the processes).
    pub fn prefetch(mut self, tasks: usize) -> Self {
        self.prefetch = tasks;
        self
    }

    /// How long a task whose process died waits before it is offered again
    /// (default 100 ms).
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The time limit of tasks sent without one (default: none).
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// For tests of the refusal path: pretend this worker's registry has
    /// this fingerprint (a worker built from different code).
    #[doc(hidden)]
    pub fn fingerprint_for_tests(mut self, fingerprint: u64) -> Self {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Connects, starts the local pool and serves tasks on a background
    /// thread until [`Worker::stop`] (or the process ends).
    ///
    /// # Errors
    ///
    /// As [`ClusterBuilder::build`](crate::ClusterBuilder::build), and
    /// [`ClusterError::Pool`] when the local pool cannot start.
    pub fn start(self) -> Result<Worker, ClusterError> {
        self.settings.check()?;
        if self.processes == 0 {
            return Err(ClusterError::InvalidConfig(
                "a worker needs at least one process".to_string(),
            ));
        }
        if self.max_deliver == 0 || self.max_deliver > 1000 {
            return Err(ClusterError::InvalidConfig(format!(
                "max_deliver must be 1 to 1000, not {}",
                self.max_deliver
            )));
        }
        if self.ack_wait < Duration::from_millis(300) {
            return Err(ClusterError::InvalidConfig(format!(
                "ack_wait must be at least 300 ms, not {:?}",
                self.ack_wait
            )));
        }
        let mut pool = ProcessPool::builder().processes(self.processes);
        if let Some(timeout) = self.task_timeout {
            pool = pool.task_timeout(timeout);
        }
        let pool = pool.build()?;
        let runtime = self.settings.runtime()?;
        let settings = self.settings.clone();
        let (ack_wait, max_deliver) = (self.ack_wait, self.max_deliver);
        let (js, names, consumer, client) = block_on(&runtime, async move {
            let (client, js) = settings.connect().await?;
            let names = settings.ensure_streams(&js).await?;
            let consumer = workers_consumer(&settings, &js, &names, ack_wait, max_deliver).await?;
            Ok::<_, ClusterError>((js, names, consumer, client))
        })
        .unwrap_or_else(|| {
            Err(ClusterError::Runtime(std::io::Error::other(
                "the runtime stopped",
            )))
        })?;
        let info = consumer.cached_info();
        // The consumer delivers each task once more than the limit: that
        // last delivery only reports the task as lost.
        let limit = (info.config.max_deliver - 1).max(1);
        let ack_wait = info.config.ack_wait;
        let state = Arc::new(State {
            settings: self.settings,
            names,
            js,
            client,
            pool,
            fingerprint: self
                .fingerprint
                .unwrap_or_else(weft_process::registry_fingerprint),
            limit,
            ack_wait,
            heartbeat: (ack_wait / 3).max(Duration::from_millis(100)),
            retry_delay: self.retry_delay,
            stopping: AtomicBool::new(false),
            stop: tokio::sync::Notify::new(),
        });
        let prefetch = if self.prefetch == 0 {
            self.processes * 2
        } else {
            self.prefetch
        };
        let serving = runtime.spawn(serve(state.clone(), consumer, prefetch));
        runtime.spawn(watch_max_deliveries(state.clone()));
        Ok(Worker {
            state,
            serving: Some(serving),
            runtime: Some(runtime),
        })
    }

    /// [`start`](Self::start)s the worker and serves tasks until the
    /// process ends: the few lines a worker binary needs.
    ///
    /// ```no_run
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// weft_process::register!(square);
    ///
    /// fn main() -> Result<(), weft_cluster::ClusterError> {
    ///     weft_cluster::Worker::builder()
    ///         .url("nats://10.0.0.1:4222")
    ///         .processes(8)
    ///         .run()
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn run(self) -> Result<(), ClusterError> {
        self.start()?.wait();
        Ok(())
    }
}

async fn workers_consumer(
    settings: &Settings,
    js: &jetstream::Context,
    names: &Names,
    ack_wait: Duration,
    max_deliver: u32,
) -> Result<consumer::PullConsumer, ClusterError> {
    let name = names.workers_consumer.clone();
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: names.tasks_subject.clone(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait,
        max_deliver: i64::from(max_deliver) + 1,
        max_ack_pending: 10_000,
        ..Default::default()
    };
    let stream = tokio::time::timeout(settings.request_timeout, js.get_stream(&names.tasks_stream))
        .await
        .map_err(|_| settings.stream_error(&names.tasks_stream, "timed out"))?
        .map_err(|e| settings.stream_error(&names.tasks_stream, e))?;
    tokio::time::timeout(
        settings.request_timeout,
        stream.get_or_create_consumer(&name, config),
    )
    .await
    .map_err(|_| settings.stream_error(&name, "timed out"))?
    .map_err(|e| settings.stream_error(&name, e))
}

struct State {
    settings: Settings,
    names: Names,
    js: jetstream::Context,
    client: async_nats::Client,
    pool: ProcessPool,
    fingerprint: u64,
    limit: i64,
    ack_wait: Duration,
    heartbeat: Duration,
    retry_delay: Duration,
    stopping: AtomicBool,
    stop: tokio::sync::Notify,
}

/// Pulls tasks while there is room for them.
async fn serve(state: Arc<State>, mut consumer: consumer::PullConsumer, prefetch: usize) {
    let room = Arc::new(tokio::sync::Semaphore::new(prefetch));
    while !state.stopping.load(Ordering::Relaxed) {
        let first = tokio::select! {
            permit = room.clone().acquire_owned() => permit,
            _ = state.stop.notified() => break,
        };
        let Ok(first) = first else { break };
        let free = 1 + room.available_permits();
        drop(first);
        let batch = consumer
            .batch()
            .max_messages(free)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(again) = workers_consumer(
                    &state.settings,
                    &state.js,
                    &state.names,
                    state.ack_wait,
                    state.limit as u32,
                )
                .await
                {
                    consumer = again;
                }
                continue;
            }
        };
        while let Some(message) = batch.next().await {
            let Ok(message) = message else { break };
            let Ok(permit) = room.clone().acquire_owned().await else {
                break;
            };
            tokio::spawn(run_task(state.clone(), message, permit));
        }
    }
    // Let the tasks in hand finish.
    let _ = room.acquire_many(prefetch as u32).await;
}

/// The backstop of the delivery limit: when the server gives up on a task
/// (its last delivery was not acknowledged either, say its worker died
/// too), it says so on an advisory subject; every worker listens, reads the
/// task from the stream, reports it lost to its client (the message id and
/// the client drop copies) and deletes it.
async fn watch_max_deliveries(state: Arc<State>) {
    #[derive(serde::Deserialize)]
    struct Advisory {
        stream_seq: u64,
        deliveries: u64,
    }
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
        state.names.tasks_stream, state.names.workers_consumer
    );
    let Ok(mut advisories) = state.client.subscribe(subject).await else {
        return;
    };
    while let Some(advisory) = advisories.next().await {
        let Ok(advisory) = serde_json::from_slice::<Advisory>(&advisory.payload) else {
            continue;
        };
        let Ok(stream) = state.js.get_stream(&state.names.tasks_stream).await else {
            continue;
        };
        // Gone already: acknowledged by a late worker, or another
        // worker's backstop came first.
        let Ok(stored) = stream.get_raw_message(advisory.stream_seq).await else {
            continue;
        };
        let Ok(task) = decode::<TaskMsg>(&stored.payload) else {
            continue;
        };
        if task.reply.starts_with(&state.names.results_prefix) {
            let lost = WireError::Lost(format!(
                "the task was delivered {} times and every worker that held it died or went \
                 silent before reporting a result (the delivery limit, max_deliver; reported \
                 from the server's max-deliveries advisory)",
                advisory.deliveries
            ));
            let outcomes = task.args.iter().map(|_| Err(lost.clone())).collect();
            if !publish_result(&state, &task, outcomes).await {
                continue;
            }
        }
        let _ = stream.delete_message(advisory.stream_seq).await;
    }
}

/// Runs one delivered task and reports it, or hands it back.
async fn run_task(
    state: Arc<State>,
    message: jetstream::Message,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let message = Arc::new(message);
    let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
    let task = match decode::<TaskMsg>(&message.payload) {
        Ok(task) if task.reply.starts_with(&state.names.results_prefix) => task,
        _ => {
            eprintln!("weft-cluster worker: dropped a message that is not a weft task");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let refuse = |error: WireError| -> Vec<Result<Vec<u8>, WireError>> {
        task.args.iter().map(|_| Err(error.clone())).collect()
    };
    let outcomes = if task.version != WIRE_VERSION {
        refuse(WireError::Serialization(format!(
            "the worker speaks weft-cluster wire version {WIRE_VERSION}, the task {} \
             (client and worker must use the same weft-cluster version)",
            task.version
        )))
    } else if task.fingerprint != state.fingerprint {
        refuse(WireError::Serialization(format!(
            "refused by the worker on {}: it runs different code than the client (its registry \
             of functions has fingerprint {:016x}, the client's {:016x}); build the worker from \
             the same code, with the same `register!`ed functions, as the client",
            hostname(),
            state.fingerprint,
            task.fingerprint
        )))
    } else if delivered > state.limit {
        refuse(WireError::Lost(format!(
            "the task was delivered {} times and every worker process that ran it died or went \
             silent before reporting a result (the delivery limit, max_deliver)",
            state.limit
        )))
    } else {
        let outcomes = run_args(&state, &message, &task).await;
        let lost = outcomes
            .iter()
            .any(|o| matches!(o, Err(TaskError::WorkerLost { .. })));
        if lost && delivered < state.limit {
            // Its process died: offer it again (another worker, or this
            // one's replacement process), up to the delivery limit.
            let _ = message
                .ack_with(AckKind::Nak(Some(state.retry_delay)))
                .await;
            return;
        }
        outcomes
            .into_iter()
            .map(|o| o.map_err(|e| WireError::from(&e)))
            .collect()
    };
    report(&state, &message, &task, outcomes).await;
}

/// Runs the task's arguments in the local pool, confirming the claim on
/// the task while they run.
async fn run_args(
    state: &Arc<State>,
    message: &Arc<jetstream::Message>,
    task: &TaskMsg,
) -> Vec<Result<Vec<u8>, TaskError>> {
    let timeout = task.timeout_ns.map(Duration::from_nanos);
    let handles: Vec<TaskHandle<Vec<u8>>> = task
        .args
        .iter()
        .map(|arg| {
            state
                .pool
                .submit_encoded(&task.function, arg.clone(), timeout)
        })
        .collect();
    let beat = heartbeat(state, message);
    let outcomes = futures_util::future::join_all(handles).await;
    beat.abort();
    outcomes
}

/// Confirms the claim on a task every third of `ack_wait` until aborted.
fn heartbeat(state: &Arc<State>, message: &Arc<jetstream::Message>) -> tokio::task::JoinHandle<()> {
    let message = message.clone();
    let every = state.heartbeat;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let _ = message.ack_with(AckKind::Progress).await;
        }
    })
}

/// Publishes the task's result and acknowledges the task, in that order:
/// a worker that dies between the two leaves the task to be run again and
/// the client drops the second result.
async fn report(
    state: &Arc<State>,
    message: &Arc<jetstream::Message>,
    task: &TaskMsg,
    outcomes: Vec<Result<Vec<u8>, WireError>>,
) {
    // Keep the claim while the result is being stored (through a server
    // restart, say).
    let beat = heartbeat(state, message);
    let stored = publish_result(state, task, outcomes).await;
    beat.abort();
    if stored {
        let _ = message.ack().await;
    } else {
        // The result could not be stored: leave the task to be run again.
        let _ = message
            .ack_with(AckKind::Nak(Some(state.retry_delay)))
            .await;
    }
}

/// Stores a task's result in the results stream (retried for a while);
/// `false` if it could not be.
async fn publish_result(
    state: &Arc<State>,
    task: &TaskMsg,
    outcomes: Vec<Result<Vec<u8>, WireError>>,
) -> bool {
    let result = ResultMsg {
        id: task.id,
        outcomes,
    };
    let payload = match encode(result) {
        Ok(payload) => payload,
        Err(error) => {
            eprintln!("weft-cluster worker: could not encode a result: {error}");
            return false;
        }
    };
    let message_id = format!("{}-{}", task.reply, task.id);
    let mut delay = Duration::from_millis(20);
    for _ in 0..40 {
        let attempt = async {
            state
                .js
                .send_publish(
                    task.reply.clone(),
                    jetstream::message::PublishMessage::build()
                        .payload(payload.clone().into())
                        .message_id(&message_id),
                )
                .await?
                .await
        };
        if attempt.await.is_ok() {
            return true;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
    false
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this machine".to_string())
}

/// A worker: pulls tasks from the stream, runs each in its local
/// [`ProcessPool`] (so a task that crashes or hangs its process fails only
/// itself), and publishes each result to the client that submitted it.
///
/// Build one with [`Worker::builder`] in any binary that registers the
/// functions (the same code as the clients), then `.run()` it:
///
/// ```no_run
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// weft_process::register!(square);
///
/// # fn main() -> Result<(), weft_cluster::ClusterError> {
/// let worker = weft_cluster::Worker::builder()
///     .url("nats://127.0.0.1:4222")
///     .processes(4)
///     .start()?;
/// // ... serve until asked to stop ...
/// worker.stop();
/// # Ok(())
/// # }
/// ```
pub struct Worker {
    state: Arc<State>,
    serving: Option<tokio::task::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("url", &self.state.settings.url)
            .field("stream", &self.state.settings.stream)
            .field("processes", &self.state.pool.processes())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A builder: `.url(...)`, `.processes(n)`, delivery settings, then
    /// `.run()` or `.start()`.
    pub fn builder() -> WorkerBuilder {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        WorkerBuilder {
            settings: Settings::new("worker"),
            processes: cpus,
            ack_wait: Duration::from_secs(30),
            max_deliver: 3,
            prefetch: 0,
            retry_delay: Duration::from_millis(100),
            task_timeout: None,
            fingerprint: None,
        }
    }

    /// Blocks while the worker serves (until [`stop`](Self::stop) from
    /// another handle, i.e. never for a plain worker binary).
    pub fn wait(mut self) {
        if let (Some(serving), Some(runtime)) = (self.serving.take(), self.runtime.as_ref()) {
            let _ = block_on(runtime, serving);
        }
    }

    /// Stops taking tasks, lets the tasks in hand finish and report, and
    /// closes the connection.
    pub fn stop(mut self) {
        self.state.stopping.store(true, Ordering::Relaxed);
        self.state.stop.notify_waiters();
        if let (Some(serving), Some(runtime)) = (self.serving.take(), self.runtime.as_ref()) {
            let _ = block_on(runtime, serving);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.state.stopping.store(true, Ordering::Relaxed);
        self.state.stop.notify_waiters();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
