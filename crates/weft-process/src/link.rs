//! One end of the channel between the pool and a worker, over ipc-channel:
//! the sender to the peer, the receiver from it, and the shared-memory
//! regions large payloads travel in.
//!
//! Each side owns one reusable region (an `IpcSharedMemory`, sent to the
//! peer once and then mapped by both) that it writes ([`Link::blob`]), and
//! maps the peer's region. A region is written again only once the peer is
//! done reading it: the parent's region (job arguments) once the worker
//! has answered that job, the worker's region (results) once the parent
//! has sent [`ToWorker::Release`](crate::wire::ToWorker). While a region is
//! in use, a payload travels in shared memory of its own. A 64 MiB payload
//! then costs one `memcpy` into warm pages, not 16,384 page faults.
//!
//! Nothing received is trusted: a receive runs where a panic (of
//! ipc-channel's own decoding) is caught, and every length is checked
//! against the region it points into before a byte is read.

use std::io;
use std::time::Instant;

use ipc_channel::ipc::{IpcReceiver, IpcSharedMemory, OpaqueIpcSender};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::{Incoming, RecvFail, SendFail, Wait, recv_caught, send_ref};
use crate::sys::REGION_MAX;
use crate::wire::{Blob, BlobIn, INLINE_MAX, Raw};

/// Whether a region sent once is shared by both sides for good (so that
/// it can be written again): true of ipc-channel's Unix backend (a
/// `MAP_SHARED` mapping of one memfd or POSIX shared-memory object). On
/// macOS ipc-channel sends shared memory as a copy-on-write Mach
/// out-of-line region: the receiver would never see a later write, so
/// every large payload travels in shared memory of its own there.
const REUSE_REGIONS: bool = !cfg!(target_os = "macos");

/// What [`Link::recv`] got.
#[derive(Debug)]
pub(crate) enum Received<M> {
    /// A message.
    Msg(M),
    /// The deadline passed.
    TimedOut,
    /// The peer closed the channel (it exited or was killed).
    Closed,
    /// The peer sent something that is not a valid message.
    Bad(String),
}

/// A received payload, ready to be read by [`Link::bytes`].
#[derive(Debug)]
pub(crate) enum Payload {
    /// Carried in the message.
    Owned(Vec<u8>),
    /// In shared memory of its own.
    Shm(IpcSharedMemory, usize),
    /// The first bytes of the peer's region.
    Region(usize),
}

/// Where [`Link::place`] put a payload.
#[derive(Debug)]
pub(crate) enum Placed {
    /// In the message.
    Inline,
    /// In this side's region, which the peer maps: this long.
    Region(u64),
    /// In a new region of this side's, sent with the message: this long.
    NewRegion(u64),
    /// In shared memory of its own.
    OneShot(IpcSharedMemory),
}

/// One end of a pool–worker channel, receiving messages of type `In`.
pub(crate) struct Link<In> {
    to: OpaqueIpcSender,
    from: IpcReceiver<Incoming<In>>,
    /// The region this side writes, and the tag of the payload the peer
    /// may still be reading from it.
    mine: Option<IpcSharedMemory>,
    mine_busy: Option<u64>,
    /// The peer's region.
    theirs: Option<IpcSharedMemory>,
}

impl<In> std::fmt::Debug for Link<In> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("mine", &self.mine.as_ref().map(|m| m.len()))
            .field("mine_busy", &self.mine_busy)
            .field("theirs", &self.theirs.as_ref().map(|t| t.len()))
            .finish_non_exhaustive()
    }
}

impl<In: DeserializeOwned> Link<In> {
    pub(crate) fn new(to: OpaqueIpcSender, from: IpcReceiver<Incoming<In>>) -> Link<In> {
        Link {
            to,
            from,
            mine: None,
            mine_busy: None,
            theirs: None,
        }
    }

    /// Places `bytes` for the next message: inline when small; else in
    /// this side's reusable region if `reuse` is given and the region is
    /// free (it then stays busy until [`release`](Self::release) with that
    /// tag); else in shared memory of its own. [`blob`](Self::blob) then
    /// wraps it for the message.
    pub(crate) fn place(&mut self, bytes: &[u8], reuse: Option<u64>) -> Placed {
        if bytes.len() <= INLINE_MAX {
            return Placed::Inline;
        }
        let len = bytes.len() as u64;
        if let Some(tag) = reuse
            && REUSE_REGIONS
            && self.mine_busy.is_none()
            && bytes.len() <= REGION_MAX
        {
            self.mine_busy = Some(tag);
            if let Some(region) = self.mine.as_mut().filter(|r| r.len() >= bytes.len()) {
                crate::sys::write_region(region, bytes);
                return Placed::Region(len);
            }
            self.mine = Some(IpcSharedMemory::from_bytes(bytes));
            return Placed::NewRegion(len);
        }
        Placed::OneShot(IpcSharedMemory::from_bytes(bytes))
    }

    /// The payload `bytes`, placed as `placed`, as a message carries it.
    pub(crate) fn blob<'a>(&'a self, placed: &'a Placed, bytes: &'a [u8]) -> Blob<'a> {
        match (placed, &self.mine) {
            (Placed::Inline, _) => Blob::Inline(Raw(bytes)),
            (Placed::Region(len), _) => Blob::Region { len: *len },
            (Placed::NewRegion(len), Some(shm)) => Blob::NewRegion { shm, len: *len },
            // Cannot happen (a new region is kept until the next one).
            (Placed::NewRegion(_), None) => Blob::Inline(Raw(bytes)),
            (Placed::OneShot(shm), _) => Blob::OneShot(shm),
        }
    }

    /// The peer is done with the payload tagged `tag` (if it was in this
    /// side's region, the region is free again).
    pub(crate) fn release(&mut self, tag: u64) {
        if self.mine_busy == Some(tag) {
            self.mine_busy = None;
        }
    }

    /// Frees this side's region whatever it holds (the peer released it).
    pub(crate) fn release_any(&mut self) {
        self.mine_busy = None;
    }

    /// Sends `msg`. A peer that is gone is an error; so is a message that
    /// will not serialize (which weft's own messages always do).
    pub(crate) fn send<M: Serialize>(&self, msg: &M) -> io::Result<()> {
        send_ref(&self.to, msg).map_err(|e| match e {
            SendFail::Closed => io::Error::from(io::ErrorKind::BrokenPipe),
            SendFail::Serialization(text) | SendFail::Io(text) => io::Error::other(text),
        })
    }

    /// Receives the next message, never waiting past `deadline` (`None`:
    /// until one comes or the peer is gone). A message that does not decode,
    /// or whose decoding panics inside ipc-channel, is [`Received::Bad`].
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Received<In> {
        let wait = match deadline {
            None => Wait::Block,
            Some(at) => Wait::For(at.saturating_duration_since(Instant::now())),
        };
        match recv_caught(&self.from, wait) {
            Ok(msg) => Received::Msg(msg),
            Err(RecvFail::Empty) => Received::TimedOut,
            Err(RecvFail::Closed) => Received::Closed,
            Err(RecvFail::Serialization(why) | RecvFail::Io(why)) => Received::Bad(why),
        }
    }

    /// Resolves a received payload of at most `limit` bytes: a new region
    /// of the peer's replaces the previous one; a payload in a region is
    /// checked against the region's size.
    pub(crate) fn resolve(&mut self, blob: BlobIn, limit: usize) -> Result<Payload, String> {
        let over = |len: u64| format!("a payload of {len} bytes is over the limit of {limit}");
        match blob {
            BlobIn::Inline(bytes) if bytes.0.len() <= limit => Ok(Payload::Owned(bytes.0)),
            BlobIn::Inline(bytes) => Err(over(bytes.0.len() as u64)),
            BlobIn::OneShot(shm) => {
                let len = shm.len();
                if len > limit {
                    return Err(over(len as u64));
                }
                Ok(Payload::Shm(shm, len))
            }
            BlobIn::NewRegion { shm, len } => {
                let ok = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= shm.len() && shm.len() <= REGION_MAX);
                // Kept even when the payload is refused, so that both sides
                // agree on the region.
                self.theirs = Some(shm);
                let len = ok.ok_or_else(|| {
                    format!("a payload of {len} bytes does not fit the region it came with")
                })?;
                if len > limit {
                    return Err(over(len as u64));
                }
                Ok(Payload::Region(len))
            }
            BlobIn::Region { len } => {
                let Some(region) = &self.theirs else {
                    return Err("a payload refers to a region that was never sent".into());
                };
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= region.len())
                    .ok_or_else(|| format!("a payload of {len} bytes overruns its region"))?;
                if len > limit {
                    return Err(over(len as u64));
                }
                Ok(Payload::Region(len))
            }
        }
    }

    /// The bytes of a resolved payload.
    pub(crate) fn bytes<'s>(&'s self, payload: &'s Payload) -> Result<&'s [u8], String> {
        match payload {
            Payload::Owned(v) => Ok(v),
            Payload::Shm(shm, len) => shm
                .get(..*len)
                .ok_or_else(|| "a payload overruns its shared memory".to_string()),
            Payload::Region(len) => self
                .theirs
                .as_ref()
                .and_then(|r| r.get(..*len))
                .ok_or_else(|| "a payload refers to a region that was never sent".to_string()),
        }
    }

    /// Takes a resolved payload out as an owned buffer: moved if it came in
    /// the message, else copied (into `spare` if it is large enough).
    pub(crate) fn take_payload(&self, payload: Payload, spare: Vec<u8>) -> Result<Vec<u8>, String> {
        match payload {
            Payload::Owned(v) => Ok(v),
            other => {
                let bytes = self.bytes(&other)?;
                let mut out = if spare.capacity() >= bytes.len() {
                    let mut spare = spare;
                    spare.clear();
                    spare
                } else {
                    crate::sys::byte_buffer(bytes.len())
                };
                out.extend_from_slice(bytes);
                Ok(out)
            }
        }
    }
}
