//! The sleep/wake protocol: idle workers park here, and whoever makes work
//! visible wakes at most one of them per piece of work.
//!
//! The protocol is a Dekker-style handshake on `sleepers`:
//!
//! * a worker about to sleep takes the lock, increments `sleepers`, issues a
//!   `SeqCst` fence and then looks for work once more (`recheck`); only if it
//!   still finds none does it wait on the condition variable, and it holds the
//!   lock from the increment until the wait releases it;
//! * a producer first makes its work visible (pushes it on a queue), issues a
//!   `SeqCst` fence and reads `sleepers`; if it is not zero it takes the lock
//!   and hands out one wake-up token, but never more tokens than there are
//!   sleepers.
//!
//! Either the producer sees the sleeper's increment (and then, because the
//! sleeper holds the lock until it waits, its token and notification reach a
//! waiting thread), or the sleeper's recheck sees the new work and it does not
//! wait. So work pushed while a worker goes to sleep is never stranded. The
//! common case, nobody asleep, costs the producer one fence and one load.
//!
//! [`Waiters`] is the same handshake for workers that are not idle but
//! blocked in a wait of their own (a cross-pool `install`), parked with
//! `thread::park`, which must still hear of work of one kind (other pools'
//! `install` jobs sent to theirs) so that two opposite install chains cannot
//! block each other.
//!
//! `tests/loom.rs` checks both with loom through [`crate::shim`].

use crate::shim::{AtomicBool, AtomicUsize, Condvar, Mutex, Ordering, fence};

#[derive(Debug, Default)]
struct State {
    /// Wake-ups handed out and not yet taken by a sleeper.
    tokens: usize,
    /// Bumped by `notify_all`: wakes every worker asleep at that moment,
    /// whatever wake-ups later sleepers take (broadcast work is per worker).
    epoch: u64,
    /// Set once, at shutdown: every sleeper leaves and none waits again.
    terminated: bool,
}

/// Where idle workers sleep. See the module documentation.
#[derive(Debug)]
pub struct Sleep {
    /// Workers that are asleep or about to be; changed only under `state`'s
    /// lock, read without it by producers.
    sleepers: AtomicUsize,
    state: Mutex<State>,
    cond: Condvar,
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

impl Sleep {
    /// An empty sleep room.
    pub fn new() -> Self {
        Sleep {
            sleepers: AtomicUsize::new(0),
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        }
    }

    /// Puts the calling worker to sleep until [`notify_one`](Self::notify_one)
    /// hands it a token or [`terminate`](Self::terminate) is called, unless
    /// `recheck` (run after this worker has announced itself as a sleeper)
    /// finds work. Returns `true` if it actually slept.
    pub fn sleep(&self, recheck: impl FnOnce() -> bool) -> bool {
        let mut st = self.state.lock();
        if st.terminated {
            return false;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if recheck() {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let epoch = st.epoch;
        loop {
            if st.terminated || st.epoch != epoch {
                break;
            }
            if st.tokens > 0 {
                st.tokens -= 1;
                break;
            }
            self.cond.wait(&mut st);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// Called after making one piece of work visible: wakes one sleeping
    /// worker if there is one that no earlier call has woken yet.
    #[inline]
    pub fn notify_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        self.notify_one_cold();
    }

    #[cold]
    fn notify_one_cold(&self) {
        let mut st = self.state.lock();
        if st.tokens < self.sleepers.load(Ordering::SeqCst) {
            st.tokens += 1;
            drop(st);
            self.cond.notify_one();
        }
    }

    /// Wakes every worker asleep now (for work meant for every worker, such
    /// as a broadcast). Sleepers that find nothing go back to sleep.
    pub fn notify_all(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut st = self.state.lock();
        st.epoch = st.epoch.wrapping_add(1);
        drop(st);
        self.cond.notify_all();
    }

    /// Wakes every sleeper for good: after this, [`sleep`](Self::sleep)
    /// returns at once.
    pub fn terminate(&self) {
        let mut st = self.state.lock();
        st.terminated = true;
        drop(st);
        self.cond.notify_all();
    }

    /// How many workers are asleep or about to be.
    #[cfg_attr(not(loom), allow(dead_code))]
    pub fn sleepers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
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
