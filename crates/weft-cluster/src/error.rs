//! [`ClusterError`]: why a client or a worker could not start or connect.

use std::time::Duration;

/// Why a [`Cluster`](crate::Cluster) or a [`Worker`](crate::Worker) could
/// not be built or could not keep running. Task failures are not
/// `ClusterError`s: they reach each task's handle as a
/// [`TaskError`](crate::TaskError).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// No NATS server answered at the URL within the connect timeout.
    #[error(
        "could not connect to the NATS server at {url} within {timeout:?}: {message} \
         (is nats-server running there with JetStream on, `nats-server -js`? are the \
         credentials and TLS settings right?)"
    )]
    Connect {
        /// The URL that was tried.
        url: String,
        /// The connect timeout that applied.
        timeout: Duration,
        /// What the client library said.
        message: String,
    },
    /// The server answered but its JetStream could not set up (or find)
    /// the task and result streams.
    #[error(
        "the NATS server at {url} could not set up the JetStream stream or consumer `{what}`: \
         {message} (is JetStream enabled, `nats-server -js`, and does the account allow it?)"
    )]
    JetStream {
        /// The URL of the server.
        url: String,
        /// The stream or consumer concerned.
        what: String,
        /// What the server said.
        message: String,
    },
    /// A credentials file, token or certificate could not be read.
    #[error("could not use the credentials in {path}: {message}")]
    Credentials {
        /// The file concerned.
        path: String,
        /// Why it could not be used.
        message: String,
    },
    /// A builder option was out of range.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
    /// The background thread that runs the NATS client could not start.
    #[error("could not start the NATS client's background thread: {0}")]
    Runtime(#[from] std::io::Error),
    /// The worker's local process pool could not start.
    #[error("the worker's local process pool could not start: {0}")]
    Pool(#[from] weft_process::Error),
}
