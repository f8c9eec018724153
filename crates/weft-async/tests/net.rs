//! weft-async's own sockets: TCP (echo, back-pressure, end-of-file, errors,
//! cancellation, sockets that outlive their runtime, and the wake-up of an
//! idle runtime by a socket), UDP, Unix streams and datagrams, and host
//! names resolved off the loop. The suite runs twice in `cargo xtask test-all`:
//! on the runtime's epoll reactor, and with `--cfg weft_async_portable_io`
//! on the `async-io` path that other platforms use.
#![cfg(unix)]

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use weft_async::net::{
    TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream, lookup_host,
};
use weft_async::{run, sleep, spawn, timeout, yield_now};

/// Every test that could hang runs under this limit.
const LIMIT: Duration = Duration::from_secs(30);

fn run_limited<T, F: std::future::Future<Output = T>>(f: F) -> T {
    run(async move {
        timeout(LIMIT, f)
            .await
            .expect("test ran past its time limit")
    })
}

/// A connected pair: (client, server side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = spawn(TcpStream::connect(addr));
    let (server, peer) = listener.accept().await.unwrap();
    let client = client.await.unwrap().unwrap();
    assert_eq!(client.local_addr().unwrap(), peer);
    assert_eq!(server.peer_addr().unwrap(), peer);
    (client, server)
}

#[test]
fn echo_many_connections_and_messages() {
    const CONNS: usize = 20;
    const MSGS: usize = 200;
    let total = run_limited(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let mut incoming = listener.incoming();
            for _ in 0..CONNS {
                let mut conn = incoming.next().await.unwrap().unwrap();
                conn.set_nodelay(true).unwrap();
                assert!(conn.nodelay().unwrap());
                spawn(async move {
                    let mut buf = [0u8; 8];
                    loop {
                        match conn.read_exact(&mut buf).await {
                            Ok(()) => conn.write_all(&buf).await.unwrap(),
                            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
                            Err(e) => panic!("server read failed: {e}"),
                        }
                    }
                })
                .detach();
            }
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|c| {
                spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let mut sum = 0u64;
                    for m in 0..MSGS {
                        let v = (c * MSGS + m) as u64;
                        s.write_all(&v.to_le_bytes()).await.unwrap();
                        let mut back = [0u8; 8];
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(u64::from_le_bytes(back), v, "an echo came back wrong");
                        sum += v;
                    }
                    s.close().await.unwrap();
                    sum
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        server.await.unwrap();
        total
    });
    let n = (CONNS * MSGS) as u64;
    assert_eq!(total, n * (n - 1) / 2);
}

/// Megabytes each way at once: the writers fill the socket buffers and
/// must wait for writability, reading and writing the same stream from two
/// tasks through `&TcpStream`.
#[test]
fn full_duplex_bulk_transfer_with_backpressure() {
    const LEN: usize = 4 << 20;
    let data: Vec<u8> = (0..LEN).map(|i| (i * 7 % 251) as u8).collect();
    let expected = data.clone();
    run_limited(async move {
        let (client, server) = pair().await;
        let client = Rc::new(client);
        let server = Rc::new(server);
        // The server echoes everything back as it arrives.
        let echo = {
            let server = server.clone();
            spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = (&*server).read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    (&*server).write_all(&buf[..n]).await.unwrap();
                }
                server.shutdown(Shutdown::Write).unwrap();
            })
        };
        let writer = {
            let client = client.clone();
            spawn(async move {
                for chunk in data.chunks(100_000) {
                    (&*client).write_all(chunk).await.unwrap();
                }
                (&*client).close().await.unwrap();
            })
        };
        let mut back = Vec::new();
        (&*client).read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        echo.await.unwrap();
        assert_eq!(back.len(), expected.len());
        assert!(back == expected, "the echoed bytes differ");
    });
}

#[test]
fn close_gives_the_peer_end_of_file() {
    run_limited(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"last words").await.unwrap();
        client.close().await.unwrap();
        let mut all = String::new();
        server.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "last words");
        // End-of-file again, not a hang.
        let mut buf = [0u8; 4];
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        // Writing after the local close fails.
        let err = client.write_all(b"more").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    });
}

#[test]
fn connect_to_a_closed_port_is_refused() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = run_limited(TcpStream::connect(addr)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn an_address_list_tries_each_and_an_empty_one_is_an_error() {
    run_limited(async {
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let accept = spawn(async move { listener.accept().await.map(|_| ()) });
        let s = TcpStream::connect(&[closed, open][..]).await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), open);
        accept.await.unwrap().unwrap();

        let none: &[SocketAddr] = &[];
        let err = TcpStream::connect(none).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = TcpListener::bind(none).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // A port already taken.
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = TcpListener::bind(taken.local_addr().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    });
}

#[test]
fn a_socket_used_outside_run_fails_clearly() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut stream = TcpStream::from_std(client).unwrap();
    let mut buf = [0u8; 1];
    let err = futures_lite::future::block_on(stream.read(&mut buf)).unwrap_err();
    assert!(
        err.to_string().contains("outside weft_async::run"),
        "unexpected error: {err}"
    );
    // On the multi-threaded flavour too, and the error says what to use.
    let rt = weft_async::multi::Runtime::builder()
        .threads(1)
        .build()
        .unwrap();
    let udp = UdpSocket::from_std(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    let err = rt.block_on(udp.recv(&mut buf)).unwrap_err();
    assert!(
        err.to_string().contains("async-net"),
        "unexpected error: {err}"
    );
    // Nothing was lost: inside a runtime the same socket works.
    let (mut server, _) = listener.accept().unwrap();
    server.write_all(b"x").unwrap();
    let n = run_limited(async move { stream.read(&mut buf).await.unwrap() });
    assert_eq!(n, 1);
}

/// A socket returned from one run is taken over by the next one on the
/// same thread.
#[test]
fn sockets_move_to_the_next_runtime() {
    let (mut client, mut server) = run_limited(pair());
    for round in 0..3u8 {
        let (c, s) = run_limited(async move {
            client.write_all(&[round]).await.unwrap();
            let mut b = [0u8; 1];
            server.read_exact(&mut b).await.unwrap();
            server.write_all(&[b[0] + 100]).await.unwrap();
            client.read_exact(&mut b).await.unwrap();
            assert_eq!(b[0], round + 100);
            (client, server)
        });
        client = c;
        server = s;
    }
}

/// The runtime has nothing to run and sleeps; a connection and data from
/// another thread must wake it (the epoll instance registered with
/// async-io's reactor).
#[test]
fn an_idle_runtime_wakes_for_a_socket() {
    let peer = run_limited(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b"late").unwrap();
            let mut back = [0u8; 4];
            s.read_exact(&mut back).unwrap();
            back
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"late");
        conn.write_all(b"LATE").await.unwrap();
        peer
    });
    assert_eq!(&peer.join().unwrap(), b"LATE");
}

/// Dropping a pending accept or read loses nothing: the connection and the
/// data are there for the next call.
#[test]
fn cancelled_operations_lose_nothing() {
    run_limited(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let waiting = {
            let listener = listener.clone();
            spawn(async move { listener.accept().await.map(|_| ()) })
        };
        yield_now().await;
        assert!(waiting.cancel().await.is_none(), "accept finished early");
        let client = spawn(TcpStream::connect(addr));
        let (mut server, _) = listener.accept().await.unwrap();
        let mut client = client.await.unwrap().unwrap();

        // A read that times out, then the data arrives.
        let mut buf = [0u8; 3];
        assert!(
            timeout(Duration::from_millis(20), server.read(&mut buf))
                .await
                .is_err()
        );
        client.write_all(b"abc").await.unwrap();
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"abc");
    });
}

/// Two tasks waiting to read the same stream are both woken.
#[test]
fn two_readers_of_one_stream_both_wake() {
    run_limited(async {
        let (mut client, server) = pair().await;
        let server = Rc::new(server);
        let got = Rc::new(Cell::new(0usize));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let server = server.clone();
                let got = got.clone();
                spawn(async move {
                    let mut b = [0u8; 1];
                    (&*server).read_exact(&mut b).await.unwrap();
                    got.set(got.get() + 1);
                })
            })
            .collect();
        sleep(Duration::from_millis(10)).await;
        assert_eq!(got.get(), 0);
        client.write_all(b"ab").await.unwrap();
        for r in readers {
            r.await.unwrap();
        }
        assert_eq!(got.get(), 2);
    });
}

/// Opening and closing many connections in turn reuses descriptors and
/// reactor slots; a stale event must never reach a new socket.
#[test]
fn connection_churn() {
    run_limited(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for i in 0..300u32 {
            let client = spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(&i.to_le_bytes()).await.unwrap();
                let mut back = [0u8; 4];
                s.read_exact(&mut back).await.unwrap();
                u32::from_le_bytes(back)
            });
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut b = [0u8; 4];
            conn.read_exact(&mut b).await.unwrap();
            conn.write_all(&b).await.unwrap();
            drop(conn);
            assert_eq!(client.await.unwrap(), i);
        }
    });
}

/// A task that never stops yielding starves neither the sockets nor the
/// timers.
#[test]
fn a_busy_runtime_still_serves_sockets_and_timers() {
    run_limited(async {
        let stop = Rc::new(Cell::new(false));
        let spinner = {
            let stop = stop.clone();
            spawn(async move {
                // A watchdog, not a speed check: the test fails if the
                // socket and the timer had to wait for the spinner to stop.
                let give_up = Instant::now() + Duration::from_secs(10);
                while !stop.get() && Instant::now() < give_up {
                    yield_now().await;
                }
                stop.get()
            })
        };
        let (mut client, mut server) = pair().await;
        for _ in 0..100 {
            client.write_all(b"p").await.unwrap();
            let mut b = [0u8; 1];
            server.read_exact(&mut b).await.unwrap();
        }
        sleep(Duration::from_millis(5)).await;
        stop.set(true);
        assert!(spinner.await.unwrap(), "the spinner gave up first");
    });
}

#[test]
fn std_conversions_round_trip() {
    let (client, server) = run_limited(pair());
    let mut client = client.into_std().unwrap();
    let server = server.into_std().unwrap();
    // Still non-blocking, as documented.
    let mut buf = [0u8; 1];
    assert_eq!(
        (&server).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    client.write_all(b"z").unwrap();
    server.set_nonblocking(false).unwrap();
    (&server).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"z");
    // And back in.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listener = TcpListener::try_from(listener).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut server = TcpStream::try_from(server).unwrap();
    run_limited(async move {
        client.write_all(b"y").unwrap();
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"y");
        let c = spawn(TcpStream::connect(addr));
        listener.accept().await.unwrap();
        c.await.unwrap().unwrap();
        assert!(format!("{listener:?}").contains("TcpListener"));
    });
}

#[test]
fn peek_leaves_the_data() {
    run_limited(async {
        let (mut client, mut server) = pair().await;
        client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        let n = server.peek(&mut buf).await.unwrap();
        assert!(n > 0 && buf[..n] == b"hello"[..n]);
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
    });
}

#[test]
fn async_net_and_weft_sockets_share_a_runtime() {
    run_limited(async {
        let weft_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let weft_addr = weft_listener.local_addr().unwrap();
        let smol_listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let smol_addr = smol_listener.local_addr().unwrap();
        // A weft client talks to an async-net server and the other way round.
        let a = spawn(async move {
            let mut s = TcpStream::connect(smol_addr).await.unwrap();
            s.write_all(b"to smol").await.unwrap();
        });
        let b = spawn(async move {
            let mut s = async_net::TcpStream::connect(weft_addr).await.unwrap();
            s.write_all(b"to weft").await.unwrap();
        });
        let (mut from_weft, _) = smol_listener.accept().await.unwrap();
        let (mut from_smol, _) = weft_listener.accept().await.unwrap();
        let mut x = String::new();
        from_weft.read_to_string(&mut x).await.unwrap();
        let mut y = String::new();
        from_smol.read_to_string(&mut y).await.unwrap();
        assert_eq!((x.as_str(), y.as_str()), ("to smol", "to weft"));
        a.await.unwrap();
        b.await.unwrap();
    });
}

/// The data and the peer's close arrive in one event: the short read that
/// takes the data must not leave the end-of-file unread (no further edge
/// comes for it).
#[test]
fn data_and_close_in_one_event_still_reach_end_of_file() {
    run_limited(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        weft_async::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            client.write_all(b"ping").await.unwrap();
            client.close().await.unwrap(); // the server reads end-of-file next
        })
        .detach();
        let (mut conn, _) = listener.accept().await?;
        let mut all = Vec::new();
        conn.read_to_end(&mut all).await?;
        assert_eq!(all, b"ping");
        std::io::Result::Ok(())
    })
    .unwrap();
}

/// A fresh directory for socket files, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("weft-net-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn udp_echo_between_many_clients() {
    const CLIENTS: u64 = 8;
    const MSGS: u64 = 50;
    let total = run_limited(async {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                let (n, peer) = server.recv_from(&mut buf).await.unwrap();
                let sent = server.send_to(&buf[..n], peer).await.unwrap();
                assert_eq!(sent, n);
            }
        })
        .detach();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                spawn(async move {
                    let sock = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
                    let mut sum = 0;
                    let mut buf = [0u8; 64];
                    for m in 0..MSGS {
                        let v = c * 1000 + m;
                        sock.send_to(&v.to_le_bytes(), addr).await.unwrap();
                        // Loopback UDP loses nothing at this rate; a lost
                        // datagram fails the test at its time limit.
                        let (n, from) = sock.recv_from(&mut buf).await.unwrap();
                        assert_eq!((n, from), (8, addr));
                        assert_eq!(u64::from_le_bytes(buf[..8].try_into().unwrap()), v);
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        total
    });
    let expected: u64 = (0..CLIENTS)
        .flat_map(|c| (0..MSGS).map(move |m| c * 1000 + m))
        .sum();
    assert_eq!(total, expected);
}

#[test]
fn udp_connected_send_recv_peek_and_errors() {
    run_limited(async {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(a.peer_addr().unwrap_err().kind(), ErrorKind::NotConnected);
        a.connect(b.local_addr().unwrap()).await.unwrap();
        b.connect(a.local_addr().unwrap()).await.unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        // A receive that waits, then a send that wakes it.
        let b = Rc::new(b);
        let waiting = {
            let b = b.clone();
            spawn(async move {
                let mut buf = [0u8; 16];
                let n = b.peek(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"first");
                let (n, from) = b.peek_from(&mut buf).await.unwrap();
                assert_eq!((&buf[..n], from), (&b"first"[..], b.peer_addr().unwrap()));
                // Peeked twice, still there; then taken, one datagram each.
                let n = b.recv(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"first");
                let n = b.recv(&mut buf).await.unwrap();
                assert_eq!(&buf[..n], b"second");
            })
        };
        yield_now().await;
        a.send(b"first").await.unwrap();
        a.send(b"second").await.unwrap();
        waiting.await.unwrap();
        // A datagram longer than the buffer is cut to it.
        a.send(b"0123456789").await.unwrap();
        let mut small = [0u8; 4];
        assert_eq!(b.recv(&mut small).await.unwrap(), 4);
        assert_eq!(&small, b"0123");

        // Bad arguments: a clear error, no panic.
        let err = UdpSocket::bind("not an address").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = a.send_to(b"x", "127.0.0.1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let taken = b.local_addr().unwrap();
        let err = UdpSocket::bind(taken).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        // Sending to a closed port: the ICMP reply surfaces as an error.
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(closed).await.unwrap();
        c.send(b"anyone?").await.unwrap();
        let err = c.recv(&mut small).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        let std = c.into_std().unwrap();
        let c = UdpSocket::try_from(std).unwrap();
        assert!(format!("{c:?}").contains("UdpSocket"));
    });
}

#[test]
fn unix_stream_echo_and_end_of_file() {
    let dir = TempDir::new("stream");
    let path = dir.path("echo.sock");
    let total = run_limited(async {
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(
            listener.local_addr().unwrap().as_pathname(),
            Some(path.as_path())
        );
        spawn(async move {
            let mut incoming = listener.incoming();
            loop {
                let mut conn = incoming.next().await.unwrap().unwrap();
                spawn(async move {
                    let mut buf = [0u8; 8];
                    loop {
                        match conn.read_exact(&mut buf).await {
                            Ok(()) => conn.write_all(&buf).await.unwrap(),
                            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
                            Err(e) => panic!("server read failed: {e}"),
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
        let clients: Vec<_> = (0..5u64)
            .map(|c| {
                let path = path.clone();
                spawn(async move {
                    let mut s = UnixStream::connect(&path).await.unwrap();
                    let mut sum = 0;
                    for m in 0..100u64 {
                        let v = c * 1000 + m;
                        s.write_all(&v.to_le_bytes()).await.unwrap();
                        let mut back = [0u8; 8];
                        s.read_exact(&mut back).await.unwrap();
                        assert_eq!(u64::from_le_bytes(back), v);
                        sum += v;
                    }
                    s.close().await.unwrap();
                    // The server closes its side when it reads end-of-file.
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).await.unwrap();
                    assert!(rest.is_empty());
                    sum
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        // A pair, bulk data both ways at once (back-pressure on both).
        let (a, b) = UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let expected = data.clone();
        let writer = spawn(async move {
            (&a).write_all(&data).await.unwrap();
            (&a).close().await.unwrap();
            a
        });
        let mut got = Vec::new();
        (&b).read_to_end(&mut got).await.unwrap();
        assert!(got == expected, "bulk data came back wrong");
        writer.await.unwrap();
        total
    });
    assert_eq!(
        total,
        (0..5u64)
            .flat_map(|c| (0..100).map(move |m| c * 1000 + m))
            .sum()
    );
}

#[test]
fn unix_paths_that_are_wrong_give_clear_errors() {
    let dir = TempDir::new("errors");
    run_limited(async {
        // No such file.
        let missing = dir.path("nobody-here.sock");
        let err = UnixStream::connect(&missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let msg = err.to_string();
        assert!(
            msg.contains("nobody-here.sock") && msg.contains("connect"),
            "{msg}"
        );
        // A file, but no socket listening on it.
        let plain = dir.path("plain-file");
        std::fs::write(&plain, b"").unwrap();
        let err = UnixStream::connect(&plain).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        // Binding where a file exists, or in a directory that does not.
        let err = UnixListener::bind(&plain).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert!(err.to_string().contains("plain-file"), "{err}");
        let err = UnixListener::bind(dir.path("no/such/dir.sock")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = UnixDatagram::bind(dir.path("no/such/dir.sock")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let d = UnixDatagram::unbound().unwrap();
        let err = d.send_to(b"x", &missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains("nobody-here.sock"), "{err}");
        let err = d.connect(&missing).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
    });
}

#[test]
fn unix_datagrams_keep_their_boundaries_and_senders() {
    let dir = TempDir::new("dgram");
    run_limited(async {
        let server_path = dir.path("server.sock");
        let client_path = dir.path("client.sock");
        let server = UnixDatagram::bind(&server_path).unwrap();
        let client = UnixDatagram::bind(&client_path).unwrap();
        let echo = spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..3 {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let from = from.as_pathname().unwrap().to_path_buf();
                server.send_to(&buf[..n], &from).await.unwrap();
            }
            server
        });
        for msg in [&b"a"[..], b"bb", b"ccc"] {
            client.send_to(msg, &server_path).await.unwrap();
        }
        let mut buf = [0u8; 64];
        for msg in [&b"a"[..], b"bb", b"ccc"] {
            let (n, from) = client.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], msg);
            assert_eq!(from.as_pathname(), Some(server_path.as_path()));
        }
        echo.await.unwrap();
        // Connected: send and recv, and a pair.
        let other = UnixDatagram::unbound().unwrap();
        other.connect(&client_path).unwrap();
        other.send(b"hi").await.unwrap();
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hi");
        let (x, y) = UnixDatagram::pair().unwrap();
        let waiting = spawn(async move {
            let mut buf = [0u8; 8];
            let n = y.recv(&mut buf).await.unwrap();
            buf[..n].to_vec()
        });
        yield_now().await;
        x.send(b"later").await.unwrap();
        assert_eq!(waiting.await.unwrap(), b"later");
    });
}

/// A host name is resolved on a helper thread: a timer on the loop keeps
/// ticking through many lookups and connections.
#[test]
fn a_host_name_connect_does_not_stop_the_timers() {
    run_limited(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                conn.write_all(b"hi").await.unwrap();
            }
        })
        .detach();
        let ticks = Rc::new(Cell::new(Vec::<Instant>::new()));
        let ticker = {
            let ticks = ticks.clone();
            spawn(async move {
                let mut every = weft_async::interval(Duration::from_millis(5));
                loop {
                    every.tick().await;
                    let mut v = ticks.take();
                    v.push(Instant::now());
                    ticks.set(v);
                }
            })
        };
        let addrs = lookup_host(("localhost", port)).await.unwrap();
        // "localhost" may resolve to ::1 first, where nothing listens: the
        // connect tries each address in turn.
        assert!(
            addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == port)
        );
        for _ in 0..20 {
            let mut s = TcpStream::connect(format!("localhost:{port}"))
                .await
                .unwrap();
            let mut hi = [0u8; 2];
            s.read_exact(&mut hi).await.unwrap();
            assert_eq!(&hi, b"hi");
            let s = TcpStream::connect(("localhost", port)).await.unwrap();
            assert!(s.peer_addr().unwrap().ip().is_loopback());
        }
        // A few more ticks after the lookups, so that the gaps measured
        // cover all of them.
        loop {
            let v = ticks.take();
            let n = v.len();
            ticks.set(v);
            if n >= 3 {
                break;
            }
            sleep(Duration::from_millis(5)).await;
        }
        ticker.cancel().await;
        let ticks = ticks.take();
        // Not a speed check: a loop blocked for a whole second would show.
        let worst = ticks.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(worst < Duration::from_secs(1), "a tick came {worst:?} late");
    });
}
