//! Worker mode: what a pool's child process runs instead of the program.
//!
//! The pool starts the current executable with [`ENV_WORKER`] set and its
//! end of a `SOCK_SEQPACKET` socket pair as stdin. The worker moves the
//! socket off stdin (which becomes `/dev/null`), reads the pool's
//! [`ToWorker::Boot`] (protocol version, parent pid, secret), proves it
//! knows the secret in its [`FromWorker::Hello`], and serves jobs until told
//! to stop or until the parent goes away.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use crate::link::{Link, Received};
use crate::registry::{self, Batch};
use crate::sys;
use std::os::fd::AsRawFd;

use crate::wire::{Blob, ErrKind, FromWorker, ItemOut, MAX_FRAME, PROTOCOL, Raw, ToWorker};

/// The environment variable that marks a worker process.
pub(crate) const ENV_WORKER: &str = "WEFT_PROCESS_WORKER";

/// Exit status of a worker (or a `Process`'s child) whose bootstrap failed.
pub(crate) const EXIT_BOOTSTRAP: i32 = 78;

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
    if let Some(boot) = std::env::var_os(crate::process::ENV_PROCESS) {
        // A `Process`'s child: runs its one function, then exits.
        sys::remove_env(crate::process::ENV_PROCESS);
        // A panic must not unwind into the init hook, which would go on
        // into `main`: the child would run the program itself.
        let code = catch_unwind(AssertUnwindSafe(|| crate::process::serve_child(boot)))
            .unwrap_or(crate::process::EXIT_PANIC);
        std::process::exit(code);
    }
    if std::env::var_os(ENV_WORKER).is_none() {
        return;
    }
    sys::remove_env(ENV_WORKER);
    // As for a `Process`'s child: a panic in the worker's own code must not
    // unwind into the init hook and on into `main`.
    let code = catch_unwind(serve).unwrap_or(crate::process::EXIT_PANIC);
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

/// A test hook: makes the worker break its own handshake in the way named
/// (`wrong-secret`, `wrong-pid`, `garbage`, `oversized`, `fds`, `silent`),
/// so that the tests can check the pool refuses it, or (`no-remote`) offer
/// no address for the parent to probe, so that large results travel in
/// shared memory, or (`bad-second-reply`) send an invalid status list in
/// its second reply. It can only make this worker fail or slower.
const ENV_TEST_HELLO: &str = "WEFT_PROCESS_TEST_HELLO";

/// How long a worker waits for the pool's first message.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Large result buffers a worker keeps for the next large argument (a
/// warm buffer instead of fresh pages), up to this size.
const SPARE_MAX: usize = sys::REGION_MAX;

thread_local! {
    /// See [`SPARE_MAX`].
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A buffer for a `len`-byte argument: the worker's spare one if it is
/// large enough, else a fresh one.
pub(crate) fn buffer_for(len: usize) -> Vec<u8> {
    if len > crate::wire::INLINE_MAX
        && let Ok(Some(spare)) = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            (s.capacity() >= len).then(|| std::mem::take(&mut *s))
        })
    {
        let mut spare = spare;
        spare.clear();
        return spare;
    }
    sys::byte_buffer(len)
}

fn keep_spare(buf: Vec<u8>) {
    if buf.capacity() > crate::wire::INLINE_MAX && buf.capacity() <= SPARE_MAX {
        let _ = SPARE.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.capacity() < buf.capacity() {
                *s = buf;
            }
        });
    }
}

/// Buffers a worker reuses from job to job, so that a tiny task allocates
/// nothing but what the function itself does.
#[derive(Default)]
struct Scratch {
    last: Option<&'static registry::Entry>,
    ends: Vec<u64>,
    status: Vec<ItemOut>,
    status_bytes: Vec<u8>,
    out: Vec<u8>,
}

fn serve() -> i32 {
    IS_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    sys::ignore_sigpipe();
    let sock = match sys::take_stdin_channel() {
        Ok(sock) => sock,
        Err(e) => {
            eprintln!("weft-process: worker started without the pool's channel ({e}); exiting");
            return EXIT_BOOTSTRAP;
        }
    };
    let mut link = Link::new(sock);
    let mut rbuf = Vec::new();
    let (parent, mut secret) = match link
        .recv::<ToWorker<'_>>(&mut rbuf, Some(Instant::now() + BOOT_TIMEOUT))
    {
        Received::Msg(ToWorker::Boot {
            protocol: PROTOCOL,
            parent,
            secret,
        }) => (parent, secret.0.to_vec()),
        Received::Msg(ToWorker::Boot { protocol, .. }) => {
            eprintln!("weft-process: worker speaks {PROTOCOL}, parent sent {protocol:?}; exiting");
            return EXIT_BOOTSTRAP;
        }
        _ => {
            eprintln!("weft-process: worker started without a valid bootstrap; exiting");
            return EXIT_BOOTSTRAP;
        }
    };
    if !sys::die_with_parent(parent) {
        return EXIT_BOOTSTRAP;
    }
    let mut pid = std::process::id();
    if let Some(how) = std::env::var_os(ENV_TEST_HELLO)
        && let Some(code) = misbehave(
            &mut link,
            &mut secret,
            &mut pid,
            how.to_str().unwrap_or_default(),
        )
    {
        return code;
    }
    let probe = if std::env::var_os(ENV_TEST_HELLO).is_some_and(|v| v == "no-remote") {
        0
    } else {
        secret.as_ptr() as u64
    };
    // `secret` stays alive (and unmoved) while the parent reads the probe.
    let hello = FromWorker::Hello {
        secret: Raw(&secret),
        pid,
        fingerprint: registry::fingerprint(),
        probe,
    };
    if link.send(&hello).is_err() {
        return EXIT_BOOTSTRAP;
    }
    // The `bad-second-reply` test hook: replies until the bad one.
    let mut bad_reply_in = std::env::var_os(ENV_TEST_HELLO)
        .is_some_and(|v| v == "bad-second-reply")
        .then_some(2u32);
    let mut scratch = Scratch::default();
    // May large results be handed over by address?
    let mut remote = false;
    // What the parent has not released yet, oldest first: a result by
    // address (kept here), or the region (`None`).
    let mut handed: VecDeque<Option<Vec<u8>>> = VecDeque::new();
    loop {
        let msg = match link.recv::<ToWorker<'_>>(&mut rbuf, None) {
            Received::Msg(msg) => msg,
            // The parent closed the channel or died.
            Received::Closed | Received::TimedOut => return 0,
            Received::Bad(why) => {
                eprintln!("weft-process: worker got a bad message from the pool ({why}); exiting");
                return EXIT_BOOTSTRAP;
            }
        };
        let sent = match msg {
            ToWorker::Shutdown => return 0,
            ToWorker::Boot { .. } => return EXIT_BOOTSTRAP,
            ToWorker::Release => {
                match handed.pop_front() {
                    Some(Some(buf)) => keep_spare(buf),
                    Some(None) => link.release(0),
                    None => {}
                }
                continue;
            }
            ToWorker::RemoteOk => {
                remote = true;
                continue;
            }
            ToWorker::RemoteOff => {
                remote = false;
                continue;
            }
            ToWorker::Init { func, arg } => {
                let Ok(arg) = link.resolve(arg, usize::MAX) else {
                    return EXIT_BOOTSTRAP;
                };
                let Ok(bytes) = link.bytes(&arg) else {
                    return EXIT_BOOTSTRAP;
                };
                let mut error = run_initializer(func.0, bytes, &mut scratch);
                drop(arg);
                if let Some(text) = &mut error {
                    // The answer must fit in one message.
                    let mut keep = text.len().min(crate::wire::ERR_TEXT_MAX);
                    while !text.is_char_boundary(keep) {
                        keep -= 1;
                    }
                    text.truncate(keep);
                }
                link.send(&FromWorker::Ready {
                    error: error.as_deref(),
                })
            }
            ToWorker::Run {
                job,
                func,
                ends,
                args,
            } => {
                let (Ok(ends), Ok(args)) = (
                    link.resolve(ends, usize::MAX),
                    link.resolve(args, usize::MAX),
                ) else {
                    return EXIT_BOOTSTRAP;
                };
                let (Ok(ends_bytes), Ok(args_bytes)) = (link.bytes(&ends), link.bytes(&args))
                else {
                    return EXIT_BOOTSTRAP;
                };
                run_job(func.0, ends_bytes, args_bytes, &mut scratch);
                drop((ends, args));
                scratch.status_bytes.clear();
                if let [ItemOut::Ok(end)] = scratch.status[..] {
                    // What postcard writes for `vec![ItemOut::Ok(end)]`.
                    scratch.status_bytes.extend_from_slice(&[1, 0]);
                    crate::wire::fast::varint(&mut scratch.status_bytes, end);
                } else {
                    // Within what the parent accepts (`wire::status_limit`).
                    crate::wire::cap_error_texts(&mut scratch.status);
                    if crate::wire::encode_to(&scratch.status, &mut scratch.status_bytes).is_err() {
                        return EXIT_BOOTSTRAP;
                    }
                }
                // (Task code may have made the process non-dumpable since
                // the parent checked: the parent could not read it then.)
                let by_address =
                    remote && scratch.out.len() > crate::wire::INLINE_MAX && sys::dumpable();
                // Wrapped in field order (status, then data): the parent
                // takes the message's descriptors in that order.
                let status = link.blob(&scratch.status_bytes, None);
                let data = if by_address {
                    Ok(Blob::Remote {
                        addr: scratch.out.as_ptr() as u64,
                        len: scratch.out.len() as u64,
                    })
                } else {
                    link.blob(&scratch.out, Some(0))
                };
                let (Ok(mut status), Ok(data)) = (status, data) else {
                    return EXIT_BOOTSTRAP;
                };
                if let Some(n) = &mut bad_reply_in {
                    *n -= 1;
                    if *n == 0 {
                        // Nine results, whatever the job's count.
                        status = Blob::Inline(Raw(&[9]));
                        bad_reply_in = None;
                    }
                }
                let in_region = matches!(data, Blob::Region { .. } | Blob::NewRegion { .. });
                let sent = link.send_with(|out| {
                    crate::wire::fast::encode_done(out, job, &status, &data);
                    Ok(())
                });
                if by_address {
                    // Kept, unmoved, until the parent has read it.
                    handed.push_back(Some(std::mem::take(&mut scratch.out)));
                } else {
                    if in_region {
                        handed.push_back(None);
                    }
                    // A large result buffer becomes the spare for the next
                    // large argument; a small one is reused for the next
                    // result.
                    if scratch.out.capacity() > crate::wire::INLINE_MAX {
                        keep_spare(std::mem::take(&mut scratch.out));
                    }
                }
                sent
            }
        };
        if sent.is_err() {
            return 0;
        }
    }
}

/// The test hook of [`ENV_TEST_HELLO`]: changes the handshake, or sends
/// something else instead (returning the exit code).
fn misbehave(link: &mut Link, secret: &mut [u8], pid: &mut u32, how: &str) -> Option<i32> {
    match how {
        "wrong-secret" => secret.iter_mut().for_each(|b| *b ^= 0xff),
        "wrong-pid" => *pid = pid.wrapping_add(1),
        "garbage" | "oversized" | "fds" => {
            let packet = match how {
                "garbage" => vec![0xff; 64],
                "fds" => vec![0; 8],
                _ => vec![0; MAX_FRAME + 1],
            };
            let extra = sys::memfd_with(&[1]).ok()?;
            let fds = if how == "fds" {
                vec![extra.as_raw_fd(); sys::MAX_FDS + 1]
            } else {
                Vec::new()
            };
            let _ = sys::send_msg(link.fd(), &packet, &fds);
            std::thread::sleep(Duration::from_secs(60));
            return Some(0);
        }
        "panic" => panic!("weft-process test hook: the worker's own code panicked"),
        "silent" => {
            std::thread::sleep(Duration::from_secs(60));
            return Some(0);
        }
        _ => {}
    }
    None
}

fn run_initializer(func: &[u8], arg: &[u8], scratch: &mut Scratch) -> Option<String> {
    let mut ends = Vec::new();
    registry::encode_ends(&[arg.len() as u64], &mut ends);
    run_job(func, &ends, arg, scratch);
    match scratch.status.pop() {
        Some(ItemOut::Ok(_)) => None,
        Some(ItemOut::Err(_, msg)) => Some(msg),
        None => Some("the initializer produced no result".into()),
    }
}

/// Runs a job; its per-item outcomes and encoded results are left in
/// `scratch.status` and `scratch.out`.
fn run_job(func: &[u8], ends: &[u8], args: &[u8], scratch: &mut Scratch) {
    scratch.status.clear();
    scratch.out.clear();
    if let Err(e) = registry::decode_ends(ends, &mut scratch.ends) {
        scratch.status.push(ItemOut::Err(
            ErrKind::Serialization,
            format!("the worker could not decode the job: {e}"),
        ));
        return;
    }
    let count = scratch.ends.len();
    // The last function run, checked first: a pool mostly runs one.
    let entry = match scratch.last {
        Some(e) if e.name.as_bytes() == func => Some(e),
        _ => std::str::from_utf8(func)
            .ok()
            .and_then(registry::lookup_name),
    };
    scratch.last = entry;
    let Some(entry) = entry else {
        let func = String::from_utf8_lossy(func);
        let msg = format!(
            "the worker has no function registered as `{func}`: the worker executable does not \
             match the parent (was it rebuilt while the pool ran?)"
        );
        scratch
            .status
            .resize(count, ItemOut::Err(ErrKind::UnknownFunction, msg));
        return;
    };
    let status = std::mem::take(&mut scratch.status);
    let out = std::mem::take(&mut scratch.out);
    let mut batch = Batch::new(args, &scratch.ends, status, out);
    // `run_batch` catches each item's panic; this guards the rest.
    if catch_unwind(AssertUnwindSafe(|| (entry.run)(&mut batch))).is_err() {
        batch.status.clear();
        batch.out.clear();
    }
    while batch.status.len() < count {
        batch.status.push(ItemOut::Err(
            ErrKind::Panicked,
            "the worker failed while running the batch".into(),
        ));
    }
    scratch.status = batch.status;
    scratch.out = batch.out;
}
