//! Task-local values (Python's `contextvars`): [`task_local!`](crate::task_local)
//! and [`LocalKey`].

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Declares task-local values (Python's `contextvars.ContextVar`): each
/// [`scope`](LocalKey::scope) gives the key its own value for the future it
/// wraps, seen by that future alone, however many tasks run meanwhile.
///
/// ```
/// weft_async::task_local! {
///     /// The request being served by this task.
///     static REQUEST_ID: u64;
/// }
///
/// async fn log(what: &str) -> String {
///     format!("[{}] {what}", REQUEST_ID.get())
/// }
///
/// weft_async::run(async {
///     let a = weft_async::spawn(REQUEST_ID.scope(1, async { log("hello").await }));
///     let b = weft_async::spawn(REQUEST_ID.scope(2, async { log("bye").await }));
///     assert_eq!(a.await.unwrap(), "[1] hello");
///     assert_eq!(b.await.unwrap(), "[2] bye");
///     assert!(REQUEST_ID.try_get().is_err()); // not set out here
/// });
/// ```
#[macro_export]
macro_rules! task_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::LocalKey<$t> = {
            ::std::thread_local! {
                static VALUE: ::core::cell::RefCell<::core::option::Option<$t>> =
                    const { ::core::cell::RefCell::new(::core::option::Option::None) };
            }
            $crate::LocalKey::__new(&VALUE)
        };
        $crate::task_local!($($rest)*);
    };
}

/// A task-local key, declared with [`task_local!`](crate::task_local).
///
/// **Isolation.** A value lives in a [`scope`](LocalKey::scope): it is
/// installed on the thread while the scoped future is polled, and taken off
/// again when that poll returns, so tasks (and futures within one task)
/// never see each other's values.
///
/// **Inheritance.** Python copies the whole context into a task when it is
/// created; weft does not pass values on by itself (it costs nothing when
/// unused that way). To give a spawned task the caller's value, scope it
/// explicitly: `spawn(KEY.scope(KEY.get(), fut))`.
pub struct LocalKey<T: 'static> {
    inner: &'static std::thread::LocalKey<RefCell<Option<T>>>,
}

/// Why a [`LocalKey`] has no value here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the task-local value is not set here; read it inside a future wrapped in KEY.scope(value, future)"
)]
pub struct AccessError {
    _private: (),
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn __new(inner: &'static std::thread::LocalKey<RefCell<Option<T>>>) -> Self {
        LocalKey { inner }
    }

    /// Runs `future` with the key set to `value` (Python's `ctx.run`, or a
    /// `ContextVar.set` seen only by that future). Scopes nest: an inner
    /// scope hides the outer value while its future is polled.
    pub fn scope<F: Future>(&'static self, value: T, future: F) -> TaskLocalFuture<T, F> {
        TaskLocalFuture {
            key: self,
            slot: Some(value),
            future: Some(future),
        }
    }

    /// Runs `f` with the key set to `value`, for synchronous code.
    pub fn sync_scope<R>(&'static self, value: T, f: impl FnOnce() -> R) -> R {
        let mut slot = Some(value);
        let _in = self.enter(&mut slot);
        f()
    }

    /// Calls `f` with the current value (Python's `ContextVar.get()`).
    ///
    /// # Panics
    ///
    /// If the key is not set here; [`try_with`](LocalKey::try_with) says
    /// [`AccessError`] instead.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        match self.try_with(f) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    /// Calls `f` with the current value, or says it is not set.
    pub fn try_with<R>(&'static self, f: impl FnOnce(&T) -> R) -> Result<R, AccessError> {
        self.inner
            .try_with(|cell| {
                let value = cell.borrow();
                value.as_ref().map(f)
            })
            .ok()
            .flatten()
            .ok_or(AccessError { _private: () })
    }

    /// Replaces the value for the rest of the current scope (Python's
    /// `ContextVar.set`) and returns the old one.
    ///
    /// ```
    /// weft_async::task_local! { static DEPTH: u32; }
    /// weft_async::run(DEPTH.scope(0, async {
    ///     assert_eq!(DEPTH.set(1), Ok(0));
    ///     assert_eq!(DEPTH.get(), 1);
    /// }));
    /// ```
    pub fn set(&'static self, value: T) -> Result<T, AccessError> {
        self.inner
            .try_with(|cell| {
                let mut slot = cell.borrow_mut();
                slot.as_mut().map(|old| std::mem::replace(old, value))
            })
            .ok()
            .flatten()
            .ok_or(AccessError { _private: () })
    }

    /// A copy of the current value.
    ///
    /// # Panics
    ///
    /// If the key is not set here.
    pub fn get(&'static self) -> T
    where
        T: Clone,
    {
        self.with(T::clone)
    }

    /// A copy of the current value, or [`AccessError`].
    pub fn try_get(&'static self) -> Result<T, AccessError>
    where
        T: Clone,
    {
        self.try_with(T::clone)
    }

    /// Installs `slot`'s value until the guard drops (which puts the value
    /// back into `slot`, and the outer one back on the thread).
    fn enter<'s>(&'static self, slot: &'s mut Option<T>) -> Entered<'s, T> {
        self.inner.with(|cell| {
            let mut current = cell.borrow_mut();
            std::mem::swap(&mut *current, slot);
        });
        Entered { key: self, slot }
    }
}

impl<T: 'static> fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKey").finish_non_exhaustive()
    }
}

/// Swaps a scope's value back out, even when the poll panics.
struct Entered<'s, T: 'static> {
    key: &'static LocalKey<T>,
    slot: &'s mut Option<T>,
}

impl<T: 'static> Drop for Entered<'_, T> {
    fn drop(&mut self) {
        let _ = self.key.inner.try_with(|cell| {
            if let Ok(mut current) = cell.try_borrow_mut() {
                std::mem::swap(&mut *current, self.slot);
            }
        });
    }
}

pin_project_lite::pin_project! {
    /// The future of [`LocalKey::scope`]: polls (and drops) its future with
    /// the key set.
    pub struct TaskLocalFuture<T: 'static, F> {
        key: &'static LocalKey<T>,
        slot: Option<T>,
        #[pin]
        future: Option<F>,
    }

    impl<T: 'static, F> PinnedDrop for TaskLocalFuture<T, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if this.future.is_some() {
                // The future's destructor sees the value too.
                let key: &'static LocalKey<T> = this.key;
                let _in = key.enter(this.slot);
                let mut future = this.future;
                future.set(None);
            }
        }
    }
}

impl<T: 'static, F: Future> Future for TaskLocalFuture<T, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let key: &'static LocalKey<T> = this.key;
        let _in = key.enter(this.slot);
        let mut future = this.future;
        let Some(inner) = future.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let out = std::task::ready!(inner.poll(cx));
        future.set(None);
        Poll::Ready(out)
    }
}

impl<T: 'static + fmt::Debug, F> fmt::Debug for TaskLocalFuture<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLocalFuture")
            .field("value", &self.slot)
            .finish_non_exhaustive()
    }
}
