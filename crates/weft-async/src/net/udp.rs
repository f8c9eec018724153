//! UDP on the runtime's own reactor (asyncio's `create_datagram_endpoint`).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::{Context, Poll};

use super::addr::resolve_first;
use super::{ToSocketAddrs, each_addr, resolve};
use crate::reactor::{READ, Source, WRITE};

/// A UDP socket: asyncio's `create_datagram_endpoint`, with `async` methods
/// instead of a protocol's callbacks.
///
/// [`bind`](Self::bind) it (port 0 picks a free port), then
/// [`send_to`](Self::send_to) and [`recv_from`](Self::recv_from) any peer;
/// or [`connect`](Self::connect) it to one peer and use
/// [`send`](Self::send) and [`recv`](Self::recv), which then see that peer's
/// datagrams only. Every method takes `&self`, so one task can receive while
/// others send. A datagram longer than the buffer it is received into is cut
/// to the buffer's length (the rest is lost, as with any UDP socket).
///
/// # Example: an echo server and its client
///
/// ```
/// use weft_async::net::UdpSocket;
///
/// weft_async::run(async {
///     let server = UdpSocket::bind("127.0.0.1:0").await?;
///     let server_addr = server.local_addr()?;
///     weft_async::spawn(async move {
///         let mut buf = [0u8; 1500];
///         let (n, peer) = server.recv_from(&mut buf).await?;
///         server.send_to(&buf[..n], peer).await?;
///         std::io::Result::Ok(())
///     })
///     .detach();
///
///     let client = UdpSocket::bind("127.0.0.1:0").await?;
///     client.connect(server_addr).await?;
///     client.send(b"ping").await?;
///     let mut buf = [0u8; 16];
///     let n = client.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    source: Source<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds a socket to `addr` (port 0 picks a free port; see
    /// [`local_addr`](Self::local_addr)). With several addresses, the first
    /// that binds is used; if none does, the last error is returned. A host
    /// name is resolved on a helper thread.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let addrs = resolve(addr).await?;
        each_addr(addrs, |a| async move { std::net::UdpSocket::bind(a) })
            .await
            .and_then(UdpSocket::from_std)
    }

    /// Wraps a socket made with `std` (it is put in non-blocking mode).
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            source: Source::new(socket)?,
        })
    }

    /// Takes the `std` socket back out (still in non-blocking mode).
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        self.source.into_inner()
    }

    /// Sets the peer that [`send`](Self::send) sends to and that
    /// [`recv`](Self::recv) receives from (datagrams from others are
    /// dropped by the kernel). With several addresses, the first that
    /// connects is used.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let addrs = resolve(addr).await?;
        let socket = self.source.get_ref();
        each_addr(addrs, |a| async move { socket.connect(a) }).await
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().local_addr()
    }

    /// The connected peer's address (`NotConnected` if
    /// [`connect`](Self::connect) was not called).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.source.get_ref().peer_addr()
    }

    /// Sends `buf` as one datagram to `addr` (the first address it
    /// resolves to); returns how many bytes were sent.
    pub async fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        let target = resolve_first(addr).await?;
        std::future::poll_fn(|cx| self.poll_send_to(cx, buf, target)).await
    }

    /// The polling form of [`send_to`](Self::send_to), for an address.
    pub fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.source.poll_io(WRITE, cx, |s| s.send_to(buf, target))
    }

    /// Waits for a datagram, copies it into `buf` and returns its length
    /// and sender.
    ///
    /// Cancel-safe: dropped before it completes, it takes no datagram.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_recv_from(cx, buf)).await
    }

    /// The polling form of [`recv_from`](Self::recv_from).
    pub fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.source.poll_io(READ, cx, |s| s.recv_from(buf))
    }

    /// [`recv_from`](Self::recv_from) that leaves the datagram queued.
    pub async fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        std::future::poll_fn(|cx| self.source.poll_io(READ, cx, |s| s.peek_from(buf))).await
    }

    /// Sends `buf` as one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.source.poll_io(WRITE, cx, |s| s.send(buf))).await
    }

    /// Waits for a datagram from the connected peer and copies it into
    /// `buf`; returns its length. Cancel-safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.source.poll_io(READ, cx, |s| s.recv(buf))).await
    }

    /// [`recv`](Self::recv) that leaves the datagram queued.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.source.poll_io(READ, cx, |s| s.peek(buf))).await
    }

    /// Whether datagrams may be sent to a broadcast address.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.source.get_ref().broadcast()
    }

    /// Allows (`true`) or forbids sending to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.source.get_ref().set_broadcast(on)
    }

    /// The IP time-to-live.
    pub fn ttl(&self) -> io::Result<u32> {
        self.source.get_ref().ttl()
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.source.get_ref().set_ttl(ttl)
    }

    /// Joins an IPv4 multicast group on the interface `interface`
    /// (`0.0.0.0`: the system's choice).
    pub fn join_multicast_v4(
        &self,
        group: std::net::Ipv4Addr,
        interface: std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.source.get_ref().join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(
        &self,
        group: std::net::Ipv4Addr,
        interface: std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.source.get_ref().leave_multicast_v4(&group, &interface)
    }

    /// Takes the socket's pending error (`SO_ERROR`), if any: for example
    /// the `ConnectionRefused` an ICMP "port unreachable" left.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.source.get_ref().take_error()
    }
}

impl TryFrom<std::net::UdpSocket> for UdpSocket {
    type Error = io::Error;

    fn try_from(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        UdpSocket::from_std(socket)
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.get_ref().as_fd()
    }
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.source.get_ref().as_raw_fd()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
