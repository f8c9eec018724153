//! How a child process (a pool worker or a [`Process`](crate::Process))
//! finds and proves itself to its parent, shared by both.
//!
//! The parent makes an `IpcOneShotServer` and starts the child with the
//! server's name, a 256-bit secret and its own pid in one environment
//! variable ([`BootEnv`]). The child connects and sends its greeting
//! (secret, pid, fingerprint of its registered functions, and a channel).
//!
//! ipc-channel's `accept` has no timeout: [`accept_watched`] runs it with a
//! watchdog thread beside it. If the child dies before connecting, the
//! watchdog connects in its place with the greeting type's `died()`
//! message, so `accept` returns; if the child neither connects nor dies
//! before the deadline (or the caller gives up), the watchdog kills it,
//! which ends an `accept` stuck on a half-sent first message too. The
//! watchdog never reaps: the caller does, after `accept_watched` returns,
//! so a pid is never signalled after it could have been reused.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::channel::{Incoming, send_ref};
use crate::sys;

/// A child's first message type: it can also say that the child died.
pub(crate) trait Greeting: Serialize + DeserializeOwned {
    /// The message the watchdog sends for a child that died before
    /// connecting.
    fn died() -> Self;
}

/// What a child finds in its environment.
pub(crate) struct BootEnv {
    /// The one-shot server to connect to.
    pub(crate) server: String,
    /// The secret to present.
    pub(crate) secret: Vec<u8>,
    /// The parent's pid.
    pub(crate) parent: u32,
}

impl BootEnv {
    /// The environment variable's value.
    pub(crate) fn encode(server: &str, secret: &[u8]) -> String {
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        format!("{server}\n{hex}\n{}", std::process::id())
    }

    /// Parses the environment variable's value.
    pub(crate) fn parse(value: &std::ffi::OsStr) -> Option<BootEnv> {
        let value = value.to_str()?;
        let mut lines = value.lines();
        let (server, secret, parent) = (lines.next()?, lines.next()?, lines.next()?);
        if !secret.len().is_multiple_of(2) {
            return None;
        }
        let secret = (0..secret.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(secret.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(BootEnv {
            server: server.to_string(),
            secret,
            parent: parent.parse().ok()?,
        })
    }
}

/// Sets (`Some`) or removes (`None`) each environment variable of `env`,
/// in order, for the child `cmd` starts.
pub(crate) fn apply_env(
    cmd: &mut std::process::Command,
    env: &[(std::ffi::OsString, Option<std::ffi::OsString>)],
) {
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
}

/// How a child ended, from [`sys::peek_exit`]'s report.
pub(crate) fn exit_from((exited, status): (bool, i32)) -> weft_sync::WorkerExit {
    if exited {
        weft_sync::WorkerExit::Code(status)
    } else {
        weft_sync::WorkerExit::Signal(status)
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How [`accept_watched`] ended.
pub(crate) enum Accepted<H> {
    /// The child (or something that connected in its place: check the
    /// greeting) sent `H`, or the watchdog sent `H::died()` for a child
    /// that died before connecting (it is not reaped); the receiver is
    /// the channel from whoever connected.
    Hello(IpcReceiver<Incoming<H>>, H),
    /// The deadline passed; the child was killed (it is not reaped).
    TimedOut,
    /// `cancelled` said so; the child was killed (it is not reaped).
    Cancelled,
    /// The first message was refused: why.
    Refused(String),
}

const WATCHING: u8 = 0;
const TIMED_OUT: u8 = 1;
const CANCELLED: u8 = 2;

/// Accepts the child `pid`'s connection on `server` (named `name`),
/// never waiting past `deadline` (`None`: no limit, but a child that dies
/// is still noticed) or past `cancelled()` turning true.
pub(crate) fn accept_watched<H: Greeting>(
    server: IpcOneShotServer<Incoming<H>>,
    name: &str,
    pid: u32,
    deadline: Option<Instant>,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Accepted<H> {
    let done = AtomicBool::new(false);
    let why = AtomicU8::new(WATCHING);
    thread::scope(|s| {
        let watchdog = thread::Builder::new()
            .name("weft-process-watchdog".into())
            .stack_size(64 * 1024)
            .spawn_scoped(s, || {
                watch::<H>(name, pid, deadline, cancelled, &done, &why)
            });
        let Ok(watchdog) = watchdog else {
            // No watchdog: do not risk an `accept` that never returns.
            sys::signal(pid, libc::SIGKILL);
            return Accepted::Refused("no thread could be started to watch the child".into());
        };
        let accepted = catch_unwind(AssertUnwindSafe(|| server.accept()));
        done.store(true, Ordering::SeqCst);
        watchdog.thread().unpark();
        let _ = watchdog.join();
        let gave_up = match why.load(Ordering::SeqCst) {
            TIMED_OUT => Some(Accepted::TimedOut),
            CANCELLED => Some(Accepted::Cancelled),
            _ => None,
        };
        match accepted {
            Ok(Ok((rx, Incoming(hello)))) => {
                if let Some(gave_up) = gave_up {
                    return gave_up;
                }
                Accepted::Hello(rx, hello)
            }
            Ok(Err(e)) => gave_up.unwrap_or_else(|| {
                Accepted::Refused(format!(
                    "its first message could not be decoded (its bytes or its descriptors do not \
                     form a greeting): {e}"
                ))
            }),
            Err(payload) => gave_up.unwrap_or_else(|| {
                Accepted::Refused(format!(
                    "decoding its first message panicked: {}",
                    weft_sync::into_panic_message(payload)
                ))
            }),
        }
    })
}

fn watch<H: Greeting>(
    name: &str,
    pid: u32,
    deadline: Option<Instant>,
    cancelled: &(dyn Fn() -> bool + Sync),
    done: &AtomicBool,
    why: &AtomicU8,
) {
    let mut nap = Duration::from_micros(200);
    while !done.load(Ordering::SeqCst) {
        if sys::peek_exit(pid).is_some() {
            if !done.load(Ordering::SeqCst)
                && let Ok(tx) = IpcSender::<Incoming<H>>::connect(name.to_string())
            {
                let _ = send_ref(&tx.to_opaque(), &H::died());
            }
            return;
        }
        if why.load(Ordering::SeqCst) == WATCHING {
            let give_up = if deadline.is_some_and(|d| Instant::now() >= d) {
                Some(TIMED_OUT)
            } else if cancelled() {
                Some(CANCELLED)
            } else {
                None
            };
            if let Some(reason) = give_up {
                why.store(reason, Ordering::SeqCst);
                // Not reaped: only the caller reaps, after this returns.
                sys::signal(pid, libc::SIGKILL);
            }
        }
        thread::park_timeout(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}
