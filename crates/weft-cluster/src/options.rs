//! The connection options both builders share, written once.

/// Adds the connection options to a builder whose `settings` field is a
/// [`Settings`](crate::connect::Settings).
macro_rules! connection_options {
    () => {
        /// The server to connect to, `nats://host:port` (`tls://host:port`
        /// for TLS); several comma-separated URLs of one NATS cluster are
        /// tried in turn. Default: `nats://127.0.0.1:4222`.
        pub fn url(mut self, url: impl Into<String>) -> Self {
            self.settings.url = url.into();
            self
        }

        /// Authenticates with a NATS credentials file (a user JWT and its
        /// NKey seed, as `nsc` writes them).
        pub fn credentials_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.settings.credentials_file = Some(path.into());
            self
        }

        /// Authenticates with a user name and password.
        pub fn user_and_password(
            mut self,
            user: impl Into<String>,
            password: impl Into<String>,
        ) -> Self {
            self.settings.user_password = Some((user.into(), password.into()));
            self
        }

        /// Authenticates with a token.
        pub fn token(mut self, token: impl Into<String>) -> Self {
            self.settings.token = Some(token.into());
            self
        }

        /// Refuses to talk to a server that does not offer TLS.
        pub fn require_tls(mut self, required: bool) -> Self {
            self.settings.require_tls = required;
            self
        }

        /// Trusts the CA certificates in this PEM file (for a server whose
        /// certificate is not signed by a public CA).
        pub fn root_certificate(mut self, path: impl Into<std::path::PathBuf>) -> Self {
            self.settings.root_certificates.push(path.into());
            self
        }

        /// Presents this client certificate and key (PEM files) to a server
        /// that verifies clients (mutual TLS).
        pub fn client_certificate(
            mut self,
            cert: impl Into<std::path::PathBuf>,
            key: impl Into<std::path::PathBuf>,
        ) -> Self {
            self.settings.client_certificate = Some((cert.into(), key.into()));
            self
        }

        /// How long to try to reach the server before giving up with
        /// [`ClusterError::Connect`](crate::ClusterError::Connect).
        /// Default: 5 s. After the first connection, lost connections are
        /// re-established without limit.
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }

        /// How long one JetStream request (a publish's acknowledgement, a
        /// stream lookup) may take before it is retried. Default: 5 s.
        pub fn request_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.request_timeout = timeout;
            self
        }

        /// The JetStream stream the tasks go through: clients and workers
        /// that name the same stream work together. Its results travel in
        /// a second stream, `<name>_RESULTS`; the subjects are
        /// `<name in lower case>.tasks` and `.results.<client>`. Default:
        /// `WEFT`.
        pub fn stream(mut self, name: impl Into<String>) -> Self {
            self.settings.stream = name.into();
            self
        }

        /// How many servers of a NATS cluster keep a copy of each stream
        /// when this program creates them (1, 3 or 5; default 1). Streams
        /// that exist already keep theirs.
        pub fn replicas(mut self, replicas: usize) -> Self {
            self.settings.replicas = replicas;
            self
        }
    };
}

pub(crate) use connection_options;
