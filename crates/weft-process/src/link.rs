//! One end of the channel between the pool and a worker, over ipc-channel:
//! the sender to the peer, the receiver from it, and the shared-memory
//! regions large payloads travel in.
//!
//! Each side owns [`REGIONS`] reusable regions (`IpcSharedMemory`, each
//! sent to the peer once and then mapped by both) that it writes
//! ([`Link::blob`]), and maps the peer's. A region is written again only
//! once the peer is done reading it: the parent's regions (job arguments)
//! once the worker has answered that job, the worker's regions (results)
//! once the parent has sent [`ToWorker::Release`](crate::wire::ToWorker)
//! (one per result in a region, in order: it frees the oldest). Two, since
//! the pool keeps two jobs in a worker's channel (`supervisor::PIPELINE`):
//! with one, every other large job and result went through fresh shared
//! memory (a 4 MiB `map` chunk then cost 1,024 page faults and zeroed
//! pages on each side). Only while both are in use does a payload travel
//! in shared memory of its own. A 64 MiB payload then costs one `memcpy`
//! into warm pages, not 16,384 page faults.
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

/// How many reusable regions each side of a link keeps.
pub(crate) const REGIONS: usize = 2;

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
    /// The first bytes of the peer's region of this slot.
    Region(usize, usize),
}

/// Where [`Link::place`] put a payload.
#[derive(Debug)]
pub(crate) enum Placed {
    /// In the message.
    Inline,
    /// In this side's region of this slot, which the peer maps: this long.
    Region(usize, u64),
    /// In a new region of this side's in this slot, sent with the message:
    /// this long.
    NewRegion(usize, u64),
    /// In shared memory of its own.
    OneShot(IpcSharedMemory),
}

/// One end of a pool–worker channel, receiving messages of type `In`.
pub(crate) struct Link<In> {
    to: OpaqueIpcSender,
    from: IpcReceiver<Incoming<In>>,
    /// The regions this side writes, and the tag of the payload the peer
    /// may still be reading from each.
    mine: [Option<IpcSharedMemory>; REGIONS],
    mine_busy: [Option<u64>; REGIONS],
    /// The peer's regions.
    theirs: [Option<IpcSharedMemory>; REGIONS],
}

impl<In> std::fmt::Debug for Link<In> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field(
                "mine",
                &self.mine.each_ref().map(|m| m.as_ref().map(|m| m.len())),
            )
            .field("mine_busy", &self.mine_busy)
            .field(
                "theirs",
                &self.theirs.each_ref().map(|t| t.as_ref().map(|t| t.len())),
            )
            .finish_non_exhaustive()
    }
}

impl<In: DeserializeOwned> Link<In> {
    pub(crate) fn new(to: OpaqueIpcSender, from: IpcReceiver<Incoming<In>>) -> Link<In> {
        Link {
            to,
            from,
            mine: [None, None],
            mine_busy: [None, None],
            theirs: [None, None],
        }
    }

    /// Places `bytes` for the next message: inline when small; else, if
    /// `reuse` is given, in a free reusable region of this side's (one
    /// large enough if there is one, else a new one in a free slot; it then
    /// stays busy until [`release`](Self::release) with that tag); else in
    /// shared memory of its own. [`blob`](Self::blob) then wraps it for the
    /// message.
    pub(crate) fn place(&mut self, bytes: &[u8], reuse: Option<u64>) -> Placed {
        if bytes.len() <= INLINE_MAX {
            return Placed::Inline;
        }
        let len = bytes.len() as u64;
        if let Some(tag) = reuse
            && REUSE_REGIONS
            && bytes.len() <= REGION_MAX
        {
            let free = |i: &usize| self.mine_busy[*i].is_none();
            let warm = (0..REGIONS).filter(free).find(|&i| {
                self.mine[i]
                    .as_ref()
                    .is_some_and(|r| r.len() >= bytes.len())
            });
            if let Some(i) = warm {
                self.mine_busy[i] = Some(tag);
                if let Some(region) = self.mine[i].as_mut() {
                    crate::sys::write_region(region, bytes);
                }
                return Placed::Region(i, len);
            }
            // An empty slot first, else the smallest region is replaced.
            let slot = (0..REGIONS)
                .filter(free)
                .min_by_key(|&i| self.mine[i].as_ref().map_or(0, |r| r.len()));
            if let Some(i) = slot {
                self.mine_busy[i] = Some(tag);
                self.mine[i] = Some(IpcSharedMemory::from_bytes(bytes));
                return Placed::NewRegion(i, len);
            }
        }
        Placed::OneShot(IpcSharedMemory::from_bytes(bytes))
    }

    /// The payload `bytes`, placed as `placed`, as a message carries it.
    pub(crate) fn blob<'a>(&'a self, placed: &'a Placed, bytes: &'a [u8]) -> Blob<'a> {
        match placed {
            Placed::Inline => Blob::Inline(Raw(bytes)),
            Placed::Region(slot, len) => Blob::Region {
                slot: *slot as u8,
                len: *len,
            },
            Placed::NewRegion(slot, len) => match &self.mine[*slot] {
                Some(shm) => Blob::NewRegion {
                    slot: *slot as u8,
                    shm,
                    len: *len,
                },
                // Cannot happen (a new region is kept until its slot's next).
                None => Blob::Inline(Raw(bytes)),
            },
            Placed::OneShot(shm) => Blob::OneShot(shm),
        }
    }

    /// The peer is done with the payload tagged `tag` (if it was in this
    /// side's region, the region is free again).
    pub(crate) fn release(&mut self, tag: u64) {
        for busy in &mut self.mine_busy {
            if *busy == Some(tag) {
                *busy = None;
            }
        }
    }

    /// Frees this side's busy region of the oldest (smallest) tag: the peer
    /// released it (it releases them in the order they were sent, and tags
    /// grow).
    pub(crate) fn release_oldest(&mut self) {
        if let Some(busy) = self
            .mine_busy
            .iter_mut()
            .filter(|b| b.is_some())
            .min_by_key(|b| **b)
        {
            *busy = None;
        }
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
            BlobIn::NewRegion { slot, shm, len } => {
                let slot = usize::from(slot);
                let Some(theirs) = self.theirs.get_mut(slot) else {
                    return Err(format!(
                        "a payload names region {slot}, which does not exist"
                    ));
                };
                let ok = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= shm.len() && shm.len() <= REGION_MAX);
                // Kept even when the payload is refused, so that both sides
                // agree on the region.
                *theirs = Some(shm);
                let len = ok.ok_or_else(|| {
                    format!("a payload of {len} bytes does not fit the region it came with")
                })?;
                if len > limit {
                    return Err(over(len as u64));
                }
                Ok(Payload::Region(slot, len))
            }
            BlobIn::Region { slot, len } => {
                let slot = usize::from(slot);
                let Some(region) = self.theirs.get(slot).and_then(Option::as_ref) else {
                    return Err(format!(
                        "a payload refers to region {slot}, which was never sent"
                    ));
                };
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= region.len())
                    .ok_or_else(|| format!("a payload of {len} bytes overruns its region"))?;
                if len > limit {
                    return Err(over(len as u64));
                }
                Ok(Payload::Region(slot, len))
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
            Payload::Region(slot, len) => self
                .theirs
                .get(*slot)
                .and_then(Option::as_ref)
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
