//! The sleep/wake protocol: idle workers park here, and whoever makes work
//! visible wakes a worker only when no idle worker is already looking for
//! work (rayon's and tokio's rule), so a burst of pushes wakes one worker,
//! which wakes the next only if it finds more work than it takes.
//!
//! One atomic word, `state`, counts the workers that are **searching**
//! (awake and looking for work, in a worker's spin-then-yield phase) and
//! those **idle** (asleep, or about to be, and not yet claimed by a
//! waker). Each sleeping worker has a place on a stack of sleepers (under a
//! lock that only sleepers and actual wake-ups take) and is woken with its
//! own `thread::unpark` (a futex wake of that one thread; there is no shared
//! condition variable).
//!
//! The protocol is a Dekker-style handshake on `state`:
//!
//! * a searching worker about to sleep turns itself from searching into
//!   idle in one `SeqCst` read-modify-write (and puts its index on the
//!   stack of sleepers under the `sleepers` lock), issues a `SeqCst` fence
//!   and looks for work once more (`recheck`); only if it finds none does it
//!   park, until a waker claims it;
//! * a producer first makes its work visible, issues a `SeqCst` fence and
//!   reads `state`; if no worker is searching and some are idle, it pops one
//!   sleeper under the lock, turns it from idle into searching, marks it
//!   claimed and unparks it;
//! * a searching worker that finds work stops searching (a `SeqCst`
//!   read-modify-write); if it was the last searcher and workers are idle,
//!   it issues a fence and, if more work is visible, wakes one of them.
//!
//! A producer that saw a searcher skipped the wake; that searcher then
//! either goes to sleep, and its recheck (after its own update of `state`)
//! sees the work, or finds work, and then, being the last searcher, sees the
//! remaining work and wakes an idle worker for it (or there is none idle,
//! and every worker is busy or searching and will come back to the queues).
//! A producer that saw no searcher and no idle worker skipped it too: every
//! worker then was busy, or between its last look and its update of
//! `state`, whose recheck comes after. So work pushed while a worker goes to
//! sleep is never stranded. The common case, every worker busy, costs the
//! producer one fence and one load, as does a burst of pushes while a worker
//! searches.
//!
//! [`Waiters`] is the same handshake for workers that are not idle but
//! blocked in a wait of their own (a cross-pool `install`), parked with
//! `thread::park`, which must still hear of work of one kind (other pools'
//! `install` jobs sent to theirs) so that two opposite install chains cannot
//! block each other.
//!
//! `tests/loom.rs` checks both with loom through [`crate::shim`].

use crate::shim::{AtomicBool, AtomicUsize, Mutex, Ordering, Thread, current_thread, fence, park};

/// `state`: idle workers in the low bits, searching ones above.
const IDLE_MASK: usize = 0xffff;
/// One searching worker in `state`.
const SEARCHING: usize = IDLE_MASK + 1;

#[derive(Debug)]
struct Sleepers {
    /// Workers asleep (or about to be) that no waker has claimed yet, most
    /// recent last (woken first: its caches are the warmest).
    stack: Vec<(usize, Thread)>,
    /// Per worker: set by the waker that claimed it, cleared by the worker.
    claimed: Vec<bool>,
    /// Set once, at shutdown: every sleeper leaves and none sleeps again.
    terminated: bool,
}

/// Where idle workers sleep. See the module documentation.
#[derive(Debug)]
pub struct Sleep {
    /// Idle workers (low bits) and searching ones (times `SEARCHING`).
    state: AtomicUsize,
    sleepers: Mutex<Sleepers>,
}

impl Sleep {
    /// A sleep room for workers `0..n` (`n` below 65,536).
    pub fn new(n: usize) -> Self {
        assert!(n <= IDLE_MASK, "too many workers for the sleep state");
        Sleep {
            state: AtomicUsize::new(0),
            sleepers: Mutex::new(Sleepers {
                stack: Vec::with_capacity(n),
                claimed: vec![false; n],
                terminated: false,
            }),
        }
    }

    /// Worker is idle and starts looking for work: counts it as searching,
    /// so producers leave waking others to it. Pair with
    /// [`found_work`](Self::found_work) or [`sleep`](Self::sleep).
    #[inline]
    pub fn start_searching(&self) {
        self.state.fetch_add(SEARCHING, Ordering::SeqCst);
    }

    /// A searching worker found work and stops searching. If it was the
    /// last searcher and workers are idle, wakes one of them when
    /// `more_work` (run after a fence) still sees work: the job this worker
    /// took may not have been the only one pushed while it searched.
    #[inline]
    pub fn found_work(&self, more_work: impl FnOnce() -> bool) {
        let prev = self.state.fetch_sub(SEARCHING, Ordering::SeqCst);
        if prev < 2 * SEARCHING && prev & IDLE_MASK != 0 {
            self.found_work_cold(more_work);
        }
    }

    #[cold]
    fn found_work_cold(&self, more_work: impl FnOnce() -> bool) {
        fence(Ordering::SeqCst);
        if more_work() {
            self.wake_one();
        }
    }

    /// Puts worker `index`, which is searching, to sleep until a waker
    /// claims it or [`terminate`](Self::terminate) is called, unless
    /// `recheck` (run after this worker has announced itself as idle) finds
    /// work. Returns `true` if it actually slept. Either way the worker is
    /// searching again when this returns.
    pub fn sleep(&self, index: usize, recheck: impl FnOnce() -> bool) -> bool {
        {
            let mut sl = self.sleepers.lock();
            if sl.terminated {
                return false;
            }
            sl.stack.push((index, current_thread()));
            // Searching -> idle.
            self.state.fetch_sub(SEARCHING - 1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
        }
        if recheck() {
            let mut sl = self.sleepers.lock();
            if let Some(pos) = sl.stack.iter().position(|(i, _)| *i == index) {
                sl.stack.swap_remove(pos);
                // Idle -> searching, unclaimed.
                self.state.fetch_add(SEARCHING - 1, Ordering::SeqCst);
                return false;
            }
            // A waker claimed us (and made us searching): take its
            // notification below, so that it is not left for the next sleep.
        }
        loop {
            let mut sl = self.sleepers.lock();
            if std::mem::take(&mut sl.claimed[index]) {
                return true;
            }
            drop(sl);
            // An unpark may come early (then `park` returns at once) or be
            // left over from an earlier claim (then we look again).
            park();
        }
    }

    /// Called after making one piece of work visible: wakes one idle
    /// worker, unless a worker is searching already (it will find the work,
    /// or wake another for it) or none is idle.
    #[inline]
    pub fn notify_one(&self) {
        fence(Ordering::SeqCst);
        let s = self.state.load(Ordering::SeqCst);
        if s & IDLE_MASK == 0 || s >= SEARCHING {
            return;
        }
        self.wake_one();
    }

    /// Claims the most recent sleeper, if any, and wakes it, searching.
    #[cold]
    fn wake_one(&self) {
        let mut sl = self.sleepers.lock();
        let Some((index, thread)) = sl.stack.pop() else {
            return;
        };
        // Idle -> searching.
        self.state.fetch_add(SEARCHING - 1, Ordering::SeqCst);
        sl.claimed[index] = true;
        drop(sl);
        thread.unpark();
    }

    /// Wakes every worker asleep now (for work meant for every worker, such
    /// as a broadcast). Sleepers that find nothing go back to sleep.
    pub fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) & IDLE_MASK == 0 {
            return;
        }
        self.wake_all(false);
    }

    fn wake_all(&self, terminate: bool) {
        let mut sl = self.sleepers.lock();
        sl.terminated |= terminate;
        let woken = std::mem::take(&mut sl.stack);
        // Idle -> searching, for each.
        self.state
            .fetch_add(woken.len() * (SEARCHING - 1), Ordering::SeqCst);
        for (index, _) in &woken {
            sl.claimed[*index] = true;
        }
        drop(sl);
        for (_, thread) in woken {
            thread.unpark();
        }
    }

    /// Wakes every sleeper for good: after this, [`sleep`](Self::sleep)
    /// returns at once.
    pub fn terminate(&self) {
        self.wake_all(true);
    }

    /// How many workers are idle (asleep or about to be, unclaimed).
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn sleepers(&self) -> usize {
        self.state.load(Ordering::SeqCst) & IDLE_MASK
    }

    /// How many workers are searching.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn searching(&self) -> usize {
        self.state.load(Ordering::SeqCst) / SEARCHING
    }
}

/// Workers blocked in a wait that want to hear of one kind of work while
/// they wait (see the module documentation). A Dekker handshake, as in
/// [`Sleep`]: the waiter announces itself and then looks for work; the
/// producer makes its work visible and then looks for waiters. One of the
/// two sees the other.
#[derive(Debug)]
pub struct Waiters {
    /// How many flags below are up; read without a lock by producers, so
    /// that the common case (nobody waiting) costs one fence and one load.
    count: AtomicUsize,
    /// One per worker: up while that worker is in [`wait`](Self::wait).
    flags: Box<[AtomicBool]>,
}

impl Waiters {
    /// Room for workers `0..n`.
    pub fn new(n: usize) -> Self {
        Waiters {
            count: AtomicUsize::new(0),
            flags: (0..n).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Worker `index` announces that it waits, then runs `recheck`; unless
    /// that finds work, it calls `park` (which may return spuriously: the
    /// caller loops). Returns `true` if it parked.
    pub fn wait(&self, index: usize, recheck: impl FnOnce() -> bool, park: impl FnOnce()) -> bool {
        self.flags[index].store(true, Ordering::SeqCst);
        self.count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let parked = !recheck();
        if parked {
            park();
        }
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.flags[index].store(false, Ordering::SeqCst);
        parked
    }

    /// Called after making work visible: calls `unpark(index)` for every
    /// worker in [`wait`](Self::wait) now (they are few, and the kind of
    /// work is rare, so waking them all is simpler than counting tokens).
    #[inline]
    pub fn notify(&self, mut unpark: impl FnMut(usize)) {
        fence(Ordering::SeqCst);
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        for (index, flag) in self.flags.iter().enumerate() {
            if flag.load(Ordering::SeqCst) {
                unpark(index);
            }
        }
    }
}
