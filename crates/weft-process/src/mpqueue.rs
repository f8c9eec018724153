//! [`Queue`]: a queue shared by any number of processes (Python's
//! `multiprocessing.Queue`), with many producers and consumers, each item
//! delivered exactly once.
//!
//! # Design
//!
//! ipc-channel receivers cannot be cloned, so a queue is not a channel: it
//! is a [`weft_sync::Queue`] in the process that created it (the owner),
//! which gives the bound, back-pressure, timeouts, shutdown and
//! exactly-once delivery. The owner's handles use it directly (no
//! serialization at all). A handle that travels to another process
//! carries the sending end of the owner's *acceptor* (a thread started when
//! the queue first travels); there, each thread that uses the handle gets a
//! *session* on first use: a request channel and a reply channel, whose ends
//! the acceptor hands to a thread of its own in the owner (one per
//! session). Each operation is one request and one reply; a blocking or
//! timed operation waits in the owner's session thread, on the owner's
//! queue, so the timeout is the owner's to enforce and no reply is ever
//! lost to a timeout. An item a session thread took for a consumer that is
//! gone (its process died) is put back at the tail.
//!
//! Blocking puts from another process are the exception, as in Python:
//! they are encoded at once and buffered, and a feeder thread (one per
//! handle and its clones) sends the buffer as one batch over a session of
//! its own, waits for the owner's reply (the owner puts the batch's items
//! in order, each waiting for room), and sends the next. A batch is one
//! ipc-channel message: it arrives whole or not at all.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use ipc_channel::ipc::{self, IpcReceiver, OpaqueIpcReceiver, OpaqueIpcSender};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weft_sync::{TaskError, TaskHandle};

use crate::channel::{
    Incoming, RecvFail, SendFail, Wait, discard_stash, encode_counting, in_send, outside_send,
    recv_caught, send_ref,
};
use crate::pool::lock;
use crate::registry::drop_quietly;

/// Why a put failed; the item is given back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueuePutError<T> {
    /// The queue stayed full (at once for `try_put`, until the deadline
    /// for `put_timeout`); Python's `queue.Full`.
    #[error("the queue is full")]
    Full(T),
    /// The queue was shut down and accepts no more items.
    #[error("the queue has been shut down and accepts no more items")]
    ShutDown(T),
    /// The process that created the queue has exited (or dropped every
    /// handle it had and the acceptor with them).
    #[error("the process that owns the queue is gone")]
    Disconnected(T),
    /// The item would not serialize here, or not deserialize in the
    /// queue's process.
    #[error("the item could not be (de)serialized: {message}")]
    Serialization {
        /// The item.
        value: T,
        /// The serializer's message.
        message: String,
    },
}

impl<T> QueuePutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            QueuePutError::Full(v)
            | QueuePutError::ShutDown(v)
            | QueuePutError::Disconnected(v)
            | QueuePutError::Serialization { value: v, .. } => v,
        }
    }
}

/// Why a get gave no item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueGetError {
    /// The queue stayed empty (at once for `try_get`, until the deadline
    /// for `get_timeout`); Python's `queue.Empty`.
    #[error("the queue is empty")]
    Empty,
    /// The queue was shut down and has no items left.
    #[error("the queue has been shut down and has no items left")]
    ShutDown,
    /// The process that created the queue is gone.
    #[error("the process that owns the queue is gone")]
    Disconnected,
    /// An item was taken but could not travel here (it would not serialize
    /// in the queue's process or not deserialize here); it is lost.
    #[error("an item could not be (de)serialized: {0}")]
    Serialization(String),
}

/// A request from a handle in another process; items travel by reference
/// (`Request<&T>`) and arrive as `Request<T>`.
#[derive(Serialize, Deserialize)]
enum Request<I> {
    /// `wait`: `None` blocks, `Some(ZERO)` tries, else a timeout.
    Put {
        item: I,
        wait: Option<Duration>,
    },
    Get {
        wait: Option<Duration>,
    },
    Len,
    Shutdown {
        immediate: bool,
    },
    IsShutDown,
    /// A batch of buffered puts (each item encoded on its own, `lens` long
    /// each, back to back in `bytes`), put in order, each waiting for room.
    PutBatch {
        lens: Vec<u32>,
        bytes: Vec<u8>,
    },
}

/// The owner's reply (`Reply<()>` encodes as `Reply<T>` for every variant
/// but `Got`).
#[derive(Serialize, Deserialize)]
enum Reply<I> {
    Done,
    Got(I),
    Full,
    Empty,
    ShutDown,
    Count(u64),
    Flag(bool),
    Failed(String),
    /// A batch's outcome: `taken` items went in (the first ones); after a
    /// shutdown (`shut`) the rest were dropped; `failed` would not decode
    /// (the last message in `message`).
    Batch {
        taken: u64,
        shut: bool,
        failed: u64,
        message: Option<String>,
    },
}

/// A new session: the ends the owner's session thread uses.
#[derive(Serialize, Deserialize)]
struct Join {
    requests: OpaqueIpcReceiver,
    replies: OpaqueIpcSender,
}

/// A queue of `T` shared by any number of processes: Python's
/// `multiprocessing.Queue`.
///
/// The queue lives in the process that created it (its *owner*); a
/// `Queue` handle may travel to other processes inside a
/// [`Process`](crate::Process)'s argument or result, a
/// [`Pipe`](crate::Pipe) message or another queue's item, and be cloned
/// freely there. Every item is delivered exactly once, to one consumer, in
/// any process. Like [`weft_sync::Queue`], which it is built on, it may be
/// bounded (`put` waits for room), and every `put` and `get` comes
/// blocking, non-blocking (`try_`), with a timeout, and async;
/// [`shutdown`](Self::shutdown) works as in Python 3.13.
///
/// In the owner, operations are those of a [`weft_sync::Queue`]. From
/// another process, a blocking [`put`](Self::put) is buffered, as
/// Python's is (see below); every other operation costs a request and a
/// reply over ipc-channel and a serialization of the item each way (see
/// `docs/benchmarks.md`). When the owner exits, the queue is gone:
/// handles elsewhere then fail with `Disconnected`. Python's
/// `task_done`/`join` (`JoinableQueue`) are not offered yet.
///
/// # Buffered puts from another process
///
/// Like Python's `multiprocessing.Queue`, a blocking `put` from a process
/// other than the owner encodes its item, checks that it decodes back,
/// appends it to the handle's buffer and returns; a feeder thread (one
/// per handle and its clones in a process) sends the buffer to the owner
/// as one batch and waits for the owner to have put its items, in order,
/// while the next batch fills. So, from another process:
///
/// - **Order and exactly once:** the items of one handle (and its clones)
///   reach the queue in the order of their `put`s, each once; every other
///   operation of the handle ([`get`](Self::get), [`try_put`](Self::try_put),
///   [`len`](Self::len), [`shutdown`](Self::shutdown), ...) first waits
///   until its buffered items are in.
/// - **Back-pressure:** a handle buffers at most the queue's capacity (at
///   most 4,096 items, 256 KiB), and the owner takes a batch only as fast
///   as the queue makes room: a producer facing a full bounded queue
///   blocks in `put` once its buffer is full, after running ahead of the
///   queue by at most twice its capacity (a batch waiting in the owner, and
///   the buffer).
/// - **Errors come late:** `put` returns `ShutDown` or `Disconnected` at
///   once only when this handle already knows it; items buffered before
///   the owner refused them (shut down) or went away are dropped, and
///   [`flush`](Self::flush) says how many. Dropping the last handle of a
///   process waits until its buffer is sent (Python's `join_thread` at
///   exit), which blocks as long as a full queue stays full.
/// - **A producer that dies** (killed, aborted, `exit` with a handle still
///   alive) loses the items still in its buffer or in a batch not yet
///   sent, only those, and never corrupts the queue: a batch is one
///   message, put whole or not at all, and an earlier item never goes
///   missing behind a later one.
/// - Items holding channels (queues, pipe ends, shared memory), items
///   whose encoding fails or panics, or that do not decode back here, and
///   every `try_put` and `put_timeout`, go one by one as a request and a
///   reply, with their error at once.
///
/// How the rest works: the items live in a [`weft_sync::Queue`] in the
/// owner. The first time a handle travels, the owner starts an acceptor
/// thread; in another process, each thread that uses a handle opens a
/// session with it on first use (a request channel and a reply channel,
/// served by a thread of the owner's), and reuses it. Each operation is
/// one request and one reply; blocking and timed operations wait in the
/// owner, on its queue, so a timeout never loses an item. An item taken
/// for a consumer whose process died before the reply reached it is put
/// back, at the tail. Costs: an owner's own operations are those of a
/// `weft_sync::Queue`; from another process, a buffered put costs an
/// encoding and a decoding of the item here and a decoding in the owner
/// (measured on a loaded 2-core machine: 100,000 `u64`s from a child in
/// about 25 ms, `queue_100k_items`), any other operation a round trip
/// over ipc-channel (about 30,000 gets/s into a child), one thread in the
/// owner per session, and for the async forms a helper thread per call.
///
/// ```
/// use weft_process::{Process, Queue};
///
/// fn produce((q, from): (Queue<u64>, u64)) {
///     for i in from..from + 100 {
///         q.put(i).unwrap();
///     }
/// }
/// weft_process::register!(produce);
///
/// let q = Queue::bounded(16);
/// let ps: Vec<_> = (0..2)
///     .map(|k| Process::spawn(produce, (q.clone(), k * 100)).unwrap())
///     .collect();
/// let mut got: Vec<u64> = (0..200).map(|_| q.get().unwrap()).collect();
/// for p in ps {
///     p.join().unwrap();
/// }
/// got.sort();
/// assert_eq!(got, (0..200).collect::<Vec<_>>());
/// ```
pub struct Queue<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Owner(Arc<Owner<T>>),
    Remote(Remote<T>),
}

struct Owner<T> {
    queue: Arc<weft_sync::Queue<T>>,
    /// The acceptor's sending end, once the queue has travelled.
    acceptor: Mutex<Option<OpaqueIpcSender>>,
}

struct Remote<T> {
    acceptor: OpaqueIpcSender,
    capacity: Option<u64>,
    /// Idle sessions; an operation takes one (or opens one) and gives it
    /// back, so threads sharing a handle never wait on each other.
    sessions: Arc<Mutex<Vec<Session<T>>>>,
    /// The buffer of blocking puts and its feeder, shared by the clones of
    /// this handle in this process; the last one dropped flushes it.
    feed: Arc<FeedGuard>,
}

impl<T> Clone for Remote<T> {
    fn clone(&self) -> Self {
        Remote {
            acceptor: self.acceptor.clone(),
            capacity: self.capacity,
            sessions: self.sessions.clone(),
            feed: self.feed.clone(),
        }
    }
}

/// At most this many items in a handle's buffer (fewer for a bounded queue:
/// its capacity), and in one batch.
const BATCH_ITEMS: usize = 4096;
/// At most this many encoded bytes in a handle's buffer (one item above it
/// goes alone).
const BATCH_BYTES: usize = 256 * 1024;

/// Why the queue's owner refuses every further item of a handle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Refusal {
    ShutDown,
    Disconnected,
}

/// A handle's buffered puts (Python's `multiprocessing.Queue` buffer and
/// feeder thread): `put` encodes its item, appends it here and returns; a
/// feeder thread sends what is buffered as one batch, waits for the
/// owner's reply (the owner puts the items in order, waiting for room),
/// and sends the next.
struct Feed {
    state: Mutex<FeedState>,
    /// The feeder waits here for items.
    work: Condvar,
    /// Putters (a full buffer) and flushers wait here.
    room: Condvar,
}

struct FeedState {
    lens: Vec<u32>,
    bytes: Vec<u8>,
    /// The most items the buffer holds.
    limit: usize,
    in_flight: bool,
    /// Items ever buffered, and of those, how many the owner has answered
    /// for (taken or refused) or were dropped after a refusal.
    appended: u64,
    settled: u64,
    feeder: FeederState,
    feeder_idle: bool,
    stopping: bool,
    /// Set once the owner refused a batch (shut down) or is gone; puts
    /// fail at once from then on.
    refused: Option<Refusal>,
    /// Items put with success but refused or lost since the last flush.
    lost: u64,
    /// Why the last lost item would not decode in the owner.
    message: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FeederState {
    NotStarted,
    Running,
    /// No thread could be started: puts go one by one.
    Unavailable,
}

/// Flushes the buffer when the last clone of a handle goes.
struct FeedGuard {
    feed: Arc<Feed>,
}

impl FeedGuard {
    fn new(capacity: Option<u64>) -> FeedGuard {
        let limit = capacity
            .map(|c| usize::try_from(c).unwrap_or(usize::MAX))
            .unwrap_or(BATCH_ITEMS)
            .clamp(1, BATCH_ITEMS);
        FeedGuard {
            feed: Arc::new(Feed {
                state: Mutex::new(FeedState {
                    lens: Vec::new(),
                    bytes: Vec::new(),
                    limit,
                    in_flight: false,
                    appended: 0,
                    settled: 0,
                    feeder: FeederState::NotStarted,
                    feeder_idle: false,
                    stopping: false,
                    refused: None,
                    lost: 0,
                    message: None,
                }),
                work: Condvar::new(),
                room: Condvar::new(),
            }),
        }
    }
}

impl Feed {
    /// Waits until every item buffered so far has reached the owner (or
    /// was refused); items other threads buffer meanwhile are not waited
    /// for, so a steady producer never starves a getter that shares its
    /// handle. Returns the state then.
    fn drained(&self) -> MutexGuard<'_, FeedState> {
        let mut st = lock(&self.state);
        let target = st.appended;
        while st.settled < target && st.feeder == FeederState::Running {
            st = self.room.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st
    }
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        let mut st = self.feed.drained();
        st.stopping = true;
        drop(st);
        self.feed.work.notify_all();
    }
}

/// The feeder: sends what is buffered, one batch at a time, until the
/// handles are gone and the buffer is empty.
fn feeder<T>(feed: &Feed, session: Session<T>)
where
    T: Serialize + DeserializeOwned,
{
    let mut lens = Vec::new();
    let mut bytes = Vec::new();
    loop {
        {
            let mut st = lock(&feed.state);
            while st.lens.is_empty() && !st.stopping {
                st.feeder_idle = true;
                st = feed.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            st.feeder_idle = false;
            if st.lens.is_empty() {
                return;
            }
            std::mem::swap(&mut lens, &mut st.lens);
            std::mem::swap(&mut bytes, &mut st.bytes);
            st.in_flight = true;
        }
        // Putters waiting for room may go on filling the next batch.
        feed.room.notify_all();
        let count = lens.len() as u64;
        let request: Request<&T> = Request::PutBatch {
            lens: std::mem::take(&mut lens),
            bytes: std::mem::take(&mut bytes),
        };
        let outcome = match send_ref(&session.requests, &request) {
            Ok(()) => match recv_caught(&session.replies, Wait::Block) {
                Ok(Reply::Batch {
                    taken,
                    shut,
                    failed,
                    message,
                }) => Ok((taken, shut, failed, message)),
                Ok(_) | Err(RecvFail::Serialization(_)) => Err(Refusal::Disconnected),
                Err(_) => Err(Refusal::Disconnected),
            },
            Err(_) => Err(Refusal::Disconnected),
        };
        if let Request::PutBatch {
            lens: mut l,
            bytes: mut b,
        } = request
        {
            l.clear();
            b.clear();
            lens = l;
            bytes = b;
        }
        let mut st = lock(&feed.state);
        st.in_flight = false;
        st.settled += count;
        match outcome {
            Ok((taken, shut, failed, message)) => {
                st.lost += count.saturating_sub(taken);
                if failed > 0 {
                    st.message = message;
                }
                if shut {
                    st.refused = Some(Refusal::ShutDown);
                }
            }
            Err(r) => {
                st.lost += count;
                st.refused = Some(r);
            }
        }
        if st.refused.is_some() {
            // Whatever is buffered would be refused too.
            st.lost += st.lens.len() as u64;
            st.settled += st.lens.len() as u64;
            st.lens.clear();
            st.bytes.clear();
        }
        drop(st);
        feed.room.notify_all();
    }
}

struct Session<T> {
    requests: OpaqueIpcSender,
    replies: IpcReceiver<Incoming<Reply<T>>>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            inner: match &self.inner {
                Inner::Owner(o) => Inner::Owner(o.clone()),
                Inner::Remote(r) => Inner::Remote(r.clone()),
            },
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Owner(o) => f
                .debug_struct("Queue")
                .field("owner", &true)
                .field("queue", &o.queue)
                .finish(),
            Inner::Remote(r) => f
                .debug_struct("Queue")
                .field("owner", &false)
                .field("capacity", &r.capacity)
                .finish_non_exhaustive(),
        }
    }
}

/// What became of a buffered put.
enum Buffered<T> {
    Done(Result<(), QueuePutError<T>>),
    /// It must go on its own (channels inside, no feeder, will not
    /// round-trip here).
    OneByOne(T),
}

/// A failed remote call.
enum CallFail {
    Serialization(String),
    Disconnected,
}

fn wait_of(wait: Wait) -> Option<Duration> {
    match wait {
        Wait::Block => None,
        Wait::Poll => Some(Duration::ZERO),
        Wait::For(d) => Some(d),
    }
}

impl<T> Queue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// A queue with no size limit, owned by this process.
    pub fn unbounded() -> Queue<T> {
        Queue::owning(weft_sync::Queue::unbounded())
    }

    /// A queue holding at most `capacity` items (`put` waits for room),
    /// owned by this process.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0, as [`weft_sync::Queue::bounded`].
    pub fn bounded(capacity: usize) -> Queue<T> {
        Queue::owning(weft_sync::Queue::bounded(capacity))
    }

    fn owning(queue: weft_sync::Queue<T>) -> Queue<T> {
        Queue {
            inner: Inner::Owner(Arc::new(Owner {
                queue: Arc::new(queue),
                acceptor: Mutex::new(None),
            })),
        }
    }

    /// Whether this handle is in the process that owns the queue.
    pub fn is_owner(&self) -> bool {
        matches!(self.inner, Inner::Owner(_))
    }

    /// The capacity, or `None` when unbounded (Python's `maxsize`).
    pub fn capacity(&self) -> Option<usize> {
        match &self.inner {
            Inner::Owner(o) => o.queue.capacity(),
            Inner::Remote(r) => r.capacity.map(|c| usize::try_from(c).unwrap_or(usize::MAX)),
        }
    }

    fn put_with(&self, item: T, wait: Wait) -> Result<(), QueuePutError<T>> {
        match &self.inner {
            Inner::Owner(o) => {
                let put = match wait {
                    Wait::Block => o.queue.put(item),
                    Wait::Poll => o.queue.try_put(item),
                    Wait::For(d) => o.queue.put_timeout(item, d),
                };
                put.map_err(|e| match e {
                    weft_sync::PutError::Full(v) => QueuePutError::Full(v),
                    weft_sync::PutError::ShutDown(v) => QueuePutError::ShutDown(v),
                })
            }
            Inner::Remote(r) => r.put(item, wait),
        }
    }

    fn get_with(&self, wait: Wait) -> Result<T, QueueGetError> {
        match &self.inner {
            Inner::Owner(o) => {
                let got = match wait {
                    Wait::Block => o.queue.get(),
                    Wait::Poll => o.queue.try_get(),
                    Wait::For(d) => o.queue.get_timeout(d),
                };
                got.map_err(owner_get_error)
            }
            Inner::Remote(r) => r.get(wait),
        }
    }

    /// Puts `item`, waiting for room in a bounded queue (Python's `put`).
    /// From another process the item is buffered and `Ok` means it is on
    /// its way; see the type's documentation and [`flush`](Self::flush).
    pub fn put(&self, item: T) -> Result<(), QueuePutError<T>> {
        self.put_with(item, Wait::Block)
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    pub fn try_put(&self, item: T) -> Result<(), QueuePutError<T>> {
        self.put_with(item, Wait::Poll)
    }

    /// Puts `item`, waiting at most `timeout` for room (a huge timeout: no
    /// limit).
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), QueuePutError<T>> {
        self.put_with(item, Wait::from_timeout(timeout))
    }

    /// Takes the oldest item, waiting for one (Python's `get`).
    pub fn get(&self) -> Result<T, QueueGetError> {
        self.get_with(Wait::Block)
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`).
    pub fn try_get(&self) -> Result<T, QueueGetError> {
        self.get_with(Wait::Poll)
    }

    /// Takes the oldest item, waiting at most `timeout` for one (a huge
    /// timeout: no limit).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueGetError> {
        self.get_with(Wait::from_timeout(timeout))
    }

    /// The number of items in the queue (Python's `qsize`): a snapshot,
    /// stale as soon as it is read. From another process: `0` if the owner
    /// is gone.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Owner(o) => o.queue.len(),
            Inner::Remote(r) => match r.call(&Request::<&T>::Len) {
                Ok(Reply::Count(n)) => usize::try_from(n).unwrap_or(usize::MAX),
                _ => 0,
            },
        }
    }

    /// Waits until every item this process put through this handle (or a
    /// clone of it) has reached the queue's process, and says whether some
    /// were refused there since the last flush: `Err` carries how many
    /// (`ShutDown(n)`: the queue was shut down before they went in;
    /// `Disconnected(n)`: its process is gone; `Serialization`: they would
    /// not decode there). Python's `close()` + `join_thread()`, without
    /// closing. In the owner: `Ok` at once (its puts are never buffered).
    ///
    /// A blocking [`put`](Self::put) from another process only buffers its
    /// item (see the type's documentation), so this is where a program
    /// learns that the items it put went in. Dropping the last handle of a
    /// process flushes too (and blocks as long), but drops what it learns.
    pub fn flush(&self) -> Result<(), QueuePutError<u64>> {
        match &self.inner {
            Inner::Owner(_) => Ok(()),
            Inner::Remote(r) => r.flush(),
        }
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Shuts the queue down for every process (Python 3.13's `shutdown`):
    /// puts fail from now on; gets take what is left, then fail with
    /// [`QueueGetError::ShutDown`]; with `immediate`, what is left is
    /// dropped (in the owner) and gets fail at once. Blocked callers in
    /// every process wake up. From another process whose owner is gone:
    /// nothing to do.
    pub fn shutdown(&self, immediate: bool) {
        match &self.inner {
            Inner::Owner(o) => shutdown_quietly(&o.queue, immediate),
            Inner::Remote(r) => {
                let _ = r.call(&Request::<&T>::Shutdown { immediate });
            }
        }
    }

    /// Whether [`shutdown`](Self::shutdown) was called (from another
    /// process: also `true` if the owner is gone).
    pub fn is_shut_down(&self) -> bool {
        match &self.inner {
            Inner::Owner(o) => o.queue.is_shut_down(),
            Inner::Remote(r) => {
                !matches!(r.call(&Request::<&T>::IsShutDown), Ok(Reply::Flag(false)))
            }
        }
    }

    /// [`put`](Self::put) as a future. In the owner this is
    /// [`weft_sync::Queue::put_async`] (no thread); from another process the
    /// blocking put runs on a helper thread (one per call: tens of
    /// microseconds), and a future dropped before it completes may still
    /// put its item.
    pub fn put_async(
        &self,
        item: T,
    ) -> impl Future<Output = Result<(), QueuePutError<T>>> + Send + '_ {
        let remote = match &self.inner {
            Inner::Remote(r) => Some(r.clone()),
            Inner::Owner(_) => None,
        };
        async move {
            match (&self.inner, remote) {
                (Inner::Owner(o), _) => o.queue.put_async(item).await.map_err(|e| match e {
                    weft_sync::PutError::Full(v) => QueuePutError::Full(v),
                    weft_sync::PutError::ShutDown(v) => QueuePutError::ShutDown(v),
                }),
                (Inner::Remote(_), Some(r)) => {
                    let (completer, handle) = TaskHandle::pair();
                    let slot = Arc::new(Mutex::new(Some(item)));
                    let theirs = slot.clone();
                    let helper = r.clone();
                    let spawned = thread::Builder::new()
                        .name("weft-process-queue-put".into())
                        .spawn(move || {
                            if let Some(item) = lock(&theirs).take() {
                                completer.complete(Ok(helper.put(item, Wait::Block)));
                            }
                        });
                    if spawned.is_err() {
                        // No thread: put on this one (it may block).
                        let item = lock(&slot).take();
                        return match item {
                            Some(item) => r.put(item, Wait::Block),
                            None => Ok(()),
                        };
                    }
                    match handle.await {
                        Ok(outcome) => outcome,
                        // The helper cannot fail to complete (it catches
                        // nothing that can panic): treat it as a lost owner.
                        Err(_) => Ok(()),
                    }
                }
                (Inner::Remote(_), None) => unreachable!(),
            }
        }
    }

    /// [`get`](Self::get) as a future. In the owner this is
    /// [`weft_sync::Queue::get_async`] (no thread, cancel-safe); from
    /// another process the blocking get runs on a helper thread (one per
    /// call), and if the future is dropped before it takes the item, the
    /// item is put back on the queue (at the tail) rather than lost.
    pub fn get_async(&self) -> impl Future<Output = Result<T, QueueGetError>> + Send + '_ {
        let remote = match &self.inner {
            Inner::Remote(r) => Some(r.clone()),
            Inner::Owner(_) => None,
        };
        async move {
            match (&self.inner, remote) {
                (Inner::Owner(o), _) => o.queue.get_async().await.map_err(owner_get_error),
                (Inner::Remote(_), Some(r)) => RemoteGet::start(r)?.await,
                (Inner::Remote(_), None) => unreachable!(),
            }
        }
    }
}

fn owner_get_error(e: weft_sync::GetError) -> QueueGetError {
    match e {
        weft_sync::GetError::Empty => QueueGetError::Empty,
        _ => QueueGetError::ShutDown,
    }
}

/// Shuts `queue` down; a panic of a dropped item's `Drop` is reported, not
/// resumed (this may run on a queue thread).
fn shutdown_quietly<T>(queue: &weft_sync::Queue<T>, immediate: bool) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| queue.shutdown(immediate))) {
        eprintln!(
            "weft-process: dropping a queue item at shutdown panicked (ignored): {}",
            weft_sync::into_panic_message(payload)
        );
    }
}

/// A remote get on a helper thread; see [`Queue::get_async`].
struct RemoteGet<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    handle: Option<TaskHandle<Result<T, QueueGetError>>>,
    remote: Remote<T>,
}

impl<T> RemoteGet<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn start(remote: Remote<T>) -> Result<RemoteGet<T>, QueueGetError> {
        let (completer, handle) = TaskHandle::pair();
        let r = remote.clone();
        thread::Builder::new()
            .name("weft-process-queue-get".into())
            .spawn(move || match r.get(Wait::Block) {
                // Claimed: from here on the future cannot be cancelled.
                Ok(item) if completer.start() => {
                    completer.complete(Ok(Ok(item)));
                }
                // The future is gone: the item goes back.
                Ok(item) => {
                    let _ = r.put(item, Wait::Block);
                }
                Err(e) => {
                    completer.complete(Ok(Err(e)));
                }
            })
            .map_err(|_| QueueGetError::Disconnected)?;
        Ok(RemoteGet {
            handle: Some(handle),
            remote,
        })
    }
}

impl<T> Future for RemoteGet<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    type Output = Result<T, QueueGetError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(handle) = self.handle.as_mut() else {
            return Poll::Ready(Err(QueueGetError::Disconnected));
        };
        match Pin::new(handle).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(outcome) => {
                self.handle = None;
                Poll::Ready(outcome.unwrap_or_else(|e: TaskError| {
                    Err(QueueGetError::Serialization(format!(
                        "the queue's helper thread failed: {e}"
                    )))
                }))
            }
        }
    }
}

impl<T> Drop for RemoteGet<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn drop(&mut self) {
        let Some(handle) = self.handle.take() else {
            return;
        };
        if handle.cancel() {
            // Not claimed: the helper puts the item back when it comes.
            return;
        }
        // Claimed, or about to be: wait for it (the helper completes right
        // after claiming), then put the item back from another thread
        // (a bounded queue's put may wait).
        handle.wait();
        if let Ok(Ok(Ok(item))) = handle.try_join() {
            let r = self.remote.clone();
            let _ = thread::Builder::new()
                .name("weft-process-queue-putback".into())
                .spawn(move || {
                    let _ = r.put(item, Wait::Block);
                });
        }
    }
}

impl<T> Remote<T>
where
    T: Serialize + DeserializeOwned,
{
    fn session(&self) -> Result<Session<T>, CallFail> {
        if let Some(s) = lock(&self.sessions).pop() {
            return Ok(s);
        }
        let (req_tx, req_rx) =
            ipc::channel::<Incoming<Request<T>>>().map_err(|_| CallFail::Disconnected)?;
        let (reply_tx, reply_rx) =
            ipc::channel::<Incoming<Reply<T>>>().map_err(|_| CallFail::Disconnected)?;
        let join = Join {
            requests: req_rx.to_opaque(),
            replies: reply_tx.to_opaque(),
        };
        send_ref(&self.acceptor, &join).map_err(|_| CallFail::Disconnected)?;
        Ok(Session {
            requests: req_tx.to_opaque(),
            replies: reply_rx,
        })
    }

    /// One request and its reply, after the buffered puts (so that the
    /// operations of a thread reach the owner in their order).
    fn call(&self, request: &Request<&T>) -> Result<Reply<T>, CallFail> {
        drop(self.feed.feed.drained());
        let session = self.session()?;
        match send_ref(&session.requests, request) {
            Ok(()) => {}
            Err(SendFail::Serialization(m)) => {
                lock(&self.sessions).push(session);
                return Err(CallFail::Serialization(m));
            }
            Err(SendFail::Closed | SendFail::Io(_)) => return Err(CallFail::Disconnected),
        }
        match recv_caught(&session.replies, Wait::Block) {
            Ok(reply) => {
                lock(&self.sessions).push(session);
                Ok(reply)
            }
            Err(RecvFail::Serialization(m)) => {
                lock(&self.sessions).push(session);
                Err(CallFail::Serialization(m))
            }
            Err(_) => Err(CallFail::Disconnected),
        }
    }

    fn put(&self, item: T, wait: Wait) -> Result<(), QueuePutError<T>>
    where
        T: Send + 'static,
    {
        let item = match wait {
            Wait::Block => match self.put_buffered(item) {
                Buffered::Done(outcome) => return outcome,
                Buffered::OneByOne(item) => item,
            },
            _ => item,
        };
        self.put_now(item, wait)
    }

    /// A blocking put through the buffer, when the item encodes here
    /// without channels and decodes back (so that it will decode in the
    /// owner too); otherwise the item goes one by one.
    fn put_buffered(&self, item: T) -> Buffered<T>
    where
        T: Send + 'static,
    {
        let fits = catch_unwind(AssertUnwindSafe(|| {
            encode_counting(|| postcard::to_extend(&item, Vec::new()).ok())
        }));
        let encoded = match fits {
            Ok((Some(encoded), 0)) => encoded,
            Ok((_, handles)) => {
                if handles > 0 {
                    discard_stash();
                }
                return Buffered::OneByOne(item);
            }
            Err(_) => {
                discard_stash();
                return Buffered::OneByOne(item);
            }
        };
        let decodes = catch_unwind(AssertUnwindSafe(|| {
            postcard::from_bytes::<T>(&encoded)
                .map(drop_quietly)
                .is_ok()
        }));
        if !matches!(decodes, Ok(true)) {
            return Buffered::OneByOne(item);
        }
        let Ok(len) = u32::try_from(encoded.len()) else {
            return Buffered::OneByOne(item);
        };
        let feed = &self.feed.feed;
        let mut st = lock(&feed.state);
        loop {
            match st.refused {
                Some(Refusal::ShutDown) => {
                    return Buffered::Done(Err(QueuePutError::ShutDown(item)));
                }
                Some(Refusal::Disconnected) => {
                    return Buffered::Done(Err(QueuePutError::Disconnected(item)));
                }
                None => {}
            }
            match st.feeder {
                FeederState::Running => {}
                FeederState::Unavailable => return Buffered::OneByOne(item),
                FeederState::NotStarted => {
                    let session = match self.session() {
                        Ok(s) => s,
                        Err(_) => return Buffered::Done(Err(QueuePutError::Disconnected(item))),
                    };
                    let theirs = feed.clone();
                    let started = thread::Builder::new()
                        .name("weft-process-queue-feeder".into())
                        .stack_size(256 * 1024)
                        .spawn(move || feeder(&theirs, session));
                    if started.is_err() {
                        st.feeder = FeederState::Unavailable;
                        return Buffered::OneByOne(item);
                    }
                    st.feeder = FeederState::Running;
                }
            }
            let full = !st.lens.is_empty()
                && (st.lens.len() >= st.limit || st.bytes.len() + encoded.len() > BATCH_BYTES);
            if !full {
                break;
            }
            st = feed.room.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        st.lens.push(len);
        st.appended += 1;
        st.bytes.extend_from_slice(&encoded);
        let wake = st.feeder_idle;
        st.feeder_idle = false;
        drop(st);
        if wake {
            feed.work.notify_one();
        }
        drop_quietly(item);
        Buffered::Done(Ok(()))
    }

    /// Waits until this handle's buffered items have reached the owner;
    /// says how many of them were refused since the last flush, and why.
    fn flush(&self) -> Result<(), QueuePutError<u64>> {
        let mut st = self.feed.feed.drained();
        let lost = std::mem::take(&mut st.lost);
        let message = st.message.take();
        if lost == 0 {
            return Ok(());
        }
        Err(match (st.refused, message) {
            (_, Some(message)) => QueuePutError::Serialization {
                value: lost,
                message,
            },
            (Some(Refusal::Disconnected), None) => QueuePutError::Disconnected(lost),
            (_, None) => QueuePutError::ShutDown(lost),
        })
    }

    /// A put of its own: one request and one reply.
    fn put_now(&self, item: T, wait: Wait) -> Result<(), QueuePutError<T>> {
        let reply = self.call(&Request::Put {
            item: &item,
            wait: wait_of(wait),
        });
        match reply {
            Ok(Reply::Done) => {
                drop(item);
                Ok(())
            }
            Ok(Reply::Full) => Err(QueuePutError::Full(item)),
            Ok(Reply::ShutDown) => Err(QueuePutError::ShutDown(item)),
            Ok(Reply::Failed(message)) | Err(CallFail::Serialization(message)) => {
                Err(QueuePutError::Serialization {
                    value: item,
                    message,
                })
            }
            Ok(_) => Err(QueuePutError::Serialization {
                value: item,
                message: "the queue's process sent an unexpected reply".into(),
            }),
            Err(CallFail::Disconnected) => Err(QueuePutError::Disconnected(item)),
        }
    }

    fn get(&self, wait: Wait) -> Result<T, QueueGetError> {
        match self.call(&Request::<&T>::Get {
            wait: wait_of(wait),
        }) {
            Ok(Reply::Got(item)) => Ok(item),
            Ok(Reply::Empty) => Err(QueueGetError::Empty),
            Ok(Reply::ShutDown) => Err(QueueGetError::ShutDown),
            Ok(Reply::Failed(m)) | Err(CallFail::Serialization(m)) => {
                Err(QueueGetError::Serialization(m))
            }
            Ok(_) => Err(QueueGetError::Serialization(
                "the queue's process sent an unexpected reply".into(),
            )),
            Err(CallFail::Disconnected) => Err(QueueGetError::Disconnected),
        }
    }
}

impl<T> Owner<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// The acceptor's sending end, starting the acceptor on first use.
    fn acceptor(&self) -> Result<OpaqueIpcSender, String> {
        let mut slot = lock(&self.acceptor);
        if let Some(tx) = &*slot {
            return Ok(tx.clone());
        }
        let (tx, rx) = ipc::channel::<Incoming<Join>>()
            .map_err(|e| format!("no channel for the queue's acceptor: {e}"))?;
        let queue = self.queue.clone();
        thread::Builder::new()
            .name("weft-process-queue".into())
            .stack_size(256 * 1024)
            .spawn(move || accept(queue, rx))
            .map_err(|e| format!("no thread for the queue's acceptor: {e}"))?;
        let tx = tx.to_opaque();
        *slot = Some(tx.clone());
        Ok(tx)
    }
}

/// The acceptor: one session thread per `Join`, until every handle that
/// could send one is gone.
fn accept<T>(queue: Arc<weft_sync::Queue<T>>, joins: IpcReceiver<Incoming<Join>>)
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    loop {
        match recv_caught(&joins, Wait::Block) {
            Ok(Join { requests, replies }) => {
                let queue = queue.clone();
                // Without a thread the session's ends close: its caller
                // sees `Disconnected`.
                let _ = thread::Builder::new()
                    .name("weft-process-queue-session".into())
                    .stack_size(1 << 20)
                    .spawn(move || serve(&queue, requests.to(), &replies));
            }
            Err(RecvFail::Closed | RecvFail::Io(_)) => return,
            Err(RecvFail::Empty | RecvFail::Serialization(_)) => {}
        }
    }
}

/// One session: requests in, replies out, until the handle's thread in the
/// other process drops it (or its process exits).
fn serve<T>(
    queue: &weft_sync::Queue<T>,
    requests: IpcReceiver<Incoming<Request<T>>>,
    replies: &OpaqueIpcSender,
) where
    T: Serialize + DeserializeOwned,
{
    let reply = |r: &Reply<()>| send_ref(replies, r).is_ok();
    loop {
        let request = match recv_caught(&requests, Wait::Block) {
            Ok(request) => request,
            Err(RecvFail::Serialization(m)) => {
                if !reply(&Reply::Failed(m)) {
                    return;
                }
                continue;
            }
            Err(RecvFail::Empty) => continue,
            Err(RecvFail::Closed | RecvFail::Io(_)) => return,
        };
        let sent = match request {
            Request::Put { item, wait } => {
                let put = match wait {
                    None => queue.put(item),
                    Some(d) if d.is_zero() => queue.try_put(item),
                    Some(d) => queue.put_timeout(item, d),
                };
                match put {
                    Ok(()) => reply(&Reply::Done),
                    Err(weft_sync::PutError::Full(v)) => {
                        drop_quietly(v);
                        reply(&Reply::Full)
                    }
                    Err(weft_sync::PutError::ShutDown(v)) => {
                        drop_quietly(v);
                        reply(&Reply::ShutDown)
                    }
                }
            }
            Request::Get { wait } => {
                let got = match wait {
                    None => queue.get(),
                    Some(d) if d.is_zero() => queue.try_get(),
                    Some(d) => queue.get_timeout(d),
                };
                match got {
                    Ok(item) => match send_ref(replies, &Reply::Got(&item)) {
                        Ok(()) => {
                            drop_quietly(item);
                            true
                        }
                        Err(SendFail::Serialization(m)) => {
                            drop_quietly(item);
                            reply(&Reply::Failed(m))
                        }
                        Err(SendFail::Closed | SendFail::Io(_)) => {
                            // The consumer is gone: the item goes back.
                            if let Err(e) = queue.put(item) {
                                drop_quietly(e.into_inner());
                            }
                            false
                        }
                    },
                    Err(weft_sync::GetError::Empty) => reply(&Reply::Empty),
                    Err(_) => reply(&Reply::ShutDown),
                }
            }
            Request::Len => reply(&Reply::Count(queue.len() as u64)),
            Request::Shutdown { immediate } => {
                shutdown_quietly(queue, immediate);
                reply(&Reply::Done)
            }
            Request::IsShutDown => reply(&Reply::Flag(queue.is_shut_down())),
            Request::PutBatch { lens, bytes } => reply(&put_batch(queue, &lens, &bytes)),
        };
        if !sent {
            return;
        }
    }
}

/// Puts a batch's items in order, each waiting for room; after a
/// shutdown the rest are dropped.
fn put_batch<T>(queue: &weft_sync::Queue<T>, lens: &[u32], bytes: &[u8]) -> Reply<()>
where
    T: DeserializeOwned,
{
    let (mut taken, mut shut, mut failed, mut message) = (0u64, false, 0u64, None);
    let mut at = 0usize;
    for &len in lens {
        let Some(encoded) = bytes.get(at..at.saturating_add(len as usize)) else {
            failed += 1;
            message = Some("a batch of items was cut short".to_string());
            break;
        };
        at += len as usize;
        if shut {
            continue;
        }
        match catch_unwind(AssertUnwindSafe(|| postcard::from_bytes::<T>(encoded))) {
            Ok(Ok(item)) => match queue.put(item) {
                Ok(()) => taken += 1,
                Err(e) => {
                    drop_quietly(e.into_inner());
                    shut = true;
                }
            },
            Ok(Err(e)) => {
                failed += 1;
                message = Some(format!(
                    "`{}` could not be deserialized in the queue's process: {e}",
                    std::any::type_name::<T>()
                ));
            }
            Err(payload) => {
                failed += 1;
                message = Some(format!(
                    "`{}`'s Deserialize panicked in the queue's process: {}",
                    std::any::type_name::<T>(),
                    weft_sync::into_panic_message(payload)
                ));
            }
        }
    }
    Reply::Batch {
        taken,
        shut,
        failed,
        message,
    }
}

impl<T> Serialize for Queue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !in_send() {
            return Err(outside_send("Queue"));
        }
        let (acceptor, capacity) = match &self.inner {
            Inner::Owner(o) => (
                o.acceptor().map_err(serde::ser::Error::custom)?,
                o.queue.capacity().map(|c| c as u64),
            ),
            Inner::Remote(r) => (r.acceptor.clone(), r.capacity),
        };
        (acceptor, capacity).serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (acceptor, capacity) = <(OpaqueIpcSender, Option<u64>)>::deserialize(d)?;
        Ok(Queue {
            inner: Inner::Remote(Remote {
                acceptor,
                capacity,
                sessions: Arc::new(Mutex::new(Vec::new())),
                feed: Arc::new(FeedGuard::new(capacity)),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(items: &[u32]) -> (Vec<u32>, Vec<u8>) {
        let mut lens = Vec::new();
        let mut bytes = Vec::new();
        for i in items {
            let e = postcard::to_stdvec(i).unwrap();
            lens.push(e.len() as u32);
            bytes.extend_from_slice(&e);
        }
        (lens, bytes)
    }

    fn outcome(r: Reply<()>) -> (u64, bool, u64, Option<String>) {
        match r {
            Reply::Batch {
                taken,
                shut,
                failed,
                message,
            } => (taken, shut, failed, message),
            _ => panic!("not a batch reply"),
        }
    }

    #[test]
    fn a_batch_goes_in_whole_and_in_order() {
        let q = weft_sync::Queue::<u32>::unbounded();
        let (lens, bytes) = batch(&[5, 300, 70_000]);
        assert_eq!(outcome(put_batch(&q, &lens, &bytes)), (3, false, 0, None));
        assert_eq!(q.try_get(), Ok(5));
        assert_eq!(q.try_get(), Ok(300));
        assert_eq!(q.try_get(), Ok(70_000));
    }

    #[test]
    fn a_forged_batch_fails_its_bad_items_and_nothing_else() {
        let q = weft_sync::Queue::<u32>::unbounded();
        let (mut lens, mut bytes) = batch(&[1, 2]);
        // An item that does not decode (a varint that never ends), then a
        // length past the end.
        lens.push(2);
        bytes.extend_from_slice(&[0xff, 0xff]);
        lens.push(100);
        let (taken, shut, failed, message) = outcome(put_batch(&q, &lens, &bytes));
        assert_eq!((taken, shut, failed), (2, false, 2));
        assert!(message.unwrap().contains("cut short"));
        assert_eq!(q.try_get(), Ok(1));
        assert_eq!(q.try_get(), Ok(2));
        assert_eq!(q.try_get(), Err(weft_sync::GetError::Empty));
    }

    #[test]
    fn a_shut_down_queue_takes_nothing_of_a_batch() {
        let q = weft_sync::Queue::<u32>::unbounded();
        q.shutdown(false);
        let (lens, bytes) = batch(&[1, 2, 3]);
        assert_eq!(outcome(put_batch(&q, &lens, &bytes)), (0, true, 0, None));
    }
}
