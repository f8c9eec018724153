//! The messages exchanged between the pool and its workers.
//!
//! Every message stays small: byte payloads above [`INLINE_MAX`] travel as
//! one [`IpcSharedMemory`] region each, so a message carries at most two file
//! descriptors (far below ipc-channel's limit of 64) and is never split into
//! fragments by ipc-channel, which lets the parent refuse any message from a
//! worker that is larger than [`MAX_FRAME`] before ipc-channel allocates for
//! it (see `sys::peek_frame`).

use std::fmt;

use ipc_channel::ipc::{IpcSender, IpcSharedMemory};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Payloads up to this size travel inside the message; larger ones through
/// shared memory.
pub(crate) const INLINE_MAX: usize = 32 * 1024;

/// The largest message (ipc-channel frame) the parent accepts from a worker.
/// Two inline blobs and the envelope fit well below it, and it is below the
/// size at which ipc-channel would fragment a message (the socket's send
/// buffer, about 200 KiB on Linux).
pub(crate) const MAX_FRAME: usize = 2 * INLINE_MAX + 4096;

/// Protocol version written in the bootstrap line.
pub(crate) const PROTOCOL: &str = "weft-process/1";

/// A byte buffer that serializes as one byte string (a length and a memcpy),
/// not as a sequence of `u8` values.
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
        impl<'de> Visitor<'de> for BytesVisitor {
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
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes(out))
            }
        }
        deserializer.deserialize_byte_buf(BytesVisitor)
    }
}

/// A byte payload: inline when small, a shared-memory region when large.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Blob {
    /// Carried inside the message.
    Inline(Bytes),
    /// Carried as a shared-memory file descriptor.
    Shared(IpcSharedMemory),
}

impl Blob {
    /// Wraps `bytes`, moving them into shared memory if they are large.
    pub(crate) fn new(bytes: Vec<u8>) -> Blob {
        if bytes.len() <= INLINE_MAX {
            Blob::Inline(Bytes(bytes))
        } else {
            Blob::Shared(IpcSharedMemory::from_bytes(&bytes))
        }
    }

    /// Copies `bytes` into a blob.
    pub(crate) fn from_slice(bytes: &[u8]) -> Blob {
        if bytes.len() <= INLINE_MAX {
            Blob::Inline(Bytes(bytes.to_vec()))
        } else {
            Blob::Shared(IpcSharedMemory::from_bytes(bytes))
        }
    }

    /// The payload.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Blob::Inline(b) => &b.0,
            Blob::Shared(s) => s,
        }
    }

    /// The payload's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }
}

/// Parent to worker.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ToWorker {
    /// Run the pool's initializer (a registered `fn(A)`), then answer
    /// [`FromWorker::Ready`].
    Init {
        /// The registered name of the initializer.
        func: String,
        /// The encoded argument.
        arg: Blob,
    },
    /// Run `func` on each encoded argument of a batch.
    Run {
        /// The parent's id for this job, echoed in the reply.
        job: u64,
        /// The registered name of the function.
        func: String,
        /// `postcard`-encoded `Vec<u64>`: the end offset of each argument in `args`.
        ends: Blob,
        /// The arguments, back to back.
        args: Blob,
    },
    /// Finish: exit with status 0.
    Shutdown,
}

/// Worker to parent.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum FromWorker {
    /// The first message: proves the worker was started by this pool.
    Hello {
        /// The secret the parent wrote on the worker's stdin.
        secret: Bytes,
        /// The worker's process id.
        pid: u32,
        /// A hash of the worker's table of registered functions.
        fingerprint: u64,
        /// Where the parent sends jobs.
        tasks: IpcSender<ToWorker>,
    },
    /// The answer to [`ToWorker::Init`].
    Ready {
        /// Why the initializer failed, if it did.
        error: Option<String>,
    },
    /// The results of a [`ToWorker::Run`].
    Done {
        /// The job id.
        job: u64,
        /// `postcard`-encoded `Vec<ItemOut>`, one per argument.
        status: Blob,
        /// The encoded results, back to back.
        data: Blob,
    },
}

/// How one item of a batch ended.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemOut {
    /// Its encoded result ends at this offset of the reply's data.
    Ok(u64),
    /// It failed.
    Err(ErrKind, String),
}

/// The kind of a per-item failure in a worker.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrKind {
    /// The function panicked.
    Panicked,
    /// The argument could not be decoded or the result encoded.
    Serialization,
    /// The worker has no function of that name.
    UnknownFunction,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_as_byte_string() {
        let b = Bytes(vec![1, 2, 3, 250]);
        let enc = postcard::to_stdvec(&b).unwrap();
        assert_eq!(enc, vec![4, 1, 2, 3, 250]);
        let back: Bytes = postcard::from_bytes(&enc).unwrap();
        assert_eq!(back, b);
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls into the operating system")]
    fn blob_goes_to_shared_memory_above_threshold() {
        assert!(matches!(Blob::new(vec![0; INLINE_MAX]), Blob::Inline(_)));
        let big = Blob::new(vec![7; INLINE_MAX + 1]);
        assert!(matches!(big, Blob::Shared(_)));
        assert_eq!(big.len(), INLINE_MAX + 1);
        assert!(big.as_slice().iter().all(|&b| b == 7));
    }
}
