//! Worker mode: what a pool's child process runs instead of the program.
//!
//! The pool starts the current executable with [`ENV_WORKER`] set and writes
//! the bootstrap on its stdin: the protocol version, the parent's pid, the
//! name of a one-shot ipc-channel server and a random secret. The worker
//! connects, proves it knows the secret, and serves jobs until told to stop
//! or until the parent goes away.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use ipc_channel::ipc::{self, IpcSender};

use crate::registry::{self, Batch};
use crate::sys;
use crate::wire::{Blob, Bytes, ErrKind, FromWorker, ItemOut, PROTOCOL, ToWorker};

/// The environment variable that marks a worker process.
pub(crate) const ENV_WORKER: &str = "WEFT_PROCESS_WORKER";

/// Exit status of a worker whose bootstrap failed.
const EXIT_BOOTSTRAP: i32 = 78;

/// Turns this process into a pool worker if it was started as one, and
/// never returns in that case; otherwise returns at once.
///
/// **With the default `init-hook` feature on Linux, the BSDs and macOS you
/// do not need to call this**: a process constructor does it before `main`
/// (and before libtest in `cargo test` binaries). Call it as the very first
/// statement of `main` where that hook is not available (other platforms,
/// or `default-features = false`); an integration test then needs
/// `harness = false` and its own `main` that calls it first. Calling it when
/// the hook already ran is harmless.
///
/// ```
/// fn main() {
///     weft_process::main_hook();
///     // ... the program, which may build a ProcessPool ...
/// }
/// # main();
/// ```
pub fn main_hook() {
    if std::env::var_os(ENV_WORKER).is_none() {
        return;
    }
    sys::remove_env(ENV_WORKER);
    let code = serve();
    std::process::exit(code);
}

/// Called by the process constructor.
#[cfg(feature = "init-hook")]
pub(crate) fn main_hook_from_constructor() {
    main_hook();
}

/// Whether this process is a pool worker (useful in an initializer or a
/// task; always `false` in the parent).
pub fn is_worker() -> bool {
    IS_WORKER.load(std::sync::atomic::Ordering::Relaxed)
}

static IS_WORKER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn serve() -> i32 {
    IS_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    sys::ignore_sigpipe();
    let mut boot = String::new();
    if std::io::stdin()
        .take(4096)
        .read_to_string(&mut boot)
        .is_err()
    {
        return EXIT_BOOTSTRAP;
    }
    let mut lines = boot.lines();
    let (Some(proto), Some(parent), Some(server), Some(secret)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        eprintln!("weft-process: worker started without a valid bootstrap; exiting");
        return EXIT_BOOTSTRAP;
    };
    if proto != PROTOCOL {
        eprintln!("weft-process: worker speaks {PROTOCOL}, parent sent {proto:?}; exiting");
        return EXIT_BOOTSTRAP;
    }
    let Ok(parent) = parent.parse::<u32>() else {
        return EXIT_BOOTSTRAP;
    };
    if !sys::die_with_parent(parent) {
        return EXIT_BOOTSTRAP;
    }
    let Some(secret) = from_hex(secret) else {
        return EXIT_BOOTSTRAP;
    };
    let Ok(to_parent) = IpcSender::<FromWorker>::connect(server.to_string()) else {
        return EXIT_BOOTSTRAP;
    };
    let Ok((tasks, jobs)) = ipc::channel::<ToWorker>() else {
        return EXIT_BOOTSTRAP;
    };
    let hello = FromWorker::Hello {
        secret: Bytes(secret),
        pid: std::process::id(),
        fingerprint: registry::fingerprint(),
        tasks,
    };
    if to_parent.send(hello).is_err() {
        return EXIT_BOOTSTRAP;
    }
    loop {
        let Ok(msg) = jobs.recv() else {
            // The parent dropped its sender or died.
            return 0;
        };
        let reply = match msg {
            ToWorker::Shutdown => return 0,
            ToWorker::Init { func, arg } => FromWorker::Ready {
                error: run_initializer(&func, arg.as_slice()),
            },
            ToWorker::Run {
                job,
                func,
                ends,
                args,
            } => {
                let (status, data) = run_job(&func, ends.as_slice(), args.as_slice());
                let status = postcard::to_stdvec(&status).unwrap_or_default();
                FromWorker::Done {
                    job,
                    status: Blob::new(status),
                    data: Blob::new(data),
                }
            }
        };
        if to_parent.send(reply).is_err() {
            return 0;
        }
    }
}

fn run_initializer(func: &str, arg: &[u8]) -> Option<String> {
    let ends = [arg.len() as u64];
    let (status, _) = run_job(
        func,
        &postcard::to_stdvec(&ends[..]).unwrap_or_default(),
        arg,
    );
    match status.into_iter().next() {
        Some(ItemOut::Ok(_)) => None,
        Some(ItemOut::Err(_, msg)) => Some(msg),
        None => Some("the initializer produced no result".into()),
    }
}

fn run_job(func: &str, ends: &[u8], args: &[u8]) -> (Vec<ItemOut>, Vec<u8>) {
    let ends: Vec<u64> = match postcard::from_bytes(ends) {
        Ok(e) => e,
        Err(e) => {
            return (
                vec![ItemOut::Err(
                    ErrKind::Serialization,
                    format!("the worker could not decode the job: {e}"),
                )],
                Vec::new(),
            );
        }
    };
    let Some(entry) = registry::lookup_name(func) else {
        let msg = format!(
            "the worker has no function registered as `{func}`: the worker executable does not \
             match the parent (was it rebuilt while the pool ran?)"
        );
        return (
            vec![ItemOut::Err(ErrKind::UnknownFunction, msg); ends.len()],
            Vec::new(),
        );
    };
    let mut batch = Batch::new(args, &ends);
    // `run_batch` catches each item's panic; this guards the rest.
    if catch_unwind(AssertUnwindSafe(|| (entry.run)(&mut batch))).is_err() {
        batch.status.clear();
        batch.out.clear();
    }
    while batch.status.len() < ends.len() {
        batch.status.push(ItemOut::Err(
            ErrKind::Panicked,
            "the worker failed while running the batch".into(),
        ));
    }
    (batch.status, batch.out)
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let b = [0u8, 1, 0xab, 0xff];
        assert_eq!(from_hex(&to_hex(&b)).unwrap(), b);
        assert!(from_hex("abc").is_none());
        assert!(from_hex("zz").is_none());
    }
}
