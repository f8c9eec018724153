//! The few synchronisation building blocks weft-sync's hand-written protocols
//! stand on, with one face for normal builds (parking_lot and std) and one for
//! `--cfg loom` builds (loom's model-checked versions; event-listener is
//! switched to its loom build at the same time).
//!
//! Only the protocols that loom models (the task handle's completion/wake
//! protocol, the semaphore's permit accounting, the timer thread's
//! schedule/sleep/exit protocol) go through this module.

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{AtomicUsize, Ordering, fence};
    pub(crate) use std::thread::yield_now;

    use std::time::Instant;

    /// A spawned thread's handle.
    pub(crate) type JoinHandle = std::thread::JoinHandle<()>;

    /// Spawns a named thread.
    pub(crate) fn spawn_named(
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle> {
        std::thread::Builder::new().name(name.to_owned()).spawn(f)
    }

    /// A mutex with parking_lot's shape (`lock` cannot fail).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable working with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }
        #[inline]
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            self.0.wait(guard)
        }
        /// Waits until notified or `deadline`; returns `true` if the deadline passed.
        #[inline]
        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            deadline: Instant,
        ) -> bool {
            self.0.wait_until(guard, deadline).timed_out()
        }
        #[inline]
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering, fence};
    pub(crate) use loom::thread::yield_now;

    use std::time::Instant;

    /// A spawned model thread's handle.
    pub(crate) type JoinHandle = loom::thread::JoinHandle<()>;

    /// Spawns a model thread (loom threads have no names).
    pub(crate) fn spawn_named(
        _: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle> {
        Ok(loom::thread::spawn(f))
    }

    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// A guard that can be handed to the condition variable and back.
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0.as_ref().expect("guard present")
        }
    }
    impl<T> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0.as_mut().expect("guard present")
        }
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap()))
        }
    }

    #[derive(Debug, Default)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }
        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            let g = guard.0.take().expect("guard present");
            guard.0 = Some(self.0.wait(g).unwrap());
        }
        /// Loom has no timed waits: this waits for a notification, and a
        /// model that needs the timeout path must not rely on it.
        pub(crate) fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, _: Instant) -> bool {
            self.wait(guard);
            false
        }
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use imp::*;

/// Declares a function `const` in normal builds and non-`const` under loom,
/// whose types (and event-listener's, in its loom build) cannot be built in
/// a constant context.
macro_rules! const_unless_loom {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($args:tt)*) -> $ret:ty $body:block) => {
        #[cfg(not(loom))]
        $(#[$meta])*
        $vis const fn $name($($args)*) -> $ret $body

        #[cfg(loom)]
        $(#[$meta])*
        $vis fn $name($($args)*) -> $ret $body
    };
}
pub(crate) use const_unless_loom;
