//! What `multiprocessing` / `concurrent.futures` / pebble users reach for
//! beyond submit and map: a lazy `imap`, cancelling a running task, the
//! forms of shutdown, counts of queued and running tasks, and the workers'
//! directory, output and process group.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weft_process::{Error, Output, ProcessPool, TaskError, TaskHandle};

fn square(x: u64) -> u64 {
    x * x
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn cwd(_: ()) -> String {
    std::env::current_dir().unwrap().display().to_string()
}

fn say(line: String) {
    println!("{line}");
    eprintln!("err: {line}");
}

fn pid(_: ()) -> u32 {
    std::process::id()
}

fn hang_or_len((hang, bytes): (bool, Vec<u8>)) -> usize {
    if hang {
        std::thread::sleep(Duration::from_secs(60));
    }
    bytes.len()
}

fn process_group(_: ()) -> i32 {
    // SAFETY: getpgrp takes no arguments and cannot fail.
    unsafe { libc::getpgrp() }
}

weft_process::register!(square, sleep_ms, cwd, say, pid, process_group, hang_or_len);

const LIMIT: Duration = Duration::from_secs(60);

fn get<T>(handle: TaskHandle<T>) -> Result<T, TaskError> {
    match handle.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(_) => panic!("a task did not finish within {LIMIT:?}"),
    }
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < LIMIT,
            "{what} did not happen within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn imap_reads_an_endless_input_lazily_in_order() {
    let pool = ProcessPool::builder().processes(2).build().unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = pulled.clone();
    let endless = (0u64..).inspect(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let results = pool.imap(square, endless);
    // Nothing is read before a result is asked for.
    assert_eq!(pulled.load(Ordering::Relaxed), 0);
    let first: Vec<u64> = results.take(1000).map(Result::unwrap).collect();
    assert_eq!(first, (0..1000u64).map(|x| x * x).collect::<Vec<_>>());
    // At most the window (two per process) beyond what was taken.
    let read = pulled.load(Ordering::Relaxed);
    assert!((1000..=1004).contains(&read), "read {read} items");
    // A window of one, and failures in place.
    let mixed: Vec<_> = pool
        .imap_bounded(sleep_ms, [3, 1, 2], 1)
        .collect::<Vec<_>>();
    assert_eq!(mixed, [Ok(3), Ok(1), Ok(2)]);
}

#[test]
fn a_running_task_can_be_cancelled_and_only_it_fails() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let before = pool.pids();
    let (long, canceller) = pool.submit_cancellable(sleep_ms, 60_000);
    // Queued behind it, on the same worker: not at fault.
    let behind = pool.submit(square, 7);
    until("the long task starting", || long.is_running());
    assert!(canceller.cancel());
    assert!(canceller.is_cancel_requested());
    assert_eq!(get(long), Err(TaskError::Cancelled));
    assert_eq!(get(behind), Ok(49));
    // The worker was killed and replaced.
    let after = pool.pids();
    assert_eq!(after.len(), 1);
    assert_ne!(before, after);
    assert_eq!(pool.apply(square, 3), Ok(9));

    // A queued task that is cancelled never runs; a finished one is not
    // cancelled.
    let (blocker, _) = pool.submit_cancellable(sleep_ms, 200);
    let (queued, queued_canceller) = pool.submit_cancellable(square, 5);
    assert!(queued_canceller.cancel());
    assert_eq!(get(queued), Err(TaskError::Cancelled));
    assert_eq!(get(blocker), Ok(200));
    let (done, done_canceller) = pool.submit_cancellable(square, 6);
    assert_eq!(get(done), Ok(36));
    assert!(!done_canceller.cancel());
    assert_eq!(pool.pids(), after, "cancelling idle tasks killed a worker");
}

#[test]
fn counts_of_queued_and_running_tasks() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    assert_eq!((pool.running(), pool.queued()), (0, 0));
    let (long, canceller) = pool.submit_cancellable(sleep_ms, 60_000);
    let quick: Vec<_> = (0..3).map(|i| pool.submit(square, i)).collect();
    until("one running and three queued", || {
        (pool.running(), pool.queued()) == (1, 3)
    });
    canceller.cancel();
    assert_eq!(get(long), Err(TaskError::Cancelled));
    for (i, h) in quick.into_iter().enumerate() {
        assert_eq!(get(h), Ok((i * i) as u64));
    }
    until("nothing left", || (pool.running(), pool.queued()) == (0, 0));
}

#[test]
fn shutdown_can_cancel_queued_tasks_and_need_not_wait() {
    // Running tasks finish, queued ones are cancelled.
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let running = pool.submit(sleep_ms, 300);
    until("the task starting", || running.is_running());
    let queued: Vec<_> = (0..4).map(|i| pool.submit(square, i)).collect();
    pool.shutdown_cancel_queued(true);
    assert_eq!(get(running), Ok(300));
    for h in queued {
        assert_eq!(get(h), Err(TaskError::Cancelled));
    }
    assert_eq!(get(pool.submit(square, 1)), Err(TaskError::Abandoned));

    // Without waiting: it returns while the running task still runs.
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let running = pool.submit(sleep_ms, 60_000);
    until("the task starting", || running.is_running());
    let queued = pool.submit(square, 2);
    pool.shutdown_cancel_queued(false);
    assert_eq!(get(queued), Err(TaskError::Cancelled));
    assert!(!running.is_finished());
    pool.terminate();
    assert_eq!(get(running), Err(TaskError::Cancelled));

    // close(): no new tasks, queued ones still run, returns at once.
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let running = pool.submit(sleep_ms, 200);
    let queued = pool.submit(square, 4);
    pool.close();
    assert_eq!(get(pool.submit(square, 1)), Err(TaskError::Abandoned));
    assert_eq!(get(running), Ok(200));
    assert_eq!(get(queued), Ok(16));
    pool.shutdown();
    assert!(pool.pids().is_empty());
}

#[test]
fn workers_directory_output_and_process_group() {
    let dir = std::env::temp_dir().join(format!("weft-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let out = dir.join("out.txt");
    let err = dir.join("err.txt");
    let pool = ProcessPool::builder()
        .processes(1)
        .cwd(&dir)
        .stdout(Output::File(out.clone()))
        .stderr(Output::File(err.clone()))
        .build()
        .unwrap();
    assert_eq!(pool.apply(cwd, ()), Ok(dir.display().to_string()));
    assert_eq!(pool.apply(say, "hello from a worker".to_string()), Ok(()));
    // The worker's own process group: a terminal's Ctrl-C reaches only the
    // parent's.
    let group = pool.apply(process_group, ()).unwrap();
    let worker = pool.apply(pid, ()).unwrap();
    assert_eq!(group as u32, worker);
    // SAFETY: getpgrp takes no arguments and cannot fail.
    assert_ne!(group, unsafe { libc::getpgrp() });
    drop(pool);
    let printed = std::fs::read_to_string(&out).unwrap();
    assert_eq!(printed, "hello from a worker\n");
    let printed = std::fs::read_to_string(&err).unwrap();
    assert_eq!(printed, "err: hello from a worker\n");

    let quiet = ProcessPool::builder()
        .processes(1)
        .stdout(Output::Null)
        .build()
        .unwrap();
    assert_eq!(quiet.apply(say, "nowhere".to_string()), Ok(()));
    drop(quiet);
    let _ = std::fs::remove_dir_all(&dir);

    // A directory that does not exist: a clear error.
    let err = ProcessPool::builder()
        .processes(1)
        .cwd("/nonexistent/weft-dir")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }), "{err}");
}

#[test]
fn a_worker_that_dies_before_connecting_does_not_hang_build() {
    let started = Instant::now();
    let err = ProcessPool::builder()
        .processes(2)
        .env("WEFT_PROCESS_TEST_HELLO", "exit-before-connect")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, Error::Handshake { reason } if reason.contains("exit code 3")),
        "{err}"
    );
    assert!(started.elapsed() < LIMIT);
}

#[test]
fn map_results_are_a_stream_for_async_code() {
    use futures_lite::StreamExt;
    let pool = Arc::new(ProcessPool::builder().processes(2).build().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let p = pool.clone();
    std::thread::spawn(move || {
        futures_lite::future::block_on(async move {
            // Chunks that take a while: the stream is polled before they
            // are in, and must be woken when they come.
            let slow: Vec<_> = p
                .map_chunked(sleep_ms, [80, 40, 60, 20], 1)
                .into_stream()
                .collect()
                .await;
            let mut fast = p.map_unordered(square, 0..100u64).into_stream();
            let mut sum = 0;
            while let Some(r) = fast.next().await {
                sum += r.unwrap();
            }
            let _ = tx.send((slow, sum));
        });
    });
    let (slow, sum) = rx.recv_timeout(LIMIT).expect("the stream was never woken");
    assert_eq!(slow, [Ok(80), Ok(40), Ok(60), Ok(20)]);
    assert_eq!(sum, (0..100u64).map(|x| x * x).sum::<u64>());
}

#[test]
fn a_worker_that_stops_reading_never_blocks_the_pool() {
    // The worker hangs in its task and reads nothing more. Twelve tasks of
    // 30 KiB (carried inside the messages) would be far more than its
    // socket holds: were they all sent, the pool's thread would block in a
    // send and the hung task's timeout would never fire. The pool holds at
    // most two jobs in a worker's channel, so the timeout fires, the worker
    // is replaced, and every other task runs.
    let pool = ProcessPool::builder()
        .processes(1)
        .task_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    // The first task keeps the worker busy while the others queue up, so
    // that they are all waiting when the pool sends the next ones.
    let first = pool.submit(sleep_ms, 300);
    let hung = pool.submit(hang_or_len, (true, vec![1u8; 30 << 10]));
    let rest: Vec<_> = (0..12)
        .map(|_| pool.submit(hang_or_len, (false, vec![2u8; 30 << 10])))
        .collect();
    assert_eq!(get(first), Ok(300));
    assert!(matches!(get(hung), Err(TaskError::TimedOut { .. })));
    for h in rest {
        assert_eq!(get(h), Ok(30 << 10));
    }
}
