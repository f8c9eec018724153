//! Unix signals as awaitable events: asyncio's `loop.add_signal_handler`.
//!
//! This is `async-signal` (the smol family's, on `async-io`, which the
//! runtime drives): [`Signals`] is a stream of the signals it was made for,
//! and [`ctrl_c`] waits for the next `SIGINT`. Works in
//! [`run`](crate::run), in [`multi`](crate::multi) and on any other
//! executor.
//!
//! | Python | weft |
//! |---|---|
//! | `loop.add_signal_handler(SIGTERM, cb)` | `let mut s = Signals::new([Signal::Term])?;` then a task that runs `cb` for each `s.next().await` |
//! | `loop.remove_signal_handler(SIGTERM)` | drop the [`Signals`] (or [`remove_signals`](Signals::remove_signals)) |
//! | `KeyboardInterrupt` in `asyncio.run` | [`ctrl_c().await`](ctrl_c) |
//!
//! # What registering does
//!
//! From the moment a [`Signals`] is made for a signal, that signal's default
//! action (ending the process, for `SIGTERM` and `SIGINT`) no longer
//! happens: the signal is delivered to the stream instead. Make the
//! [`Signals`] *before* the signal can arrive. After the stream is dropped
//! the signal is caught and ignored for the rest of the process's life
//! (the handler stays installed, as with tokio); a program that should
//! then exit on it says so itself. Signals that arrive while nobody polls
//! the stream are kept (several of one kind may merge into one).
//!
//! # Example: a graceful shutdown on SIGTERM
//!
//! ```
//! use futures_lite::StreamExt;
//! use weft_async::signal::{Signal, Signals};
//!
//! weft_async::run(async {
//!     let mut signals = Signals::new([Signal::Term])?; // before it can arrive
//!     let pid = std::process::id().to_string();
//!     // Anyone may send it; here a child process sends it to us.
//!     let kill = format!("kill -TERM {pid}");
//!     weft_async::process::Command::new("sh").args(["-c", &kill]).status().await?;
//!     let got = signals.next().await.expect("the stream never ends")?;
//!     assert_eq!(got, Signal::Term); // clean up and return instead of dying
//!     std::io::Result::Ok(())
//! })
//! .unwrap();
//! ```

use std::io;

use futures_lite::StreamExt;

pub use async_signal::{Signal, Signals};

/// Waits for the next `SIGINT` (Ctrl-C in a terminal): the `Signals` for
/// it is made on the first poll, so until then Ctrl-C ends the process as
/// usual; from then on it is delivered here (and caught for the rest of the
/// process's life, see the [module](self) docs).
///
/// # Example
///
/// ```no_run
/// weft_async::run(async {
///     let server = weft_async::spawn(async { /* serve */ });
///     weft_async::signal::ctrl_c().await?;
///     eprintln!("Ctrl-C: shutting down");
///     drop(server); // cancels it
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    let mut signals = Signals::new([Signal::Int])?;
    match signals.next().await {
        Some(result) => result.map(drop),
        None => Err(io::Error::other(
            "weft-async: the SIGINT stream ended (async-signal never ends it)",
        )),
    }
}
