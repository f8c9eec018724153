//! [`Cluster`]: the client that submits tasks and receives their results.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_process::{Function, decode, encode};
use weft_sync::{TaskError, TaskHandle, WorkerExit};

use crate::connect::{Settings, block_on, unique_id};
use crate::error::ClusterError;
use crate::options::connection_options;
use crate::wire::{Names, ResultMsg, TaskMsg, WIRE_VERSION};

/// A task's outcome as the result stream brings it: one entry per argument,
/// or one error for the whole task.
type Outcomes = Result<Vec<Result<Vec<u8>, TaskError>>, TaskError>;

/// What to do with a task's outcome when it arrives (at most once).
type Pending = Box<dyn FnOnce(Outcomes) + Send>;

/// The biggest `map` chunk, in encoded bytes (NATS' default message limit
/// is 1 MiB).
const CHUNK_BYTES: usize = 512 * 1024;

/// Builds a [`Cluster`]; see [`Cluster::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `.build()`"]
pub struct ClusterBuilder {
    settings: Settings,
    task_timeout: Option<Duration>,
    publish_timeout: Duration,
    idle_timeout: Duration,
}

impl ClusterBuilder {
    connection_options!();

    /// The time limit of every task submitted without one of its own
    /// (default: none), measured from when a worker starts it; past it the
    /// task fails with [`TaskError::TimedOut`] and the process that ran it
    /// is killed and replaced. For `map`, it applies to each item.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// How long a submitted task may wait to be accepted (stored) by the
    /// server, through disconnections and restarts, before its handle fails
    /// with [`TaskError::WorkerLost`] saying it never reached the server.
    /// Default: 60 s.
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// How long the server keeps this client's results when the client is
    /// gone (crashed, or disconnected that long) before deleting them and
    /// its consumer. Default: 1 hour.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Connects (within the connect timeout), creates the streams if they
    /// do not exist, and starts receiving results.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Connect`] when no server answers in time (or the
    /// credentials are refused), [`ClusterError::JetStream`] when the
    /// server has no JetStream, [`ClusterError::InvalidConfig`] for a bad
    /// option.
    pub fn build(self) -> Result<Cluster, ClusterError> {
        self.settings.check()?;
        if self.publish_timeout.is_zero() || self.idle_timeout < Duration::from_secs(1) {
            return Err(ClusterError::InvalidConfig(
                "the publish timeout must be above zero and the idle timeout at least 1 s"
                    .to_string(),
            ));
        }
        if self.task_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ClusterError::InvalidConfig(
                "a zero task timeout would fail every task".to_string(),
            ));
        }
        let runtime = self.settings.runtime()?;
        let settings = self.settings.clone();
        let client_id = unique_id();
        let idle = self.idle_timeout;
        let id = client_id.clone();
        let (client, js, names, consumer) = block_on(&runtime, async move {
            let (client, js) = settings.connect().await?;
            let names = settings.ensure_streams(&js).await?;
            let consumer = results_consumer(&settings, &js, &names, &id, idle).await?;
            Ok::<_, ClusterError>((client, js, names, consumer))
        })
        .unwrap_or_else(|| {
            Err(ClusterError::Runtime(std::io::Error::other(
                "the runtime stopped",
            )))
        })?;
        let (publish_tx, publish_rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            reply: format!("{}{}", names.results_prefix, client_id),
            names,
            client_id,
            settings: self.settings,
            js,
            _client: client,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            fingerprint: weft_process::registry_fingerprint(),
            publish_tx,
            publish_timeout: self.publish_timeout,
            task_timeout: self.task_timeout,
            closed: AtomicBool::new(false),
        });
        runtime.spawn(publish_loop(inner.clone(), publish_rx));
        runtime.spawn(results_loop(inner.clone(), consumer, idle));
        Ok(Cluster {
            inner,
            runtime: Some(runtime),
        })
    }
}

async fn results_consumer(
    settings: &Settings,
    js: &jetstream::Context,
    names: &Names,
    client_id: &str,
    idle: Duration,
) -> Result<consumer::PullConsumer, ClusterError> {
    let name = format!("client-{client_id}");
    let config = consumer::pull::Config {
        durable_name: Some(name.clone()),
        filter_subject: format!("{}{}", names.results_prefix, client_id),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 100_000,
        inactive_threshold: idle,
        ..Default::default()
    };
    let stream = tokio::time::timeout(
        settings.request_timeout,
        js.get_stream(&names.results_stream),
    )
    .await
    .map_err(|_| settings.stream_error(&names.results_stream, "timed out"))?
    .map_err(|e| settings.stream_error(&names.results_stream, e))?;
    tokio::time::timeout(
        settings.request_timeout,
        stream.get_or_create_consumer(&name, config),
    )
    .await
    .map_err(|_| settings.stream_error(&name, "timed out"))?
    .map_err(|e| settings.stream_error(&name, e))
}

struct Outgoing {
    id: u64,
    payload: Vec<u8>,
}

struct Inner {
    settings: Settings,
    names: Names,
    client_id: String,
    reply: String,
    js: jetstream::Context,
    _client: async_nats::Client,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    fingerprint: u64,
    publish_tx: tokio::sync::mpsc::UnboundedSender<Outgoing>,
    publish_timeout: Duration,
    task_timeout: Option<Duration>,
    closed: AtomicBool,
}

impl Inner {
    /// Hands `outcome` to the task's waiter, if it still waits: the first
    /// outcome of a task wins, later ones (a redelivered task run twice)
    /// are dropped here.
    fn finish(&self, id: u64, outcome: Outcomes) {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(deliver) = pending {
            // User code runs here (Deserialize, done-callbacks): a panic
            // fails only this task's own delivery.
            if catch_unwind(AssertUnwindSafe(|| deliver(outcome))).is_err() {
                eprintln!("weft-cluster: a result's delivery panicked; the panic was ignored");
            }
        }
    }

    fn is_pending(&self, id: u64) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
    }

    /// Queues a task for publishing; `deliver` gets its outcome once.
    fn send(
        &self,
        function: &str,
        args: Vec<Vec<u8>>,
        timeout: Option<Duration>,
        deliver: Pending,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let task = TaskMsg {
            version: WIRE_VERSION,
            id,
            reply: self.reply.clone(),
            function: function.to_string(),
            fingerprint: self.fingerprint,
            timeout_ns: timeout.map(|t| t.as_nanos().min(u64::MAX as u128) as u64),
            args,
        };
        let payload = match encode(task) {
            Ok(payload) => payload,
            Err(error) => return deliver(Err(error)),
        };
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, deliver);
        if self.publish_tx.send(Outgoing { id, payload }).is_err() {
            self.finish(id, Err(TaskError::Abandoned));
        }
    }
}

async fn publish_loop(inner: Arc<Inner>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
    while let Some(out) = rx.recv().await {
        tokio::spawn(publish_one(inner.clone(), out));
    }
}

/// Publishes one task until the server has stored it: retried with the
/// same message id (so the server keeps one copy) through disconnections,
/// until the publish timeout.
async fn publish_one(inner: Arc<Inner>, out: Outgoing) {
    let deadline = Instant::now() + inner.publish_timeout;
    let message_id = format!("{}-{}", inner.client_id, out.id);
    let payload = out.payload;
    let mut delay = Duration::from_millis(20);
    let last_error = loop {
        let attempt = async {
            inner
                .js
                .send_publish(
                    inner.names.tasks_subject.clone(),
                    jetstream::message::PublishMessage::build()
                        .payload(payload.clone().into())
                        .message_id(&message_id),
                )
                .await?
                .await
        };
        let error = match attempt.await {
            Ok(_) => return,
            Err(error) => error.to_string(),
        };
        if inner.closed.load(Ordering::Relaxed) || !inner.is_pending(out.id) {
            return;
        }
        if Instant::now() + delay >= deadline {
            break error;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    };
    inner.finish(
        out.id,
        Err(TaskError::WorkerLost {
            exit: WorkerExit::Unknown(format!(
                "the task never reached the NATS server at {} within the publish timeout of {:?} \
                 (it did not run): {last_error}",
                inner.settings.url, inner.publish_timeout
            )),
        }),
    );
}

/// Receives this client's results and hands each to its waiter, once.
async fn results_loop(inner: Arc<Inner>, mut consumer: consumer::PullConsumer, idle: Duration) {
    while !inner.closed.load(Ordering::Relaxed) {
        let batch = consumer
            .batch()
            .max_messages(1024)
            .expires(Duration::from_secs(2))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(batch) => batch,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // The consumer may be gone (a server that lost it): make it again.
                if let Ok(again) = results_consumer(
                    &inner.settings,
                    &inner.js,
                    &inner.names,
                    &inner.client_id,
                    idle,
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
            match decode::<ResultMsg>(&message.payload) {
                Ok(result) => {
                    let outcomes = result
                        .outcomes
                        .into_iter()
                        .map(|o| o.map_err(TaskError::from))
                        .collect();
                    inner.finish(result.id, Ok(outcomes));
                }
                Err(error) => eprintln!("weft-cluster: dropped a malformed result: {error}"),
            }
            let _ = message.ack().await;
        }
    }
}

/// The process pool across machines: tasks go to a NATS JetStream stream,
/// [`Worker`](crate::Worker)s on any machine run them, and each result
/// comes back to the handle that waits for it, exactly once.
///
/// The same shapes as [`weft_process::ProcessPool`], for the same
/// functions marked with [`weft_process::register!`]. Handles are
/// [`TaskHandle`]s: `join()` blocks, `.await` works in any executor.
///
/// ```no_run
/// use weft_cluster::Cluster;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// weft_process::register!(square);
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = Cluster::builder().url("nats://127.0.0.1:4222").build()?;
/// assert_eq!(cluster.submit(square, 7).join()?, 49);
/// let squares: Vec<u64> = cluster.map(square, 0..100).collect::<Result<_, _>>()?;
/// assert_eq!(squares[9], 81);
/// # Ok(())
/// # }
/// ```
///
/// Dropping the client fails its unfinished handles with
/// [`TaskError::Abandoned`] (their tasks may still run) and deletes its
/// result consumer. [`TaskHandle::cancel`] gives the handle
/// [`TaskError::Cancelled`] at once, but a task already in the stream
/// cannot be recalled: a worker may still run it (its result is dropped).
pub struct Cluster {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.inner.settings.url)
            .field("stream", &self.inner.settings.stream)
            .field("client", &self.inner.client_id)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A builder: `.url(...)`, credentials, TLS, the stream name, timeouts,
    /// then `.build()`.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), weft_cluster::ClusterError> {
    /// use std::time::Duration;
    /// let cluster = weft_cluster::Cluster::builder()
    ///     .url("tls://nats.example.com:4222")
    ///     .credentials_file("/etc/weft/client.creds")
    ///     .require_tls(true)
    ///     .stream("JOBS")
    ///     .connect_timeout(Duration::from_secs(3))
    ///     .build()?;
    /// # drop(cluster);
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            settings: Settings::new("client"),
            task_timeout: None,
            publish_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(3600),
        }
    }

    /// Runs `f(arg)` on a worker. `f` must be marked with
    /// [`weft_process::register!`]; its argument and result travel as
    /// `serde` values (the process pool's encoding).
    ///
    /// The handle gets the result or a [`TaskError`]: `Panicked`,
    /// `TimedOut`, `WorkerLost` (the process running it died on every
    /// delivery, or the task never reached the server), `Serialization`
    /// (including a worker that runs different code). See the crate's
    /// failure table.
    pub fn submit<F, A, R>(&self, f: F, arg: A) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.submit_inner(f, arg, self.inner.task_timeout)
    }

    /// [`submit`](Self::submit) with a time limit for this task, measured
    /// from when a worker starts it: past it the task fails with
    /// [`TaskError::TimedOut`] and the process that ran it is killed and
    /// replaced (the worker goes on). A zero `timeout` fails at once.
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

    fn submit_inner<F, A, R>(&self, f: F, arg: A, timeout: Option<Duration>) -> TaskHandle<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        let function = match registered(f) {
            Ok(function) => function,
            Err(error) => return TaskHandle::ready(Err(error)),
        };
        let arg = match encode(arg) {
            Ok(arg) => arg,
            Err(error) => return TaskHandle::ready(Err(error)),
        };
        let (completer, handle) = TaskHandle::pair();
        self.inner.send(
            function.name(),
            vec![arg],
            timeout,
            Box::new(move |outcome: Outcomes| {
                let result = outcome.and_then(|outcomes| {
                    let mut outcomes = outcomes.into_iter();
                    match (outcomes.next(), outcomes.next()) {
                        (Some(one), None) => one.and_then(|bytes| decode::<R>(&bytes)),
                        _ => Err(malformed()),
                    }
                });
                completer.complete(result);
            }),
        );
        handle
    }

    /// Runs `f(arg)` on a worker and waits for the result (Python's
    /// `pool.apply`, Celery's `f.delay(x).get()`): [`submit`](Self::submit)
    /// then `join`.
    ///
    /// ```no_run
    /// fn inc(x: u32) -> u32 {
    ///     x + 1
    /// }
    /// weft_process::register!(inc);
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = weft_cluster::Cluster::builder().build()?;
    /// assert_eq!(cluster.apply(inc, 41)?, 42);
    /// # Ok(())
    /// # }
    /// ```
    pub fn apply<F, A, R>(&self, f: F, arg: A) -> Result<R, TaskError>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
    {
        self.submit(f, arg).join()
    }

    /// Runs `f` on every item across the workers and yields the results in
    /// the items' order (Python's `pool.map`). Items travel in chunks (one
    /// task each), chosen automatically; see
    /// [`map_chunked`](Self::map_chunked). A failure fails only its item.
    ///
    /// ```no_run
    /// fn double(x: i32) -> i32 {
    ///     2 * x
    /// }
    /// weft_process::register!(double);
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = weft_cluster::Cluster::builder().build()?;
    /// let out: Vec<i32> = cluster.map(double, [1, 2, 3]).map(Result::unwrap).collect();
    /// assert_eq!(out, [2, 4, 6]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn map<F, A, R, I>(&self, f: F, items: I) -> MapResults<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.map_inner(f, items, 0, true)
    }

    /// [`map`](Self::map) with `chunksize` items per task (`0`: chosen
    /// automatically). A chunk is one message each way and is redelivered
    /// whole if its worker dies; its items run one by one in the worker's
    /// local pool.
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
    /// it arrives (Python's `pool.imap_unordered`).
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
    /// (`0`: chosen automatically).
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
        let (tx, rx) = mpsc::channel();
        let encoded: Vec<Result<Vec<u8>, TaskError>> = items.into_iter().map(encode).collect();
        let total_items = encoded.len();
        let function = registered(f);
        let chunksize = if chunksize == 0 {
            total_items.div_ceil(64).clamp(1, 1000)
        } else {
            chunksize
        };
        // Cut into chunks: at most `chunksize` items and CHUNK_BYTES each; an
        // item that would not encode is a chunk of its own, failed at once.
        let mut chunks = 0usize;
        let mut current: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0usize;
        let flush = |current: &mut Vec<Vec<u8>>, bytes: &mut usize, chunks: &mut usize| {
            if current.is_empty() {
                return;
            }
            let args = std::mem::take(current);
            *bytes = 0;
            let index = *chunks;
            *chunks += 1;
            let count = args.len();
            let tx = tx.clone();
            let deliver: Pending = Box::new(move |outcome: Outcomes| {
                let items = match outcome {
                    Ok(outcomes) if outcomes.len() == count => outcomes
                        .into_iter()
                        .map(|o| o.and_then(|bytes| decode::<R>(&bytes)))
                        .collect(),
                    Ok(_) => (0..count).map(|_| Err(malformed())).collect(),
                    Err(error) => (0..count).map(|_| Err(error.clone())).collect(),
                };
                let _ = tx.send((index, items));
            });
            match &function {
                Ok(function) => {
                    self.inner
                        .send(function.name(), args, self.inner.task_timeout, deliver)
                }
                Err(error) => deliver(Err(error.clone())),
            }
        };
        for item in encoded {
            match item {
                Ok(arg) => {
                    if !current.is_empty()
                        && (current.len() >= chunksize || bytes + arg.len() > CHUNK_BYTES)
                    {
                        flush(&mut current, &mut bytes, &mut chunks);
                    }
                    bytes += arg.len();
                    current.push(arg);
                }
                Err(error) => {
                    flush(&mut current, &mut bytes, &mut chunks);
                    let index = chunks;
                    chunks += 1;
                    let _ = tx.send((index, vec![Err(error)]));
                }
            }
        }
        flush(&mut current, &mut bytes, &mut chunks);
        MapResults {
            rx,
            ordered,
            chunks,
            received: 0,
            next_chunk: 0,
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            remaining: total_items,
        }
    }

    /// The number of tasks submitted by this client whose result has not
    /// arrived yet (a `map` chunk counts once).
    pub fn pending(&self) -> usize {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The NATS server URL this client was built with.
    pub fn url(&self) -> &str {
        &self.inner.settings.url
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        let waiting: Vec<Pending> = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, deliver)| deliver)
            .collect();
        for deliver in waiting {
            let _ = catch_unwind(AssertUnwindSafe(|| deliver(Err(TaskError::Abandoned))));
        }
        if let Some(runtime) = self.runtime.take() {
            let inner = self.inner.clone();
            block_on(&runtime, async move {
                let name = format!("client-{}", inner.client_id);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    inner
                        .js
                        .delete_consumer_from_stream(name, &inner.names.results_stream),
                )
                .await;
            });
            runtime.shutdown_background();
        }
    }
}

fn registered<F: 'static>(f: F) -> Result<Function, TaskError> {
    Function::of(f).ok_or_else(|| TaskError::Serialization {
        message: format!(
            "`{}` is not a registered function: mark it with `weft_process::register!` \
             (closures and generic functions cannot be sent to workers)",
            std::any::type_name::<F>()
        ),
    })
}

fn malformed() -> TaskError {
    TaskError::Serialization {
        message: "a worker sent a result with the wrong number of outcomes".to_string(),
    }
}

/// The results of [`Cluster::map`] and friends, one per item: in the items'
/// order for `map`, as chunks arrive for `map_unordered`. Blocks in
/// `next()` until the next result is there; if the [`Cluster`] is dropped,
/// the items still missing are [`TaskError::Abandoned`].
pub struct MapResults<R> {
    rx: mpsc::Receiver<(usize, Vec<Result<R, TaskError>>)>,
    ordered: bool,
    chunks: usize,
    received: usize,
    next_chunk: usize,
    waiting: BTreeMap<usize, Vec<Result<R, TaskError>>>,
    ready: VecDeque<Result<R, TaskError>>,
    remaining: usize,
}

impl<R> std::fmt::Debug for MapResults<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapResults")
            .field("remaining", &self.remaining)
            .field("ordered", &self.ordered)
            .finish_non_exhaustive()
    }
}

impl<R> Iterator for MapResults<R> {
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                self.remaining -= 1;
                return Some(item);
            }
            if self.remaining == 0 {
                return None;
            }
            if self.ordered
                && let Some(items) = self.waiting.remove(&self.next_chunk)
            {
                self.next_chunk += 1;
                self.ready.extend(items);
                continue;
            }
            if self.received == self.chunks {
                // Every chunk was accounted for and items are still missing:
                // cannot happen, but never wait for them.
                self.remaining = 0;
                return None;
            }
            match self.rx.recv() {
                Ok((index, items)) => {
                    self.received += 1;
                    if self.ordered {
                        self.waiting.insert(index, items);
                    } else {
                        self.ready.extend(items);
                    }
                }
                Err(_) => {
                    // The client is gone: what is missing is abandoned.
                    let missing =
                        self.remaining - self.waiting.values().map(Vec::len).sum::<usize>();
                    let mut rest: Vec<_> =
                        std::mem::take(&mut self.waiting).into_values().collect();
                    rest.push((0..missing).map(|_| Err(TaskError::Abandoned)).collect());
                    self.received = self.chunks;
                    self.ordered = false;
                    self.ready.extend(rest.into_iter().flatten());
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}
