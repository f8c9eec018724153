//! A private MariaDB server for the `coroutine_libraries` example and the
//! umbrella's `tests/mariadb.rs`: its own data directory, Unix socket and
//! free TCP port under the system's temporary directory, a database `weft`
//! and a user `weft` with a password (real authentication, no
//! `--skip-grant-tables`), stopped and removed when the value is dropped
//! (also while a panic unwinds), and killed by a watchdog if the process
//! that started it dies without dropping it.
//!
//! Needs Debian's `mariadb-server` (`mariadbd` and `mariadb-install-db`):
//! `apt-get install mariadb-server`. The server is never started as a
//! service; nothing outside the temporary directory is touched.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get the server when it is missing.
pub const INSTALL_HINT: &str = "MariaDB's server is not installed: `mariadbd` and \
     `mariadb-install-db` were not found on PATH, /usr/sbin or /usr/local/sbin. Install it \
     with `apt-get install mariadb-server` (Debian/Ubuntu; the service need not run: the \
     example starts a private server of its own).";

/// A running private server; dropping it stops the server and removes its
/// files.
#[allow(dead_code, reason = "the example and the test use different parts")]
pub struct MariaDb {
    /// The shell that runs `mariadbd` and kills it when its stdin closes.
    watchdog: Child,
    /// Our end of the watchdog's stdin: closing it stops the server.
    stdin: Option<ChildStdin>,
    dir: PathBuf,
    /// The TCP port the server listens on (127.0.0.1 only).
    pub port: u16,
    /// The server's Unix socket.
    pub socket: PathBuf,
    /// The user the example connects as.
    pub user: String,
    /// That user's password.
    pub password: String,
    /// The database the user owns.
    pub database: String,
}

/// Finds `name` on PATH, or in the sbin directories Debian puts servers in
/// (not on a normal user's PATH).
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (mariadbd then needs `--user=root`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Starts `mariadbd` under a watchdog shell: once the shell's stdin closes
/// (the [`MariaDb`] is dropped, or this process dies) it kills the server
/// and removes `dir` (only a server it killed: one that exited by itself
/// leaves its files, and its log, for the error message).
#[allow(
    clippy::too_many_arguments,
    reason = "one call, every argument a path or flag"
)]
fn launch(
    mariadbd: &Path,
    dir: &Path,
    data: &Path,
    socket: &Path,
    log: &Path,
    init: &Path,
    port: u16,
    root: bool,
) -> Result<(Child, ChildStdin), String> {
    let mut args: Vec<String> = vec![
        "--no-defaults".into(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", socket.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".into(),
        format!("--pid-file={}", dir.join("mariadbd.pid").display()),
        format!("--log-error={}", log.display()),
        format!("--tmpdir={}", dir.join("tmp").display()),
        format!("--init-file={}", init.display()),
        "--skip-name-resolve".into(),
        "--innodb-buffer-pool-size=16M".into(),
        "--max-connections=50".into(),
    ];
    if root {
        // mariadbd refuses to run as root unless told to.
        args.push("--user=root".into());
    }
    // (A background job's stdin is /dev/null, hence the copy on fd 3.)
    let script = r#"server="$1"; dir="$2"; shift 2
exec 3<&0
"$server" "$@" 3<&- &
pid=$!
( read _ <&3
  if kill -9 "$pid" 2>/dev/null; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; rm -rf "$dir"
  fi ) &
wait "$pid""#;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("weft-mariadb")
        .arg(mariadbd)
        .arg(dir)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", mariadbd.display()))?;
    let stdin = watchdog.stdin.take().expect("stdin was piped");
    Ok((watchdog, stdin))
}

#[allow(dead_code, reason = "the example and the test use different parts")]
impl MariaDb {
    /// Makes a data directory, starts `mariadbd` on it and waits until it
    /// accepts connections (about 5 s, most of it `mariadb-install-db`).
    ///
    /// Errors say what failed, with the server's log; a missing server says
    /// how to install it ([`INSTALL_HINT`]).
    pub fn start() -> Result<MariaDb, String> {
        let (Some(mariadbd), Some(install_db)) = (find("mariadbd"), find("mariadb-install-db"))
        else {
            return Err(INSTALL_HINT.to_string());
        };
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("weft-mariadb-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let data = dir.join("data");
        // Its own temporary directory: the bootstrap's temporary tables
        // (`#sql-temptable-<pid>-...`) in a shared /tmp collided with
        // another server bootstrapping at the same time, and one aborted
        // with "Unknown table 'mysql.tmp_user_sys'".
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot make {}: {e}", tmp.display()))?;
        let root = is_root();

        // 1. The system tables. Root may log in only through the socket,
        //    without a password; the example never does.
        let mut install = Command::new(&install_db);
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            // (Passed on to the bootstrapping mariadbd.)
            .arg(format!("--tmpdir={}", tmp.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if root {
            install.arg("--user=root");
        }
        // One bootstrap at a time in this process (the tests start servers
        // in parallel; each bootstrap is short and disk-bound).
        static BOOTSTRAP: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let bootstrapping = BOOTSTRAP.lock().unwrap_or_else(|e| e.into_inner());
        let out = install.output();
        drop(bootstrapping);
        let out = out.map_err(|e| format!("cannot run {}: {e}", install_db.display()))?;
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!(
                "mariadb-install-db failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }

        // 2. The example's database and user, made as the server starts.
        let password = format!("weft-{}-{n}", std::process::id());
        let init = dir.join("init.sql");
        std::fs::write(
            &init,
            format!(
                "CREATE DATABASE IF NOT EXISTS weft;\n\
                 CREATE USER IF NOT EXISTS 'weft'@'%' IDENTIFIED BY '{password}';\n\
                 GRANT ALL PRIVILEGES ON weft.* TO 'weft'@'%';\n"
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", init.display()))?;

        // 3. The server, on a free port. Between releasing the probe and
        //    the server binding, another program could take the port: the
        //    server then exits saying so, and the next attempt takes
        //    another port.
        let socket = dir.join("mysqld.sock");
        let log = dir.join("error.log");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free port: {e}"))?
                .port();
            let (watchdog, stdin) =
                launch(&mariadbd, &dir, &data, &socket, &log, &init, port, root)?;
            let mut server = MariaDb {
                watchdog,
                stdin: Some(stdin),
                dir: dir.clone(),
                port,
                socket: socket.clone(),
                user: "weft".into(),
                password: password.clone(),
                database: "weft".into(),
            };
            // 4. Ready when our own socket accepts connections (nobody
            //    else can listen there) and so does the port; the init
            //    file has run by then.
            let deadline = Instant::now() + Duration::from_secs(60);
            let exited = loop {
                if std::os::unix::net::UnixStream::connect(&socket).is_ok()
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                {
                    return Ok(server);
                }
                if let Ok(Some(status)) = server.watchdog.try_wait() {
                    break status;
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "mariadbd did not accept connections within 60 s; its log:\n{}",
                        tail(&log)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let log_text = tail(&log);
            if attempt < 3 && log_text.contains("Address already in use") {
                // Keep the files for the next attempt: the watchdog
                // removes them only when it kills a live server.
                server.dir = PathBuf::new();
                continue;
            }
            return Err(format!(
                "mariadbd exited during start-up ({exited}); its log:\n{log_text}"
            ));
        }
    }

    /// A `mysql://` URL for the example's user over TCP.
    pub fn url(&self) -> String {
        format!(
            "mysql://{}:{}@127.0.0.1:{}/{}",
            self.user, self.password, self.port, self.database
        )
    }

    /// The server's error log so far (start-up notes, warnings, aborts).
    pub fn log(&self) -> String {
        tail(&self.dir.join("error.log"))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // Closing the watchdog's stdin kills the server; then the watchdog
        // exits and is reaped here.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = self.watchdog.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
