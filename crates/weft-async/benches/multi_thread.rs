//! weft-async's multi-threaded flavour (`weft_async::multi`, on
//! async-executor's work-stealing `Executor`) against tokio's multi-thread
//! runtime, both with 2 worker threads, same work, each used the way its
//! authors show it: the root future in `block_on`, tasks spawned with
//! `spawn` and their handles awaited.
//!
//! Groups: `mt_spawn_await` (1,000,000 empty tasks spawned from the root
//! future, then awaited in order), `mt_yield_many` (10,000 tasks each
//! yielding 100 times), `mt_tcp_echo` (1,000 connections x 100 32-byte
//! messages over loopback; clients and the server's connection tasks are
//! all tasks of the runtime under test, and both listeners are made from the
//! same `std::net::TcpListener` setup; weft uses `async-net`, tokio
//! `tokio::net`).
//!
//! Every group also has an `async-executor` row:
//! the bare `Executor` that the flavour is built on, run the same way (2
//! threads in `async_io::block_on(ex.run(..))`, tasks spawned with
//! `Executor::spawn` and awaited), to show what weft adds on top of it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_executor::Executor;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use weft_async::multi;

const THREADS: usize = 2;
const SPAWN_N: usize = 1_000_000;
const YIELD_TASKS: usize = 10_000;
const YIELDS: usize = 100;
const TCP_CONNS: usize = 1_000;
const TCP_MSGS: usize = 100;
const TCP_MSG_LEN: usize = 32;

fn weft_rt() -> multi::Runtime {
    multi::Runtime::builder().threads(THREADS).build().unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(THREADS)
        .enable_all()
        .build()
        .unwrap()
}

/// The bare async-executor peer: an `Executor` run by `THREADS` threads the
/// way its docs show, and stopped when dropped.
struct BareExecutor {
    ex: Arc<Executor<'static>>,
    stop: Option<StopOnDrop>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// The bare executor, shared with the tasks that spawn on it.
type BareEx = Arc<Executor<'static>>;

/// Sets the bare executor's stop event when dropped.
struct StopOnDrop(Arc<weft_sync::Event>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

impl BareExecutor {
    fn new() -> BareExecutor {
        let ex = Arc::new(Executor::new());
        let stop = Arc::new(weft_sync::Event::new());
        let threads = (0..THREADS)
            .map(|_| {
                let (ex, stop) = (ex.clone(), stop.clone());
                std::thread::spawn(move || async_io::block_on(ex.run(stop.wait_async())))
            })
            .collect();
        BareExecutor {
            ex,
            stop: Some(StopOnDrop(stop)),
            threads,
        }
    }
}

impl Drop for BareExecutor {
    fn drop(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
    }
}

/// Runs `body` for both runtimes in one group: `weft` then `tokio` (and the
/// bare `async-executor` when `bare` is given).
fn both<W, T, WF, TF>(
    c: &mut Criterion,
    group: &str,
    weft: W,
    tokio_body: T,
    bare: Option<&dyn Fn(&BareEx)>,
) where
    W: Fn() -> WF,
    WF: Future<Output = ()>,
    T: Fn() -> TF,
    TF: Future<Output = ()>,
{
    let mut g = c.benchmark_group(group);
    g.sampling_mode(SamplingMode::Flat);
    {
        let rt = weft_rt();
        g.bench_function("weft", |b| b.iter(|| rt.block_on(weft())));
    }
    {
        let rt = tokio_rt();
        g.bench_function("tokio", |b| b.iter(|| rt.block_on(tokio_body())));
    }
    if let Some(bare) = bare {
        let peer = BareExecutor::new();
        g.bench_function("async-executor", |b| b.iter(|| bare(&peer.ex)));
    }
    g.finish();
}

fn spawn_await(c: &mut Criterion) {
    both(
        c,
        "mt_spawn_await",
        || async {
            let mut tasks = Vec::with_capacity(SPAWN_N);
            for _ in 0..SPAWN_N {
                tasks.push(multi::spawn(async {}));
            }
            for t in tasks {
                t.await.unwrap();
            }
        },
        || async {
            let mut tasks = Vec::with_capacity(SPAWN_N);
            for _ in 0..SPAWN_N {
                tasks.push(tokio::spawn(async {}));
            }
            for t in tasks {
                t.await.unwrap();
            }
        },
        Some(&|ex| {
            async_io::block_on(async {
                let mut tasks = Vec::with_capacity(SPAWN_N);
                for _ in 0..SPAWN_N {
                    tasks.push(ex.spawn(async {}));
                }
                for t in tasks {
                    t.await;
                }
            })
        }),
    );
}

fn yield_many(c: &mut Criterion) {
    both(
        c,
        "mt_yield_many",
        || async {
            let tasks: Vec<_> = (0..YIELD_TASKS)
                .map(|_| {
                    multi::spawn(async {
                        for _ in 0..YIELDS {
                            multi::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        },
        || async {
            let tasks: Vec<_> = (0..YIELD_TASKS)
                .map(|_| {
                    tokio::spawn(async {
                        for _ in 0..YIELDS {
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        },
        Some(&|ex| {
            async_io::block_on(async {
                let tasks: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        ex.spawn(async {
                            for _ in 0..YIELDS {
                                futures_lite::future::yield_now().await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await;
                }
            })
        }),
    );
}

/// A loopback listener made the same way for both runtimes.
fn std_listener() -> std::net::TcpListener {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

/// The server side of one echo connection (async-net).
async fn echo_conn(mut s: async_net::TcpStream) {
    s.set_nodelay(true).unwrap();
    let mut buf = [0u8; TCP_MSG_LEN];
    while s.read_exact(&mut buf).await.is_ok() {
        s.write_all(&buf).await.unwrap();
    }
}

/// One echo client (async-net): `TCP_MSGS` round trips.
async fn echo_client(addr: std::net::SocketAddr) {
    let mut s = async_net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = [7u8; TCP_MSG_LEN];
    let mut back = [0u8; TCP_MSG_LEN];
    for _ in 0..TCP_MSGS {
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
    }
}

fn tcp_echo(c: &mut Criterion) {
    both(
        c,
        "mt_tcp_echo",
        || async {
            let listener = async_net::TcpListener::try_from(std_listener()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = multi::spawn(async move {
                loop {
                    let (s, _) = listener.accept().await.unwrap();
                    multi::spawn(echo_conn(s)).detach();
                }
            });
            let clients: Vec<_> = (0..TCP_CONNS)
                .map(|_| multi::spawn(echo_client(addr)))
                .collect();
            for t in clients {
                t.await.unwrap();
            }
            drop(server);
        },
        || async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::from_std(std_listener()).unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    s.set_nodelay(true).unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; TCP_MSG_LEN];
                        while s.read_exact(&mut buf).await.is_ok() {
                            s.write_all(&buf).await.unwrap();
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..TCP_CONNS)
                .map(|_| {
                    tokio::spawn(async move {
                        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                        s.set_nodelay(true).unwrap();
                        let msg = [7u8; TCP_MSG_LEN];
                        let mut back = [0u8; TCP_MSG_LEN];
                        for _ in 0..TCP_MSGS {
                            s.write_all(&msg).await.unwrap();
                            s.read_exact(&mut back).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in clients {
                t.await.unwrap();
            }
            server.abort();
        },
        Some(&|ex| {
            async_io::block_on(async {
                let listener = async_net::TcpListener::try_from(std_listener()).unwrap();
                let addr = listener.local_addr().unwrap();
                let spawner = ex.clone();
                let server = ex.spawn(async move {
                    loop {
                        let (s, _) = listener.accept().await.unwrap();
                        spawner.spawn(echo_conn(s)).detach();
                    }
                });
                let clients: Vec<_> = (0..TCP_CONNS)
                    .map(|_| ex.spawn(echo_client(addr)))
                    .collect();
                for t in clients {
                    t.await;
                }
                drop(server);
            })
        }),
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = spawn_await, yield_many, tcp_echo
}
criterion_main!(benches);
