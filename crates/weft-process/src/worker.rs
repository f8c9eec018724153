//! Worker mode: what a pool's child process runs instead of the program.
//!
//! The pool starts the current executable with [`ENV_WORKER`] set to the
//! name of an ipc-channel one-shot server, a secret and the parent's pid
//! (stdin is `/dev/null`). The worker connects, proves it knows the secret
//! in its [`Hello`] (which carries the sending end of its channel from the
//! parent), and serves jobs until told to stop or until the parent goes
//! away.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use ipc_channel::ipc::{self, IpcSender, IpcSharedMemory, OpaqueIpcReceiver};

use crate::boot::BootEnv;
use crate::channel::{Incoming, send_ref};
use crate::link::{Link, Received};
use crate::registry::{self, Batch};
use crate::sys;
use crate::wire::{Bytes, ErrKind, FromWorker, Hello, ItemOut, ToWorkerIn};

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
        // A `Process`'s child: runs its one function, then exits. It holds
        // its stdio and nothing else of its parent's.
        sys::close_inherited();
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
    // The worker holds its stdio and nothing else of its parent's.
    sys::close_inherited();
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
/// (`wrong-secret`, `wrong-pid`, `garbage`, `oversized`, `fds`, `silent`,
/// `panic`, `exit-before-connect`), so that the tests can check the pool refuses it, or
/// (`bad-second-reply`) send an invalid status list in its second reply.
/// It can only make this worker fail.
const ENV_TEST_HELLO: &str = "WEFT_PROCESS_TEST_HELLO";

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
    /// The last job's results that hold channels, with them, by item.
    carriers: Vec<(u32, OpaqueIpcReceiver)>,
}

fn serve() -> i32 {
    IS_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    sys::ignore_sigpipe();
    let Some(boot) = std::env::var_os(ENV_WORKER)
        .as_deref()
        .and_then(BootEnv::parse)
    else {
        eprintln!("weft-process: worker started without a valid bootstrap; exiting");
        return EXIT_BOOTSTRAP;
    };
    sys::remove_env(ENV_WORKER);
    if !sys::die_with_parent(boot.parent) {
        return EXIT_BOOTSTRAP;
    }
    let BootEnv {
        server, mut secret, ..
    } = boot;
    let hook = std::env::var(ENV_TEST_HELLO).unwrap_or_default();
    let mut pid = std::process::id();
    if let Some(code) = misbehave(&server, &mut secret, &mut pid, &hook) {
        return code;
    }
    let Ok((to_worker, from_parent)) = ipc::channel::<Incoming<ToWorkerIn>>() else {
        return EXIT_BOOTSTRAP;
    };
    let Ok(to_parent) = IpcSender::<Incoming<Hello>>::connect(server) else {
        return EXIT_BOOTSTRAP;
    };
    let to_parent = to_parent.to_opaque();
    let hello = Hello::Worker {
        secret: Bytes(secret),
        pid,
        fingerprint: registry::fingerprint(),
        to_worker: to_worker.to_opaque(),
    };
    if send_ref(&to_parent, &hello).is_err() {
        return EXIT_BOOTSTRAP;
    }
    // The worker's own copy of the sender goes: the channel closes when the
    // parent's does.
    drop(hello);
    let mut link = Link::new(to_parent, from_parent);
    // The `bad-second-reply` test hook: replies until the bad one.
    let mut bad_reply_in = (hook == "bad-second-reply").then_some(2u32);
    let mut scratch = Scratch::default();
    loop {
        let msg = match link.recv(None) {
            Received::Msg(msg) => msg,
            // The parent closed the channel or died.
            Received::Closed | Received::TimedOut => return 0,
            Received::Bad(why) => {
                eprintln!("weft-process: worker got a bad message from the pool ({why}); exiting");
                return EXIT_BOOTSTRAP;
            }
        };
        let sent = match msg {
            ToWorkerIn::Shutdown => return 0,
            ToWorkerIn::Release => {
                link.release_oldest();
                continue;
            }
            ToWorkerIn::Init { func, arg } => {
                let Ok(arg) = link.resolve(arg, usize::MAX) else {
                    return EXIT_BOOTSTRAP;
                };
                let Ok(bytes) = link.bytes(&arg) else {
                    return EXIT_BOOTSTRAP;
                };
                let mut error = run_initializer(func.as_bytes(), bytes, &mut scratch);
                drop(arg);
                if let Some(text) = &mut error {
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
            ToWorkerIn::Run {
                job,
                func,
                ends,
                args,
                carrier,
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
                run_job(
                    func.as_bytes(),
                    ends_bytes,
                    args_bytes,
                    carrier,
                    &mut scratch,
                );
                drop((ends, args));
                scratch.status_bytes.clear();
                if let [ItemOut::Ok(end)] = scratch.status[..] {
                    crate::wire::encode_single_ok(&mut scratch.status_bytes, end);
                } else {
                    // Within what the parent accepts (`wire::status_limit`).
                    crate::wire::cap_error_texts(&mut scratch.status);
                    if crate::wire::encode_to(&scratch.status, &mut scratch.status_bytes).is_err() {
                        return EXIT_BOOTSTRAP;
                    }
                }
                if let Some(n) = &mut bad_reply_in {
                    *n -= 1;
                    if *n == 0 {
                        // Nine results, whatever the job's count.
                        scratch.status_bytes.clear();
                        scratch.status_bytes.push(9);
                        bad_reply_in = None;
                    }
                }
                let status = link.place(&scratch.status_bytes, None);
                let data = link.place(&scratch.out, Some(job));
                let carriers = std::mem::take(&mut scratch.carriers);
                let sent = link.send(&FromWorker::Done {
                    job,
                    status: link.blob(&status, &scratch.status_bytes),
                    data: link.blob(&data, &scratch.out),
                    carriers: &carriers,
                });
                // A large result buffer becomes the spare for the next
                // large argument; a small one is reused for the next result.
                if scratch.out.capacity() > crate::wire::INLINE_MAX {
                    keep_spare(std::mem::take(&mut scratch.out));
                }
                sent
            }
        };
        if sent.is_err() {
            return 0;
        }
    }
}

/// The test hook of [`ENV_TEST_HELLO`]: changes the greeting, or sends
/// something else instead (returning the exit code).
fn misbehave(server: &str, secret: &mut Vec<u8>, pid: &mut u32, how: &str) -> Option<i32> {
    match how {
        "wrong-secret" => secret.iter_mut().for_each(|b| *b ^= 0xff),
        "wrong-pid" => *pid = pid.wrapping_add(1),
        "oversized" => secret.resize(1 << 20, 7),
        "garbage" | "fds" => {
            if how == "garbage"
                && let Ok(tx) = IpcSender::<Vec<u8>>::connect(server.to_string())
            {
                let _ = tx.send(vec![0xff; 64]);
            }
            if how == "fds"
                && let Ok(tx) = IpcSender::<FdsHello>::connect(server.to_string())
            {
                // A greeting whose channel is shared memory instead, with
                // more descriptors than it has fields.
                let shm = IpcSharedMemory::from_bytes(&[1]);
                let _ = tx.send(FdsHello {
                    secret: Bytes(secret.clone()),
                    pid: *pid,
                    fingerprint: registry::fingerprint(),
                    to_worker: shm.clone(),
                    extra: vec![shm; 8],
                });
            }
            std::thread::sleep(Duration::from_secs(60));
            return Some(0);
        }
        "panic" => panic!("weft-process test hook: the worker's own code panicked"),
        "exit-before-connect" => return Some(3),
        "silent" => {
            std::thread::sleep(Duration::from_secs(60));
            return Some(0);
        }
        _ => {}
    }
    None
}

/// What the `fds` test hook sends as its greeting.
#[derive(serde::Serialize, serde::Deserialize)]
struct FdsHello {
    secret: Bytes,
    pid: u32,
    fingerprint: u64,
    to_worker: IpcSharedMemory,
    extra: Vec<IpcSharedMemory>,
}

fn run_initializer(func: &[u8], arg: &[u8], scratch: &mut Scratch) -> Option<String> {
    let mut ends = Vec::new();
    registry::encode_ends(&[arg.len() as u64], &mut ends);
    run_job(func, &ends, arg, None, scratch);
    match scratch.status.pop() {
        Some(ItemOut::Ok(_)) => None,
        Some(ItemOut::Err(_, msg)) => Some(msg),
        None => Some("the initializer produced no result".into()),
    }
}

/// Runs a job; its per-item outcomes and encoded results are left in
/// `scratch.status` and `scratch.out`.
fn run_job(
    func: &[u8],
    ends: &[u8],
    args: &[u8],
    carrier: Option<OpaqueIpcReceiver>,
    scratch: &mut Scratch,
) {
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
    batch.carrier = carrier;
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
    scratch.carriers = std::mem::take(&mut batch.result_carriers);
}
