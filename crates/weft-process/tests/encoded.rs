//! Tasks named by their registered function, carried as encoded bytes
//! (`ProcessPool::submit_encoded`, `Function`, `encode`/`decode`): the
//! layer weft-cluster runs its tasks through.

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use weft_process::{Function, ProcessPool, TaskError, WorkerExit, decode, encode};

fn add(pair: (u64, u64)) -> u64 {
    pair.0 + pair.1
}

fn shout(text: String) -> String {
    text.to_uppercase()
}

fn bytes_len(bytes: Vec<u8>) -> usize {
    bytes.len()
}

fn boom(_: ()) -> u64 {
    panic!("boom from the worker")
}

fn die(_: ()) -> u64 {
    std::process::abort()
}

fn nap(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

weft_process::register!(add, shout, bytes_len, boom, die, nap);

fn pool() -> ProcessPool {
    ProcessPool::builder().processes(1).build().expect("pool")
}

#[test]
fn a_task_named_by_its_function_runs_on_encoded_bytes() {
    let pool = pool();
    let name = Function::of(add).expect("add is registered").name();
    let out = pool
        .submit_encoded(name, encode((40u64, 2u64)).unwrap(), None)
        .join()
        .unwrap();
    assert_eq!(decode::<u64>(&out).unwrap(), 42);

    let name = Function::of(shout).unwrap().name();
    let out = pool
        .submit_encoded(name, encode("quiet".to_string()).unwrap(), None)
        .join()
        .unwrap();
    assert_eq!(decode::<String>(&out).unwrap(), "QUIET");

    // `Vec<u8>` travels as its own bytes, both ways.
    let payload = vec![7u8; 100_000];
    let encoded = encode(payload.clone()).unwrap();
    assert_eq!(encoded, payload);
    let name = Function::of(bytes_len).unwrap().name();
    let out = pool.submit_encoded(name, encoded, None).join().unwrap();
    assert_eq!(decode::<usize>(&out).unwrap(), 100_000);
}

#[test]
fn functions_are_found_by_name_with_their_signature() {
    let f = Function::of(add).unwrap();
    assert!(f.name().ends_with("::add"), "{}", f.name());
    assert_eq!(f.signature(), "fn((u64, u64)) -> u64");
    assert_eq!(Function::named(f.name()), Some(f));
    assert_eq!(Function::named("no::such::function"), None);
    assert_eq!(Function::of(|x: u64| x), None);
    assert_eq!(
        weft_process::registry_fingerprint(),
        weft_process::registry_fingerprint()
    );
}

#[test]
fn an_unknown_name_fails_the_task_with_a_clear_error() {
    let pool = pool();
    let err = pool
        .submit_encoded("other_program::f", Vec::new(), None)
        .join()
        .unwrap_err();
    let TaskError::Serialization { message } = err else {
        panic!("expected a serialization error, got {err:?}");
    };
    assert!(message.contains("other_program::f"), "{message}");
    assert!(message.contains("different code"), "{message}");
}

#[test]
fn bytes_the_function_cannot_decode_fail_only_that_task() {
    let pool = pool();
    let name = Function::of(shout).unwrap().name();
    // A string's length prefix claiming far more bytes than follow.
    let err = pool
        .submit_encoded(name, vec![0xff, 0x7f, b'a'], None)
        .join()
        .unwrap_err();
    assert!(
        matches!(err, TaskError::Serialization { ref message } if message.contains("decode")),
        "{err:?}"
    );
    // The worker is still there and well.
    let out = pool
        .submit_encoded(name, encode("ok".to_string()).unwrap(), None)
        .join()
        .unwrap();
    assert_eq!(decode::<String>(&out).unwrap(), "OK");
}

#[test]
fn panics_crashes_and_timeouts_fail_their_task_as_submit_does() {
    let pool = pool();
    let boom = Function::of(boom).unwrap().name();
    let err = pool
        .submit_encoded(boom, encode(()).unwrap(), None)
        .join()
        .unwrap_err();
    assert!(
        matches!(err, TaskError::Panicked { ref message } if message.contains("boom from the worker")),
        "{err:?}"
    );

    let die = Function::of(die).unwrap().name();
    let err = pool
        .submit_encoded(die, encode(()).unwrap(), None)
        .join()
        .unwrap_err();
    assert!(
        matches!(
            err,
            TaskError::WorkerLost {
                exit: WorkerExit::Signal(libc::SIGABRT)
            }
        ),
        "{err:?}"
    );

    let nap = Function::of(nap).unwrap().name();
    let err = pool
        .submit_encoded(
            nap,
            encode(10_000u64).unwrap(),
            Some(Duration::from_millis(200)),
        )
        .join()
        .unwrap_err();
    assert!(matches!(err, TaskError::TimedOut { .. }), "{err:?}");
    let err = pool
        .submit_encoded(nap, encode(1u64).unwrap(), Some(Duration::ZERO))
        .join()
        .unwrap_err();
    assert!(matches!(err, TaskError::TimedOut { .. }), "{err:?}");

    // And the pool goes on.
    let out = pool
        .submit_encoded(nap, encode(1u64).unwrap(), None)
        .join()
        .unwrap();
    assert_eq!(decode::<u64>(&out).unwrap(), 1);
}

#[derive(Debug)]
struct Refuses;

impl<'de> Deserialize<'de> for Refuses {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        panic!("Refuses never deserializes")
    }
}

#[test]
fn decode_reports_bad_bytes_and_panicking_types_without_panicking() {
    let err = decode::<String>(&[0xff, 0xff, 0xff]).unwrap_err();
    assert!(matches!(err, TaskError::Serialization { .. }), "{err:?}");
    let err = decode::<Refuses>(&[]).unwrap_err();
    let TaskError::Serialization { message } = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("Refuses never deserializes"), "{message}");
}
