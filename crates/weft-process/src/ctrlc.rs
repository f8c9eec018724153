//! [`ProcessPoolBuilder::shutdown_on_ctrl_c`](crate::ProcessPoolBuilder::shutdown_on_ctrl_c):
//! a terminal's Ctrl-C terminates the pools that asked for it.
//!
//! Workers run in their own process group, so a terminal's Ctrl-C
//! (SIGINT to the foreground group) reaches the parent only. One thread
//! per program waits for SIGINT through `async-signal` (whose handler only
//! writes to a pipe: nothing else runs in the handler) and then, outside
//! any handler, terminates every live pool that opted in: their workers are
//! killed and reaped and their tasks fail with `Cancelled`, so a program
//! blocked on a result wakes up and goes on (Python: `KeyboardInterrupt`
//! in the main thread, then the pool's `terminate`). A Ctrl-C that finds no
//! such pool alive (a second one, say) ends the program as a Ctrl-C would
//! have: SIGINT's default action is restored and the signal raised again.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread;

use futures_lite::StreamExt;

use crate::pool::{Inner, lock, terminate_inner};
use crate::sys;

/// The pools that opted in (weak: a dropped pool is skipped).
static POOLS: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
/// Whether the SIGINT thread runs (or why it could not start).
static WATCHER: OnceLock<Result<(), String>> = OnceLock::new();

/// Terminates `inner`'s pool on the next Ctrl-C.
pub(crate) fn watch(inner: &Arc<Inner>) -> Result<(), String> {
    WATCHER.get_or_init(start).clone()?;
    let mut pools = lock(&POOLS);
    pools.retain(|p| p.strong_count() > 0);
    pools.push(Arc::downgrade(inner));
    Ok(())
}

fn start() -> Result<(), String> {
    let signals = async_signal::Signals::new([async_signal::Signal::Int])
        .map_err(|e| format!("SIGINT could not be watched: {e}"))?;
    thread::Builder::new()
        .name("weft-process-ctrl-c".into())
        .stack_size(128 * 1024)
        .spawn(move || run(signals))
        .map_err(|e| format!("no thread to watch for Ctrl-C: {e}"))?;
    Ok(())
}

fn run(mut signals: async_signal::Signals) {
    loop {
        match futures_lite::future::block_on(signals.next()) {
            Some(Ok(_)) => {}
            // Not a signal (the pipe failed): nothing can be watched any
            // more; give SIGINT its default action back.
            Some(Err(_)) | None => {
                drop(signals);
                sys::default_sigint();
                return;
            }
        }
        let pools: Vec<Arc<Inner>> = lock(&POOLS).drain(..).filter_map(|p| p.upgrade()).collect();
        if pools.is_empty() {
            sys::default_sigint();
            sys::raise_sigint();
            continue;
        }
        for pool in pools {
            terminate_inner(&pool);
        }
    }
}
