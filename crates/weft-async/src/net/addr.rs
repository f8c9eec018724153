//! Addresses for the sockets of [`net`](crate::net), and host names resolved
//! off the loop's thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// What an address argument turns into: addresses at once, or a host name to
/// look up.
pub enum Lookup {
    /// One address, known without a lookup (no allocation).
    One(SocketAddr),
    /// Resolved without a lookup (a list, or a string that is not an
    /// address).
    Ready(io::Result<Vec<SocketAddr>>),
    /// A host name and a port, for the system resolver.
    Name(String, u16),
}

mod sealed {
    /// Keeps [`ToSocketAddrs`](super::ToSocketAddrs) implemented by this
    /// crate alone.
    pub trait Sealed {
        /// The addresses, or the name to look up.
        fn lookup(self) -> super::Lookup;
    }
}

/// Something that names one or more socket addresses: what
/// [`TcpStream::connect`](super::TcpStream::connect),
/// [`TcpListener::bind`](super::TcpListener::bind) and the
/// [`UdpSocket`](super::UdpSocket) methods take.
///
/// It is implemented for the same types as [`std::net::ToSocketAddrs`]
/// (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`, `("host", port)`,
/// `&[SocketAddr]`, ...). A socket address or an IP literal resolves at
/// once; a host name (`"localhost:8080"`, `("example.org", 443)`) is looked
/// up by the system resolver on a helper thread (the `blocking` crate's
/// pool), so the loop and its other tasks keep running while the lookup
/// waits: `loop.getaddrinfo` in asyncio does the same on its default
/// executor. Use [`lookup_host`](super::lookup_host) for the addresses
/// themselves.
///
/// The trait is sealed: only this crate implements it.
pub trait ToSocketAddrs: sealed::Sealed {}

impl<T: sealed::Sealed> ToSocketAddrs for T {}

fn ready([addr]: [SocketAddr; 1]) -> Lookup {
    Lookup::One(addr)
}

impl sealed::Sealed for SocketAddr {
    fn lookup(self) -> Lookup {
        ready([self])
    }
}

impl sealed::Sealed for &SocketAddr {
    fn lookup(self) -> Lookup {
        ready([*self])
    }
}

impl sealed::Sealed for SocketAddrV4 {
    fn lookup(self) -> Lookup {
        ready([SocketAddr::V4(self)])
    }
}

impl sealed::Sealed for SocketAddrV6 {
    fn lookup(self) -> Lookup {
        ready([SocketAddr::V6(self)])
    }
}

impl sealed::Sealed for (IpAddr, u16) {
    fn lookup(self) -> Lookup {
        ready([SocketAddr::from(self)])
    }
}

impl sealed::Sealed for (Ipv4Addr, u16) {
    fn lookup(self) -> Lookup {
        ready([SocketAddr::from(self)])
    }
}

impl sealed::Sealed for (Ipv6Addr, u16) {
    fn lookup(self) -> Lookup {
        ready([SocketAddr::from(self)])
    }
}

impl sealed::Sealed for &[SocketAddr] {
    fn lookup(self) -> Lookup {
        Lookup::Ready(Ok(self.to_vec()))
    }
}

impl sealed::Sealed for Vec<SocketAddr> {
    fn lookup(self) -> Lookup {
        Lookup::Ready(Ok(self))
    }
}

impl sealed::Sealed for (&str, u16) {
    fn lookup(self) -> Lookup {
        let (host, port) = self;
        match host.parse::<IpAddr>() {
            Ok(ip) => ready([SocketAddr::new(ip, port)]),
            Err(_) => Lookup::Name(host.to_string(), port),
        }
    }
}

impl sealed::Sealed for (String, u16) {
    fn lookup(self) -> Lookup {
        (self.0.as_str(), self.1).lookup()
    }
}

impl sealed::Sealed for (&String, u16) {
    fn lookup(self) -> Lookup {
        (self.0.as_str(), self.1).lookup()
    }
}

impl sealed::Sealed for &str {
    fn lookup(self) -> Lookup {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return ready([addr]);
        }
        // "host:port", split as std does: at the last colon.
        let Some((host, port)) = self.rsplit_once(':') else {
            return Lookup::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("weft-async: {self:?} is not a socket address (expected \"host:port\")"),
            )));
        };
        match port.parse::<u16>() {
            Ok(port) => (host, port).lookup(),
            Err(_) => Lookup::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("weft-async: {self:?} has no valid port number after its last ':'"),
            ))),
        }
    }
}

impl sealed::Sealed for String {
    fn lookup(self) -> Lookup {
        self.as_str().lookup()
    }
}

impl sealed::Sealed for &String {
    fn lookup(self) -> Lookup {
        self.as_str().lookup()
    }
}

/// Looks `addr` up, as `loop.getaddrinfo` does: a host name on a helper
/// thread (the loop runs on meanwhile), an address at once.
///
/// Fails with the resolver's error, with the name in its message, or with
/// `InvalidInput` if the name has no address.
///
/// # Example
///
/// ```
/// use weft_async::net::lookup_host;
///
/// weft_async::run(async {
///     let addrs = lookup_host("localhost:8080").await?;
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 8080));
///     let err = lookup_host("localhost").await.unwrap_err(); // no port
///     assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub async fn lookup_host(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    resolve(addr).await
}

/// The system resolver, called on a helper thread.
fn system_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).map(Iterator::collect)
}

/// Resolves `addr` into a non-empty list of socket addresses; a host name
/// is looked up on a helper thread.
pub(crate) async fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    resolve_with(addr, system_lookup).await
}

/// The first address `addr` resolves to; one known at once costs no
/// allocation (a datagram's `send_to` calls this every time).
pub(crate) async fn resolve_first(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    match sealed::Sealed::lookup(addr) {
        Lookup::One(addr) => Ok(addr),
        other => {
            let addrs = match other {
                Lookup::Ready(addrs) => addrs?,
                Lookup::Name(host, port) => resolve((host.as_str(), port)).await?,
                Lookup::One(_) => unreachable!("handled above"),
            };
            addrs.first().copied().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "weft-async: the address resolved to no socket address",
                )
            })
        }
    }
}

/// [`resolve`], with the lookup function given (tests give a slow one).
pub(crate) async fn resolve_with(
    addr: impl ToSocketAddrs,
    lookup: fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
) -> io::Result<Vec<SocketAddr>> {
    let addrs = match sealed::Sealed::lookup(addr) {
        Lookup::One(addr) => return Ok(vec![addr]),
        Lookup::Ready(addrs) => addrs?,
        Lookup::Name(host, port) => {
            blocking::unblock(move || {
                lookup(&host, port).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("weft-async: could not resolve {host:?} (port {port}): {e}"),
                    )
                })
            })
            .await?
        }
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "weft-async: the address resolved to no socket address",
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    use super::*;

    /// A lookup that takes 300 ms and says which thread ran it.
    fn slow_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(host, "slow.example");
        LAST_THREAD
            .lock()
            .unwrap()
            .replace(std::thread::current().id());
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }

    static LAST_THREAD: std::sync::Mutex<Option<std::thread::ThreadId>> =
        std::sync::Mutex::new(None);

    #[test]
    fn a_slow_lookup_runs_off_the_loop_while_a_timer_ticks() {
        let ticks = Cell::new(0u32);
        let loop_thread = std::thread::current().id();
        let addrs = crate::run(async {
            let ticker = async {
                let mut every = crate::interval(Duration::from_millis(10));
                loop {
                    every.tick().await;
                    ticks.set(ticks.get() + 1);
                }
            };
            let started = Instant::now();
            let addrs = match crate::select(
                std::pin::pin!(resolve_with(("slow.example", 7), slow_lookup)),
                std::pin::pin!(ticker),
            )
            .await
            {
                crate::Either::Left(addrs) => addrs,
                crate::Either::Right(never) => never,
            };
            assert!(started.elapsed() >= Duration::from_millis(300));
            addrs
        });
        assert_eq!(addrs.unwrap(), vec![SocketAddr::from(([127, 0, 0, 1], 7))]);
        let ran_on = LAST_THREAD.lock().unwrap().expect("the lookup ran");
        assert_ne!(ran_on, loop_thread, "the lookup ran on the loop's thread");
        // 300 ms at one tick per 10 ms: 30 on time; a loop blocked by the
        // lookup would have ticked once or twice. Generous for a loaded VM.
        assert!(ticks.get() >= 5, "the timer ticked {} times", ticks.get());
    }

    /// A resolver that knows no name (as for `no-such-host.invalid`,
    /// without asking a DNS server that may be slow or absent).
    fn failing_lookup(_host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        Err(io::Error::other("failed to lookup address information"))
    }

    fn empty_lookup(_host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(Vec::new())
    }

    #[test]
    fn a_name_that_does_not_resolve_is_named_in_the_error() {
        crate::run(async {
            let err = resolve_with("no-such-host.invalid:80", failing_lookup)
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("no-such-host.invalid") && msg.contains("port 80"),
                "{msg}"
            );
            let err = resolve_with(("empty.example", 1), empty_lookup)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        });
    }

    #[test]
    fn literals_resolve_at_once_and_bad_strings_are_clear_errors() {
        crate::run(async {
            let a = resolve("127.0.0.1:80").await.unwrap();
            assert_eq!(a, vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
            let a = resolve(("::1", 5)).await.unwrap();
            assert_eq!(a[0].port(), 5);
            let e = resolve("no-port-here").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("host:port"), "{e}");
            let e = resolve("localhost:http").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            assert!(e.to_string().contains("port"), "{e}");
            let none: &[SocketAddr] = &[];
            assert_eq!(
                resolve(none).await.unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        });
    }
}
