//! Channels as arguments: weft's pipe ends, queues and shared memory inside
//! a pool task's argument arrive usable in the worker (Python needs a
//! `Manager` for that).

use std::time::Duration;

use weft_process::{
    Pipe, PipeReceiver, PipeSender, ProcessPool, Queue, SharedMemory, TaskError, TaskHandle,
};

/// Sends `n` numbers down the pipe, then puts their sum in the queue.
fn produce((tx, q, n): (PipeSender<u64>, Queue<u64>, u64)) -> u64 {
    for i in 0..n {
        tx.send(i).unwrap();
    }
    q.put((0..n).sum()).unwrap();
    std::process::id().into()
}

/// Reads `n` numbers from the pipe.
fn consume((rx, n): (PipeReceiver<String>, usize)) -> Vec<String> {
    (0..n)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect()
}

fn total(shm: SharedMemory) -> u64 {
    shm.iter().map(|&b| u64::from(b)).sum()
}

fn put_square((q, x): (Queue<u64>, u64)) {
    q.put(x * x).unwrap();
}

fn give_back(q: Queue<u64>) -> Queue<u64> {
    q
}

/// A pipe made in the worker, `n` numbers already sent into it.
fn make_pipe(n: u32) -> PipeReceiver<u32> {
    assert!(n < 50, "too many");
    let (tx, rx) = Pipe::one_way().unwrap();
    for i in 0..n {
        tx.send(i).unwrap();
    }
    rx
}

weft_process::register!(produce, consume, total, put_square, give_back, make_pipe);

const LIMIT: Duration = Duration::from_secs(60);

fn get<T>(handle: TaskHandle<T>) -> Result<T, TaskError> {
    match handle.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(_) => panic!("a task did not finish within {LIMIT:?}"),
    }
}

#[test]
fn a_pipe_end_and_a_queue_in_a_task_argument_are_used_by_the_worker() {
    let pool = ProcessPool::builder().processes(2).build().unwrap();
    let (tx, rx) = Pipe::one_way::<u64>().unwrap();
    let q = Queue::<u64>::unbounded();
    let worker = get(pool.submit(produce, (tx, q.clone(), 100))).unwrap();
    assert_ne!(worker, u64::from(std::process::id()));
    let got: Vec<u64> = (0..100).map(|_| rx.recv_timeout(LIMIT).unwrap()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(q.get_timeout(LIMIT), Ok(4950));

    // The other way: the parent sends, the worker receives; through apply.
    let (tx, rx) = Pipe::one_way::<String>().unwrap();
    for word in ["a", "b", "c"] {
        tx.send(word.to_string()).unwrap();
    }
    assert_eq!(
        pool.apply(consume, (rx, 3)),
        Ok(vec!["a".into(), "b".into(), "c".into()])
    );

    // Shared memory, mapped by the worker.
    let shm = SharedMemory::from_bytes(&vec![2u8; 100_000]);
    assert_eq!(get(pool.submit(total, shm)), Ok(200_000));

    // Every item of a map, chunks of several, each with its own queue
    // handle: every square arrives once.
    let results = Queue::<u64>::unbounded();
    let done: Vec<_> = pool
        .map_chunked(put_square, (0..40).map(|x| (results.clone(), x)), 7)
        .collect();
    assert!(done.iter().all(Result::is_ok), "{done:?}");
    let mut squares: Vec<u64> = (0..40)
        .map(|_| results.get_timeout(LIMIT).unwrap())
        .collect();
    squares.sort_unstable();
    assert_eq!(squares, (0..40u64).map(|x| x * x).collect::<Vec<_>>());

    // The pool goes on with plain tasks on the same workers.
    assert_eq!(
        get(pool.submit(total, SharedMemory::from_bytes(&[1, 2]))),
        Ok(3)
    );
}

#[test]
fn handles_in_results_come_back_usable() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    // A queue handle that went to the worker and back is the same queue.
    let q = Queue::<u64>::unbounded();
    let back = get(pool.submit(give_back, q.clone())).unwrap();
    back.put(7).unwrap();
    assert_eq!(q.get_timeout(LIMIT), Ok(7));
    // A pipe made in the worker: its receiving end comes back, and the
    // worker's messages are there.
    let rx = pool.apply(make_pipe, 3).unwrap();
    let got: Vec<u32> = (0..3).map(|_| rx.recv_timeout(LIMIT).unwrap()).collect();
    assert_eq!(got, [0, 1, 2]);
    // Through map, several per chunk, with a failure among them.
    let rxs: Vec<_> = pool.map_chunked(make_pipe, [1, 99, 2], 3).collect();
    assert_eq!(rxs[0].as_ref().unwrap().recv_timeout(LIMIT), Ok(0));
    assert!(
        matches!(&rxs[1], Err(TaskError::Panicked { .. })),
        "{:?}",
        rxs[1].as_ref().err()
    );
    assert_eq!(rxs[2].as_ref().unwrap().recv_timeout(LIMIT), Ok(0));
    // Encoded arguments cannot hold channels: a clear error (the worker's
    // decoding finds none), not a crash.
    let name = weft_process::Function::of(give_back).unwrap().name();
    let err = pool.submit_encoded(name, weft_process::encode(7u8).unwrap(), None);
    assert!(matches!(get(err), Err(TaskError::Serialization { .. })));
    assert_eq!(
        get(pool.submit(total, SharedMemory::from_bytes(&[5]))),
        Ok(5)
    );
}
