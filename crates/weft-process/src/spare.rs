//! The pool's spare worker ([`ProcessPoolBuilder::spare_worker`]).
//!
//! Starting a worker is a `fork` + `exec` of the whole program, its
//! dynamic loading and the authenticated handshake: milliseconds, most of
//! what a lost worker costs its slot. With a spare, one more worker is
//! started, handshaken and initialized ahead of need, and waits idle; a
//! slot that loses its worker (crash, timeout, cancellation, recycling)
//! takes the spare at once, and the keeper thread starts the next spare in
//! the background. The spare is a worker like any other (same program,
//! same bootstrap and initializer, same watcher), so every failure rule of
//! the pool holds for it: a spare that dies while idle is reaped and
//! replaced, `terminate` kills it, `shutdown` asks it to exit, and it dies
//! with the parent.
//!
//! [`ProcessPoolBuilder::spare_worker`]: crate::ProcessPoolBuilder::spare_worker

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};

use crate::pool::{Inner, lock};
use crate::supervisor::{Worker, deadline, spawn_worker};
use crate::wire::ToWorker;

/// The spare worker's state, shared by the keeper thread and the slots.
pub(crate) struct Spare {
    state: Mutex<State>,
    /// Signalled when a boot ends (a spare is ready, or it failed) or the
    /// keeper retires.
    changed: Condvar,
    /// The pid of the spare while it is unreaped and not taken by a slot
    /// (killed by `terminate`).
    pub(crate) pid: Mutex<Option<u32>>,
    /// Wakes the keeper: a slot took the spare (or wanted one), the spare
    /// exited, or the pool is closing.
    wake: (Sender<()>, Receiver<()>),
}

#[derive(Default)]
struct State {
    /// The spare, booted and initialized.
    worker: Option<Worker>,
    /// The keeper is starting one now.
    booting: bool,
}

impl Spare {
    pub(crate) fn new() -> Spare {
        Spare {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            pid: Mutex::new(None),
            wake: crossbeam_channel::bounded(1),
        }
    }

    /// Wakes the keeper thread (at most one wake is pending).
    pub(crate) fn wake(&self) {
        let _ = self.wake.0.try_send(());
    }

    /// The pid of the spare, if one is ready now.
    pub(crate) fn ready_pid(&self) -> Option<u32> {
        lock(&self.state).worker.as_ref().map(|w| w.child.id())
    }
}

/// Whether the keeper should stop: the pool is terminating or takes no
/// new tasks.
fn stopping(inner: &Inner) -> bool {
    inner.terminating.load(Ordering::SeqCst) || lock(&inner.jobs_tx).is_none()
}

/// The keeper thread: keeps one spare worker ready until the pool closes,
/// then waits for `slots_alive` to disconnect (every supervisor thread has
/// ended). A worker dies with the thread that started it
/// (`PR_SET_PDEATHSIG` follows the parent *thread*), and spares the
/// keeper started may be serving slots until then.
pub(crate) fn keep(inner: Arc<Inner>, slots_alive: Receiver<()>) {
    let Some(spare) = inner.spare.as_ref() else {
        return;
    };
    // After a failed start, the next try waits for a slot to want a spare
    // (a worker that cannot start must not be retried in a loop).
    let mut failed = false;
    while !stopping(&inner) {
        let boot = {
            let mut st = lock(&spare.state);
            let boot = st.worker.is_none() && !failed;
            st.booting = boot;
            boot
        };
        if boot {
            let started = catch_unwind(AssertUnwindSafe(|| {
                spawn_worker(
                    &inner,
                    &spare.pid,
                    spare.wake.0.clone(),
                    "weft-process-watch-spare".into(),
                )
            }));
            let mut st = lock(&spare.state);
            st.booting = false;
            match started {
                Ok(Ok(w)) => st.worker = Some(w),
                Ok(Err(_)) | Err(_) => failed = true,
            }
            drop(st);
            spare.changed.notify_all();
            continue;
        }
        select! {
            recv(spare.wake.1) -> _ => {}
            recv(inner.stop_rx) -> _ => {}
        }
        failed = false;
        // A spare that exited while idle (killed from outside, or it
        // crashed): reap it; the loop starts the next one.
        let dead = {
            let mut st = lock(&spare.state);
            match st.worker.as_mut().map(|w| w.child.try_wait()) {
                None | Some(Ok(None)) => None,
                Some(_) => st.worker.take(),
            }
        };
        if let Some(mut w) = dead {
            w.reap(&spare.pid, Duration::ZERO);
        }
    }
    let last = lock(&spare.state).worker.take();
    spare.changed.notify_all();
    if let Some(mut w) = last {
        if inner.terminating.load(Ordering::SeqCst) {
            let _ = w.child.kill();
            w.reap(&spare.pid, Duration::from_secs(2));
        } else {
            let _ = w.link.send(&ToWorker::Shutdown);
            w.reap(&spare.pid, inner.config.shutdown_grace);
        }
    }
    let _ = slots_alive.recv();
}

/// Hands the spare to `slot`, whose worker is gone: the one ready, or the
/// one booting once it is ready (never waiting past the start timeout).
/// `None` if the pool has no spare, or it failed to start or died; the
/// slot then starts a worker itself. Either way the keeper is woken to
/// start the next spare.
pub(crate) fn take(inner: &Inner, slot: usize) -> Option<Worker> {
    let spare = inner.spare.as_ref()?;
    let limit = deadline(Instant::now(), inner.config.start_timeout);
    let mut st = lock(&spare.state);
    while st.worker.is_none() && st.booting && !inner.terminating.load(Ordering::SeqCst) {
        let left = limit.map_or(Duration::from_millis(50), |d| {
            d.saturating_duration_since(Instant::now())
        });
        if left.is_zero() {
            break;
        }
        st = spare
            .changed
            .wait_timeout(st, left.min(Duration::from_millis(50)))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    // The pid moves to the slot under the state lock: while a spare is
    // ready the keeper starts no other, so the spare's pid slot holds this
    // worker's pid and nothing else can write it meanwhile.
    let taken = st.worker.take().map(|mut w| {
        // From now on its exit wakes the slot's supervisor.
        *lock(&w.notify) = inner.nudge[slot].0.clone();
        let mut spare_pid = lock(&spare.pid);
        if matches!(w.child.try_wait(), Ok(None)) {
            // The terminate flag checked under both pid locks: `terminate`
            // (which sets it, then kills every pid it finds) sees the
            // worker in one place or the other.
            let mut slot_pid = lock(&inner.slots[slot]);
            if !inner.terminating.load(Ordering::SeqCst) {
                *slot_pid = spare_pid.take();
                return (w, None);
            }
        }
        // Dead, or the pool is terminating: reaped below, its pid out of
        // the spare's slot (which the next spare's start writes).
        let pid = Mutex::new(spare_pid.take());
        (w, Some(pid))
    });
    drop(st);
    spare.wake();
    match taken? {
        (w, None) => Some(w),
        (mut w, Some(pid)) => {
            let _ = w.child.kill();
            w.reap(&pid, Duration::from_secs(2));
            None
        }
    }
}
