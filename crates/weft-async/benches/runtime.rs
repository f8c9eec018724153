//! weft-async against async-executor's `LocalExecutor` (driven by
//! `async_io::block_on`) and tokio's current-thread runtime with a `LocalSet`
//! (rows `tokio (LocalSet)`: `spawn_local`, a fresh `LocalSet` per
//! iteration, as the workloads' tasks hold `Rc`s), on the workloads of
//! issue 4. `spawn_await` also runs on tokio's main path (row `tokio`:
//! `Runtime::block_on` and `tokio::spawn` on the current-thread runtime, no
//! `LocalSet`), the way most tokio code spawns. Every workload uses the same code and the same
//! channel type (a bench-local single-threaded channel) on all three, so only
//! the scheduler differs; timers are each runtime's own (`async-io`'s for weft
//! and async-executor, tokio's for tokio), TCP is weft-async's own `net` types
//! (its epoll reactor) for weft, `async-net` (async-io's reactor) for
//! async-executor and for the `weft+async-net` row (weft's executor on the
//! smol ecosystem's sockets), and `tokio::net` for tokio.
//!
//! Groups: `spawn_await` (spawn 1,000,000 empty tasks, then await them in
//! order), `spawn_chain` (100,000 tasks each spawning the next), `ping_pong`
//! (two tasks exchanging 1,000,000 messages: 500,000 round trips),
//! `yield_many` (10,000 tasks each yielding 100 times), `timers` (100,000
//! sleeps of random durations up to 50 ms; with `timers_lateness_p99`, the
//! 99th percentile of how late a sleep ended, per run: not a criterion
//! row, written to `target/weft-bench/extra/weft-async.json` for the xtask),
//! `tcp_echo` (100 connections x 1,000 32-byte messages over loopback),
//! `spawn_remote` (10,000 tasks spawned from the bench thread onto a
//! runtime running on another thread, each joined from the bench thread:
//! weft's `Handle::spawn` against tokio's `Handle::spawn`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use async_executor::LocalExecutor;
use common::{median_ci, write_extra_rows};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use futures_lite::{AsyncReadExt, AsyncWriteExt};

mod common;

const SPAWN_N: usize = 1_000_000;
const CHAIN_N: usize = 100_000;
const PING_PONG_ROUND_TRIPS: usize = 500_000;
const YIELD_TASKS: usize = 10_000;
const YIELDS: usize = 100;
const TIMERS: usize = 100_000;
const TIMER_MAX_MS: u64 = 50;
const TCP_CONNS: usize = 100;
const TCP_MSGS: usize = 1_000;
const TCP_MSG_LEN: usize = 32;
const REMOTE_N: usize = 10_000;

// ---------------------------------------------------------------- harness

/// The three runtimes behind one interface: run a future to completion, and
/// spawn a local task returning a handle whose await yields the output.
trait Rt {
    fn block<F: Future>(&self, f: F) -> F::Output;
}

struct Weft;
impl Rt for Weft {
    fn block<F: Future>(&self, f: F) -> F::Output {
        weft_async::run(f)
    }
}

struct Ae(Rc<LocalExecutor<'static>>);
impl Rt for Ae {
    fn block<F: Future>(&self, f: F) -> F::Output {
        async_io::block_on(self.0.run(f))
    }
}

struct Tk(tokio::runtime::Runtime);
impl Rt for Tk {
    fn block<F: Future>(&self, f: F) -> F::Output {
        tokio::task::LocalSet::new().block_on(&self.0, f)
    }
}

fn tokio_rt() -> Tk {
    Tk(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap())
}

thread_local! {
    static AE: Rc<LocalExecutor<'static>> = Rc::new(LocalExecutor::new());
}

fn ae() -> Ae {
    Ae(AE.with(Rc::clone))
}

fn ae_spawn<F: Future + 'static>(f: F) -> async_executor::Task<F::Output> {
    AE.with(|ex| ex.spawn(f))
}

// ------------------------------------------------------- a local channel

/// Unbounded single-consumer channel for one thread: the same for every
/// runtime, so ping-pong measures scheduling only.
struct Chan<T> {
    queue: RefCell<VecDeque<T>>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Chan<T> {
    fn new() -> Rc<Chan<T>> {
        Rc::new(Chan {
            queue: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
        })
    }
    fn send(&self, v: T) {
        self.queue.borrow_mut().push_back(v);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }
    async fn recv(&self) -> T {
        std::future::poll_fn(|cx| match self.queue.borrow_mut().pop_front() {
            Some(v) => Poll::Ready(v),
            None => {
                let mut w = self.waker.borrow_mut();
                match &*w {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        })
        .await
    }
}

// ------------------------------------------------------------- workloads

macro_rules! for_each_runtime {
    ($c:expr, $group:expr, $sampling:expr, |$rt:ident, $spawn:ident| $body:expr) => {{
        let mut g = $c.benchmark_group($group);
        g.sampling_mode($sampling);
        {
            let $rt = Weft;
            #[allow(unused_macros)]
            macro_rules! $spawn {
                ($f:expr) => {
                    weft_async::spawn($f)
                };
            }
            g.bench_function("weft", |b| b.iter(|| $body));
        }
        {
            let $rt = ae();
            #[allow(unused_macros)]
            macro_rules! $spawn {
                ($f:expr) => {
                    ae_spawn($f)
                };
            }
            g.bench_function("async-executor", |b| b.iter(|| $body));
        }
        {
            let $rt = tokio_rt();
            #[allow(unused_macros)]
            macro_rules! $spawn {
                ($f:expr) => {
                    tokio::task::spawn_local($f)
                };
            }
            g.bench_function("tokio (LocalSet)", |b| b.iter(|| $body));
        }
        g
    }};
}

fn spawn_await(c: &mut Criterion) {
    let mut g = for_each_runtime!(c, "spawn_await", SamplingMode::Flat, |rt, spawn| rt.block(
        async {
            let mut tasks = Vec::with_capacity(SPAWN_N);
            for _ in 0..SPAWN_N {
                tasks.push(spawn!(async {}));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    ));
    // tokio's main path: the same workload with `tokio::spawn` inside
    // `Runtime::block_on` on the current-thread runtime (no LocalSet).
    let tk = tokio_rt();
    g.bench_function("tokio", |b| {
        b.iter(|| {
            tk.0.block_on(async {
                let mut tasks = Vec::with_capacity(SPAWN_N);
                for _ in 0..SPAWN_N {
                    tasks.push(tokio::spawn(async {}));
                }
                for t in tasks {
                    let _ = t.await;
                }
            })
        })
    });
    g.finish();
}

fn spawn_chain(c: &mut Criterion) {
    // Each task spawns the next and ends; the last one reports on a channel.
    fn weft_link(left: usize, done: Rc<Chan<()>>) {
        weft_async::spawn(async move {
            if left == 0 {
                done.send(());
            } else {
                weft_link(left - 1, done);
            }
        })
        .detach();
    }
    fn ae_link(left: usize, done: Rc<Chan<()>>) {
        ae_spawn(async move {
            if left == 0 {
                done.send(());
            } else {
                ae_link(left - 1, done);
            }
        })
        .detach();
    }
    fn tokio_link(left: usize, done: Rc<Chan<()>>) {
        drop(tokio::task::spawn_local(async move {
            if left == 0 {
                done.send(());
            } else {
                tokio_link(left - 1, done);
            }
        }));
    }
    let mut g = c.benchmark_group("spawn_chain");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("weft", |b| {
        b.iter(|| {
            Weft.block(async {
                let done = Chan::new();
                weft_link(CHAIN_N, done.clone());
                done.recv().await;
            })
        })
    });
    let rt = ae();
    g.bench_function("async-executor", |b| {
        b.iter(|| {
            rt.block(async {
                let done = Chan::new();
                ae_link(CHAIN_N, done.clone());
                done.recv().await;
            })
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio (LocalSet)", |b| {
        b.iter(|| {
            rt.block(async {
                let done = Chan::new();
                tokio_link(CHAIN_N, done.clone());
                done.recv().await;
            })
        })
    });
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    let g = for_each_runtime!(c, "ping_pong", SamplingMode::Flat, |rt, spawn| rt.block(
        async {
            let (to_b, to_a) = (Chan::<usize>::new(), Chan::<usize>::new());
            let (tb, ta) = (to_b.clone(), to_a.clone());
            let b = spawn!(async move {
                for _ in 0..PING_PONG_ROUND_TRIPS {
                    let v = tb.recv().await;
                    ta.send(v + 1);
                }
            });
            let a = spawn!(async move {
                let mut v = 0;
                for _ in 0..PING_PONG_ROUND_TRIPS {
                    to_b.send(v);
                    v = to_a.recv().await;
                }
                assert_eq!(v, PING_PONG_ROUND_TRIPS);
            });
            let _ = a.await;
            let _ = b.await;
        }
    ));
    g.finish();
}

fn yield_many(c: &mut Criterion) {
    let g = for_each_runtime!(c, "yield_many", SamplingMode::Flat, |rt, spawn| rt.block(
        async {
            let mut tasks = Vec::with_capacity(YIELD_TASKS);
            for _ in 0..YIELD_TASKS {
                tasks.push(spawn!(async {
                    for _ in 0..YIELDS {
                        futures_lite::future::yield_now().await;
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
    ));
    g.finish();
}

/// The same pseudo-random durations for every runtime.
fn timer_durations() -> Vec<Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..TIMERS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(x % (TIMER_MAX_MS * 1000) + 1)
        })
        .collect()
}

/// Runs the timer workload once and returns the overshoots (fired - due).
async fn timers_once<S, SF, H>(
    durations: &[Duration],
    spawn: impl Fn(Box<dyn Future<Output = ()>>) -> H,
    sleep: S,
) -> Vec<Duration>
where
    S: Fn(Duration) -> SF + Clone + 'static,
    SF: Future + 'static,
    H: Future,
{
    let _ = &spawn;
    let over = Rc::new(RefCell::new(Vec::with_capacity(durations.len())));
    let mut tasks = Vec::with_capacity(durations.len());
    let start = Instant::now();
    for &d in durations {
        let over = over.clone();
        let sleep = sleep.clone();
        tasks.push(spawn(Box::new(async move {
            // Sleep until a deadline fixed before any task was spawned, so the
            // overshoot includes the time the runtime took to get to the task.
            let due = start + d;
            sleep(due.saturating_duration_since(Instant::now())).await;
            over.borrow_mut()
                .push(Instant::now().saturating_duration_since(due));
        })));
    }
    for t in tasks {
        let _ = t.await;
    }
    Rc::try_unwrap(over).ok().unwrap().into_inner()
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() * 99 / 100]
}

fn timers(c: &mut Criterion) {
    let durations = timer_durations();
    let d = &durations;
    let weft_spawn = |f: Box<dyn Future<Output = ()>>| weft_async::spawn(Box::into_pin(f));
    let ae_spawn_b = |f: Box<dyn Future<Output = ()>>| ae_spawn(Box::into_pin(f));
    let tokio_spawn = |f: Box<dyn Future<Output = ()>>| tokio::task::spawn_local(Box::into_pin(f));
    let weft_sleep = |d: Duration| weft_async::sleep(d);
    let aio_sleep = |d: Duration| async_io::Timer::after(d);
    let tokio_sleep = |d: Duration| tokio::time::sleep(d);

    // Each run's wall time is the criterion row; each run's p99 lateness
    // (fired - due, over its TIMERS sleeps) is kept for the extra row.
    fn timed_runs(
        iters: u64,
        lateness: &mut Vec<f64>,
        mut run: impl FnMut() -> (Duration, Vec<Duration>),
    ) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let (took, over) = run();
            total += took;
            lateness.push(p99(over).as_nanos() as f64);
        }
        total
    }
    let ae_rt = ae();
    let tk = tokio_rt();
    let mut late: Vec<(&str, Vec<f64>)> = Vec::new();
    let mut g = c.benchmark_group("timers");
    g.sampling_mode(SamplingMode::Flat);
    let mut runs = Vec::new();
    g.bench_function("weft", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, &mut runs, || {
                let t = Instant::now();
                let over = Weft.block(timers_once(d, weft_spawn, weft_sleep));
                (t.elapsed(), over)
            })
        })
    });
    late.push(("weft", std::mem::take(&mut runs)));
    g.bench_function("async-executor", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, &mut runs, || {
                let t = Instant::now();
                let over = ae_rt.block(timers_once(d, ae_spawn_b, aio_sleep));
                (t.elapsed(), over)
            })
        })
    });
    late.push(("async-executor", std::mem::take(&mut runs)));
    g.bench_function("tokio (LocalSet)", |b| {
        b.iter_custom(|iters| {
            timed_runs(iters, &mut runs, || {
                let t = Instant::now();
                let over = tk.block(timers_once(d, tokio_spawn, tokio_sleep));
                (t.elapsed(), over)
            })
        })
    });
    late.push(("tokio (LocalSet)", std::mem::take(&mut runs)));
    g.finish();
    let rows: Vec<_> = late
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(imp, v)| {
            let (mid, lo, hi) = median_ci(v.clone());
            eprintln!(
                "timers/{imp}: p99 lateness over {TIMERS} sleeps, median of {} runs: {:?}",
                v.len(),
                Duration::from_nanos(mid as u64)
            );
            (
                "timers_lateness_p99".to_owned(),
                imp.to_owned(),
                (mid, lo, hi),
            )
        })
        .collect();
    if !rows.is_empty() {
        write_extra_rows(&rows);
    }
}

async fn echo_smol(listener: async_net::TcpListener, spawn: impl Fn(Box<dyn Future<Output = ()>>)) {
    for _ in 0..TCP_CONNS {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        spawn(Box::new(async move {
            let mut buf = [0u8; TCP_MSG_LEN];
            for _ in 0..TCP_MSGS {
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            }
        }));
    }
}

async fn client_smol(addr: std::net::SocketAddr) {
    let mut s = async_net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [7u8; TCP_MSG_LEN];
    for _ in 0..TCP_MSGS {
        s.write_all(&buf).await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
    }
}

async fn echo_weft(listener: weft_async::net::TcpListener) {
    for _ in 0..TCP_CONNS {
        let (mut s, _) = listener.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        weft_async::spawn(async move {
            let mut buf = [0u8; TCP_MSG_LEN];
            for _ in 0..TCP_MSGS {
                s.read_exact(&mut buf).await.unwrap();
                s.write_all(&buf).await.unwrap();
            }
        })
        .detach();
    }
}

async fn client_weft(addr: std::net::SocketAddr) {
    let mut s = weft_async::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = [7u8; TCP_MSG_LEN];
    for _ in 0..TCP_MSGS {
        s.write_all(&buf).await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
    }
}

fn tcp_echo(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_echo");
    g.sampling_mode(SamplingMode::Flat);
    // weft's executor with its own net types (its own epoll reactor).
    g.bench_function("weft", |b| {
        b.iter(|| {
            weft_async::run(async {
                let l = weft_async::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .unwrap();
                let addr = l.local_addr().unwrap();
                let server = weft_async::spawn(echo_weft(l));
                let clients: Vec<_> = (0..TCP_CONNS)
                    .map(|_| weft_async::spawn(client_weft(addr)))
                    .collect();
                for cl in clients {
                    cl.await.unwrap();
                }
                server.await.unwrap();
            })
        })
    });
    // The same executor with async-net (async-io's reactor), as the smol
    // ecosystem runs on it.
    g.bench_function("weft+async-net", |b| {
        b.iter(|| {
            weft_async::run(async {
                let l = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let server = weft_async::spawn(echo_smol(l, |f| {
                    weft_async::spawn(Box::into_pin(f)).detach()
                }));
                let clients: Vec<_> = (0..TCP_CONNS)
                    .map(|_| weft_async::spawn(client_smol(addr)))
                    .collect();
                for cl in clients {
                    cl.await.unwrap();
                }
                server.await.unwrap();
            })
        })
    });
    let rt = ae();
    g.bench_function("async-executor", |b| {
        b.iter(|| {
            rt.block(async {
                let l = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let server = ae_spawn(echo_smol(l, |f| ae_spawn(Box::into_pin(f)).detach()));
                let clients: Vec<_> = (0..TCP_CONNS)
                    .map(|_| ae_spawn(client_smol(addr)))
                    .collect();
                for cl in clients {
                    cl.await;
                }
                server.await;
            })
        })
    });
    let tk = tokio_rt();
    g.bench_function("tokio (LocalSet)", |b| {
        b.iter(|| {
            tk.block(async {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let server = tokio::task::spawn_local(async move {
                    for _ in 0..TCP_CONNS {
                        let (mut s, _) = l.accept().await.unwrap();
                        s.set_nodelay(true).unwrap();
                        tokio::task::spawn_local(async move {
                            let mut buf = [0u8; TCP_MSG_LEN];
                            for _ in 0..TCP_MSGS {
                                s.read_exact(&mut buf).await.unwrap();
                                s.write_all(&buf).await.unwrap();
                            }
                        });
                    }
                });
                let clients: Vec<_> = (0..TCP_CONNS)
                    .map(|_| {
                        tokio::task::spawn_local(async move {
                            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                            s.set_nodelay(true).unwrap();
                            let mut buf = [7u8; TCP_MSG_LEN];
                            for _ in 0..TCP_MSGS {
                                s.write_all(&buf).await.unwrap();
                                s.read_exact(&mut buf).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for cl in clients {
                    cl.await.unwrap();
                }
                server.await.unwrap();
            })
        })
    });
    g.finish();
}

/// `spawn_remote`: the bench thread spawns [`REMOTE_N`] tasks onto a runtime
/// running on another thread (weft's `Handle::spawn`, returning a
/// `TaskHandle`; tokio's `Handle::spawn` onto a current-thread runtime
/// driven by `block_on` on its thread, returning a `JoinHandle`), then waits
/// for each from the bench thread (`TaskHandle::join`; `block_on` of the
/// `JoinHandle`). The same workload for both: only the cross-thread path
/// differs.
fn spawn_remote(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_remote");
    g.sampling_mode(SamplingMode::Flat);
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(weft_sync::Event::new());
        let stop2 = stop.clone();
        let runtime = std::thread::spawn(move || {
            weft_async::run(async move {
                tx.send(weft_async::Handle::current()).unwrap();
                stop2.wait_async().await;
            })
        });
        let handle = rx.recv().unwrap();
        g.bench_function("weft", |b| {
            b.iter(|| {
                let handles: Vec<_> = (0..REMOTE_N)
                    .map(|i| handle.spawn(async move { i }))
                    .collect();
                let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
                assert_eq!(sum, REMOTE_N * (REMOTE_N - 1) / 2);
            })
        });
        stop.set();
        runtime.join().unwrap();
    }
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tx.send(tokio::runtime::Handle::current()).unwrap();
                let _ = stopped.await;
            })
        });
        let handle = rx.recv().unwrap();
        g.bench_function("tokio", |b| {
            b.iter(|| {
                let handles: Vec<_> = (0..REMOTE_N)
                    .map(|i| handle.spawn(async move { i }))
                    .collect();
                let sum: usize = handles
                    .into_iter()
                    .map(|h| futures_lite::future::block_on(h).unwrap())
                    .sum();
                assert_eq!(sum, REMOTE_N * (REMOTE_N - 1) / 2);
            })
        });
        let _ = stop.send(());
        runtime.join().unwrap();
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = spawn_await, spawn_chain, ping_pong, yield_many, timers, tcp_echo, spawn_remote
}
criterion_main!(benches);
