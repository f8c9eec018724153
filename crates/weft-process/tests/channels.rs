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

weft_process::register!(produce, consume, total, put_square, give_back);

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
fn a_handle_in_a_result_is_a_clear_error_not_a_lost_channel() {
    let pool = ProcessPool::builder().processes(1).build().unwrap();
    let q = Queue::<u64>::unbounded();
    let err = get(pool.submit(give_back, q)).unwrap_err();
    assert!(
        matches!(&err, TaskError::Serialization { message } if message.contains("not a task's result")),
        "{err:?}"
    );
    assert_eq!(
        get(pool.submit(total, SharedMemory::from_bytes(&[5]))),
        Ok(5)
    );
}
