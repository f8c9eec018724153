//! A real `nats-server` per test (own port, own storage directory, stopped
//! on drop, also when the test panics) and workers as separate processes
//! (this test binary re-executed into `worker_process_entry`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that turns this test binary into a worker.
pub const WORKER_ENV: &str = "WEFT_CLUSTER_TEST_WORKER";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "weft-cluster-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nothing listens on (at the moment).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// Where `nats-server` is: on the PATH, or in an sbin directory (where
/// Debian puts daemons, often off a user's PATH).
pub fn nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
}

/// A running `nats-server -js` of this test's own.
pub struct Nats {
    program: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    pub port: u16,
    store: TempDir,
}

impl Nats {
    pub fn start() -> Nats {
        Nats::start_with(&[])
    }

    /// A server started with these extra command-line arguments
    /// (`--user`, `--pass`, `--auth`...).
    pub fn start_with(extra: &[&str]) -> Nats {
        let found = nats_server();
        assert!(
            found.is_some(),
            "nats-server is not on the PATH: weft-cluster's tests run against a real NATS \
             server (JetStream). Install it: `apt-get install nats-server` (Debian/Ubuntu), \
             or put the binary from https://github.com/nats-io/nats-server/releases on the PATH"
        );
        let mut nats = Nats {
            program: found.unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            port: free_port(),
            store: TempDir::new("nats"),
        };
        nats.launch();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.store.path().join("server.log"))
            .expect("server log");
        let child = Command::new(&self.program)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store.path().join("js"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.store.path().join("server.log"))
                    .unwrap_or_default();
                panic!("nats-server exited at start ({status}): {log}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the server (its storage stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A worker process: this test binary re-executed into
/// `worker_process_entry`, killed and reaped on drop.
pub struct WorkerProc {
    child: Child,
    pub pid: u32,
}

impl WorkerProc {
    /// Starts a worker for `url` with `KEY=VALUE` settings and waits until
    /// it serves.
    pub fn start(url: &str, settings: &[(&str, &str)]) -> WorkerProc {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "worker_process_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in settings {
            command.env(format!("WEFT_CLUSTER_TEST_{key}"), value);
        }
        let mut child = command.spawn().expect("start a worker process");
        let pid = child.id();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if line.contains("WORKER READY") {
                    let _ = tx.send(());
                }
            }
        });
        let mut worker = WorkerProc { child, pid };
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            worker.kill();
            panic!("the worker process did not start serving within 30 s");
        }
        worker
    }

    /// SIGKILLs the worker process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a setting the parent test passed to this worker process.
pub fn setting<T: std::str::FromStr>(key: &str) -> Option<T> {
    std::env::var(format!("WEFT_CLUSTER_TEST_{key}"))
        .ok()
        .and_then(|v| v.parse().ok())
}

/// Waits until `cond` holds, up to `limit`.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
