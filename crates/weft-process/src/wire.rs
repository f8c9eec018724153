//! The messages exchanged between the pool and its workers, over
//! ipc-channel.
//!
//! Each message is one ipc-channel message, `postcard`-encoded, and stays
//! small: byte payloads above [`INLINE_MAX`] travel in ipc-channel shared
//! memory ([`Blob`]), so a message the pool or an honest worker sends is
//! at most about 70 KiB, always below ipc-channel's largest unfragmented
//! message (its socket's send buffer): a send never waits for the peer to
//! read, as long as the peer holds at most a few unread messages (see the
//! credit window in `supervisor.rs`).
//!
//! Messages are sent borrowed ([`ToWorker`], [`FromWorker`]: no copy of a
//! payload into an owned message) and received owned ([`ToWorkerIn`],
//! [`FromWorkerIn`]); each pair has the same encoding.

use std::fmt;

use ipc_channel::ipc::{IpcSharedMemory, OpaqueIpcReceiver, OpaqueIpcSender};
use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Payloads up to this size travel inside the message; larger ones through
/// shared memory.
pub(crate) const INLINE_MAX: usize = 32 * 1024;

/// The longest error text a worker sends for one item of a reply (a longer
/// panic message is cut).
pub(crate) const ERR_TEXT_MAX: usize = 4 * 1024;

/// The most error text a worker sends in one reply, all items together
/// (past it, messages are cut shorter).
pub(crate) const ERR_TEXT_BUDGET: usize = 1 << 20;

/// The most bytes an honest worker's encoded status list takes for a job of
/// `count` arguments: per item a tag, an error kind and a varint (at most
/// 12 bytes; 24 allowed), plus the error texts' budget. The parent refuses
/// a longer one before decoding it, so a worker cannot make it build a
/// list larger than about this much.
pub(crate) fn status_limit(count: usize) -> usize {
    count
        .saturating_mul(24)
        .saturating_add(ERR_TEXT_BUDGET + 16)
}

/// Cuts the error texts of `status` to [`ERR_TEXT_MAX`] each and
/// [`ERR_TEXT_BUDGET`] in all (at character boundaries), so that the list
/// stays within [`status_limit`].
pub(crate) fn cap_error_texts(status: &mut [ItemOut]) {
    let mut left = ERR_TEXT_BUDGET;
    for item in status {
        if let ItemOut::Err(_, text) = item {
            let mut keep = text.len().min(ERR_TEXT_MAX).min(left);
            while !text.is_char_boundary(keep) {
                keep -= 1;
            }
            text.truncate(keep);
            left -= keep;
        }
    }
}

/// Appends the `postcard` encoding of `value` to `out` (an existing buffer,
/// so that encoding allocates nothing once it has grown).
pub(crate) fn encode_to<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> postcard::Result<()> {
    struct Append<'a>(&'a mut Vec<u8>);
    impl postcard::ser_flavors::Flavor for Append<'_> {
        type Output = ();
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            self.0.extend_from_slice(data);
            Ok(())
        }
        #[inline]
        fn try_push(&mut self, data: u8) -> postcard::Result<()> {
            self.0.push(data);
            Ok(())
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }
    postcard::serialize_with_flavor(value, Append(out))
}

/// A borrowed byte string: encoded as a length and the bytes (one
/// `memcpy`, not a serde call per byte).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Raw<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Raw<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Raw({} bytes)", self.0.len())
    }
}

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// An owned byte string with [`Raw`]'s encoding.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl Visitor<'_> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        deserializer.deserialize_bytes(BytesVisitor)
    }
}

/// A byte payload being sent: inline when small, in shared memory when
/// large.
#[derive(Serialize, Debug)]
pub(crate) enum Blob<'a> {
    /// Carried inside the message.
    Inline(Raw<'a>),
    /// The first `len` bytes of the sender's reusable region number
    /// `slot`, which the receiver already maps.
    Region {
        /// Which of the sender's regions (below `link::REGIONS`).
        slot: u8,
        /// The payload's length.
        len: u64,
    },
    /// The first `len` bytes of a new reusable region of the sender, which
    /// comes with the message; it replaces the previous one of its slot.
    NewRegion {
        /// Which of the sender's regions it replaces.
        slot: u8,
        /// The region.
        shm: &'a IpcSharedMemory,
        /// The payload's length.
        len: u64,
    },
    /// A payload in shared memory of its own, used once.
    OneShot(&'a IpcSharedMemory),
}

/// A byte payload as received: [`Blob`]'s encoding.
#[derive(Deserialize, Debug)]
pub(crate) enum BlobIn {
    /// Carried inside the message.
    Inline(Bytes),
    /// In one of the sender's reusable regions.
    Region {
        /// Which one (checked).
        slot: u8,
        /// The payload's length (checked against the region).
        len: u64,
    },
    /// In a new reusable region of the sender.
    NewRegion {
        /// Which of the sender's regions it replaces (checked).
        slot: u8,
        /// The region.
        shm: IpcSharedMemory,
        /// The payload's length (checked against the region).
        len: u64,
    },
    /// In shared memory of its own.
    OneShot(IpcSharedMemory),
}

impl BlobIn {
    /// The payload's length in bytes, as the sender announces it.
    pub(crate) fn len(&self) -> u64 {
        match self {
            BlobIn::Inline(b) => b.0.len() as u64,
            BlobIn::Region { len, .. } | BlobIn::NewRegion { len, .. } => *len,
            BlobIn::OneShot(shm) => shm.len() as u64,
        }
    }
}

/// A worker's first message, on the one-shot server whose name it was
/// given (and, sent by the parent's watchdog, the news that it died before
/// connecting).
#[derive(Serialize, Deserialize)]
pub(crate) enum Hello {
    /// The worker proves who it is and hands over the sending end of its
    /// channel from the parent.
    Worker {
        /// The secret from the worker's environment (32 bytes).
        secret: Bytes,
        /// The worker's pid.
        pid: u32,
        /// Its table of registered functions' fingerprint.
        fingerprint: u64,
        /// Where the parent sends [`ToWorker`] messages.
        to_worker: OpaqueIpcSender,
    },
    /// Sent by the parent's watchdog: the worker died (or was killed)
    /// before it connected.
    Died,
}

impl crate::boot::Greeting for Hello {
    fn died() -> Self {
        Hello::Died
    }
}

/// Parent to worker.
#[derive(Serialize, Debug)]
pub(crate) enum ToWorker<'a> {
    /// Run the pool's initializer (a registered `fn(A)`), then answer
    /// [`FromWorker::Ready`].
    Init {
        /// The registered name of the initializer.
        func: &'a str,
        /// The encoded argument.
        arg: Blob<'a>,
    },
    /// Run `func` on each encoded argument of a batch.
    Run {
        /// The parent's id for this job, echoed in the reply.
        job: u64,
        /// The registered name of the function.
        func: &'a str,
        /// Where each argument ends in `args` (postcard varints).
        ends: Blob<'a>,
        /// The encoded arguments, one after the other.
        args: Blob<'a>,
        /// For arguments that hold channels or shared memory: a channel
        /// with one message, the arguments as a `Vec` with those channels
        /// (see `channel::carry`); `args` then holds the same bytes.
        carrier: Option<&'a OpaqueIpcReceiver>,
    },
    /// The parent is done with the worker's region: it may write it again.
    Release,
    /// Exit now.
    Shutdown,
}

/// [`ToWorker`] as a worker receives it.
#[derive(Deserialize, Debug)]
pub(crate) enum ToWorkerIn {
    /// See [`ToWorker::Init`].
    Init {
        /// The initializer's name.
        func: String,
        /// Its argument.
        arg: BlobIn,
    },
    /// See [`ToWorker::Run`].
    Run {
        /// The job's id.
        job: u64,
        /// The function's name.
        func: String,
        /// The arguments' ends.
        ends: BlobIn,
        /// The arguments.
        args: BlobIn,
        /// The arguments with their channels, if they have any.
        carrier: Option<OpaqueIpcReceiver>,
    },
    /// See [`ToWorker::Release`].
    Release,
    /// See [`ToWorker::Shutdown`].
    Shutdown,
}

/// Worker to parent, after the [`Hello`].
#[derive(Serialize, Debug)]
pub(crate) enum FromWorker<'a> {
    /// The initializer ran: `None`, or its error.
    Ready {
        /// Why it failed.
        error: Option<&'a str>,
    },
    /// A job's results.
    Done {
        /// The job's id.
        job: u64,
        /// The `postcard`-encoded `Vec<ItemOut>`, one per argument.
        status: Blob<'a>,
        /// The encoded results of the items that succeeded, one after the
        /// other; each `ItemOut::Ok` gives where its result ends.
        data: Blob<'a>,
        /// For each result that holds channels or shared memory, by item: a
        /// channel with one message, that result (as a one-item `Vec`) with
        /// its channels.
        carriers: &'a [(u32, OpaqueIpcReceiver)],
    },
}

/// [`FromWorker`] as the parent receives it.
#[derive(Deserialize, Debug)]
pub(crate) enum FromWorkerIn {
    /// See [`FromWorker::Ready`].
    Ready {
        /// Why it failed.
        error: Option<String>,
    },
    /// See [`FromWorker::Done`].
    Done {
        /// The job's id.
        job: u64,
        /// The status list.
        status: BlobIn,
        /// The results.
        data: BlobIn,
        /// The results that hold channels, with them, by item.
        carriers: Vec<(u32, OpaqueIpcReceiver)>,
    },
}

/// How one item of a job ended, in a worker's reply.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemOut {
    /// Its result ends at this offset of the reply's data.
    Ok(u64),
    /// It failed.
    Err(ErrKind, String),
}

/// Why an item failed in the worker.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrKind {
    /// The function panicked.
    Panicked,
    /// Its argument or result would not (de)serialize.
    Serialization,
    /// No function is registered under the name.
    UnknownFunction,
}

/// A reply's decoded status list: one item (the usual case, without an
/// allocation) or many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    One(ItemOut),
    Many(Vec<ItemOut>),
}

impl std::ops::Deref for Status {
    type Target = [ItemOut];

    fn deref(&self) -> &[ItemOut] {
        match self {
            Status::One(item) => std::slice::from_ref(item),
            Status::Many(items) => items,
        }
    }
}

/// What postcard writes for `vec![ItemOut::Ok(end)]`, appended to `out`.
pub(crate) fn encode_single_ok(out: &mut Vec<u8>, mut end: u64) {
    out.extend_from_slice(&[1, 0]);
    while end >= 0x80 {
        out.push((end as u8) | 0x80);
        end >>= 7;
    }
    out.push(end as u8);
}
