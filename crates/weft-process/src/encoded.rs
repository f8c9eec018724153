//! Tasks named by their registered function and carried as encoded bytes:
//! the layer that engines built on top of the pool (weft-cluster, which
//! moves tasks between machines) use to run a task whose argument arrived
//! already encoded, without knowing its Rust types.
//!
//! The encoding is the pool's own: `postcard` for every type except
//! `Vec<u8>`, whose bytes are carried as they are. [`encode`] and
//! [`decode`] are that encoding, so a value encoded on one machine is
//! decoded by the worker's registered function on another.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_sync::{Completer, TaskError, TaskHandle};

use crate::pool::{ProcessPool, Results, Sink};
use crate::registry;
use crate::supervisor::Job;

/// A function registered with [`register!`](crate::register), as the
/// registry knows it: its stable name and its signature.
///
/// ```
/// fn square(x: u64) -> u64 {
///     x * x
/// }
/// weft_process::register!(square);
///
/// let info = weft_process::Function::of(square).expect("registered");
/// assert!(info.name().ends_with("::square"));
/// assert_eq!(info.signature(), "fn(u64) -> u64");
/// assert_eq!(weft_process::Function::named(info.name()), Some(info));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    name: &'static str,
    signature: &'static str,
}

impl Function {
    /// The registered function `f`, or `None` when `f` was not registered
    /// (closures and generic functions cannot be).
    pub fn of<F: 'static>(f: F) -> Option<Function> {
        let _ = f;
        registry::lookup_type::<F>().map(Function::from_entry)
    }

    /// The function registered under `name` in this program, or `None`.
    pub fn named(name: &str) -> Option<Function> {
        registry::lookup_name(name).map(Function::from_entry)
    }

    /// The stable name the workers know it by: `module_path!()::name`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its signature, `fn(A) -> R`, as [`std::any::type_name`] spells it.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    fn from_entry(entry: &'static registry::Entry) -> Function {
        Function {
            name: entry.name,
            signature: (entry.signature)(),
        }
    }
}

/// A hash of every function registered in this program, with its
/// signature: two programs have the same fingerprint only if they register
/// the same functions with the same types (in practice: were built from
/// the same code). A pool's workers are checked against it at start-up;
/// engines that hand encoded tasks to another program compare it to refuse
/// a task meant for different code.
pub fn registry_fingerprint() -> u64 {
    registry::fingerprint()
}

/// Encodes `value` as a worker decodes a task's argument (and as a worker
/// encodes a result). A failing or panicking `Serialize` is an
/// [`TaskError::Serialization`] naming the type.
///
/// ```
/// let bytes = weft_process::encode((3u32, "three".to_string())).unwrap();
/// let back: (u32, String) = weft_process::decode(&bytes).unwrap();
/// assert_eq!(back, (3, "three".to_string()));
/// ```
pub fn encode<T: Serialize + 'static>(value: T) -> Result<Vec<u8>, TaskError> {
    let mut out = Vec::new();
    registry::encode_into(value, &mut out).map_err(|message| TaskError::Serialization {
        message: format!("the value could not be serialized: {message}"),
    })?;
    Ok(out)
}

/// Decodes a value written by [`encode`] (or a result returned by
/// [`ProcessPool::submit_encoded`]). Malformed bytes, or a `Deserialize`
/// that fails or panics, give a [`TaskError::Serialization`] naming the
/// type; nothing panics.
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, TaskError> {
    registry::decode(bytes).map_err(|message| TaskError::Serialization {
        message: format!("the value could not be deserialized: {message}"),
    })
}

impl ProcessPool {
    /// Runs the function registered as `function` on an argument already
    /// [`encode`]d, and gives its result still encoded (decode it with
    /// [`decode`]). The task behaves as one given to
    /// [`submit`](Self::submit): a crash, a hang past `timeout` (`None`:
    /// the pool's default task timeout), a panic, or an argument the
    /// function cannot decode fails this task only.
    ///
    /// A `function` no function of this program is registered under gives
    /// a handle already failed with [`TaskError::Serialization`] that says
    /// so (the caller was built from different code); a zero `timeout`
    /// fails with [`TaskError::TimedOut`] without running.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # weft_process::main_hook();
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// weft_process::register!(square);
    ///
    /// let pool = weft_process::ProcessPool::builder().processes(1).build()?;
    /// let name = weft_process::Function::of(square).unwrap().name();
    /// let arg = weft_process::encode(7u64)?;
    /// let bytes = pool.submit_encoded(name, arg, None).join()?;
    /// assert_eq!(weft_process::decode::<u64>(&bytes)?, 49);
    ///
    /// let unknown = pool.submit_encoded("nowhere::nothing", Vec::new(), None).join();
    /// assert!(unknown.unwrap_err().to_string().contains("nowhere::nothing"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn submit_encoded(
        &self,
        function: &str,
        arg: Vec<u8>,
        timeout: Option<Duration>,
    ) -> TaskHandle<Vec<u8>> {
        let Some(entry) = registry::lookup_name(function) else {
            return TaskHandle::ready(Err(TaskError::Serialization {
                message: format!(
                    "no function named `{function}` is registered in this program \
                     (was the task sent by a program built from different code?)"
                ),
            }));
        };
        if timeout.is_some_and(|t| t.is_zero()) {
            return TaskHandle::ready(Err(TaskError::TimedOut {
                timeout: Duration::ZERO,
            }));
        }
        let (completer, handle) = TaskHandle::pair();
        self.enqueue(Job {
            id: 0,
            func: entry.name,
            ends: vec![arg.len() as u64],
            args: arg,
            timeout: timeout.or(self.default_task_timeout()),
            sink: Box::new(EncodedSink {
                completer: Some(completer),
            }),
            started: false,
            cancel: None,
            carrier: None,
            carried: false,
        });
        handle
    }
}

/// Delivers a one-argument job's result bytes, undecoded.
struct EncodedSink {
    completer: Option<Completer<Vec<u8>>>,
}

impl Sink for EncodedSink {
    fn start(&mut self) -> bool {
        self.completer.as_ref().is_some_and(Completer::start)
    }

    fn finish(mut self: Box<Self>, outcome: Result<Results, TaskError>) {
        let Some(completer) = self.completer.take() else {
            return;
        };
        completer.complete(outcome.and_then(Results::into_single_bytes));
    }
}
