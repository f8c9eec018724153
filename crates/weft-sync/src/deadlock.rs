//! Deadlocks found before they happen (cargo feature `deadlock-detection`).
//!
//! With the feature on, every blocking or timed acquisition of a weft
//! [`Mutex`](crate::Mutex), [`Lock`](crate::Lock) or [`RLock`](crate::RLock)
//! records which locks the thread already holds, and adds "held, then taken"
//! edges to one global **lock-order graph**. An acquisition that would close
//! a cycle in that graph is reported *before* it blocks, even if the threads
//! never actually interleaved badly on this run: taking `A` then `B` in one
//! place and `B` then `A` in another is a deadlock waiting for the wrong
//! schedule, and it is reported the first time the second order is used.
//! Locking a non-reentrant `Mutex`/`Lock` again on the thread that holds it
//! (`lock`, `acquire`) is reported the same way instead of hanging; a timed
//! relock (`try_lock_for`, `acquire_timeout`) is not, since it cannot hang:
//! it gives up at its deadline, and Python code uses it on purpose to wait
//! for another thread's `release`.
//!
//! A report names both acquisition sites (the `file:line:column` of the
//! user's call, through `#[track_caller]`), the threads, and carries a
//! [`std::backtrace::Backtrace`] of each side when `RUST_BACKTRACE` (or
//! `RUST_LIB_BACKTRACE`) is set. It goes to the hook set with
//! [`set_deadlock_hook`]; the default hook panics with the report as its
//! message, on the thread that was about to deadlock, before it takes the
//! lock. A hook that returns lets the acquisition go on (and a relock then
//! waits, as it would without the feature, unless another thread releases
//! the lock). Each new ordering edge is checked once, so one inversion is
//! reported once.
//!
//! What is tracked and what is not:
//! - Locks are told apart by a unique id given on first use, never by
//!   address, and a lock's node leaves the graph when the lock is dropped:
//!   a new lock at the same address starts with no history.
//! - `try_lock`/`try_acquire` cannot deadlock, so they add no ordering edge,
//!   but the lock counts as held for what is taken while holding it.
//! - Re-entering an [`RLock`](crate::RLock) its thread already owns is never
//!   reported and adds no edge (it cannot block).
//! - Guards may be dropped, and a [`Lock`](crate::Lock) released, on any
//!   thread: who holds a lock is kept per lock, not per thread.
//! - Async acquisitions (`lock_async`, `acquire_async`) are **not** tracked:
//!   a task may move between threads while it holds a lock, so "the locks
//!   this thread holds" means nothing for it.
//! - Ordering is per lock instance, not per "class" of lock as in Linux's
//!   lockdep: two different pairs of locks taken in opposite orders are not
//!   an inversion.
//!
//! The **watchdog** half reports threads that have waited on a weft
//! primitive (the blocking and timed forms of `Mutex`, `Lock`, `RLock`,
//! `Condition`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier`,
//! `Queue`) for longer than a threshold: [`waiting_longer_than`] on demand,
//! or [`Watchdog::spawn`] to check in the background.
//!
//! The feature costs a global registry lock on every tracked acquisition and
//! release (measured in `benches/deadlock.rs`); it is meant for tests and
//! debugging builds. With the feature off none of this code, and no field,
//! exists.
//!
//! # Example
//!
//! ```
//! use std::sync::{Arc, Mutex as StdMutex};
//! use weft_sync::{Mutex, deadlock};
//!
//! // Collect reports instead of panicking.
//! let reports = Arc::new(StdMutex::new(Vec::new()));
//! let sink = reports.clone();
//! deadlock::set_deadlock_hook(move |report| sink.lock().unwrap().push(report.to_string()));
//!
//! let accounts = Mutex::new(100);
//! let audit_log = Mutex::new(Vec::<i32>::new());
//! {
//!     let a = accounts.lock();
//!     audit_log.lock().push(*a); // accounts, then audit_log
//! }
//! {
//!     let mut log = audit_log.lock();
//!     let a = accounts.lock(); // audit_log, then accounts: reported here
//!     log.push(*a);
//! }
//! deadlock::reset_deadlock_hook();
//!
//! let reports = reports.lock().unwrap();
//! assert_eq!(reports.len(), 1);
//! assert!(reports[0].contains("lock-order inversion"));
//! ```
//!
//! A watchdog that prints threads stuck for more than a second:
//!
//! ```
//! use std::time::Duration;
//! use weft_sync::deadlock::Watchdog;
//!
//! let watchdog = Watchdog::spawn(Duration::from_secs(1), Duration::from_millis(250), |stalled| {
//!     for wait in stalled {
//!         eprintln!("{wait}");
//!     }
//! })
//! .unwrap();
//! // ... run the program ...
//! drop(watchdog); // stops and joins the watchdog thread
//! ```

use std::backtrace::{Backtrace, BacktraceStatus};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar as PlCondvar, Mutex as PlMutex, RwLock as PlRwLock};

use crate::raw_lock::RawLock;

type Site = &'static Location<'static>;

/// Which kind of weft primitive an acquisition or a wait is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Primitive {
    /// [`Mutex`](crate::Mutex) through `lock`/`try_lock*`.
    Mutex,
    /// [`Lock`](crate::Lock) through `acquire`/`try_acquire`/`acquire_timeout`.
    Lock,
    /// [`RLock`](crate::RLock).
    RLock,
    /// [`Condition`](crate::Condition) waiting for a notification.
    Condition,
    /// [`Semaphore`](crate::Semaphore) or [`BoundedSemaphore`](crate::BoundedSemaphore).
    Semaphore,
    /// [`Event`](crate::Event).
    Event,
    /// [`Barrier`](crate::Barrier).
    Barrier,
    /// [`Queue`](crate::Queue) (`put`, `get` or `join`).
    Queue,
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Primitive::Mutex => "Mutex",
            Primitive::Lock => "Lock",
            Primitive::RLock => "RLock",
            Primitive::Condition => "Condition",
            Primitive::Semaphore => "Semaphore",
            Primitive::Event => "Event",
            Primitive::Barrier => "Barrier",
            Primitive::Queue => "Queue",
        })
    }
}

/// A lock's identity in the lock-order graph: unique for the life of the
/// process, never reused (unlike an address), given on the lock's first
/// tracked acquisition. Shown as `#n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LockId(u64);

impl LockId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One acquisition of a lock: which lock, through which primitive, and where
/// in the user's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Acquisition {
    /// The lock taken.
    pub lock: LockId,
    /// The kind of lock.
    pub primitive: Primitive,
    /// Where it was taken (the caller of `lock`, `acquire`, ...).
    pub site: &'static Location<'static>,
}

impl fmt::Display for Acquisition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} at {}", self.primitive, self.lock, self.site)
    }
}

/// An edge of the lock-order graph: a thread took `then` while holding
/// `first`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OrderEdge {
    /// The lock that was held, and where it had been taken.
    pub first: Acquisition,
    /// The lock taken while holding it, and where.
    pub then: Acquisition,
    /// The name of the thread that did it (its `ThreadId` if unnamed).
    pub thread: String,
    /// Where `then` was taken, when `RUST_BACKTRACE` was set at the time.
    pub backtrace: Option<Arc<Backtrace>>,
}

/// What kind of deadlock a [`DeadlockReport`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadlockKind {
    /// Locks taken in an order opposite to (a chain of) orders seen before:
    /// threads running both at once can deadlock.
    LockOrderInversion,
    /// A thread locking a non-reentrant `Mutex`/`Lock` it already holds: it
    /// would wait for itself forever.
    Relock,
}

/// A deadlock found before it happened: handed to the hook set with
/// [`set_deadlock_hook`]. Its `Display` is the multi-line message the
/// default hook panics with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadlockReport {
    /// Inversion or relock.
    pub kind: DeadlockKind,
    /// The name of the thread about to deadlock (its `ThreadId` if unnamed).
    pub thread: String,
    /// The acquisition being attempted now.
    pub acquiring: Acquisition,
    /// The lock this thread holds that conflicts with it, and where it was
    /// taken (for a relock: the same lock, taken earlier).
    pub holding: Acquisition,
    /// For an inversion: the orders seen before that lead from
    /// `acquiring.lock` to `holding.lock` (one edge for the classic ABBA).
    /// Empty for a relock.
    pub earlier: Vec<OrderEdge>,
    /// Where this acquisition happens, when `RUST_BACKTRACE` is set.
    pub backtrace: Option<Arc<Backtrace>>,
}

impl fmt::Display for DeadlockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DeadlockKind::Relock => "relock of a non-reentrant lock (deadlock)",
            DeadlockKind::LockOrderInversion => "lock-order inversion (potential deadlock)",
        };
        writeln!(f, "weft-sync deadlock detection: {what}")?;
        writeln!(
            f,
            "  thread '{}' is taking {} {} at {}",
            self.thread, self.acquiring.primitive, self.acquiring.lock, self.acquiring.site
        )?;
        match self.kind {
            DeadlockKind::Relock => {
                writeln!(
                    f,
                    "  but it already holds it, taken at {}",
                    self.holding.site
                )?;
                write!(
                    f,
                    "  A {} is not reentrant: this would wait forever. Release it first, or use an RLock.",
                    self.acquiring.primitive
                )?;
            }
            DeadlockKind::LockOrderInversion => {
                writeln!(
                    f,
                    "  while holding {} {}, taken at {}",
                    self.holding.primitive, self.holding.lock, self.holding.site
                )?;
                writeln!(f, "  but the opposite order was seen before:")?;
                for e in &self.earlier {
                    writeln!(
                        f,
                        "    thread '{}' took {} {} at {}, then {} {} at {}",
                        e.thread,
                        e.first.primitive,
                        e.first.lock,
                        e.first.site,
                        e.then.primitive,
                        e.then.lock,
                        e.then.site
                    )?;
                }
                write!(
                    f,
                    "  Threads taking these locks in these orders at the same time deadlock: take them in one global order."
                )?;
            }
        }
        if let Some(bt) = &self.backtrace {
            write!(f, "\n  backtrace of this acquisition:\n{bt}")?;
        }
        for e in &self.earlier {
            if let Some(bt) = &e.backtrace {
                write!(
                    f,
                    "\n  backtrace of the earlier acquisition of {} {} (thread '{}'):\n{bt}",
                    e.then.primitive, e.then.lock, e.thread
                )?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The hook.

type Hook = Arc<dyn Fn(&DeadlockReport) + Send + Sync>;

static HOOK: PlRwLock<Option<Hook>> = PlRwLock::new(None);

/// Sends every [`DeadlockReport`] to `hook` instead of the default (which
/// panics). The hook is global to the process and runs on the thread that
/// was about to deadlock, before it takes the lock, with no weft-internal
/// lock held: it may log, collect, or panic itself. If it returns, the
/// acquisition goes on.
pub fn set_deadlock_hook(hook: impl Fn(&DeadlockReport) + Send + Sync + 'static) {
    *HOOK.write() = Some(Arc::new(hook));
}

/// Goes back to [`default_deadlock_hook`].
pub fn reset_deadlock_hook() {
    *HOOK.write() = None;
}

/// The default hook: panics with the report's multi-line message.
///
/// # Panics
///
/// Always, which is its purpose: the thread that was about to deadlock
/// unwinds instead of hanging.
pub fn default_deadlock_hook(report: &DeadlockReport) {
    panic!("{report}");
}

fn deliver(report: DeadlockReport) {
    let hook = HOOK.read().clone();
    match hook {
        Some(hook) => hook(&report),
        None => default_deadlock_hook(&report),
    }
}

fn capture_backtrace() -> Option<Arc<Backtrace>> {
    let bt = Backtrace::capture();
    (bt.status() == BacktraceStatus::Captured).then(|| Arc::new(bt))
}

fn thread_label(t: &Thread) -> String {
    match t.name() {
        Some(name) => name.to_owned(),
        None => format!("{:?}", t.id()),
    }
}

// ---------------------------------------------------------------------------
// Small maps keyed by sequential numbers.

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Build = BuildHasherDefault<IdHasher>;
type Map<K, V> = HashMap<K, V, Build>;
type Set<K> = HashSet<K, Build>;

// ---------------------------------------------------------------------------
// Threads.

static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

/// A thread's key in the registry; its record of held locks goes when the
/// thread exits.
struct ThreadKey(u64);

impl Drop for ThreadKey {
    fn drop(&mut self) {
        let mut g = GRAPH.lock();
        if g.held.get(&self.0).is_some_and(Vec::is_empty) {
            g.held.remove(&self.0);
        }
    }
}

thread_local! {
    static THREAD_KEY: ThreadKey = ThreadKey(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
}

fn thread_key() -> u64 {
    // During thread-local destruction, a fresh key: nothing is recorded as
    // held by it for long.
    THREAD_KEY
        .try_with(|k| k.0)
        .unwrap_or_else(|_| NEXT_THREAD.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------
// Lock nodes.

static NEXT_LOCK: AtomicU64 = AtomicU64::new(1);

/// The detection state inside each tracked lock: its id, given lazily (so
/// `new` stays `const` and untracked locks cost nothing in the registry).
/// Dropping it removes the lock from the graph.
pub(crate) struct LockNode {
    id: AtomicU64,
}

impl LockNode {
    pub(crate) const fn new() -> LockNode {
        LockNode {
            id: AtomicU64::new(0),
        }
    }

    #[inline]
    fn id(&self) -> u64 {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 { id } else { self.assign() }
    }

    #[cold]
    fn assign(&self) -> u64 {
        let new = NEXT_LOCK.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => new,
            Err(existing) => existing,
        }
    }

    pub(crate) fn lock_id(&self) -> LockId {
        LockId(self.id())
    }
}

impl Drop for LockNode {
    fn drop(&mut self) {
        let id = *self.id.get_mut();
        if id != 0 {
            GRAPH.lock().forget(id);
        }
    }
}

impl fmt::Debug for LockNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockNode(#{})", self.id.load(Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------
// The lock-order graph.

struct Holder {
    thread: u64,
    acq: Acquisition,
}

struct Graph {
    /// Lock id -> who holds it now (every tracked lock has one holder at a
    /// time: an RLock is recorded once, at its outermost acquisition).
    holders: Map<u64, Holder>,
    /// Thread key -> the ids of the locks it holds, oldest first.
    held: Map<u64, Vec<u64>>,
    /// `after[a][b]`: `b` was taken while holding `a`.
    after: Map<u64, Map<u64, OrderEdge>>,
    /// `before[b]`: every `a` with an edge `a -> b` (to remove nodes).
    before: Map<u64, Set<u64>>,
}

static GRAPH: PlMutex<Graph> = PlMutex::new(Graph {
    holders: Map::with_hasher(Build::new()),
    held: Map::with_hasher(Build::new()),
    after: Map::with_hasher(Build::new()),
    before: Map::with_hasher(Build::new()),
});

/// A report found under the registry lock, finished outside it.
enum Found {
    Relock {
        holding: Acquisition,
    },
    Inversion {
        holding: Acquisition,
        earlier: Vec<OrderEdge>,
    },
}

impl Graph {
    /// Checks that `me` may block on `acq.lock`, and records the ordering
    /// edges from every lock `me` holds.
    /// `timed`: the acquisition gives up at a deadline, so a relock is not
    /// a deadlock (Python code waits on its own `Lock` with a timeout on
    /// purpose).
    fn check_and_link(&mut self, me: u64, acq: Acquisition, timed: bool) -> Option<Found> {
        let id = acq.lock.0;
        if let Some(h) = self.holders.get(&id)
            && h.thread == me
        {
            return (!timed).then_some(Found::Relock { holding: h.acq });
        }
        let Graph {
            holders,
            held,
            after,
            before,
        } = self;
        let held = held.get(&me)?;
        let mut found = None;
        let mut edge_info: Option<(String, Option<Arc<Backtrace>>)> = None;
        for &h in held {
            if h == id || after.get(&h).is_some_and(|m| m.contains_key(&id)) {
                continue;
            }
            let Some(holder) = holders.get(&h) else {
                continue;
            };
            if found.is_none()
                && let Some(earlier) = path(after, id, h)
            {
                found = Some(Found::Inversion {
                    holding: holder.acq,
                    earlier,
                });
            }
            let (thread, backtrace) = edge_info
                .get_or_insert_with(|| (thread_label(&thread::current()), capture_backtrace()))
                .clone();
            after.entry(h).or_default().insert(
                id,
                OrderEdge {
                    first: holder.acq,
                    then: acq,
                    thread,
                    backtrace,
                },
            );
            before.entry(id).or_default().insert(h);
        }
        found
    }

    fn record(&mut self, me: u64, acq: Acquisition) {
        let id = acq.lock.0;
        if let Some(prev) = self.holders.insert(id, Holder { thread: me, acq }) {
            // Only after a release raced with this acquisition (a `Lock`
            // released by another thread just as it was taken).
            self.unhold(prev.thread, id);
        }
        self.held.entry(me).or_default().push(id);
    }

    fn unhold(&mut self, thread: u64, id: u64) {
        if let Some(v) = self.held.get_mut(&thread)
            && let Some(pos) = v.iter().rposition(|&x| x == id)
        {
            v.remove(pos);
        }
    }

    fn release(&mut self, id: u64) {
        if let Some(h) = self.holders.remove(&id) {
            self.unhold(h.thread, id);
        }
    }

    fn forget(&mut self, id: u64) {
        self.release(id);
        if let Some(next) = self.after.remove(&id) {
            for b in next.keys() {
                if let Some(s) = self.before.get_mut(b) {
                    s.remove(&id);
                }
            }
        }
        if let Some(prev) = self.before.remove(&id) {
            for a in prev {
                if let Some(m) = self.after.get_mut(&a) {
                    m.remove(&id);
                    if m.is_empty() {
                        self.after.remove(&a);
                    }
                }
            }
        }
    }
}

/// The edges of a path `from ->* to`, if there is one (breadth first, so the
/// shortest).
fn path(after: &Map<u64, Map<u64, OrderEdge>>, from: u64, to: u64) -> Option<Vec<OrderEdge>> {
    let mut parent: Map<u64, u64> = Map::default();
    let mut queue = VecDeque::from([from]);
    let mut seen: Set<u64> = Set::default();
    seen.insert(from);
    while let Some(n) = queue.pop_front() {
        let Some(next) = after.get(&n) else { continue };
        for &m in next.keys() {
            if !seen.insert(m) {
                continue;
            }
            parent.insert(m, n);
            if m == to {
                let mut edges = Vec::new();
                let mut cur = to;
                while cur != from {
                    let p = parent[&cur];
                    edges.push(after[&p][&cur].clone());
                    cur = p;
                }
                edges.reverse();
                return Some(edges);
            }
            queue.push_back(m);
        }
    }
    None
}

fn finish(found: Found, acquiring: Acquisition) -> DeadlockReport {
    let (kind, holding, earlier) = match found {
        Found::Relock { holding } => (DeadlockKind::Relock, holding, Vec::new()),
        Found::Inversion { holding, earlier } => {
            (DeadlockKind::LockOrderInversion, holding, earlier)
        }
    };
    DeadlockReport {
        kind,
        thread: thread_label(&thread::current()),
        acquiring,
        holding,
        earlier,
        backtrace: capture_backtrace(),
    }
}

/// A blocking or timed acquisition of `raw` (whose detection state is
/// `node`): checks it, reports a deadlock before blocking, then takes the
/// lock (waiting at most until `deadline`) and records it as held by this
/// thread. Returns whether the lock was taken.
///
/// `timed`: the user called a timed form (`try_lock_for`,
/// `acquire_timeout`, ...), so a relock is a deliberate wait for another
/// thread's release, not a deadlock, even when the timeout was too long for
/// the clock and `deadline` is `None`.
pub(crate) fn lock_raw(
    raw: &RawLock,
    node: &LockNode,
    deadline: Option<Instant>,
    timed: bool,
    primitive: Primitive,
    site: Site,
) -> bool {
    let acq = Acquisition {
        lock: LockId(node.id()),
        primitive,
        site,
    };
    let me = thread_key();
    let found = {
        let mut g = GRAPH.lock();
        let found = g.check_and_link(me, acq, timed);
        // The uncontended case: take it and record it in one visit.
        if found.is_none() && raw.try_lock() {
            g.record(me, acq);
            return true;
        }
        found
    };
    if let Some(found) = found {
        deliver(finish(found, acq));
    }
    if raw.lock_until_tracked(deadline, primitive, site) {
        GRAPH.lock().record(me, acq);
        true
    } else {
        false
    }
}

/// A `try_lock` of `raw`: no ordering edge, but recorded as held.
pub(crate) fn try_lock_raw(
    raw: &RawLock,
    node: &LockNode,
    primitive: Primitive,
    site: Site,
) -> bool {
    if !raw.try_lock() {
        return false;
    }
    held(node, primitive, site);
    true
}

/// Records that this thread took the lock without a check (a relock after a
/// panicking wait, say).
pub(crate) fn held(node: &LockNode, primitive: Primitive, site: Site) {
    let acq = Acquisition {
        lock: LockId(node.id()),
        primitive,
        site,
    };
    GRAPH.lock().record(thread_key(), acq);
}

/// Records that the lock is no longer held, by whichever thread held it.
/// Call before unlocking, so a new holder's record cannot be erased.
#[inline]
pub(crate) fn released(node: &LockNode) {
    let id = node.id.load(Ordering::Relaxed);
    if id != 0 {
        GRAPH.lock().release(id);
    }
}

// ---------------------------------------------------------------------------
// The watchdog.

struct WaitRecord {
    thread: Thread,
    primitive: Primitive,
    site: Site,
    since: Instant,
}

static WAITS: PlMutex<Map<u64, WaitRecord>> = PlMutex::new(Map::with_hasher(Build::new()));
static NEXT_WAIT: AtomicU64 = AtomicU64::new(1);

/// A registered wait; unregisters when dropped.
pub(crate) struct WaitRegistration(u64);

impl Drop for WaitRegistration {
    fn drop(&mut self) {
        WAITS.lock().remove(&self.0);
    }
}

/// Registers that this thread starts blocking on a primitive, called at
/// `site`.
pub(crate) fn wait_begins(primitive: Primitive, site: Site) -> WaitRegistration {
    let key = NEXT_WAIT.fetch_add(1, Ordering::Relaxed);
    let record = WaitRecord {
        thread: thread::current(),
        primitive,
        site,
        since: Instant::now(),
    };
    WAITS.lock().insert(key, record);
    WaitRegistration(key)
}

/// A thread that has been blocked on a weft primitive for a while.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StalledWait {
    /// What it waits on.
    pub primitive: Primitive,
    /// Where the wait was called from (the caller of `lock`, `acquire`,
    /// `wait`, `get`, ...).
    pub site: &'static Location<'static>,
    /// The waiting thread's name, if it has one.
    pub thread_name: Option<String>,
    /// The waiting thread's id.
    pub thread_id: ThreadId,
    /// How long it has waited so far.
    pub waited: Duration,
}

impl fmt::Display for StalledWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "thread '{}' has waited {:.3?} on a {} at {}",
            self.thread_name
                .clone()
                .unwrap_or_else(|| format!("{:?}", self.thread_id)),
            self.waited,
            self.primitive,
            self.site
        )
    }
}

/// Every thread blocked right now on a weft primitive (blocking or timed
/// forms; async waits are not tracked) for longer than `threshold`, the
/// longest wait first.
///
/// ```
/// use std::time::Duration;
/// use weft_sync::deadlock::waiting_longer_than;
/// assert!(waiting_longer_than(Duration::from_secs(3600)).is_empty());
/// ```
pub fn waiting_longer_than(threshold: Duration) -> Vec<StalledWait> {
    let now = Instant::now();
    let mut out: Vec<StalledWait> = WAITS
        .lock()
        .values()
        .filter_map(|w| {
            let waited = now.saturating_duration_since(w.since);
            (waited > threshold).then(|| StalledWait {
                primitive: w.primitive,
                site: w.site,
                thread_name: w.thread.name().map(str::to_owned),
                thread_id: w.thread.id(),
                waited,
            })
        })
        .collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.waited));
    out
}

/// A background thread that calls a hook with the [`StalledWait`]s longer
/// than a threshold, every `check_interval`, for as long as there are any.
/// Dropping the handle (or [`stop`](Self::stop)) stops and joins the thread.
#[derive(Debug)]
#[must_use = "the watchdog stops when its handle is dropped"]
pub struct Watchdog {
    stop: Arc<(PlMutex<bool>, PlCondvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts a thread named `weft-watchdog` that, every `check_interval`,
    /// calls `hook` with [`waiting_longer_than(threshold)`](waiting_longer_than)
    /// when that list is not empty. A wait is reported at every check until
    /// it ends.
    ///
    /// A `check_interval` too long to add to the clock (such as
    /// `Duration::MAX`) means the watchdog never checks; it still stops when
    /// dropped. A hook that panics is reported on stderr and the watchdog
    /// goes on checking (as Python logs an exception in a callback and goes
    /// on): make the hook itself robust if it keeps state.
    ///
    /// # Errors
    ///
    /// An [`std::io::ErrorKind::InvalidInput`] error if `check_interval` is
    /// zero (the watchdog would spin), or the error from spawning the thread.
    pub fn spawn(
        threshold: Duration,
        check_interval: Duration,
        mut hook: impl FnMut(&[StalledWait]) + Send + 'static,
    ) -> std::io::Result<Watchdog> {
        if check_interval.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the watchdog's check interval must be longer than zero",
            ));
        }
        let stop = Arc::new((PlMutex::new(false), PlCondvar::new()));
        let thread = {
            let stop = stop.clone();
            thread::Builder::new()
                .name("weft-watchdog".into())
                .spawn(move || {
                    let (flag, cv) = &*stop;
                    let mut stopped = flag.lock();
                    loop {
                        if sleep_until_next_check(&mut stopped, cv, check_interval) {
                            return;
                        }
                        let stalled = parking_lot::MutexGuard::unlocked(&mut stopped, || {
                            waiting_longer_than(threshold)
                        });
                        if stalled.is_empty() {
                            continue;
                        }
                        let called = parking_lot::MutexGuard::unlocked(&mut stopped, || {
                            catch_unwind(AssertUnwindSafe(|| hook(&stalled)))
                        });
                        if let Err(payload) = called {
                            eprintln!(
                                "weft: the watchdog's hook panicked (ignored, the watchdog goes on): {}",
                                crate::task::into_panic_message(payload)
                            );
                        }
                    }
                })?
        };
        Ok(Watchdog {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the watchdog and waits for its thread to end (as dropping it
    /// does).
    pub fn stop(self) {}
}

/// Waits `interval` on the watchdog's stop flag (forever when `interval`
/// is too long to add to the clock); returns whether the watchdog was
/// stopped.
fn sleep_until_next_check(
    stopped: &mut parking_lot::MutexGuard<'_, bool>,
    cv: &PlCondvar,
    interval: Duration,
) -> bool {
    match Instant::now().checked_add(interval) {
        Some(deadline) => while !**stopped && !cv.wait_until(stopped, deadline).timed_out() {},
        None => {
            while !**stopped {
                cv.wait(stopped);
            }
        }
    }
    **stopped
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            // A hook that panicked ended the thread already; nothing to add.
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check interval too long for the clock means "never check", not a
    /// panic in the watchdog's thread.
    #[test]
    fn a_huge_check_interval_waits_for_stop() {
        let stop = Arc::new((PlMutex::new(false), PlCondvar::new()));
        let sleeper = {
            let stop = stop.clone();
            thread::spawn(move || {
                let (flag, cv) = &*stop;
                sleep_until_next_check(&mut flag.lock(), cv, Duration::MAX)
            })
        };
        thread::sleep(Duration::from_millis(20));
        *stop.0.lock() = true;
        stop.1.notify_all();
        assert!(
            sleeper.join().expect("no overflow panic"),
            "it saw the stop"
        );
    }
}
