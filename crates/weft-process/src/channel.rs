//! What [`Process`](crate::Process), [`Pipe`](crate::Pipe) and
//! [`Queue`](crate::Queue) share on top of ipc-channel.
//!
//! - Sending by reference ([`send_ref`]): a value that will not serialize
//!   is handed back to the caller with its serde error's own text, and the
//!   channels it had already put in ipc-channel's per-thread stash are
//!   flushed, so that they cannot ride along with the next, unrelated,
//!   message of this thread (ipc-channel returns early on a serialization
//!   error and leaves them there).
//! - Receiving where a panic cannot escape ([`recv_caught`]): ipc-channel
//!   decodes a message (user `Deserialize` code, and its own indexing into
//!   the message's descriptors, which panics on a malformed message) inside
//!   `recv`; a panic there fails that receive alone.
//! - A marker ([`in_send`]) that lets weft's handles (pipe ends, queue
//!   handles) serialize only inside those sends, or while the pool encodes
//!   a task's argument or result ([`encode_counting`]), which then travels
//!   with its channels through [`carry`]: anywhere else (bytes a program
//!   encodes itself) their descriptors would be lost, so they refuse with a
//!   clear error instead.

use std::any::type_name;
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use ipc_channel::ipc::{self, IpcMessage, IpcReceiver, OpaqueIpcReceiver, OpaqueIpcSender};
use ipc_channel::{IpcError, TryRecvError};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

thread_local! {
    /// Set while one of weft's sends serializes a message.
    static IN_SEND: Cell<bool> = const { Cell::new(false) };
    /// Set (to the number of handles met so far) while the pool encodes a
    /// task's argument ([`encode_counting`]).
    static POOL_ENCODE: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Whether a weft handle may serialize here: inside one of weft's
/// ipc-channel sends, or while the pool encodes a task's argument (which
/// then counts it: the argument must travel with its channels, see
/// [`carry`]).
pub(crate) fn in_send() -> bool {
    if IN_SEND.try_with(Cell::get).unwrap_or(false) {
        return true;
    }
    POOL_ENCODE
        .try_with(|c| match c.get() {
            Some(n) => {
                c.set(Some(n.saturating_add(1)));
                true
            }
            None => false,
        })
        .unwrap_or(false)
}

/// Runs `encode` (the encoding of a pool task's argument or result) where weft's
/// handles may serialize, and says how many did: their channels and
/// shared memory are then in ipc-channel's per-thread stash, and the
/// encoded bytes must go out through [`carry`] on this thread, next.
pub(crate) fn encode_counting<T>(encode: impl FnOnce() -> T) -> (T, u32) {
    struct Restore(Option<u32>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = POOL_ENCODE.try_with(|c| c.set(self.0));
        }
    }
    let was = POOL_ENCODE.try_with(|c| c.replace(Some(0))).ok().flatten();
    // Restores the mode if `encode` unwinds; otherwise the swap below does
    // (two thread-local accesses per value: this runs once per result).
    let restore = Restore(was);
    let out = encode();
    let met = POOL_ENCODE
        .try_with(|c| c.replace(was))
        .ok()
        .flatten()
        .unwrap_or(0);
    std::mem::forget(restore);
    (out, met)
}

/// Moves what ipc-channel's per-thread stash holds (the channels and
/// shared memory of `count` encoded arguments, `args`, just encoded on this
/// thread) into a message of their own, whose bytes are those of a
/// `Vec<A>` of the arguments, in a fresh channel: its receiver travels in
/// the job's message, and the worker decodes the arguments from it with
/// their channels.
pub(crate) fn carry(count: usize, args: &[u8]) -> Result<OpaqueIpcReceiver, String> {
    struct AsVec<'a>(usize, &'a [u8]);
    impl Serialize for AsVec<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            // postcard writes a tuple without a length: the count (as a
            // sequence's length is written), then the bytes as they are.
            let mut t = s.serialize_tuple(1 + self.1.len())?;
            t.serialize_element(&(self.0 as u64))?;
            for b in self.1 {
                t.serialize_element(b)?;
            }
            t.end()
        }
    }
    let (tx, rx) = match ipc::channel::<Incoming<()>>() {
        Ok(pair) => pair,
        Err(e) => {
            flush_send_stash();
            return Err(format!("no channel to carry the argument's channels: {e}"));
        }
    };
    let tx = tx.to_opaque().to::<ByRef<'_, AsVec<'_>>>();
    match catch_unwind(AssertUnwindSafe(|| tx.send(ByRef(&AsVec(count, args))))) {
        Ok(Ok(())) => Ok(rx.to_opaque()),
        Ok(Err(e)) => Err(format!("the argument's channels could not be sent: {e}")),
        Err(payload) => Err(format!(
            "sending the argument's channels panicked: {}",
            weft_sync::into_panic_message(payload)
        )),
    }
}

/// Drops whatever a failed encoding left in ipc-channel's per-thread
/// stash (see [`flush_send_stash`]).
pub(crate) fn discard_stash() {
    flush_send_stash();
}

/// The error a weft handle gives when serialized outside an ipc-channel
/// message of weft's.
pub(crate) fn outside_send<E: serde::ser::Error>(what: &str) -> E {
    E::custom(format!(
        "a weft-process {what} can travel only inside a Process argument or result, a Pipe \
         message, a Queue item or a ProcessPool task's argument or result"
    ))
}

/// A value serialized in place, so that a failed send still owns it. It is
/// never received as such: its `Deserialize` always fails.
pub(crate) struct ByRef<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for ByRef<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: ?Sized> Deserialize<'de> for ByRef<'_, T> {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "internal: a by-reference value is never received",
        ))
    }
}

/// A value received from another process: decoded as `T`, never sent
/// as such (its `Serialize` always fails), so that a receiving end needs
/// only `T: DeserializeOwned`.
pub(crate) struct Incoming<T>(pub(crate) T);

impl<T> Serialize for Incoming<T> {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(
            "internal: a received value is never sent as such",
        ))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Incoming<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Incoming)
    }
}

/// Why a send failed.
#[derive(Debug)]
pub(crate) enum SendFail {
    /// The receiving end is gone.
    Closed,
    /// The value would not serialize (or its `Serialize` panicked).
    Serialization(String),
    /// The operating system refused the send.
    Io(String),
}

/// Sends `value` on `to` (retyped: the receiver decodes a `T`).
pub(crate) fn send_ref<T: Serialize>(to: &OpaqueIpcSender, value: &T) -> Result<(), SendFail> {
    let sender = to.clone().to::<ByRef<'_, T>>();
    let was = IN_SEND.replace(true);
    let sent = catch_unwind(AssertUnwindSafe(|| sender.send(ByRef(value))));
    IN_SEND.set(was);
    match sent {
        Ok(Ok(())) => Ok(()),
        Ok(Err(IpcError::SerializationError(e))) => {
            flush_send_stash();
            let postcard = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<postcard::Error>())
                .cloned();
            let text = match postcard {
                Some(postcard::Error::SerdeSerCustom) | None => {
                    let own = catch_unwind(AssertUnwindSafe(|| {
                        let was = IN_SEND.replace(true);
                        let text = crate::errtext::serialize_text(value);
                        IN_SEND.set(was);
                        text
                    }))
                    .ok()
                    .flatten();
                    // The second run put channels in the stash again.
                    flush_send_stash();
                    match own {
                        Some(text) => format!("`{}`'s Serialize failed: {text}", type_name::<T>()),
                        None => format!("`{}` could not be serialized: {e}", type_name::<T>()),
                    }
                }
                Some(p) => format!("`{}` could not be serialized: {p}", type_name::<T>()),
            };
            Err(SendFail::Serialization(text))
        }
        Ok(Err(IpcError::Io(e))) => Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::ConnectionRefused => SendFail::Closed,
            _ => SendFail::Io(e.to_string()),
        }),
        Ok(Err(IpcError::Disconnected)) => Err(SendFail::Closed),
        Err(payload) => {
            flush_send_stash();
            Err(SendFail::Serialization(format!(
                "`{}`'s Serialize panicked: {}",
                type_name::<T>(),
                weft_sync::into_panic_message(payload)
            )))
        }
    }
}

/// Sends whatever a failed serialization left in ipc-channel's per-thread
/// stash of channels and shared memory into a channel nobody reads, so that
/// it does not ride along with this thread's next message.
fn flush_send_stash() {
    if let Ok((tx, rx)) = ipc::channel::<()>() {
        let _ = catch_unwind(AssertUnwindSafe(|| tx.send(())));
        drop(rx);
    }
}

/// Empties ipc-channel's per-thread stash of a received message's channels
/// (left there when a `Deserialize` panics mid-message), closing them.
fn flush_recv_stash() {
    let _ = catch_unwind(|| IpcMessage::from_data(Vec::new()).to::<()>());
}

/// How long a receive may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Until a message arrives or every sender is gone.
    Block,
    /// Not at all.
    Poll,
    /// At most this long (a huge duration: no limit).
    For(Duration),
}

impl Wait {
    /// `Wait::For(d)`, or `Block` for a duration too long for the clock.
    pub(crate) fn from_timeout(d: Duration) -> Wait {
        if Instant::now().checked_add(d).is_none() {
            Wait::Block
        } else {
            Wait::For(d)
        }
    }
}

/// Why a receive gave nothing.
#[derive(Debug)]
pub(crate) enum RecvFail {
    /// Nothing arrived in time.
    Empty,
    /// Every sender is gone and nothing is left.
    Closed,
    /// A message arrived but did not decode (or its decoding panicked).
    Serialization(String),
    /// The operating system refused the receive.
    Io(String),
}

/// Receives the next message on `rx`, waiting as `wait` says. Nothing the
/// peer sends can make this panic: a panic while decoding fails this
/// receive with [`RecvFail::Serialization`]. (A peer can still make it
/// wait past `wait` or abort this process; see the crate's documentation.)
pub(crate) fn recv_caught<T>(rx: &IpcReceiver<Incoming<T>>, wait: Wait) -> Result<T, RecvFail>
where
    T: DeserializeOwned,
{
    let deadline = match wait {
        Wait::For(d) => Instant::now().checked_add(d),
        _ => None,
    };
    loop {
        let got = catch_unwind(AssertUnwindSafe(|| match wait {
            Wait::Block => rx.recv().map_err(TryRecvError::IpcError),
            Wait::Poll => rx.try_recv(),
            Wait::For(d) => {
                let left = deadline.map_or(d, |at| at.saturating_duration_since(Instant::now()));
                // ipc-channel's timed receive may block for ever past about
                // 24 days (the poll timeout overflows): a day at a time.
                rx.try_recv_timeout(left.min(Duration::from_secs(24 * 3600)))
            }
        }));
        return match got {
            Ok(Ok(Incoming(value))) => Ok(value),
            Ok(Err(TryRecvError::Empty))
                if matches!(wait, Wait::For(_))
                    && deadline.is_some_and(|at| Instant::now() < at) =>
            {
                continue;
            }
            Ok(Err(TryRecvError::Empty)) => Err(RecvFail::Empty),
            Ok(Err(TryRecvError::IpcError(IpcError::Disconnected))) => Err(RecvFail::Closed),
            Ok(Err(TryRecvError::IpcError(IpcError::Io(e)))) => match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => Err(RecvFail::Empty),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
                    Err(RecvFail::Closed)
                }
                _ => Err(RecvFail::Io(e.to_string())),
            },
            Ok(Err(TryRecvError::IpcError(IpcError::SerializationError(e)))) => {
                let postcard = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.to_string());
                Err(RecvFail::Serialization(format!(
                    "a `{}` from another process could not be deserialized: {postcard}",
                    type_name::<T>()
                )))
            }
            Err(payload) => {
                flush_recv_stash();
                Err(RecvFail::Serialization(format!(
                    "decoding a `{}` from another process panicked: {}",
                    type_name::<T>(),
                    weft_sync::into_panic_message(payload)
                )))
            }
        };
    }
}

/// A marker for a type parameter held only for its type.
pub(crate) type Marker<T> = PhantomData<fn() -> T>;

/// Shared memory (ipc-channel's [`IpcSharedMemory`](ipc_channel::ipc::IpcSharedMemory))
/// that can travel inside a [`ProcessPool`](crate::ProcessPool) task's
/// argument or result, a [`Process`](crate::Process)'s argument or
/// result, a [`Pipe`](crate::Pipe) message or a [`Queue`](crate::Queue)
/// item: the receiver maps the same pages, nothing is copied. (A bare
/// `IpcSharedMemory` travels in the last three too, but not in a pool
/// task's argument or result, which the pool encodes before it is sent:
/// there only weft's types are noticed and carried.)
///
/// ```
/// use weft_process::{ProcessPool, SharedMemory};
///
/// fn sum(bytes: SharedMemory) -> u64 {
///     bytes.iter().map(|&b| u64::from(b)).sum()
/// }
/// weft_process::register!(sum);
///
/// let pool = ProcessPool::builder().processes(1).build().unwrap();
/// let shm = SharedMemory::from_bytes(&[1, 2, 3]);
/// assert_eq!(pool.apply(sum, shm), Ok(6));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct SharedMemory(pub ipc_channel::ipc::IpcSharedMemory);

impl SharedMemory {
    /// Shared memory holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> SharedMemory {
        SharedMemory(ipc_channel::ipc::IpcSharedMemory::from_bytes(bytes))
    }
}

impl std::ops::Deref for SharedMemory {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for SharedMemory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !in_send() {
            return Err(outside_send("SharedMemory"));
        }
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedMemory {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ipc_channel::ipc::IpcSharedMemory::deserialize(d).map(SharedMemory)
    }
}
