//! Sockets on the runtime's own reactor (asyncio's streams, servers and
//! datagram endpoints).
//!
//! | Python | weft |
//! |---|---|
//! | `asyncio.open_connection(host, port)` | [`TcpStream::connect((host, port))`](TcpStream::connect) |
//! | `asyncio.start_server(cb, host, port)` | [`TcpListener::bind`], a task per [`accept`](TcpListener::accept) |
//! | `loop.create_datagram_endpoint(..)` (UDP) | [`UdpSocket::bind`], [`send_to`](UdpSocket::send_to) / [`recv_from`](UdpSocket::recv_from), or [`connect`](UdpSocket::connect) then [`send`](UdpSocket::send) / [`recv`](UdpSocket::recv) |
//! | `asyncio.open_unix_connection(path)` | [`UnixStream::connect(path)`](UnixStream::connect) |
//! | `asyncio.start_unix_server(cb, path)` | [`UnixListener::bind(path)`](UnixListener::bind), a task per [`accept`](UnixListener::accept) |
//! | `create_datagram_endpoint(family=AF_UNIX, ..)` | [`UnixDatagram`] |
//! | `socket.socketpair()` | [`UnixStream::pair`], [`UnixDatagram::pair`] |
//! | `await loop.getaddrinfo(host, port)` | [`lookup_host((host, port))`](lookup_host) (on a helper thread) |
//!
//! [`TcpListener`], [`TcpStream`], [`UdpSocket`], [`UnixListener`],
//! [`UnixStream`] and [`UnixDatagram`] are weft-async's own network types. On
//! Linux they are registered once, edge-triggered, with the runtime's own
//! epoll instance, so a read or write that has to wait costs no extra system
//! call (see the crate's README for the benchmark against tokio); elsewhere
//! they run on `async-io`'s reactor. [`TcpStream`] and [`UnixStream`]
//! implement `futures-io`'s [`AsyncRead`] and [`AsyncWrite`] (for `&TcpStream` too, so
//! one task can read while another writes), so `futures-lite`'s
//! `AsyncReadExt`/`AsyncWriteExt` and every crate written against those traits
//! work with it.
//!
//! `async-net` (and anything else built on `async-io`) keeps working in
//! the same runtime: use whichever you like, side by side.
//!
//! # Threads and runtimes
//!
//! A socket belongs to the thread that uses it (the types are `!Send`, like
//! the tasks of this runtime). It registers with the runtime that first
//! polls it; if that runtime ends, the next runtime on the thread that polls
//! it takes it over. `bind`, `connect` and `from_std` work anywhere, but
//! the operations that wait (reads, writes, `accept`, `send`, `recv`,
//! `peek`) need [`run`](crate::run) on the
//! current thread: polled elsewhere they fail with an error that says so
//! (inside another executor's `block_on` within a task they would wait for
//! events that only weft's loop collects). To hand a socket to another
//! thread, take it out with `into_std`.
//!
//! # Limits
//!
//! * Unix only, for now (no `net` module on Windows).
//! * No cooperative budget: a task whose reads always find a full buffer
//!   (a peer that sends faster than it reads) keeps the thread until it
//!   awaits something else, as on `async-executor`.
//! * A read shorter than its buffer is taken as "the socket is drained" (as
//!   tokio does), so urgent (out-of-band) data, which stops a read at its
//!   mark, can leave the rest unread until the peer sends more.
//!
//! # Name resolution
//!
//! `bind`, `connect` and `send_to` take a [`ToSocketAddrs`]: the same
//! types as `std`'s (`SocketAddr`, `"127.0.0.1:80"`, `("localhost", 80)`,
//! `&[SocketAddr]`, ...). A socket address or an IP literal resolves at
//! once; a host name is looked up by the system resolver on a helper thread
//! (the `blocking` crate's pool, which `async-net` uses too), never on the
//! loop's: timers and the other tasks run on while a slow DNS server
//! answers. A name that does not resolve fails with the resolver's error,
//! the name in its message.
//!
//! # Example: an echo server and its client in one runtime
//!
//! ```
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use weft_async::net::{TcpListener, TcpStream};
//!
//! weft_async::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = weft_async::spawn(async move {
//!         let (mut conn, _peer) = listener.accept().await?;
//!         let mut buf = [0u8; 5];
//!         conn.read_exact(&mut buf).await?;
//!         conn.write_all(&buf).await?;
//!         std::io::Result::Ok(())
//!     });
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut reply = [0u8; 5];
//!     client.read_exact(&mut reply).await?;
//!     assert_eq!(&reply, b"hello");
//!     server.await.expect("the server task panicked")?;
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
pub use futures_lite::io::{AsyncRead, AsyncWrite};

use crate::reactor::{READ, Source, WRITE};

/// `TryFrom` the `std` type, `AsFd` and `AsRawFd` for a socket type with a
/// `source` field and a `from_std` constructor.
macro_rules! socket_conversions {
    ($ty:ident, $std:ty) => {
        impl TryFrom<$std> for $ty {
            type Error = io::Error;

            fn try_from(socket: $std) -> io::Result<$ty> {
                $ty::from_std(socket)
            }
        }

        impl AsFd for $ty {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.source.get_ref().as_fd()
            }
        }

        impl AsRawFd for $ty {
            fn as_raw_fd(&self) -> RawFd {
                self.source.get_ref().as_raw_fd()
            }
        }
    };
}

mod addr;
mod udp;
mod unix;

use addr::resolve;
pub use addr::{ToSocketAddrs, lookup_host};
pub use udp::UdpSocket;
pub use unix::{UnixDatagram, UnixIncoming, UnixListener, UnixStream};

/// Tries `f` on each address in turn; returns the first success or the last
/// error (as `std::net` does).
async fn each_addr<T, F, Fut>(addrs: Vec<SocketAddr>, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in addrs {
        match f(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// A TCP socket listening for connections: the listening half of
/// `asyncio.start_server`.
///
/// # Example
///
/// ```
/// use weft_async::net::{TcpListener, TcpStream};
///
/// weft_async::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     let client = weft_async::spawn(TcpStream::connect(addr));
///     let (conn, peer) = listener.accept().await?;
///     assert_eq!(conn.peer_addr()?, peer);
///     let client = client.await.expect("the client task panicked")?;
///     assert_eq!(client.local_addr()?, peer);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    source: Source<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds a listener to `addr` (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)). With several addresses, the first
    /// that binds is used; if none does, the last error is returned.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        let addrs = resolve(addr).await?;
        each_addr(addrs, |a| async move { std::net::TcpListener::bind(a) })
            .await
            .and_then(TcpListener::from_std)
    }

    /// Wraps a listener made with `std` (it is put in non-blocking mode).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            source: Source::new(listener)?,
        })
    }

    /// Takes the `std` listener back out (still in non-blocking mode).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.source.into_inner()
    }

    /// Waits for a connection; returns it and the peer's address.
    ///
    /// Cancel-safe: if the future is dropped before it completes, no
    /// connection is taken from the backlog.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The polling form of [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        self.source
            .poll_io(READ, cx, |l| l.accept())
            .map(|r| r.and_then(|(s, peer)| Ok((TcpStream::from_std(s)?, peer))))
    }

    /// The connections, as a stream that never ends (each item is one
    /// [`accept`](Self::accept)).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The IP time-to-live of the sockets this listener accepts.
    pub fn ttl(&self) -> io::Result<u32> {
        self.source.get_ref().ttl()
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.source.get_ref().set_ttl(ttl)
    }
}

socket_conversions!(TcpListener, std::net::TcpListener);

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// The stream of a listener's connections: [`TcpListener::incoming`].
#[derive(Debug)]
#[must_use = "streams do nothing unless polled"]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(stream, _)| stream)))
    }
}

/// A TCP connection: asyncio's `StreamReader` and `StreamWriter` in one.
///
/// Read and write it with `futures-lite`'s `AsyncReadExt` and
/// `AsyncWriteExt` (or any code written against `futures-io`'s traits).
/// `&TcpStream` implements the traits too, so one task can read while
/// another writes. Closing ([`AsyncWrite::poll_close`]) shuts the write half
/// down; the peer then reads end-of-file. Dropping the stream closes the
/// socket.
///
/// # Example
///
/// ```
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use weft_async::net::{TcpListener, TcpStream};
///
/// weft_async::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let addr = listener.local_addr()?;
///     weft_async::spawn(async move {
///         let mut client = TcpStream::connect(addr).await.unwrap();
///         client.write_all(b"ping").await.unwrap();
///         client.close().await.unwrap(); // the server reads end-of-file next
///     })
///     .detach();
///     let (mut conn, _) = listener.accept().await?;
///     let mut all = Vec::new();
///     conn.read_to_end(&mut all).await?;
///     assert_eq!(all, b"ping");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct TcpStream {
    source: Source<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`. With several addresses, they are tried in turn
    /// and the first connection made is returned; if none is, the last
    /// error (for example `ConnectionRefused`). A host name
    /// (`"localhost:5432"`, `("db.internal", 3306)`) is resolved on a
    /// helper thread, so the loop runs on while it is looked up.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let addrs = resolve(addr).await?;
        // The connection is made on async-io's reactor (it waits once per
        // connection), then the socket moves to weft's.
        let stream = each_addr(addrs, async_io::Async::<std::net::TcpStream>::connect).await?;
        TcpStream::from_std(stream.into_inner()?)
    }

    /// Wraps a connection made with `std` (it is put in non-blocking mode).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            source: Source::new(stream)?,
        })
    }

    /// Takes the `std` stream back out (still in non-blocking mode).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.source.into_inner()
    }

    /// The local address of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Whether Nagle's algorithm is off (`TCP_NODELAY`).
    pub fn nodelay(&self) -> io::Result<bool> {
        self.source.get_ref().nodelay()
    }

    /// Turns Nagle's algorithm off (`true`) or on: with it off, small writes
    /// are sent at once instead of being batched.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.source.get_ref().set_nodelay(nodelay)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.source.get_ref().ttl()
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.source.get_ref().set_ttl(ttl)
    }

    /// Shuts the read half, the write half or both down (asyncio's
    /// `write_eof` is `shutdown(Shutdown::Write)`).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.source.get_ref().shutdown(how)
    }

    /// Waits for data and copies it into `buf` without taking it off the
    /// socket; returns how many bytes were copied.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.source.poll_io(READ, cx, |s| s.peek(buf))).await
    }
}

socket_conversions!(TcpStream, std::net::TcpStream);

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

impl AsyncRead for &TcpStream {
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

/// The same as `&TcpStream`'s.
impl AsyncRead for TcpStream {
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

impl AsyncWrite for &TcpStream {
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
            // The peer may have gone already: the stream is closed either way.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        })
    }
}

/// The same as `&TcpStream`'s.
impl AsyncWrite for TcpStream {
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
