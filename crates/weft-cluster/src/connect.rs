//! What a client and a worker share: the connection settings, the small
//! tokio runtime the NATS client runs on, and the streams.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::error::ClusterError;
use crate::wire::{Names, valid_stream_name};

/// How to reach the server: URL, credentials, TLS, timeouts and the stream
/// name. Both builders carry one.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub url: String,
    pub credentials_file: Option<PathBuf>,
    pub user_password: Option<(String, String)>,
    pub token: Option<String>,
    pub require_tls: bool,
    pub root_certificates: Vec<PathBuf>,
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub stream: String,
    pub replicas: usize,
    pub result_ttl: Duration,
    pub name: String,
}

impl Settings {
    pub(crate) fn new(name: &str) -> Settings {
        Settings {
            url: "nats://127.0.0.1:4222".to_string(),
            credentials_file: None,
            user_password: None,
            token: None,
            require_tls: false,
            root_certificates: Vec::new(),
            client_certificate: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            stream: "WEFT".to_string(),
            replicas: 1,
            result_ttl: Duration::from_secs(24 * 3600),
            name: name.to_string(),
        }
    }

    pub(crate) fn check(&self) -> Result<(), ClusterError> {
        if !valid_stream_name(&self.stream) {
            return Err(ClusterError::InvalidConfig(format!(
                "the stream name `{}` must be 1 to 200 letters, digits, `-` or `_`",
                self.stream
            )));
        }
        if self.replicas == 0 || self.replicas > 5 {
            return Err(ClusterError::InvalidConfig(format!(
                "stream replicas must be 1 to 5 (NATS' limit), not {}",
                self.replicas
            )));
        }
        if self.connect_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(ClusterError::InvalidConfig(
                "the connect and request timeouts must be above zero".to_string(),
            ));
        }
        Ok(())
    }

    /// Starts the runtime the client library runs on: one worker thread.
    pub(crate) fn runtime(&self) -> Result<tokio::runtime::Runtime, ClusterError> {
        Ok(tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("weft-cluster-{}", self.name))
            .enable_all()
            .build()?)
    }

    fn connect_error(&self, message: impl ToString) -> ClusterError {
        ClusterError::Connect {
            url: self.url.clone(),
            timeout: self.connect_timeout,
            message: message.to_string(),
        }
    }

    /// Connects, within the connect timeout, and makes the JetStream
    /// context. Reconnection after that is automatic and unbounded.
    pub(crate) async fn connect(
        &self,
    ) -> Result<(async_nats::Client, jetstream::Context), ClusterError> {
        let mut options = match &self.credentials_file {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path.clone())
                .await
                .map_err(|e| ClusterError::Credentials {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some((user, password)) = &self.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        for root in &self.root_certificates {
            options = options.add_root_certificates(root.clone());
        }
        if let Some((cert, key)) = &self.client_certificate {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options = options
            .require_tls(self.require_tls)
            .connection_timeout(self.connect_timeout)
            .request_timeout(Some(self.request_timeout))
            .name(format!("weft-cluster {}", self.name))
            // Fast, bounded back-off: a restarted server is found again
            // within a second.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((50 * attempts as u64).min(1000))
            });
        // `a,b,c`: the servers of one NATS cluster, any of which will do.
        let urls: Vec<String> = self
            .url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from)
            .collect();
        let client = tokio::time::timeout(self.connect_timeout, options.connect(urls))
            .await
            .map_err(|_| self.connect_error("timed out"))?
            .map_err(|e| self.connect_error(e))?;
        let context = jetstream::ContextBuilder::new()
            .timeout(self.request_timeout)
            .build(client.clone());
        Ok((client, context))
    }

    /// Creates the task and result streams if they do not exist yet.
    pub(crate) async fn ensure_streams(
        &self,
        js: &jetstream::Context,
    ) -> Result<Names, ClusterError> {
        let names = Names::new(&self.stream);
        let tasks = stream::Config {
            name: names.tasks_stream.clone(),
            subjects: vec![names.tasks_subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let results = stream::Config {
            name: names.results_stream.clone(),
            subjects: vec![format!("{}*", names.results_prefix)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            max_age: self.result_ttl,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        for config in [tasks, results] {
            let what = config.name.clone();
            tokio::time::timeout(self.connect_timeout, js.get_or_create_stream(config))
                .await
                .map_err(|_| self.stream_error(&what, "timed out"))?
                .map_err(|e| self.stream_error(&what, e))?;
        }
        Ok(names)
    }

    pub(crate) fn stream_error(&self, what: &str, message: impl ToString) -> ClusterError {
        ClusterError::JetStream {
            url: self.url.clone(),
            what: what.to_string(),
            message: message.to_string(),
        }
    }
}

/// Runs `future` on `runtime` and blocks this thread until it is done.
/// Unlike `Runtime::block_on`, this works from inside another async
/// runtime too (a user's `#[tokio::main]`): the future runs on our own
/// runtime's thread, this thread only waits.
pub(crate) fn block_on<T, F>(runtime: &tokio::runtime::Runtime, future: F) -> Option<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().ok()
}

/// A process-unique, hard-to-guess id (for a client's result subject).
pub(crate) fn unique_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let a = hasher.finish();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(a);
    format!("{:016x}{:016x}", a, hasher.finish())
}
