//! weft-async's own TCP types: echo, back-pressure, end-of-file, errors,
//! cancellation, sockets that outlive their runtime, and the wake-up of an
//! idle runtime by a socket. The suite runs twice in `cargo xtask test-all`:
//! on the runtime's epoll reactor, and with `--cfg weft_async_portable_io`
//! on the `async-io` path that other platforms use.
#![cfg(unix)]

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use weft_async::net::{TcpListener, TcpStream};
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
