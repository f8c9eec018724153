//! Child processes with async pipes: asyncio's `create_subprocess_exec`.
//!
//! This is `async-process` (the smol family's, on `async-io`, which the
//! runtime drives), with a [`Command`] of weft's in front whose errors name
//! the program. The child's pipes ([`ChildStdin`], [`ChildStdout`],
//! [`ChildStderr`]) are `futures-io` streams; its exit is awaited without a
//! thread per child (a pidfd on Linux, a `SIGCHLD` handler elsewhere).
//! Works in [`run`](crate::run), in [`multi`](crate::multi) and on any
//! other executor.
//!
//! | Python `asyncio` | weft |
//! |---|---|
//! | `await create_subprocess_exec(prog, *args, stdout=PIPE)` | [`Command::new(prog).args(args).stdout(Stdio::piped()).spawn()?`](Command::spawn) -> [`Child`] |
//! | `proc.stdout.read()`, `proc.stdin.write(b); await proc.stdin.drain()` | `child.stdout.take()` / `child.stdin.take()` with `AsyncReadExt` / `AsyncWriteExt` |
//! | `await proc.communicate()` | [`child.output().await`](Child::output) ([`Output`]: status, stdout, stderr) |
//! | `await proc.wait()`; `proc.returncode` | [`child.status().await`](Child::status) -> [`ExitStatus`]; [`child.try_status()`](Child::try_status) |
//! | `proc.kill()`, `proc.pid` | [`child.kill()`](Child::kill), [`child.id()`](Child::id) |
//! | `create_subprocess_shell(cmd)` | `Command::new("sh").arg("-c").arg(cmd)` |
//! | `subprocess.run(..., capture_output=True)` | [`Command::output`] |
//!
//! # Example
//!
//! ```
//! # #[cfg(unix)] {
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use weft_async::process::{Command, Stdio};
//!
//! weft_async::run(async {
//!     // create_subprocess_exec("tr", "a-z", "A-Z", stdin=PIPE, stdout=PIPE)
//!     let mut child = Command::new("tr")
//!         .args(["a-z", "A-Z"])
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let mut stdin = child.stdin.take().unwrap();
//!     stdin.write_all(b"hello").await?;
//!     drop(stdin); // end of input
//!     let mut out = String::new();
//!     child.stdout.take().unwrap().read_to_string(&mut out).await?;
//!     assert_eq!(out, "HELLO");
//!     assert!(child.status().await?.success());
//!
//!     // A program that is not there: the error names it.
//!     let err = Command::new("no-such-program-weft").spawn().unwrap_err();
//!     assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
//!     assert!(err.to_string().contains("no-such-program-weft"));
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! # }
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;

pub use async_process::{Child, ChildStderr, ChildStdin, ChildStdout, ExitStatus, Output, Stdio};

/// A process to start: `std::process::Command`'s builder, with `async`
/// [`status`](Self::status) and [`output`](Self::output) and a [`Child`]
/// whose pipes are async.
///
/// Errors from [`spawn`](Self::spawn), [`status`](Self::status) and
/// [`output`](Self::output) keep their kind (`NotFound` for a program that
/// is not there, `PermissionDenied` for a file that is not executable) and
/// name the program in their message.
///
/// By default, as with `std`, a dropped [`Child`] goes on running (it is
/// reaped in the background); [`kill_on_drop`](Self::kill_on_drop) kills
/// it instead.
pub struct Command {
    inner: async_process::Command,
}

impl Command {
    /// A command that runs `program` (looked up on `PATH` unless it
    /// contains a `/`), with no arguments, inheriting the environment, the
    /// working directory and the three standard streams.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            inner: async_process::Command::new(program),
        }
    }

    /// Adds one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what
    /// [`env`](Self::env) adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// The child's standard input: [`Stdio::piped()`] for a
    /// [`ChildStdin`] in [`Child::stdin`], `Stdio::null()`, or
    /// `Stdio::inherit()` (the default for [`spawn`](Self::spawn)).
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdin(cfg);
        self
    }

    /// The child's standard output (see [`stdin`](Self::stdin)).
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stdout(cfg);
        self
    }

    /// The child's standard error (see [`stdin`](Self::stdin)).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.inner.stderr(cfg);
        self
    }

    /// Whether dropping the [`Child`] kills the process (default `false`).
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.inner.kill_on_drop(kill);
        self
    }

    /// The program this command runs.
    pub fn get_program(&self) -> &OsStr {
        self.inner.get_program()
    }

    /// Starts the process: `asyncio.create_subprocess_exec`. Returns at
    /// once (the exec happens in the child).
    pub fn spawn(&mut self) -> io::Result<Child> {
        self.inner.spawn().map_err(|e| self.named(e, "start"))
    }

    /// Starts the process with the standard streams inherited and waits
    /// for it to exit.
    pub fn status(&mut self) -> impl Future<Output = io::Result<ExitStatus>> + use<> {
        let name = self.name();
        let fut = self.inner.status();
        async move { fut.await.map_err(|e| named(&name, e, "run")) }
    }

    /// Starts the process with its output captured (standard input is
    /// null unless set) and waits for it to exit: `subprocess.run(..,
    /// capture_output=True)`, or `await proc.communicate()`.
    pub fn output(&mut self) -> impl Future<Output = io::Result<Output>> + use<> {
        let name = self.name();
        let fut = self.inner.output();
        async move { fut.await.map_err(|e| named(&name, e, "run")) }
    }

    fn name(&self) -> String {
        self.inner.get_program().to_string_lossy().into_owned()
    }

    fn named(&self, err: io::Error, what: &str) -> io::Error {
        named(&self.name(), err, what)
    }
}

/// `err`, with the program's name and what was being done in its message
/// (the kind kept).
fn named(program: &str, err: io::Error, what: &str) -> io::Error {
    let hint = match err.kind() {
        io::ErrorKind::NotFound => " (no such program on PATH, or no such file)",
        io::ErrorKind::PermissionDenied => " (not executable)",
        _ => "",
    };
    io::Error::new(
        err.kind(),
        format!("weft-async: could not {what} {program:?}{hint}: {err}"),
    )
}

impl From<std::process::Command> for Command {
    fn from(cmd: std::process::Command) -> Command {
        Command { inner: cmd.into() }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}
