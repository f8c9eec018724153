//! [`Pipe`]: typed channels between processes (Python's
//! `multiprocessing.Pipe`), one ipc-channel channel per direction.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use ipc_channel::ipc::{self, IpcReceiver, OpaqueIpcSender};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::channel::{
    Incoming, Marker, RecvFail, SendFail, Wait, in_send, outside_send, recv_caught, send_ref,
};
use crate::pool::Error;

/// Makes pipes: [`Pipe::one_way`] (one way) and [`Pipe::duplex`] (both ways),
/// Python's `Pipe(duplex=False)` and `Pipe()`.
///
/// Every end is `Serialize` and `Deserialize` and may travel to another
/// process inside a [`Process`](crate::Process)'s argument or result, a
/// pipe message or a [`Queue`](crate::Queue) item (ipc-channel moves the
/// descriptor). A receiving end that travels is moved: the copy left behind
/// is closed.
///
/// ```
/// use weft_process::{Pipe, Process, PipeSender};
///
/// fn produce(tx: PipeSender<String>) {
///     for i in 0..3 {
///         tx.send(format!("item {i}")).unwrap();
///     }
/// }
/// weft_process::register!(produce);
///
/// let (tx, rx) = Pipe::one_way::<String>().unwrap();
/// let p = Process::spawn(produce, tx).unwrap();
/// let got: Vec<String> = (0..3).map(|_| rx.recv().unwrap()).collect();
/// assert_eq!(got, ["item 0", "item 1", "item 2"]);
/// p.join().unwrap();
/// // The child is gone and with it the last sender.
/// assert_eq!(rx.recv(), Err(weft_process::RecvError::Disconnected));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Pipe;

impl Pipe {
    /// A one-way pipe: `(sender, receiver)` (Python's
    /// `Pipe(duplex=False)` returns them the other way round).
    pub fn one_way<T>() -> Result<(PipeSender<T>, PipeReceiver<T>), Error>
    where
        T: Serialize + DeserializeOwned,
    {
        let (tx, rx) = ipc::channel::<Incoming<T>>().map_err(Error::Channel)?;
        Ok((
            PipeSender {
                tx: tx.to_opaque(),
                _t: Marker::default(),
            },
            PipeReceiver {
                rx,
                peeked: RefCell::new(None),
            },
        ))
    }

    /// A two-way pipe: two [`Connection`]s, each sending to the other
    /// (Python's `Pipe()`).
    ///
    /// ```
    /// let (a, b) = weft_process::Pipe::duplex::<u32>().unwrap();
    /// a.send(1).unwrap();
    /// b.send(b.recv().unwrap() + 1).unwrap();
    /// assert_eq!(a.recv(), Ok(2));
    /// ```
    pub fn duplex<T>() -> Result<(Connection<T>, Connection<T>), Error>
    where
        T: Serialize + DeserializeOwned,
    {
        let (a_tx, b_rx) = Pipe::one_way::<T>()?;
        let (b_tx, a_rx) = Pipe::one_way::<T>()?;
        Ok((
            Connection { tx: a_tx, rx: a_rx },
            Connection { tx: b_tx, rx: b_rx },
        ))
    }
}

/// Why a send failed; the value is given back.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError<T> {
    /// The receiving end is gone (dropped, or its process exited).
    #[error("the receiving end of the pipe is gone (dropped, or its process exited)")]
    Disconnected(T),
    /// The value would not serialize (or its `Serialize` panicked).
    #[error("the value could not be serialized: {message}")]
    Serialization {
        /// The value.
        value: T,
        /// The serializer's message.
        message: String,
    },
    /// The operating system refused the send (too many descriptors, say).
    #[error("the send failed: {message}")]
    Io {
        /// The value.
        value: T,
        /// What the system said.
        message: String,
    },
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            SendError::Disconnected(v)
            | SendError::Serialization { value: v, .. }
            | SendError::Io { value: v, .. } => v,
        }
    }

    pub(crate) fn from_fail(fail: SendFail, value: T) -> SendError<T> {
        match fail {
            SendFail::Closed => SendError::Disconnected(value),
            SendFail::Serialization(message) => SendError::Serialization { value, message },
            SendFail::Io(message) => SendError::Io { value, message },
        }
    }
}

/// Why a receive gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing arrived in time (`try_recv`, `recv_timeout`).
    #[error("nothing arrived on the pipe in time")]
    Empty,
    /// Every sending end is gone and nothing is left.
    #[error("every sending end of the pipe is gone and nothing is left to receive")]
    Disconnected,
    /// A message arrived but could not be decoded (or its `Deserialize`
    /// panicked); the message is lost, the pipe goes on.
    #[error("a message could not be deserialized: {0}")]
    Serialization(String),
    /// The operating system refused the receive.
    #[error("the receive failed: {0}")]
    Io(String),
}

impl From<RecvFail> for RecvError {
    fn from(fail: RecvFail) -> RecvError {
        match fail {
            RecvFail::Empty => RecvError::Empty,
            RecvFail::Closed => RecvError::Disconnected,
            RecvFail::Serialization(m) => RecvError::Serialization(m),
            RecvFail::Io(m) => RecvError::Io(m),
        }
    }
}

/// The sending end of a pipe. Cheap to clone; every clone sends to the
/// same receiver, from any process.
pub struct PipeSender<T> {
    tx: OpaqueIpcSender,
    _t: Marker<T>,
}

impl<T> Clone for PipeSender<T> {
    fn clone(&self) -> Self {
        PipeSender {
            tx: self.tx.clone(),
            _t: Marker::default(),
        }
    }
}

impl<T> fmt::Debug for PipeSender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeSender").finish_non_exhaustive()
    }
}

impl<T: Serialize> PipeSender<T> {
    /// Sends `value` (Python's `send`). Blocks while the pipe's buffer is
    /// full. On failure the value is given back in the error.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        send_ref(&self.tx, &value).map_err(|fail| SendError::from_fail(fail, value))
    }
}

impl<T> Serialize for PipeSender<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !in_send() {
            return Err(outside_send("PipeSender"));
        }
        self.tx.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for PipeSender<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PipeSender {
            tx: OpaqueIpcSender::deserialize(d)?,
            _t: Marker::default(),
        })
    }
}

/// The receiving end of a pipe. It can be moved to another process, not
/// shared: one receiver per pipe.
pub struct PipeReceiver<T> {
    rx: IpcReceiver<Incoming<T>>,
    /// What [`poll`](Self::poll) took off the pipe, for the next receive.
    peeked: RefCell<Option<Result<T, RecvError>>>,
}

impl<T> fmt::Debug for PipeReceiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipeReceiver").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> PipeReceiver<T> {
    fn take(&self, wait: Wait) -> Result<T, RecvError> {
        if let Some(got) = self.peeked.borrow_mut().take() {
            return got;
        }
        recv_caught(&self.rx, wait).map_err(RecvError::from)
    }

    /// Waits for the next value (Python's `recv`). A panic while decoding
    /// it fails this receive ([`RecvError::Serialization`]), never the
    /// caller.
    pub fn recv(&self) -> Result<T, RecvError> {
        self.take(Wait::Block)
    }

    /// Waits at most `timeout` for the next value ([`RecvError::Empty`]
    /// if none came; a huge timeout: no limit).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.take(Wait::from_timeout(timeout))
    }

    /// The next value if one is there now.
    pub fn try_recv(&self) -> Result<T, RecvError> {
        self.take(Wait::Poll)
    }

    /// Whether a receive would return at once (a value, or an error such
    /// as [`RecvError::Disconnected`]), waiting at most `timeout` for one
    /// (Python's `poll(timeout)`). What it finds is kept for the next
    /// receive.
    pub fn poll(&self, timeout: Duration) -> bool {
        if self.peeked.borrow().is_some() {
            return true;
        }
        match recv_caught(&self.rx, Wait::from_timeout(timeout)) {
            Err(RecvFail::Empty) => false,
            got => {
                *self.peeked.borrow_mut() = Some(got.map_err(RecvError::from));
                true
            }
        }
    }
}

impl<T> Serialize for PipeReceiver<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !in_send() {
            return Err(outside_send("PipeReceiver"));
        }
        if self.peeked.borrow().is_some() {
            return Err(serde::ser::Error::custom(
                "a PipeReceiver holding a message that poll() took cannot be moved: receive it first",
            ));
        }
        self.rx.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for PipeReceiver<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(PipeReceiver {
            rx: IpcReceiver::deserialize(d)?,
            peeked: RefCell::new(None),
        })
    }
}

/// One end of a two-way pipe ([`Pipe::duplex`]): Python's `Connection`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Connection<T> {
    tx: PipeSender<T>,
    rx: PipeReceiver<T>,
}

impl<T: Serialize + DeserializeOwned> Connection<T> {
    /// Sends `value` to the other end. See [`PipeSender::send`].
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.tx.send(value)
    }

    /// Receives the next value from the other end. See
    /// [`PipeReceiver::recv`].
    pub fn recv(&self) -> Result<T, RecvError> {
        self.rx.recv()
    }

    /// See [`PipeReceiver::recv_timeout`].
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.rx.recv_timeout(timeout)
    }

    /// See [`PipeReceiver::try_recv`].
    pub fn try_recv(&self) -> Result<T, RecvError> {
        self.rx.try_recv()
    }

    /// See [`PipeReceiver::poll`].
    pub fn poll(&self, timeout: Duration) -> bool {
        self.rx.poll(timeout)
    }

    /// The two halves, to use apart.
    pub fn split(self) -> (PipeSender<T>, PipeReceiver<T>) {
        (self.tx, self.rx)
    }
}
