//! What travels through the streams: a task (one function, one or more
//! encoded arguments) and its result (one outcome per argument).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_sync::{TaskError, WorkerExit};

/// Wire format version; a worker refuses anything else with a clear error.
pub(crate) const WIRE_VERSION: u32 = 1;

/// One task: a registered function and its arguments (several for a `map`
/// chunk), each encoded with `weft_process::encode`.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct TaskMsg {
    pub version: u32,
    /// The task's id, unique within its client.
    pub id: u64,
    /// The subject the result goes to.
    pub reply: String,
    /// The registered name of the function.
    pub function: String,
    /// The client's `weft_process::registry_fingerprint()`.
    pub fingerprint: u64,
    /// The time limit of each argument's run, in nanoseconds.
    pub timeout_ns: Option<u64>,
    pub args: Vec<Vec<u8>>,
}

/// The outcome of a task: one entry per argument, in order.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) struct ResultMsg {
    pub id: u64,
    pub outcomes: Vec<Result<Vec<u8>, WireError>>,
}

/// A [`TaskError`] as it travels.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) enum WireError {
    Panicked(String),
    Cancelled,
    TimedOut(u64),
    LostCode(i32),
    LostSignal(i32),
    Lost(String),
    Serialization(String),
    Abandoned,
}

impl From<&TaskError> for WireError {
    fn from(error: &TaskError) -> WireError {
        match error {
            TaskError::Panicked { message } => WireError::Panicked(message.clone()),
            TaskError::Cancelled => WireError::Cancelled,
            TaskError::TimedOut { timeout } => WireError::TimedOut(timeout.as_nanos() as u64),
            TaskError::WorkerLost { exit } => match exit {
                WorkerExit::Code(code) => WireError::LostCode(*code),
                WorkerExit::Signal(signal) => WireError::LostSignal(*signal),
                other => WireError::Lost(other.to_string()),
            },
            TaskError::Serialization { message } => WireError::Serialization(message.clone()),
            TaskError::Abandoned => WireError::Abandoned,
            other => WireError::Lost(other.to_string()),
        }
    }
}

impl From<WireError> for TaskError {
    fn from(error: WireError) -> TaskError {
        match error {
            WireError::Panicked(message) => TaskError::Panicked { message },
            WireError::Cancelled => TaskError::Cancelled,
            WireError::TimedOut(ns) => TaskError::TimedOut {
                timeout: Duration::from_nanos(ns),
            },
            WireError::LostCode(code) => TaskError::WorkerLost {
                exit: WorkerExit::Code(code),
            },
            WireError::LostSignal(signal) => TaskError::WorkerLost {
                exit: WorkerExit::Signal(signal),
            },
            WireError::Lost(text) => TaskError::WorkerLost {
                exit: WorkerExit::Unknown(text),
            },
            WireError::Serialization(message) => TaskError::Serialization { message },
            WireError::Abandoned => TaskError::Abandoned,
        }
    }
}

/// The subjects and stream names derived from one stream name.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// The work-queue stream of tasks.
    pub tasks_stream: String,
    /// The work-queue stream of results.
    pub results_stream: String,
    /// The subject tasks are published on.
    pub tasks_subject: String,
    /// `<prefix>.results.`; a client appends its id.
    pub results_prefix: String,
    /// The durable consumer every worker shares.
    pub workers_consumer: String,
}

impl Names {
    pub(crate) fn new(stream: &str) -> Names {
        let prefix = stream.to_ascii_lowercase();
        Names {
            tasks_stream: stream.to_string(),
            results_stream: format!("{stream}_RESULTS"),
            tasks_subject: format!("{prefix}.tasks"),
            results_prefix: format!("{prefix}.results."),
            workers_consumer: "workers".to_string(),
        }
    }
}

/// Checks a stream name: NATS allows letters, digits, `-` and `_` here.
pub(crate) fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
