//! One end of the channel between the pool and a worker: a `SOCK_SEQPACKET`
//! socket, the buffers messages are encoded and received in (reused, so a
//! small message costs one `sendmsg` and one `recvmsg` and no allocation),
//! and the shared-memory regions large payloads travel in.
//!
//! Each side owns one reusable region that it writes ([`Link::blob`]) and
//! maps the other side's region read-only. A region is written again only
//! once the peer is done reading it: the parent's region (job arguments)
//! once the worker has answered that job, the worker's region (results)
//! once the parent has sent [`ToWorker::Release`](crate::wire::ToWorker).
//! While a region is in use, a payload travels in a memfd of its own.
//! Regions are sealed memfds, so the side that did not create one can
//! never be made to fault by reading it. Where the parent may read the
//! worker's memory, large results skip the worker's region: the parent
//! reads them where they are ([`Blob::Remote`]).

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use serde::Serialize;

use crate::sys::{self, Frame, REGION_MAX, Shm};
use crate::wire::{Blob, INLINE_MAX, MAX_FRAME, Message, Raw};

/// What [`Link::recv`] got.
#[derive(Debug)]
pub(crate) enum Received<M> {
    /// A message (its payloads are read with [`Link::read_blob`] or
    /// [`Link::resolve`], in field order).
    Msg(M),
    /// The deadline passed.
    TimedOut,
    /// The peer closed the channel (it exited or was killed).
    Closed,
    /// The peer sent something that is not a valid message.
    Bad(String),
}

/// A received payload, ready to be read without a copy by [`Link::bytes`].
#[derive(Debug)]
pub(crate) enum Payload<'a> {
    /// Carried in the message (in the receive buffer).
    Borrowed(&'a [u8]),
    /// Read from a one-shot memfd.
    Owned(Vec<u8>),
    /// The first bytes of the peer's region.
    Region(usize),
    /// Bytes in the worker's memory, read when the payload is taken.
    Remote {
        /// Their address in the worker.
        addr: u64,
        /// Their length.
        len: usize,
    },
}

/// One end of a pool–worker channel.
#[derive(Debug)]
pub(crate) struct Link {
    sock: OwnedFd,
    wbuf: Vec<u8>,
    /// The descriptors of the last message received, in order.
    fds: VecDeque<OwnedFd>,
    rfds: Vec<OwnedFd>,
    /// Descriptors to send with the next message.
    out_fds: Vec<RawFd>,
    out_owned: Vec<OwnedFd>,
    /// The region this side writes, and the tag of the payload the peer
    /// may still be reading from it.
    mine: Option<Shm>,
    mine_busy: Option<u64>,
    /// The peer's region, mapped read-only.
    theirs: Option<Shm>,
    /// The pid of the peer, once the parent has checked it can read the
    /// worker's memory ([`Blob::Remote`] payloads are refused before).
    pub(crate) peer: Option<u32>,
    /// Whether the parent has told the worker to stop handing results over
    /// by address (a read of its memory was denied).
    pub(crate) remote_off: bool,
}

/// Why [`Link::take_payload`] could not copy a payload out.
#[derive(Debug)]
pub(crate) enum Unread {
    /// The payload breaks the protocol (the peer lied about it).
    Refused(String),
    /// The worker's memory could not be read, though the payload may be
    /// honest: the worker made itself non-dumpable, or exited.
    Denied(io::Error),
}

impl Link {
    pub(crate) fn new(sock: OwnedFd) -> Link {
        Link {
            sock,
            wbuf: Vec::new(),
            fds: VecDeque::new(),
            rfds: Vec::new(),
            out_fds: Vec::new(),
            out_owned: Vec::new(),
            mine: None,
            mine_busy: None,
            theirs: None,
            peer: None,
            remote_off: false,
        }
    }

    /// The socket, for the fuzz targets.
    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Wraps `bytes` for the next message: inline when small; else in this
    /// side's reusable region if `reuse` is given and the region is free
    /// (it then stays busy until [`release`](Self::release) with that tag);
    /// else in a memfd of its own. Payloads must be wrapped in the order of
    /// the message's fields.
    pub(crate) fn blob<'a>(&mut self, bytes: &'a [u8], reuse: Option<u64>) -> io::Result<Blob<'a>> {
        if bytes.len() <= INLINE_MAX {
            return Ok(Blob::Inline(Raw(bytes)));
        }
        let len = bytes.len() as u64;
        if let Some(tag) = reuse
            && self.mine_busy.is_none()
            && bytes.len() <= REGION_MAX
        {
            if let Some(region) = self.mine.as_mut().filter(|r| r.capacity() >= bytes.len()) {
                region.write(bytes);
                self.mine_busy = Some(tag);
                return Ok(Blob::Region { len });
            }
            // Room to grow: the next payload of about this size reuses it.
            let cap = bytes.len().next_power_of_two().min(REGION_MAX);
            let mut region = Shm::create(cap)?;
            region.write(bytes);
            self.out_fds.push(region.fd());
            self.mine = Some(region);
            self.mine_busy = Some(tag);
            return Ok(Blob::NewRegion { len });
        }
        let fd = sys::memfd_with(bytes)?;
        self.out_fds.push(fd.as_raw_fd());
        self.out_owned.push(fd);
        Ok(Blob::OneShot { len })
    }

    /// Forgets the payloads wrapped for a message that will not be sent.
    pub(crate) fn cancel(&mut self, tag: u64) {
        // A new region the peer never received must not be referred to.
        if self
            .mine
            .as_ref()
            .is_some_and(|m| self.out_fds.contains(&m.fd()))
        {
            self.mine = None;
        }
        self.out_fds.clear();
        self.out_owned.clear();
        self.release(tag);
    }

    /// The peer is done reading the payload tagged `tag` from this side's
    /// region.
    pub(crate) fn release(&mut self, tag: u64) {
        if self.mine_busy == Some(tag) {
            self.mine_busy = None;
        }
    }

    /// Sends `msg` with the descriptors of the payloads wrapped for it.
    pub(crate) fn send<M: Serialize>(&mut self, msg: &M) -> io::Result<()> {
        self.send_with(|out| crate::wire::encode_to(msg, out).map_err(io::Error::other))
    }

    /// Sends the message `encode` appends to the (empty) buffer it is
    /// given, with the descriptors of the payloads wrapped for it.
    pub(crate) fn send_with(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.wbuf.clear();
        let sent = encode(&mut self.wbuf)
            .and_then(|()| sys::send_msg(self.fd(), &self.wbuf, &self.out_fds));
        self.out_fds.clear();
        self.out_owned.clear();
        sent
    }

    /// Receives the next message into `buf` and decodes it (borrowing from
    /// `buf`), waiting at most until `deadline`. Bounded whatever the peer
    /// sends: at most [`MAX_FRAME`] bytes and two descriptors are accepted.
    pub(crate) fn recv<'b, M: Message<'b>>(
        &mut self,
        buf: &'b mut Vec<u8>,
        deadline: Option<Instant>,
    ) -> Received<M> {
        self.fds.clear();
        let fd = self.fd();
        match sys::recv_msg(fd, buf, &mut self.rfds, MAX_FRAME, deadline) {
            Frame::Ready => {}
            Frame::TimedOut => return Received::TimedOut,
            Frame::Closed => return Received::Closed,
            Frame::Refused(why) => return Received::Bad(why),
        }
        if !self.rfds.is_empty() {
            self.fds.extend(self.rfds.drain(..));
        }
        let buf: &'b Vec<u8> = buf;
        if let Some(msg) = M::decode_fast(buf) {
            return Received::Msg(msg);
        }
        match postcard::from_bytes(buf) {
            Ok(msg) => Received::Msg(msg),
            Err(e) => {
                self.fds.clear();
                Received::Bad(format!("a message could not be decoded: {e}"))
            }
        }
    }

    /// Checks that every descriptor of the last message was used by one of
    /// its payloads.
    pub(crate) fn no_spare_fds(&mut self) -> Result<(), String> {
        if self.fds.is_empty() {
            Ok(())
        } else {
            self.fds.clear();
            Err("a message carried file descriptors that none of its payloads uses".into())
        }
    }

    /// Whether the last message came with descriptors not used yet.
    pub(crate) fn has_fds(&self) -> bool {
        !self.fds.is_empty()
    }

    /// Closes the descriptors of the last message that were not used.
    pub(crate) fn drop_fds(&mut self) {
        self.fds.clear();
    }

    /// Makes a payload of the last message readable: maps a new region of
    /// the peer (read-only), or reads a one-shot memfd. Refuses a payload
    /// over `max` bytes before reading or allocating anything for it.
    pub(crate) fn resolve<'b>(
        &mut self,
        blob: Blob<'b>,
        max: usize,
    ) -> Result<Payload<'b>, String> {
        let len = usize::try_from(blob.len()).unwrap_or(usize::MAX);
        if len > max {
            return Err(format!(
                "a payload of {len} bytes is over the limit of {max} bytes"
            ));
        }
        match blob {
            Blob::Inline(bytes) => Ok(Payload::Borrowed(bytes.0)),
            Blob::Region { .. } => match &self.theirs {
                Some(region) if region.capacity() >= len => Ok(Payload::Region(len)),
                _ => Err("a payload refers to a shared-memory region that was not sent".into()),
            },
            Blob::NewRegion { .. } => {
                if len > REGION_MAX {
                    return Err(format!(
                        "a shared-memory region of {len} bytes is over the limit of {REGION_MAX}"
                    ));
                }
                let fd = self.next_fd()?;
                // Drop the old mapping first: the peer replaced it.
                self.theirs = None;
                // The sender sizes a region at most twice the payload.
                let limit = len
                    .checked_next_power_of_two()
                    .unwrap_or(len)
                    .min(REGION_MAX);
                self.theirs = Some(Shm::open(fd, len, limit)?);
                Ok(Payload::Region(len))
            }
            Blob::OneShot { .. } => {
                let fd = self.next_fd()?;
                let mut out = sys::byte_buffer(len);
                sys::read_memfd(&fd, len, &mut out)?;
                Ok(Payload::Owned(out))
            }
            Blob::Remote { addr, .. } if self.peer.is_some() => Ok(Payload::Remote { addr, len }),
            Blob::Remote { .. } => {
                Err("a payload was handed over by address, which was not agreed".into())
            }
        }
    }

    fn next_fd(&mut self) -> Result<OwnedFd, String> {
        self.fds
            .pop_front()
            .ok_or_else(|| "a shared-memory payload came without its file descriptor".into())
    }

    /// The bytes of a resolved payload (none for a payload by address,
    /// which only [`take_payload`](Self::take_payload) reads). An error if
    /// the payload is in the peer's region and that region is missing or
    /// too small (it was replaced after the payload was resolved).
    pub(crate) fn bytes<'s>(&'s self, payload: &'s Payload<'_>) -> Result<&'s [u8], String> {
        match payload {
            Payload::Borrowed(bytes) => Ok(bytes),
            Payload::Owned(bytes) => Ok(bytes),
            Payload::Region(len) => self.region()?.bytes(*len),
            Payload::Remote { .. } => Ok(&[]),
        }
    }

    fn region(&self) -> Result<&Shm, String> {
        self.theirs
            .as_ref()
            .ok_or_else(|| "a payload refers to a shared-memory region that was not sent".into())
    }

    /// Moves a resolved payload into an owned buffer. `spare` (cleared) is
    /// used for a copy if it is large enough, so that a warm buffer takes
    /// the bytes instead of fresh pages or a new allocation.
    pub(crate) fn take_payload(
        &self,
        payload: Payload<'_>,
        spare: Vec<u8>,
    ) -> Result<Vec<u8>, Unread> {
        let len = match &payload {
            Payload::Owned(_) => 0,
            Payload::Borrowed(bytes) => bytes.len(),
            Payload::Region(len) | Payload::Remote { len, .. } => *len,
        };
        let mut out = spare;
        out.clear();
        if out.capacity() < len {
            out = sys::byte_buffer(len);
        }
        match payload {
            Payload::Owned(bytes) => return Ok(bytes),
            Payload::Borrowed(bytes) => out.extend_from_slice(bytes),
            Payload::Region(len) => self
                .region()
                .and_then(|region| region.read_into(len, &mut out))
                .map_err(Unread::Refused)?,
            Payload::Remote { addr, len } => {
                let pid = self
                    .peer
                    .ok_or_else(|| Unread::Refused("a payload by address without a peer".into()))?;
                if let Err(e) = sys::read_remote(pid, addr, len, &mut out) {
                    // An address that is not mapped there is the worker's
                    // lie; anything else (EPERM: it made itself
                    // non-dumpable; ESRCH: it exited) is not.
                    return Err(match e.raw_os_error() {
                        Some(libc::EFAULT | libc::EINVAL) | None => Unread::Refused(format!(
                            "the worker's result could not be read at the address it gave: {e}"
                        )),
                        Some(_) => Unread::Denied(e),
                    });
                }
            }
        }
        Ok(out)
    }
}
