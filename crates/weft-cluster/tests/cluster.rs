//! weft-cluster against a real `nats-server`, with workers as separate
//! processes: exactly-once results over many tasks and workers, a worker
//! killed mid-task, a server killed and restarted mid-run, a poison task,
//! a registry mismatch, an unreachable server, timeouts, panics, `map`.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{Nats, TempDir, WORKER_ENV, WorkerProc, free_port, setting, wait_until};
use weft_cluster::{Cluster, ClusterError, TaskError, Worker, WorkerExit};

// ---- the functions the workers run -------------------------------------

fn double(x: u64) -> u64 {
    2 * x
}

/// The value and the pid of the worker process (the local pool's parent).
fn whoami(x: u64) -> (u64, u32) {
    (x, std::os::unix::process::parent_id())
}

/// Appends a line to `path` (one per run), sleeps, and says which worker
/// process ran it.
fn mark_and_nap((path, ms): (String, u64)) -> u32 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(file, "{}", std::os::unix::process::parent_id()).unwrap();
    drop(file);
    std::thread::sleep(Duration::from_millis(ms));
    std::os::unix::process::parent_id()
}

/// Appends a line to `path`, then aborts its process: every time.
fn mark_and_abort(path: String) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(file, "run").unwrap();
    drop(file);
    std::process::abort()
}

/// Appends a line to `path`, then SIGKILLs the whole worker that runs it.
fn mark_and_kill_worker(path: String) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(file, "{}", std::os::unix::process::parent_id()).unwrap();
    drop(file);
    let worker = std::os::unix::process::parent_id() as libc::pid_t;
    // SAFETY: kill(2) with a pid and a signal number has no memory effects.
    unsafe { libc::kill(worker, libc::SIGKILL) };
    std::thread::sleep(Duration::from_secs(5));
    0
}

/// Aborts its process on 13, returns anything else.
fn abort_on_13(x: u64) -> u64 {
    if x == 13 {
        std::process::abort();
    }
    x
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn boom(x: u64) -> u64 {
    if x == 13 {
        panic!("thirteen is unlucky");
    }
    x
}

/// A result whose `Deserialize` panics on 666 (in the client, which
/// decodes it).
#[derive(Debug, PartialEq)]
struct Touchy(u64);

impl serde::Serialize for Touchy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Touchy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Touchy, D::Error> {
        let value = <u64 as serde::Deserialize>::deserialize(d)?;
        assert!(value != 666, "Touchy will not be 666");
        Ok(Touchy(value))
    }
}

fn touchy(x: u64) -> Touchy {
    Touchy(x)
}

weft_process::register!(
    touchy,
    double,
    whoami,
    mark_and_nap,
    mark_and_abort,
    mark_and_kill_worker,
    abort_on_13,
    nap,
    boom
);

/// Not a test: the entry point of the worker processes the tests start
/// (this binary re-executed with `WEFT_CLUSTER_TEST_WORKER=<url>`). Run
/// normally, it returns at once.
#[test]
fn worker_process_entry() {
    let Ok(url) = std::env::var(WORKER_ENV) else {
        return;
    };
    let mut builder = Worker::builder()
        .url(url)
        .processes(setting("PROCESSES").unwrap_or(2))
        .ack_wait(Duration::from_millis(
            setting("ACK_WAIT_MS").unwrap_or(1000),
        ))
        .max_deliver(setting("MAX_DELIVER").unwrap_or(3))
        .retry_delay(Duration::from_millis(50));
    if let Some(fingerprint) = setting::<u64>("FINGERPRINT") {
        builder = builder.fingerprint_for_tests(fingerprint);
    }
    let worker = builder.start().expect("the worker starts");
    println!("WORKER READY {}", std::process::id());
    std::io::stdout().flush().unwrap();
    worker.wait();
}

fn client(nats: &Nats) -> Cluster {
    Cluster::builder()
        .url(nats.url())
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("the client connects")
}

const LONG: Duration = Duration::from_secs(60);

fn join<T>(handle: weft_cluster::TaskHandle<T>) -> Result<T, TaskError> {
    handle
        .join_timeout(LONG)
        .unwrap_or_else(|_| panic!("a task did not finish within {LONG:?}"))
}

// ---- the tests -----------------------------------------------------------

#[test]
fn ten_thousand_tasks_over_three_workers_each_result_exactly_once() {
    let nats = Nats::start();
    let workers: Vec<_> = (0..3)
        .map(|_| WorkerProc::start(&nats.url(), &[("PROCESSES", "2")]))
        .collect();
    let cluster = client(&nats);
    let handles: Vec<_> = (0..10_000u64).map(|x| cluster.submit(whoami, x)).collect();
    let mut seen = HashSet::new();
    let mut ran_on = HashSet::new();
    for (x, handle) in handles.into_iter().enumerate() {
        let (value, worker) = join(handle).expect("every task succeeds");
        assert_eq!(value, x as u64, "each handle gets its own task's result");
        assert!(seen.insert(value), "result {value} delivered twice");
        ran_on.insert(worker);
    }
    assert_eq!(seen.len(), 10_000);
    assert_eq!(cluster.pending(), 0, "no task is left waiting");
    let pids: HashSet<u32> = workers.iter().map(|w| w.pid).collect();
    assert!(ran_on.is_subset(&pids), "tasks ran only on our workers");
    assert_eq!(ran_on.len(), 3, "all three workers took tasks: {ran_on:?}");
}

#[test]
fn map_keeps_order_chunks_and_fails_items_alone() {
    let nats = Nats::start();
    let _worker = WorkerProc::start(&nats.url(), &[]);
    let cluster = client(&nats);

    let out: Vec<u64> = cluster
        .map(double, 0..1000u64)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(out, (0..1000).map(|x| 2 * x).collect::<Vec<_>>());

    let out: Vec<_> = cluster.map_chunked(boom, 0..20u64, 3).collect();
    assert_eq!(out.len(), 20);
    for (x, item) in out.iter().enumerate() {
        match item {
            Ok(v) => assert_eq!(*v, x as u64),
            Err(TaskError::Panicked { message }) => {
                assert_eq!(x, 13);
                assert!(message.contains("thirteen is unlucky"), "{message}");
            }
            Err(other) => panic!("item {x}: unexpected {other:?}"),
        }
    }

    let mut unordered: Vec<u64> = cluster
        .map_unordered_chunked(double, 0..100u64, 7)
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..100).map(|x| 2 * x).collect::<Vec<_>>());

    assert_eq!(cluster.map(double, Vec::<u64>::new()).count(), 0);

    // A function that is not registered is refused before it travels.
    let not_registered = |x: u64| x + 1;
    let error = cluster.submit(not_registered, 1).join().unwrap_err();
    assert!(
        matches!(&error, TaskError::Serialization { message } if message.contains("register!")),
        "{error:?}"
    );
    assert_eq!(cluster.pending(), 0);
}

#[test]
fn a_panicking_task_fails_alone_and_the_handle_is_awaitable() {
    let nats = Nats::start();
    let _worker = WorkerProc::start(&nats.url(), &[]);
    let cluster = client(&nats);
    let error = join(cluster.submit(boom, 13)).unwrap_err();
    assert!(matches!(&error, TaskError::Panicked { message } if message.contains("unlucky")));
    let handle = cluster.submit(double, 21);
    assert_eq!(futures_lite_block_on(handle).unwrap(), 42);
    assert_eq!(cluster.apply(double, 50), Ok(100));
}

/// Polls a future to completion on this thread (the handle is a `Future`).
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + LONG;
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(Instant::now() < deadline, "the future did not complete");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

#[test]
fn a_task_past_its_timeout_fails_and_the_worker_goes_on() {
    let nats = Nats::start();
    let _worker = WorkerProc::start(&nats.url(), &[("PROCESSES", "1")]);
    let cluster = client(&nats);
    let error =
        join(cluster.submit_with_timeout(nap, 30_000, Duration::from_millis(300))).unwrap_err();
    assert_eq!(
        error,
        TaskError::TimedOut {
            timeout: Duration::from_millis(300)
        }
    );
    // The hung process was replaced: the same worker runs the next task.
    assert_eq!(join(cluster.submit(nap, 1)).unwrap(), 1);
    // A zero timeout fails at once, without running.
    assert!(matches!(
        cluster.submit_with_timeout(nap, 1, Duration::ZERO).join(),
        Err(TaskError::TimedOut { .. })
    ));
}

#[test]
fn a_long_task_keeps_its_claim_alive_and_runs_once() {
    let nats = Nats::start();
    // ack_wait 1.5 s (a progress ack every 0.5 s); the task runs 4.5 s:
    // only the progress acks keep it from being redelivered.
    let _a = WorkerProc::start(&nats.url(), &[("ACK_WAIT_MS", "1500")]);
    let _b = WorkerProc::start(&nats.url(), &[("ACK_WAIT_MS", "1500")]);
    let cluster = client(&nats);
    let dir = TempDir::new("claim");
    let runs = dir.file("runs");
    join(cluster.submit(mark_and_nap, (runs.clone(), 4500))).unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    let lines = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(lines, 1, "the task ran {lines} times");
}

#[test]
fn sigkill_of_a_worker_mid_task_and_the_task_completes_elsewhere() {
    let nats = Nats::start();
    let mut first = WorkerProc::start(&nats.url(), &[("ACK_WAIT_MS", "1500")]);
    let cluster = client(&nats);
    let dir = TempDir::new("sigkill");
    let runs = dir.file("runs");
    let handle = cluster.submit(mark_and_nap, (runs.clone(), 3000));
    assert!(
        wait_until(LONG, || std::fs::read_to_string(&runs)
            .is_ok_and(|s| !s.is_empty())),
        "the task never started"
    );
    first.kill();
    let second = WorkerProc::start(&nats.url(), &[("ACK_WAIT_MS", "1500")]);
    let ran_on = join(handle).expect("the task completes on the second worker");
    assert_eq!(ran_on, second.pid);
    let runs: Vec<u32> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(runs, [first.pid, second.pid], "started once on each worker");
}

#[test]
fn the_server_killed_and_restarted_mid_run_loses_no_task() {
    let mut nats = Nats::start();
    let _a = WorkerProc::start(&nats.url(), &[]);
    let _b = WorkerProc::start(&nats.url(), &[]);
    let cluster = client(&nats);
    let handles: Vec<_> = (0..600u64)
        .map(|x| cluster.submit(nap, x % 7 + 1))
        .collect();
    // Kill it while tasks are in flight, after some have finished.
    assert!(wait_until(LONG, || handles
        .iter()
        .filter(|h| h.is_finished())
        .count()
        >= 50));
    assert!(
        handles.iter().any(|h| !h.is_finished()),
        "the run ended too early"
    );
    nats.kill();
    std::thread::sleep(Duration::from_millis(500));
    nats.restart();
    // More tasks after the restart, through the same client.
    let after: Vec<_> = (0..50u64).map(|x| cluster.submit(double, x)).collect();
    for (x, handle) in handles.into_iter().enumerate() {
        assert_eq!(
            join(handle).expect("every task completes"),
            x as u64 % 7 + 1
        );
    }
    for (x, handle) in after.into_iter().enumerate() {
        assert_eq!(join(handle).unwrap(), 2 * x as u64);
    }
    assert_eq!(cluster.pending(), 0);
}

#[test]
fn a_poison_task_ends_as_worker_lost_after_the_delivery_limit() {
    let nats = Nats::start();
    let settings = [("MAX_DELIVER", "3"), ("PROCESSES", "1")];
    let _a = WorkerProc::start(&nats.url(), &settings);
    let _b = WorkerProc::start(&nats.url(), &settings);
    let cluster = client(&nats);
    let dir = TempDir::new("poison");
    let runs = dir.file("runs");
    let error = join(cluster.submit(mark_and_abort, runs.clone())).unwrap_err();
    assert_eq!(
        error,
        TaskError::WorkerLost {
            exit: WorkerExit::Signal(libc::SIGABRT)
        }
    );
    let count = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(count, 3, "run once per delivery, up to the limit");
    // In a map chunk, the poison item fails alone once the chunk's
    // deliveries are spent; its neighbours' results come back.
    let out: Vec<_> = cluster.map_chunked(abort_on_13, 10..16u64, 6).collect();
    for (x, item) in (10..16u64).zip(out) {
        match item {
            Ok(v) => assert_eq!(v, x),
            Err(error) => {
                assert_eq!(x, 13, "{error:?}");
                assert_eq!(
                    error,
                    TaskError::WorkerLost {
                        exit: WorkerExit::Signal(libc::SIGABRT)
                    }
                );
            }
        }
    }
    // The workers are fine.
    assert_eq!(join(cluster.submit(double, 4)).unwrap(), 8);
}

#[test]
fn a_task_that_kills_every_worker_it_touches_ends_as_worker_lost() {
    let nats = Nats::start();
    let settings = [
        ("MAX_DELIVER", "2"),
        ("ACK_WAIT_MS", "700"),
        ("PROCESSES", "1"),
    ];
    let mut workers: Vec<_> = (0..3)
        .map(|_| WorkerProc::start(&nats.url(), &settings))
        .collect();
    let cluster = client(&nats);
    let dir = TempDir::new("killer");
    let runs = dir.file("runs");
    let error = join(cluster.submit(mark_and_kill_worker, runs.clone())).unwrap_err();
    match &error {
        TaskError::WorkerLost {
            exit: WorkerExit::Unknown(text),
        } => assert!(text.contains("delivered 2 times"), "{text}"),
        other => panic!("expected WorkerLost after the limit, got {other:?}"),
    }
    let killed = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(killed, 2, "one whole worker killed per delivery");
    assert_eq!(
        workers
            .iter_mut()
            .filter_map(|w| w.has_exited().then_some(()))
            .count(),
        2
    );
}

#[test]
fn a_worker_built_from_different_code_refuses_the_task() {
    let nats = Nats::start();
    let _worker = WorkerProc::start(&nats.url(), &[("FINGERPRINT", "12345")]);
    let cluster = client(&nats);
    let dir = TempDir::new("mismatch");
    let runs = dir.file("runs");
    let error = join(cluster.submit(mark_and_nap, (runs.clone(), 1))).unwrap_err();
    match &error {
        TaskError::Serialization { message } => {
            assert!(message.contains("different code"), "{message}");
            assert!(message.contains(&format!("{:016x}", 12345)), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        !std::path::Path::new(&runs).exists(),
        "the task must not run"
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error_and_a_list_skips_it() {
    let port = free_port();
    let started = Instant::now();
    let error = Cluster::builder()
        .url(format!("nats://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it must not hang"
    );
    match &error {
        ClusterError::Connect { url, .. } => assert!(url.contains(&port.to_string())),
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert!(error.to_string().contains("nats-server"), "{error}");

    // A worker says the same.
    let error = Worker::builder()
        .url(format!("nats://127.0.0.1:{port}"))
        .processes(1)
        .connect_timeout(Duration::from_millis(500))
        .start()
        .unwrap_err();
    assert!(matches!(error, ClusterError::Connect { .. }), "{error:?}");

    // A list of servers (tried in a random order): one that is down does
    // not stop the connection.
    let nats = Nats::start();
    let cluster = Cluster::builder()
        .url(format!("nats://127.0.0.1:{port}, {}", nats.url()))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("the second server of the list answers");
    let _worker = WorkerProc::start(&format!("nats://127.0.0.1:{port},{}", nats.url()), &[]);
    assert_eq!(join(cluster.submit(double, 3)).unwrap(), 6);

    // Bad settings are refused before connecting.
    let error = Cluster::builder().stream("no.dots").build().unwrap_err();
    assert!(matches!(error, ClusterError::InvalidConfig(_)), "{error:?}");
}

#[test]
fn a_task_that_never_reaches_the_server_fails_after_the_publish_timeout() {
    let mut nats = Nats::start();
    let cluster = Cluster::builder()
        .url(nats.url())
        .publish_timeout(Duration::from_millis(1500))
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    nats.kill();
    let error = join(cluster.submit(double, 1)).unwrap_err();
    match &error {
        TaskError::WorkerLost {
            exit: WorkerExit::Unknown(text),
        } => assert!(text.contains("never reached the NATS server"), "{text}"),
        other => panic!("expected WorkerLost (never reached), got {other:?}"),
    }
    // Dropping the client with a task in flight abandons its handle.
    let handle = cluster.submit(double, 2);
    drop(cluster);
    assert_eq!(join(handle), Err(TaskError::Abandoned));
}

#[test]
fn a_stopped_worker_leaves_waiting_tasks_to_the_next_one() {
    let nats = Nats::start();
    let cluster = client(&nats);
    // A worker in this very process, started and stopped through the API.
    let worker = Worker::builder()
        .url(nats.url())
        .processes(1)
        .start()
        .expect("the worker starts");
    assert_eq!(join(cluster.submit(double, 5)).unwrap(), 10);
    worker.stop();
    // No worker now: the task waits in the stream, it is not lost.
    let handle = cluster.submit(whoami, 7);
    assert!(!handle.wait_timeout(Duration::from_millis(1500)));
    let next = WorkerProc::start(&nats.url(), &[]);
    assert_eq!(join(handle).unwrap(), (7, next.pid));
}

#[test]
fn credentials_are_presented_and_wrong_ones_are_a_clear_error() {
    let nats = Nats::start_with(&["--user", "weft", "--pass", "s3cret"]);
    let error = Cluster::builder()
        .url(nats.url())
        .user_and_password("weft", "wrong")
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert!(matches!(error, ClusterError::Connect { .. }), "{error:?}");
    let error = Cluster::builder()
        .url(nats.url())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert!(matches!(error, ClusterError::Connect { .. }), "{error:?}");
    let cluster = Cluster::builder()
        .url(nats.url())
        .user_and_password("weft", "s3cret")
        .build()
        .expect("the right password is accepted");
    let worker = Worker::builder()
        .url(nats.url())
        .user_and_password("weft", "s3cret")
        .processes(1)
        .start()
        .expect("the worker's password is accepted");
    assert_eq!(join(cluster.submit(double, 21)).unwrap(), 42);
    worker.stop();

    let nats = Nats::start_with(&["--auth", "t0ken"]);
    assert!(
        Cluster::builder()
            .url(nats.url())
            .token("nope")
            .build()
            .is_err()
    );
    let cluster = Cluster::builder().url(nats.url()).token("t0ken").build();
    assert!(cluster.is_ok(), "{cluster:?}");
}

/// `tests/tls/`: a CA (its key discarded) and a server certificate for
/// 127.0.0.1 / localhost it signed, valid until 2126: test material only.
fn tls_file(name: &str) -> String {
    format!("{}/tests/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn tls_with_a_private_ca_and_refusals_without_it() {
    let nats = Nats::start_with(&[
        "--tls",
        "--tlscert",
        &tls_file("server.pem"),
        "--tlskey",
        &tls_file("server-key.pem"),
    ]);
    let tls_url = format!("tls://127.0.0.1:{}", nats.port);
    // The server's certificate is not signed by a public CA: refused.
    let error = Cluster::builder()
        .url(&tls_url)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert!(matches!(error, ClusterError::Connect { .. }), "{error:?}");
    // Trusting the test CA: a whole task round trip over TLS.
    let cluster = Cluster::builder()
        .url(&tls_url)
        .root_certificate(tls_file("ca.pem"))
        .build()
        .expect("TLS with the test CA");
    let worker = Worker::builder()
        .url(nats.url())
        .require_tls(true)
        .root_certificate(tls_file("ca.pem"))
        .processes(1)
        .start()
        .expect("the worker connects over TLS");
    assert_eq!(join(cluster.submit(double, 8)).unwrap(), 16);
    worker.stop();

    // require_tls against a server without TLS: refused.
    let plain = Nats::start();
    let error = Cluster::builder()
        .url(plain.url())
        .require_tls(true)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert!(matches!(error, ClusterError::Connect { .. }), "{error:?}");
}

#[test]
fn user_code_that_panics_in_the_client_fails_only_its_own_task() {
    let nats = Nats::start();
    let _worker = WorkerProc::start(&nats.url(), &[]);
    let cluster = client(&nats);
    // The result's Deserialize panics in the client's receiving thread.
    let error = join(cluster.submit(touchy, 666)).unwrap_err();
    assert!(
        matches!(&error, TaskError::Serialization { message } if message.contains("666")),
        "{error:?}"
    );
    // A done-callback that panics there too (added while the task naps).
    let handle = cluster.submit(nap, 500);
    handle.add_done_callback(|_| panic!("a callback that panics"));
    assert!(handle.wait_timeout(LONG));
    // The client still receives results.
    assert_eq!(join(cluster.submit(touchy, 7)).unwrap(), Touchy(7));
    let items: Vec<_> = cluster.map_chunked(touchy, [1, 666, 3], 3).collect();
    assert_eq!(items[0], Ok(Touchy(1)));
    assert!(matches!(items[1], Err(TaskError::Serialization { .. })));
    assert_eq!(items[2], Ok(Touchy(3)));
}

#[test]
fn a_task_the_server_gives_up_on_is_reported_lost_from_the_advisory() {
    let nats = Nats::start();
    let cluster = client(&nats); // creates the streams
    // The workers' consumer made beforehand (by an admin tool, say) with a
    // single delivery: no reporting delivery follows a lost one, so only
    // the server's max-deliveries advisory tells the workers.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("WEFT").await.unwrap();
        stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("workers".to_string()),
                filter_subject: "weft.tasks".to_string(),
                ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_millis(700),
                max_deliver: 1,
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let settings = [("PROCESSES", "1")];
    let mut workers: Vec<_> = (0..2)
        .map(|_| WorkerProc::start(&nats.url(), &settings))
        .collect();
    let dir = TempDir::new("advisory");
    let runs = dir.file("runs");
    let error = join(cluster.submit(mark_and_kill_worker, runs.clone())).unwrap_err();
    match &error {
        TaskError::WorkerLost {
            exit: WorkerExit::Unknown(text),
        } => assert!(text.contains("advisory"), "{text}"),
        other => panic!("expected WorkerLost from the advisory, got {other:?}"),
    }
    let killed = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert_eq!(killed, 1, "delivered once");
    assert_eq!(
        workers
            .iter_mut()
            .filter_map(|w| w.has_exited().then_some(()))
            .count(),
        1
    );
    // The task is gone from the stream: the survivor serves the next one.
    assert_eq!(join(cluster.submit(double, 2)).unwrap(), 4);
}

#[test]
fn clients_and_workers_are_usable_from_inside_a_tokio_runtime() {
    let nats = Nats::start();
    let url = nats.url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        // Building, submitting, awaiting and dropping inside another
        // runtime: no "runtime within a runtime" panic.
        let worker = Worker::builder().url(&url).processes(1).start().unwrap();
        let cluster = Cluster::builder().url(&url).build().unwrap();
        let answer = tokio::time::timeout(LONG, cluster.submit(double, 21))
            .await
            .expect("the handle is awaitable in tokio");
        assert_eq!(answer, Ok(42));
        drop(cluster);
        worker.stop();
    });
}

/// Three `nats-server`s of one JetStream cluster (docs/cluster.md's
/// setup, on one machine), each killed and reaped on drop.
struct ThreeNodes {
    nodes: Vec<Option<std::process::Child>>,
    ports: Vec<u16>,
    _dir: TempDir,
}

impl ThreeNodes {
    fn start() -> ThreeNodes {
        let program = common::nats_server().expect(
            "nats-server is not on the PATH: weft-cluster's tests run against a real NATS \
             server; install it with `apt-get install nats-server`",
        );
        let dir = TempDir::new("three-nodes");
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let route_list = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let nodes = (0..3)
            .map(|i| {
                let config = dir.file(&format!("n{i}.conf"));
                std::fs::write(
                    &config,
                    format!(
                        "server_name: n{i}\nlisten: 127.0.0.1:{}\n\
                         jetstream {{ store_dir: \"{}\" }}\n\
                         cluster {{ name: weft-test, listen: 127.0.0.1:{}, routes: [{route_list}] }}\n",
                        ports[i],
                        dir.file(&format!("n{i}")),
                        routes[i]
                    ),
                )
                .unwrap();
                Some(
                    std::process::Command::new(&program)
                        .args(["-c", &config])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null())
                        .spawn()
                        .expect("start nats-server"),
                )
            })
            .collect();
        ThreeNodes {
            nodes,
            ports,
            _dir: dir,
        }
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

impl Drop for ThreeNodes {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }
}

#[test]
fn a_three_node_cluster_with_replicated_streams_survives_a_lost_server() {
    let mut nats = ThreeNodes::start();
    // The cluster elects its JetStream leaders first: retry until it can
    // create the replicated streams.
    let deadline = Instant::now() + LONG;
    let cluster = loop {
        match Cluster::builder()
            .url(nats.urls())
            .replicas(3)
            .connect_timeout(Duration::from_secs(5))
            .build()
        {
            Ok(cluster) => break cluster,
            Err(error) => {
                assert!(Instant::now() < deadline, "no JetStream cluster: {error}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    };
    let _a = WorkerProc::start(&nats.urls(), &[]);
    let _b = WorkerProc::start(&nats.urls(), &[]);
    let handles: Vec<_> = (0..400u64)
        .map(|x| cluster.submit(nap, x % 5 + 1))
        .collect();
    assert!(wait_until(LONG, || handles
        .iter()
        .filter(|h| h.is_finished())
        .count()
        >= 40));
    nats.kill(0);
    for (x, handle) in handles.into_iter().enumerate() {
        assert_eq!(
            join(handle).expect("every task completes"),
            x as u64 % 5 + 1
        );
    }
    assert_eq!(join(cluster.submit(double, 5)).unwrap(), 10);
}
