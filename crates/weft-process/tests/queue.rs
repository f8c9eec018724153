//! `Queue` between processes: exactly-once delivery with many producers
//! and consumers in different processes, back-pressure, timeouts,
//! shutdown, async, an owner that is gone, a consumer that dies, items
//! that will not travel.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weft_process::{Process, Queue, QueueGetError, QueuePutError, TaskError};

const LIMIT: Duration = Duration::from_secs(300);
const PER_PRODUCER: u64 = 100_000;

fn join<R>(p: Process<R>) -> Result<R, TaskError> {
    match p.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(p) => {
            p.kill();
            panic!("process {} did not finish within {LIMIT:?}", p.name());
        }
    }
}

fn produce((q, k): (Queue<u64>, u64)) {
    for i in k * PER_PRODUCER..(k + 1) * PER_PRODUCER {
        q.put(i).unwrap();
    }
}

/// Takes items until the queue is shut down and drained.
fn consume(q: Queue<u64>) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match q.get() {
            Ok(v) => got.push(v),
            Err(QueueGetError::ShutDown) => return got,
            Err(e) => panic!("{e}"),
        }
    }
}

fn probe_full(q: Queue<u8>) -> (bool, bool, Option<usize>) {
    let full = matches!(q.try_put(9), Err(QueuePutError::Full(9)));
    let timed = matches!(
        q.put_timeout(9, Duration::from_millis(20)),
        Err(QueuePutError::Full(9))
    );
    (full, timed, q.capacity())
}

fn probe_empty(q: Queue<u8>) -> (bool, bool, usize) {
    let empty = q.try_get() == Err(QueueGetError::Empty);
    let timed = q.get_timeout(Duration::from_millis(20)) == Err(QueueGetError::Empty);
    (empty, timed, q.len())
}

fn shut(q: Queue<u8>) -> bool {
    q.shutdown(false);
    q.is_shut_down()
}

fn async_round(q: Queue<u32>) -> u32 {
    futures_lite::future::block_on(async {
        q.put_async(7).await.unwrap();
        q.get_async().await.unwrap() + 1
    })
}

fn make_queue(_: ()) -> Queue<u8> {
    let q = Queue::unbounded();
    q.put(1).unwrap();
    q
}

fn echo_back(q: Queue<u8>) -> Queue<u8> {
    q
}

fn block_on_get(q: Queue<u8>) -> u8 {
    q.get().unwrap()
}

#[derive(Debug, PartialEq)]
struct Fragile(u32);

impl Serialize for Fragile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for Fragile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            13 => panic!("Fragile 13 panicked on purpose"),
            n => Ok(Fragile(n)),
        }
    }
}

fn put_fragile((q, n): (Queue<Fragile>, u32)) -> String {
    match q.put(Fragile(n)) {
        Ok(()) => "ok".into(),
        Err(QueuePutError::Serialization { value, message }) => {
            assert_eq!(value, Fragile(n));
            message
        }
        Err(e) => panic!("{e}"),
    }
}

/// Puts `n` items tagged with producer `k`, telling `progress` after each
/// put that returned.
type Tagged = (Queue<(u8, u32)>, Option<Queue<u32>>, u8, u32);

fn produce_tagged((q, progress, k, n): Tagged) {
    for i in 0..n {
        q.put((k, i)).unwrap();
        if let Some(p) = &progress {
            p.put(i).unwrap();
        }
    }
}

/// Puts `n` items, then dies at once, without dropping (flushing) the
/// handle.
fn put_then_abort((q, n): (Queue<u32>, u32)) {
    for i in 0..n {
        q.put(i).unwrap();
    }
    std::process::abort();
}

/// Puts into a queue the parent has shut down: (what the first put said,
/// what flush said, what a put after the flush said), as `Debug` text.
fn put_after_shutdown(q: Queue<u8>) -> (String, String, String) {
    let first = q.put(1);
    let flushed = q.flush();
    let after = q.put(2);
    (
        format!("{first:?}"),
        format!("{flushed:?}"),
        format!("{after:?}"),
    )
}

/// Puts `n` items and flushes: `Ok` once they are all in (`Debug` text).
fn put_and_flush((q, n): (Queue<u32>, u32)) -> String {
    for i in 0..n {
        q.put(i).unwrap();
    }
    format!("{:?}", q.flush())
}

weft_process::register!(
    produce_tagged,
    put_then_abort,
    put_after_shutdown,
    put_and_flush,
    produce,
    consume,
    probe_full,
    probe_empty,
    shut,
    async_round,
    make_queue,
    echo_back,
    block_on_get,
    put_fragile
);

#[test]
fn four_producers_two_consumers_every_item_exactly_once() {
    let q = Queue::<u64>::bounded(1024);
    let consumers: Vec<_> = (0..2)
        .map(|_| Process::spawn(consume, q.clone()).unwrap())
        .collect();
    let producers: Vec<_> = (0..4)
        .map(|k| Process::spawn(produce, (q.clone(), k)).unwrap())
        .collect();
    // This process consumes too, meanwhile.
    let here = {
        let q = q.clone();
        std::thread::spawn(move || consume(q))
    };
    for p in producers {
        join(p).unwrap();
    }
    q.shutdown(false);
    let mut seen = vec![0u8; (4 * PER_PRODUCER) as usize];
    let mut all = here.join().unwrap();
    for c in consumers {
        all.extend(join(c).unwrap());
    }
    for v in all {
        seen[v as usize] += 1;
    }
    let wrong: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 1)
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "items not delivered exactly once: {wrong:?}"
    );
}

#[test]
fn back_pressure_timeouts_and_shutdown_from_another_process() {
    let q = Queue::<u8>::bounded(2);
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(
        join(Process::spawn(probe_full, q.clone()).unwrap()),
        Ok((true, true, Some(2)))
    );
    assert_eq!(q.get(), Ok(1));
    assert_eq!(q.get(), Ok(2));
    assert_eq!(
        join(Process::spawn(probe_empty, q.clone()).unwrap()),
        Ok((true, true, 0))
    );
    // A shutdown from a child wakes a getter blocked here.
    let waiter = {
        let q = q.clone();
        std::thread::spawn(move || q.get())
    };
    assert_eq!(join(Process::spawn(shut, q.clone()).unwrap()), Ok(true));
    assert_eq!(waiter.join().unwrap(), Err(QueueGetError::ShutDown));
    assert_eq!(q.put(3), Err(QueuePutError::ShutDown(3)));
}

#[test]
fn async_forms_work_here_and_in_a_child() {
    let q = Queue::<u32>::unbounded();
    assert_eq!(join(Process::spawn(async_round, q.clone()).unwrap()), Ok(8));
    futures_lite::future::block_on(async {
        q.put_async(1).await.unwrap();
        assert_eq!(q.get_async().await, Ok(1));
    });
}

#[test]
fn a_handle_travels_back_and_an_owner_that_is_gone_is_reported() {
    // The owner's own queue, returned by a child: it works as a remote
    // handle in its owner.
    let q = Queue::<u8>::unbounded();
    let back = join(Process::spawn(echo_back, q.clone()).unwrap()).unwrap();
    assert!(!back.is_owner());
    back.put(5).unwrap();
    assert_eq!(q.get(), Ok(5));
    // A queue made by a child that has exited is gone.
    let theirs = join(Process::spawn(make_queue, ()).unwrap()).unwrap();
    assert_eq!(theirs.try_get(), Err(QueueGetError::Disconnected));
    assert_eq!(theirs.put(1), Err(QueuePutError::Disconnected(1)));
    assert!(theirs.is_shut_down());
}

#[test]
fn an_item_taken_for_a_consumer_that_died_goes_back() {
    let q = Queue::<u8>::unbounded();
    let p = Process::spawn(block_on_get, q.clone()).unwrap();
    // Let the child's get reach the queue, then kill it.
    std::thread::sleep(Duration::from_millis(200));
    p.kill();
    assert!(join(p).is_err());
    q.put(42).unwrap();
    assert_eq!(q.get_timeout(LIMIT), Ok(42));
}

#[test]
fn an_item_that_will_not_decode_in_the_owner_fails_its_put_alone() {
    let q = Queue::<Fragile>::unbounded();
    let message = join(Process::spawn(put_fragile, (q.clone(), 13)).unwrap()).unwrap();
    assert!(message.contains("on purpose"), "{message}");
    assert_eq!(
        join(Process::spawn(put_fragile, (q.clone(), 14)).unwrap()),
        Ok("ok".to_string())
    );
    assert_eq!(q.try_get(), Ok(Fragile(14)));
}

#[test]
fn a_queue_refuses_to_serialize_outside_a_weft_message() {
    let q = Queue::<u8>::unbounded();
    assert!(postcard::to_stdvec(&q).is_err());
    q.put(1).unwrap();
    assert_eq!(q.get(), Ok(1));
}

#[test]
fn buffered_puts_keep_each_producers_order_and_deliver_once() {
    const N: u32 = 20_000;
    let q = Queue::<(u8, u32)>::unbounded();
    let producers: Vec<_> = (0..3u8)
        .map(|k| Process::spawn(produce_tagged, (q.clone(), None, k, N)).unwrap())
        .collect();
    let mut next = [0u32; 3];
    for _ in 0..3 * N {
        let (k, i) = q.get_timeout(LIMIT).unwrap();
        assert_eq!(i, next[k as usize], "producer {k}'s items out of order");
        next[k as usize] += 1;
    }
    for p in producers {
        join(p).unwrap();
    }
    assert_eq!(next, [N; 3]);
    assert_eq!(q.try_get(), Err(QueueGetError::Empty));
}

#[test]
fn a_bounded_queue_holds_back_a_buffering_producer() {
    const CAP: usize = 4;
    const N: u32 = 200;
    let q = Queue::<(u8, u32)>::bounded(CAP);
    let progress = Queue::<u32>::unbounded();
    let p = Process::spawn(produce_tagged, (q.clone(), Some(progress.clone()), 0, N)).unwrap();
    // Nobody takes from `q`: the producer must stall. Wait until its
    // progress stops, then check how far its puts got: the queue's items,
    // one batch in flight and one buffered, each at most CAP.
    let mut returned = 0;
    while let Ok(i) = progress.get_timeout(Duration::from_millis(500)) {
        returned = i + 1;
    }
    assert!(p.is_alive(), "the producer finished: no back-pressure");
    assert!(
        (returned as usize) <= 3 * CAP,
        "{returned} puts returned with a queue of {CAP} full"
    );
    assert_eq!(q.len(), CAP);
    // Taking lets it finish, in order.
    for i in 0..N {
        assert_eq!(q.get_timeout(LIMIT), Ok((0, i)));
    }
    join(p).unwrap();
}

#[test]
fn a_producer_that_dies_loses_only_its_unflushed_tail() {
    const N: u32 = 50_000;
    let q = Queue::<u32>::unbounded();
    let p = Process::spawn(put_then_abort, (q.clone(), N)).unwrap();
    assert!(matches!(join(p), Err(TaskError::WorkerLost { .. })));
    // What arrived is a prefix of what was put, each item once, in order.
    let mut got = 0;
    while let Ok(v) = q.try_get() {
        assert_eq!(v, got, "item out of order or duplicated");
        got += 1;
    }
    assert!(got <= N);
    // The queue is whole: another producer's items all arrive.
    assert_eq!(
        join(Process::spawn(put_and_flush, (q.clone(), 1000)).unwrap()),
        Ok("Ok(())".to_string())
    );
    for i in 0..1000 {
        assert_eq!(q.try_get(), Ok(i));
    }
    assert_eq!(q.try_get(), Err(QueueGetError::Empty));
}

#[test]
fn puts_into_a_shut_down_queue_are_reported_by_put_or_flush() {
    let q = Queue::<u8>::unbounded();
    q.shutdown(false);
    let (first, flushed, after) =
        join(Process::spawn(put_after_shutdown, q.clone()).unwrap()).unwrap();
    match first.as_str() {
        // Buffered: the refusal comes with the flush.
        "Ok(())" => assert_eq!(flushed, "Err(ShutDown(1))"),
        // Or known already.
        _ => {
            assert_eq!(first, "Err(ShutDown(1))");
            assert_eq!(flushed, "Ok(())");
        }
    }
    assert_eq!(after, "Err(ShutDown(2))");
    assert_eq!(q.try_get(), Err(QueueGetError::ShutDown));
}
