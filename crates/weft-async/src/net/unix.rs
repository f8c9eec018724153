//! Unix-domain sockets on the runtime's own reactor (asyncio's
//! `open_unix_connection` and `start_unix_server`, and datagrams).

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use super::{AsyncRead, AsyncWrite};
use crate::reactor::{READ, Source, WRITE};

/// `err`, with what was done and to which path in its message (the kind is
/// kept, so `NotFound` stays `NotFound`).
fn at_path(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(
        err.kind(),
        format!(
            "weft-async: cannot {what} Unix socket {}: {err}",
            path.display()
        ),
    )
}

/// A Unix-domain socket listening for connections: the listening half of
/// asyncio's `start_unix_server`.
///
/// The socket file is made by [`bind`](Self::bind) and is not removed when
/// the listener is dropped (as with `std` and Python); remove it when done,
/// or bind in a temporary directory.
///
/// # Example
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use weft_async::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("weft-doc-unix-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("echo.sock");
/// let _ = std::fs::remove_file(&path);
/// weft_async::run(async {
///     let listener = UnixListener::bind(&path)?;   // asyncio.start_unix_server
///     weft_async::spawn(async move {
///         let (mut conn, _) = listener.accept().await?;
///         let mut buf = [0u8; 4];
///         conn.read_exact(&mut buf).await?;
///         conn.write_all(&buf).await
///     })
///     .detach();
///     let mut client = UnixStream::connect(&path).await?;  // open_unix_connection
///     client.write_all(b"ping").await?;
///     let mut reply = [0u8; 4];
///     client.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"ping");
///     std::io::Result::Ok(())
/// })?;
/// std::fs::remove_dir_all(&dir)?;
/// # std::io::Result::Ok(())
/// ```
pub struct UnixListener {
    source: Source<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Makes the socket file at `path` and listens on it. Fails (with the
    /// path in the message) if the file exists already (`AddrInUse`) or its
    /// directory does not (`NotFound`).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let listener =
            std::os::unix::net::UnixListener::bind(path).map_err(|e| at_path(e, "bind", path))?;
        UnixListener::from_std(listener)
    }

    /// Wraps a listener made with `std` (it is put in non-blocking mode).
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        Ok(UnixListener {
            source: Source::new(listener)?,
        })
    }

    /// Takes the `std` listener back out (still in non-blocking mode).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        self.source.into_inner()
    }

    /// Waits for a connection; returns it and the peer's address (usually
    /// unnamed). Cancel-safe.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The polling form of [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        self.source
            .poll_io(READ, cx, |l| l.accept())
            .map(|r| r.and_then(|(s, peer)| Ok((UnixStream::from_std(s)?, peer))))
    }

    /// The connections, as a stream that never ends.
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }
}

socket_conversions!(UnixListener, std::os::unix::net::UnixListener);

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The stream of a Unix listener's connections: [`UnixListener::incoming`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl Stream for UnixIncoming<'_> {
    type Item = io::Result<UnixStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(stream, _)| stream)))
    }
}

/// A Unix-domain stream connection: what asyncio's
/// `open_unix_connection` returns, reader and writer in one.
///
/// The same as [`TcpStream`](super::TcpStream) otherwise: `futures-io`'s
/// [`AsyncRead`] and [`AsyncWrite`] (for `&UnixStream` too), closing shuts
/// the write half down. See [`UnixListener`] for an example.
pub struct UnixStream {
    source: Source<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`. A path where no socket listens
    /// fails with `NotFound` (no such file) or `ConnectionRefused` (a file,
    /// but no listener), with the path in the message.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        // Made on async-io's reactor (a full backlog makes connect wait),
        // then moved to weft's, as TCP connections are.
        let stream = async_io::Async::<std::os::unix::net::UnixStream>::connect(path)
            .await
            .map_err(|e| at_path(e, "connect to", path))?;
        UnixStream::from_std(stream.into_inner()?)
    }

    /// A pair of connected streams (`socket.socketpair()`).
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from_std(a)?, UnixStream::from_std(b)?))
    }

    /// Wraps a stream made with `std` (it is put in non-blocking mode).
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            source: Source::new(stream)?,
        })
    }

    /// Takes the `std` stream back out (still in non-blocking mode).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        self.source.into_inner()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Shuts the read half, the write half or both down.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source.get_ref().shutdown(how)
    }
}

socket_conversions!(UnixStream, std::os::unix::net::UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl AsyncRead for &UnixStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.source
            .poll_transfer(READ, cx, buf.len(), |mut s| s.read(buf))
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.source.poll_io(READ, cx, |mut s| s.read_vectored(bufs))
    }
}

/// The same as `&UnixStream`'s.
impl AsyncRead for UnixStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_read_vectored(cx, bufs)
    }
}

impl AsyncWrite for &UnixStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.source
            .poll_transfer(WRITE, cx, buf.len(), |mut s| s.write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.source
            .poll_io(WRITE, cx, |mut s| s.write_vectored(bufs))
    }

    /// Nothing to do: every write goes straight to the kernel.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts the write half down.
    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match self.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

/// The same as `&UnixStream`'s.
impl AsyncWrite for UnixStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self).poll_close(cx)
    }
}

/// A Unix-domain datagram socket: message boundaries kept, no connection
/// needed (asyncio's `loop.create_datagram_endpoint(family=AF_UNIX, ..)`,
/// with `async` methods instead of a protocol's callbacks).
///
/// # Example
///
/// ```
/// use weft_async::net::UnixDatagram;
///
/// weft_async::run(async {
///     let (a, b) = UnixDatagram::pair()?;
///     a.send(b"one").await?;
///     a.send(b"two").await?;
///     let mut buf = [0u8; 16];
///     let n = b.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"one"); // one datagram per receive
///     let n = b.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"two");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    source: Source<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// A socket bound to the file `path` (made here; remove it when done).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let socket =
            std::os::unix::net::UnixDatagram::bind(path).map_err(|e| at_path(e, "bind", path))?;
        UnixDatagram::from_std(socket)
    }

    /// A socket bound to no address: it can send, and receive replies only
    /// if [`connect`](Self::connect)ed.
    pub fn unbound() -> io::Result<UnixDatagram> {
        UnixDatagram::from_std(std::os::unix::net::UnixDatagram::unbound()?)
    }

    /// A pair of connected sockets.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from_std(a)?, UnixDatagram::from_std(b)?))
    }

    /// Wraps a socket made with `std` (it is put in non-blocking mode).
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            source: Source::new(socket)?,
        })
    }

    /// Takes the `std` socket back out (still in non-blocking mode).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        self.source.into_inner()
    }

    /// Sets the peer of [`send`](Self::send) and [`recv`](Self::recv).
    /// Fails with `NotFound` or `ConnectionRefused` (path in the message)
    /// if no socket is bound at `path`.
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        self.source
            .get_ref()
            .connect(path)
            .map_err(|e| at_path(e, "connect to", path))
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Sends `buf` as one datagram to the socket bound at `path`; fails
    /// with the path in the message if there is none.
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        std::future::poll_fn(|cx| self.source.poll_io(WRITE, cx, |s| s.send_to(buf, path)))
            .await
            .map_err(|e| at_path(e, "send to", path))
    }

    /// Waits for a datagram, copies it into `buf` and returns its length
    /// and sender (unnamed if the sender is not bound). Cancel-safe.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.source.poll_io(READ, cx, |s| s.recv_from(buf))).await
    }

    /// Sends `buf` as one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.source.poll_io(WRITE, cx, |s| s.send(buf))).await
    }

    /// Waits for a datagram and copies it into `buf`; returns its length.
    /// Cancel-safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.source.poll_io(READ, cx, |s| s.recv(buf))).await
    }

    /// Shuts the read half, the write half or both down.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source.get_ref().shutdown(how)
    }
}

socket_conversions!(UnixDatagram, std::os::unix::net::UnixDatagram);

impl fmt::Debug for UnixDatagram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixDatagram")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
