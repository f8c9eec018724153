//! The messages exchanged between the pool and its workers.
//!
//! Each message is one packet on the worker's `SOCK_SEQPACKET` socket pair,
//! `postcard`-encoded, and stays small: byte payloads above [`INLINE_MAX`]
//! travel in shared memory ([`Blob`]), so a message is at most
//! [`MAX_FRAME`] bytes with at most two file descriptors, and the parent
//! reads every message from a worker into a bounded buffer.

use std::fmt;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Payloads up to this size travel inside the message; larger ones through
/// shared memory.
pub(crate) const INLINE_MAX: usize = 32 * 1024;

/// The largest message either side accepts (the receive buffer's size):
/// two inline blobs and the envelope fit well below it, and it is below a
/// socket's send buffer (about 200 KiB on Linux), so a send of a valid
/// message never waits for the peer to make room.
pub(crate) const MAX_FRAME: usize = 2 * INLINE_MAX + 4096;

/// Protocol version sent in [`ToWorker::Boot`].
pub(crate) const PROTOCOL: &str = "weft-process/4";

/// The longest error text a worker sends for one item of a reply (a longer
/// panic message is cut).
pub(crate) const ERR_TEXT_MAX: usize = 4 * 1024;

/// The most error text a worker sends in one reply, all items together
/// (past it, messages are cut shorter).
pub(crate) const ERR_TEXT_BUDGET: usize = 1 << 20;

/// The most bytes an honest worker's encoded status list takes for a job of
/// `count` arguments: per item a tag, an error kind and a varint (at most
/// 12 bytes; 24 allowed), plus the error texts' budget. The parent refuses
/// a longer one before reading it, so a worker cannot make it allocate
/// more than about this much for a status list.
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
/// so that encoding a message allocates nothing once it has grown).
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

/// A byte string borrowed from the message being sent or the buffer a
/// message was received in: encoded as a length and the bytes (one
/// `memcpy`), decoded without a copy.
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

impl<'de: 'a, 'a> Deserialize<'de> for Raw<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Raw<'de>, E> {
                Ok(Raw(v))
            }
        }
        deserializer.deserialize_bytes(RawVisitor)
    }
}

/// A byte payload: inline when small, in shared memory when large.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum Blob<'a> {
    /// Carried inside the message.
    Inline(#[serde(borrow)] Raw<'a>),
    /// The first `len` bytes of the sender's reusable region, which the
    /// receiver already maps.
    Region {
        /// The payload's length.
        len: u64,
    },
    /// The first `len` bytes of a new reusable region of the sender, whose
    /// descriptor comes with the message; it replaces the previous one.
    NewRegion {
        /// The payload's length.
        len: u64,
    },
    /// A payload of `len` bytes in a memfd of its own, which comes with the
    /// message and is used once.
    OneShot {
        /// The payload's length.
        len: u64,
    },
    /// `len` bytes at address `addr` of the worker, which the parent reads
    /// with `process_vm_readv` (only once it has sent
    /// [`ToWorker::RemoteOk`]); the worker keeps them until
    /// [`ToWorker::Release`].
    Remote {
        /// Where the bytes are in the worker.
        addr: u64,
        /// The payload's length.
        len: u64,
    },
}

impl Blob<'_> {
    /// The payload's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        match self {
            Blob::Inline(b) => b.0.len() as u64,
            Blob::Region { len }
            | Blob::NewRegion { len }
            | Blob::OneShot { len }
            | Blob::Remote { len, .. } => *len,
        }
    }
}

/// Parent to worker.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum ToWorker<'a> {
    /// The first message: the protocol version, the parent's pid (to check
    /// the worker's parent is still alive) and the secret the worker must
    /// echo.
    Boot {
        /// [`PROTOCOL`].
        protocol: &'a str,
        /// The pool's process id.
        parent: u32,
        /// 32 random bytes.
        #[serde(borrow)]
        secret: Raw<'a>,
    },
    /// Run the pool's initializer (a registered `fn(A)`), then answer
    /// [`FromWorker::Ready`].
    Init {
        /// The registered name of the initializer.
        #[serde(borrow)]
        func: Raw<'a>,
        /// The encoded argument.
        #[serde(borrow)]
        arg: Blob<'a>,
    },
    /// Run `func` on each encoded argument of a batch.
    Run {
        /// The parent's id for this job, echoed in the reply.
        job: u64,
        /// The registered name of the function.
        #[serde(borrow)]
        func: Raw<'a>,
        /// `postcard`-encoded `Vec<u64>`: the end offset of each argument in `args`.
        #[serde(borrow)]
        ends: Blob<'a>,
        /// The arguments, back to back.
        #[serde(borrow)]
        args: Blob<'a>,
    },
    /// The parent has copied out the oldest result the worker handed over
    /// in its reusable region or by address ([`Blob::Remote`]), which the
    /// worker may now reuse or free.
    Release,
    /// Finish: exit with status 0.
    Shutdown,
    /// The parent can read the worker's memory: the worker may hand large
    /// results over by address ([`Blob::Remote`]), which saves a copy.
    RemoteOk,
    /// A read of the worker's memory was denied: it must hand results over
    /// in shared memory from now on.
    RemoteOff,
}

/// Worker to parent.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum FromWorker<'a> {
    /// The first message: proves the worker was started by this pool.
    Hello {
        /// The secret of the parent's [`ToWorker::Boot`].
        #[serde(borrow)]
        secret: Raw<'a>,
        /// The worker's process id.
        pid: u32,
        /// A hash of the worker's table of registered functions.
        fingerprint: u64,
        /// The address, in the worker, of a copy of the secret: if the
        /// parent can read it there, it can read large results there.
        probe: u64,
    },
    /// The answer to [`ToWorker::Init`].
    Ready {
        /// Why the initializer failed, if it did.
        error: Option<&'a str>,
    },
    /// The results of a [`ToWorker::Run`].
    Done {
        /// The job id.
        job: u64,
        /// `postcard`-encoded `Vec<ItemOut>`, one per argument.
        #[serde(borrow)]
        status: Blob<'a>,
        /// The encoded results, back to back.
        #[serde(borrow)]
        data: Blob<'a>,
    },
}

/// Hand-written encoders and decoders for the two messages of every task's
/// round trip ([`ToWorker::Run`] and [`FromWorker::Done`]). They write
/// exactly the bytes `postcard` writes for these variants (the tests check
/// it) and skip serde's per-field dispatch; a decoder that meets anything
/// unexpected returns `None`, and the message is then decoded by `postcard`.
pub(crate) mod fast {
    use super::{Blob, FromWorker, Raw, ToWorker};

    /// `postcard`'s variant index of [`ToWorker::Run`].
    const RUN: u8 = 2;
    /// `postcard`'s variant index of [`FromWorker::Done`].
    const DONE: u8 = 2;

    /// Appends `v` as a `postcard` varint.
    pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn blob(out: &mut Vec<u8>, b: &Blob<'_>) {
        match b {
            Blob::Inline(Raw(bytes)) => {
                out.push(0);
                varint(out, bytes.len() as u64);
                out.extend_from_slice(bytes);
            }
            Blob::Region { len } => {
                out.push(1);
                varint(out, *len);
            }
            Blob::NewRegion { len } => {
                out.push(2);
                varint(out, *len);
            }
            Blob::OneShot { len } => {
                out.push(3);
                varint(out, *len);
            }
            Blob::Remote { addr, len } => {
                out.push(4);
                varint(out, *addr);
                varint(out, *len);
            }
        }
    }

    /// Appends the encoding of `ToWorker::Run`.
    pub(crate) fn encode_run(
        out: &mut Vec<u8>,
        job: u64,
        func: &[u8],
        ends: &Blob<'_>,
        args: &Blob<'_>,
    ) {
        out.push(RUN);
        varint(out, job);
        varint(out, func.len() as u64);
        out.extend_from_slice(func);
        blob(out, ends);
        blob(out, args);
    }

    /// Appends the encoding of `FromWorker::Done`.
    pub(crate) fn encode_done(out: &mut Vec<u8>, job: u64, status: &Blob<'_>, data: &Blob<'_>) {
        out.push(DONE);
        varint(out, job);
        blob(out, status);
        blob(out, data);
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn byte(&mut self) -> Option<u8> {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            Some(b)
        }

        /// A varint of at most 9 bytes (63 bits): anything longer is left
        /// to `postcard`.
        fn varint(&mut self) -> Option<u64> {
            let mut v = 0u64;
            for shift in (0..63).step_by(7) {
                let b = self.byte()?;
                v |= u64::from(b & 0x7f) << shift;
                if b & 0x80 == 0 {
                    return Some(v);
                }
            }
            None
        }

        fn bytes(&mut self) -> Option<&'a [u8]> {
            let len = usize::try_from(self.varint()?).ok()?;
            if len > self.0.len() {
                return None;
            }
            let (bytes, rest) = self.0.split_at(len);
            self.0 = rest;
            Some(bytes)
        }

        fn blob(&mut self) -> Option<Blob<'a>> {
            Some(match self.byte()? {
                0 => Blob::Inline(Raw(self.bytes()?)),
                1 => Blob::Region {
                    len: self.varint()?,
                },
                2 => Blob::NewRegion {
                    len: self.varint()?,
                },
                3 => Blob::OneShot {
                    len: self.varint()?,
                },
                _ => return None,
            })
        }
    }

    /// Decodes a `ToWorker::Run` that uses every byte of `bytes`.
    pub(crate) fn decode_run(bytes: &[u8]) -> Option<ToWorker<'_>> {
        let mut r = Reader(bytes);
        if r.byte()? != RUN {
            return None;
        }
        let msg = ToWorker::Run {
            job: r.varint()?,
            func: Raw(r.bytes()?),
            ends: r.blob()?,
            args: r.blob()?,
        };
        r.0.is_empty().then_some(msg)
    }

    /// Decodes a `FromWorker::Done` that uses every byte of `bytes`.
    pub(crate) fn decode_done(bytes: &[u8]) -> Option<FromWorker<'_>> {
        let mut r = Reader(bytes);
        if r.byte()? != DONE {
            return None;
        }
        let msg = FromWorker::Done {
            job: r.varint()?,
            status: r.blob()?,
            data: r.blob()?,
        };
        r.0.is_empty().then_some(msg)
    }
}

/// A message type with a hand-written decoder for its common variant.
pub(crate) trait Message<'a>: Deserialize<'a> {
    /// The common variant, decoded by hand, or `None` (use `postcard`).
    fn decode_fast(bytes: &'a [u8]) -> Option<Self>;
}

impl<'a> Message<'a> for ToWorker<'a> {
    fn decode_fast(bytes: &'a [u8]) -> Option<Self> {
        fast::decode_run(bytes)
    }
}

impl<'a> Message<'a> for FromWorker<'a> {
    fn decode_fast(bytes: &'a [u8]) -> Option<Self> {
        fast::decode_done(bytes)
    }
}

/// The per-item outcomes of a job's reply: one item (a task) without an
/// allocation, or a list (a `map` chunk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// A task's outcome.
    One(ItemOut),
    /// A chunk's outcomes.
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
    fn raw_bytes_are_one_byte_string_and_decode_without_a_copy() {
        let b = Raw(&[1, 2, 3, 250]);
        let enc = postcard::to_stdvec(&b).unwrap();
        assert_eq!(enc, vec![4, 1, 2, 3, 250]);
        let mut appended = vec![9];
        encode_to(&b, &mut appended).unwrap();
        assert_eq!(appended[1..], enc[..]);
        let back: Raw<'_> = postcard::from_bytes(&enc).unwrap();
        assert_eq!(back, b);
        assert!(std::ptr::eq(back.0.as_ptr(), enc[1..].as_ptr()));
    }

    #[test]
    fn the_fast_codec_writes_and_reads_what_postcard_does() {
        let blobs = [
            Blob::Inline(Raw(&[])),
            Blob::Inline(Raw(&[1, 2, 3])),
            Blob::Inline(Raw(&[7; 300])),
            Blob::Region { len: 40_000 },
            Blob::NewRegion { len: 64 << 20 },
            Blob::OneShot {
                len: u64::from(u32::MAX) + 1,
            },
        ];
        for (i, a) in blobs.iter().enumerate() {
            for b in &blobs {
                for job in [0u64, 1, 127, 128, 1 << 40] {
                    let run = ToWorker::Run {
                        job,
                        func: Raw(b"crate::module::function"),
                        ends: a.clone(),
                        args: b.clone(),
                    };
                    let mut fast_run = vec![];
                    fast::encode_run(&mut fast_run, job, b"crate::module::function", a, b);
                    assert_eq!(fast_run, postcard::to_stdvec(&run).unwrap(), "{i} {job}");
                    match fast::decode_run(&fast_run) {
                        Some(ToWorker::Run {
                            job: j,
                            func,
                            ends,
                            args,
                        }) => {
                            assert_eq!(
                                (j, func.0, &ends, &args),
                                (job, &b"crate::module::function"[..], a, b)
                            );
                        }
                        other => panic!("{other:?}"),
                    }
                    let done = FromWorker::Done {
                        job,
                        status: a.clone(),
                        data: b.clone(),
                    };
                    let mut fast_done = vec![];
                    fast::encode_done(&mut fast_done, job, a, b);
                    assert_eq!(fast_done, postcard::to_stdvec(&done).unwrap());
                    match fast::decode_done(&fast_done) {
                        Some(FromWorker::Done {
                            job: j,
                            status,
                            data,
                        }) => {
                            assert_eq!((j, &status, &data), (job, a, b));
                        }
                        other => panic!("{other:?}"),
                    }
                    // Truncated or with trailing bytes: left to postcard.
                    assert!(fast::decode_done(&fast_done[..fast_done.len() - 1]).is_none());
                    fast_done.push(0);
                    assert!(fast::decode_done(&fast_done).is_none());
                }
            }
        }
        // A one-item status list, as the worker writes it by hand.
        for end in [0u64, 5, 300, u64::MAX] {
            let mut hand = vec![1, 0];
            fast::varint(&mut hand, end);
            assert_eq!(hand, postcard::to_stdvec(&vec![ItemOut::Ok(end)]).unwrap());
        }
        // Other variants are left to postcard.
        let release = postcard::to_stdvec(&ToWorker::Release).unwrap();
        assert!(fast::decode_run(&release).is_none());
        assert!(fast::decode_done(&[0xff, 0xff]).is_none());
    }

    #[test]
    fn messages_round_trip() {
        let msg = ToWorker::Run {
            job: 7,
            func: Raw(b"m::f"),
            ends: Blob::Inline(Raw(&[1])),
            args: Blob::OneShot { len: 1 << 20 },
        };
        let enc = postcard::to_stdvec(&msg).unwrap();
        match postcard::from_bytes::<ToWorker<'_>>(&enc).unwrap() {
            ToWorker::Run {
                job: 7,
                func: Raw(b"m::f"),
                ends,
                args,
            } => {
                assert_eq!(ends, Blob::Inline(Raw(&[1])));
                assert_eq!(args.len(), 1 << 20);
                assert_eq!(Blob::Region { len: 9 }.len(), 9);
            }
            other => panic!("{other:?}"),
        }
    }
}
