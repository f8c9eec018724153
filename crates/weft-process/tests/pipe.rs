//! `Pipe`: typed ends that travel to child processes, timeouts, poll,
//! disconnection, and values that will not travel.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weft_process::{
    Connection, Pipe, PipeReceiver, PipeSender, Process, RecvError, SendError, TaskError,
};

const LIMIT: Duration = Duration::from_secs(120);

fn join<R>(p: Process<R>) -> Result<R, TaskError> {
    match p.join_timeout(LIMIT) {
        Ok(outcome) => outcome,
        Err(p) => {
            p.kill();
            panic!("process {} did not finish within {LIMIT:?}", p.name());
        }
    }
}

/// Doubles what it gets until the other end hangs up; returns the count.
fn doubler(conn: Connection<u64>) -> u64 {
    let mut n = 0;
    while let Ok(x) = conn.recv() {
        conn.send(2 * x).unwrap();
        n += 1;
    }
    n
}

/// Sums what arrives on `rx` and sends the sum on `tx`.
fn summer((rx, tx): (PipeReceiver<u64>, PipeSender<u64>)) {
    let mut sum = 0;
    while let Ok(x) = rx.recv() {
        sum += x;
    }
    tx.send(sum).unwrap();
}

weft_process::register!(doubler, summer);

#[test]
fn a_duplex_connection_talks_to_a_child() {
    let (here, there) = Pipe::duplex::<u64>().unwrap();
    let p = Process::spawn(doubler, there).unwrap();
    for i in 0..100 {
        here.send(i).unwrap();
        assert_eq!(here.recv_timeout(LIMIT), Ok(2 * i));
    }
    drop(here);
    assert_eq!(join(p), Ok(100));
}

#[test]
fn both_ends_of_one_way_pipes_travel() {
    let (to_child, child_rx) = Pipe::one_way::<u64>().unwrap();
    let (child_tx, from_child) = Pipe::one_way::<u64>().unwrap();
    let p = Process::spawn(summer, (child_rx, child_tx)).unwrap();
    for i in 1..=1000 {
        to_child.send(i).unwrap();
    }
    drop(to_child);
    assert_eq!(from_child.recv_timeout(LIMIT), Ok(500_500));
    join(p).unwrap();
    // The child's sender is gone with it.
    assert_eq!(from_child.recv_timeout(LIMIT), Err(RecvError::Disconnected));
}

#[test]
fn timeouts_poll_and_disconnection() {
    let (tx, rx) = Pipe::one_way::<String>().unwrap();
    assert_eq!(rx.try_recv(), Err(RecvError::Empty));
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)),
        Err(RecvError::Empty)
    );
    assert!(!rx.poll(Duration::from_millis(10)));
    tx.send("a".into()).unwrap();
    assert!(rx.poll(LIMIT));
    assert!(rx.poll(Duration::ZERO));
    assert_eq!(rx.recv(), Ok("a".to_string()));
    let tx2 = tx.clone();
    drop(tx);
    tx2.send("b".into()).unwrap();
    drop(tx2);
    assert_eq!(rx.recv(), Ok("b".to_string()));
    assert!(rx.poll(Duration::ZERO));
    assert_eq!(rx.recv(), Err(RecvError::Disconnected));
    // A huge timeout means no limit, not a panic.
    assert_eq!(rx.recv_timeout(Duration::MAX), Err(RecvError::Disconnected));

    let (tx, rx) = Pipe::one_way::<u8>().unwrap();
    drop(rx);
    assert_eq!(tx.send(1), Err(SendError::Disconnected(1)));
}

#[derive(Debug, PartialEq)]
enum Picky {
    Good(u32),
    Bad,
    PanicOnDecode,
}

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Picky::Good(n) => s.serialize_u32(*n),
            Picky::Bad => Err(serde::ser::Error::custom("Picky::Bad refuses to travel")),
            Picky::PanicOnDecode => s.serialize_u32(u32::MAX),
        }
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u32::deserialize(d)? {
            u32::MAX => panic!("Picky's Deserialize panicked on purpose"),
            n => Ok(Picky::Good(n)),
        }
    }
}

#[test]
fn values_that_will_not_travel_fail_alone() {
    let (tx, rx) = Pipe::one_way::<Picky>().unwrap();
    match tx.send(Picky::Bad) {
        Err(SendError::Serialization { value, message }) => {
            assert_eq!(value, Picky::Bad);
            assert!(message.contains("refuses to travel"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    tx.send(Picky::PanicOnDecode).unwrap();
    match rx.recv() {
        Err(RecvError::Serialization(m)) => assert!(m.contains("on purpose"), "{m}"),
        other => panic!("{other:?}"),
    }
    tx.send(Picky::Good(5)).unwrap();
    assert_eq!(rx.recv(), Ok(Picky::Good(5)));
}

#[test]
fn ends_refuse_to_serialize_outside_a_weft_message() {
    let (tx, rx) = Pipe::one_way::<u8>().unwrap();
    let err = postcard::to_stdvec(&tx).unwrap_err();
    assert!(matches!(err, postcard::Error::SerdeSerCustom));
    assert!(postcard::to_stdvec(&rx).is_err());
    // Both still work.
    tx.send(1).unwrap();
    assert_eq!(rx.recv(), Ok(1));
}
