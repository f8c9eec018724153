//! [`ProcessPool::imap`]: a lazy, ordered map over any iterator, endless
//! ones included, with a bounded number of items in flight.

use std::collections::VecDeque;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use weft_sync::{TaskError, TaskHandle};

use crate::pool::ProcessPool;

/// The results of [`ProcessPool::imap`]: one `Result<R, TaskError>` per
/// input item, in input order. It reads its input only as results are
/// taken: at most its window of items is submitted and not yet yielded.
/// Dropping it cancels the submitted items that have not started.
pub struct Imap<'p, F, A, R, I> {
    pool: &'p ProcessPool,
    f: F,
    input: I,
    window: VecDeque<TaskHandle<R>>,
    limit: usize,
    _arg: std::marker::PhantomData<fn(A)>,
}

impl<F, A, R, I> fmt::Debug for Imap<'_, F, A, R, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Imap")
            .field("in_flight", &self.window.len())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<F, A, R, I> Iterator for Imap<'_, F, A, R, I>
where
    F: Fn(A) -> R + Copy + 'static,
    A: Serialize + 'static,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    type Item = Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.window.len() < self.limit {
            match self.input.next() {
                Some(item) => self.window.push_back(self.pool.submit(self.f, item)),
                None => break,
            }
        }
        self.window.pop_front().map(TaskHandle::join)
    }
}

impl<F, A, R, I> Drop for Imap<'_, F, A, R, I> {
    fn drop(&mut self) {
        for handle in &self.window {
            handle.cancel();
        }
    }
}

impl ProcessPool {
    /// Applies `f` to every item of `items`, lazily, and yields the results
    /// in input order (Python's `pool.imap`, without its eager reading of
    /// the whole input): the input is read as results are taken, with at
    /// most two items per process in flight, so an endless iterator works
    /// and memory stays bounded. Each item is its own task (see
    /// [`map_chunked`](Self::map_chunked) for tiny tasks over a finite
    /// input). See [`imap_bounded`](Self::imap_bounded) for another window.
    ///
    /// ```
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    /// weft_process::register!(square);
    ///
    /// let pool = weft_process::ProcessPool::builder().processes(2).build().unwrap();
    /// let first: Vec<u64> = pool.imap(square, 1..).take(4).map(Result::unwrap).collect();
    /// assert_eq!(first, [1, 4, 9, 16]);
    /// ```
    pub fn imap<F, A, R, I>(&self, f: F, items: I) -> Imap<'_, F, A, R, I::IntoIter>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        self.imap_bounded(f, items, self.processes().saturating_mul(2))
    }

    /// [`imap`](Self::imap) with at most `in_flight` items submitted and
    /// not yet yielded (at least 1).
    pub fn imap_bounded<F, A, R, I>(
        &self,
        f: F,
        items: I,
        in_flight: usize,
    ) -> Imap<'_, F, A, R, I::IntoIter>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + 'static,
        R: DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
    {
        Imap {
            pool: self,
            f,
            input: items.into_iter(),
            window: VecDeque::new(),
            limit: in_flight.max(1),
            _arg: std::marker::PhantomData,
        }
    }
}
