//! Waiting on many tasks at once: [`wait`] and [`as_completed`], as in
//! `concurrent.futures`. They work on [`TaskHandle`]s from any engine, mixed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::error::Timeout;
use crate::task::{TaskError, TaskHandle};
use crate::waker::{ThreadWaker, deadline_after};

/// When [`wait`] returns, as Python's `FIRST_COMPLETED`, `FIRST_EXCEPTION`
/// and `ALL_COMPLETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReturnWhen {
    /// As soon as any task finishes (or is cancelled).
    FirstCompleted,
    /// As soon as any task finishes with an error ([`TaskError`]) other
    /// than [`TaskError::Cancelled`]; if none does, when all have finished.
    /// As in Python, a cancelled task counts as completed, not as one that
    /// raised.
    FirstException,
    /// When every task has finished.
    #[default]
    AllCompleted,
}

/// What [`wait`] found: indices into the slice it was given, in ascending order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WaitResult {
    /// The tasks that had finished.
    pub done: Vec<usize>,
    /// The tasks that had not.
    pub not_done: Vec<usize>,
}

fn evaluate<T>(handles: &[TaskHandle<T>], when: ReturnWhen) -> (bool, WaitResult) {
    let mut result = WaitResult::default();
    let mut any_error = false;
    for (i, h) in handles.iter().enumerate() {
        match h.finished_with_error() {
            Some(failed) => {
                any_error |= failed;
                result.done.push(i);
            }
            None => result.not_done.push(i),
        }
    }
    let satisfied = result.not_done.is_empty()
        || match when {
            ReturnWhen::FirstCompleted => !result.done.is_empty(),
            ReturnWhen::FirstException => any_error,
            ReturnWhen::AllCompleted => false,
        };
    (satisfied, result)
}

/// What [`wait`] and [`WaitAsync`] track between wake-ups: which tasks are
/// known to have finished, fed one index per finished task by the wakers
/// registered on each unfinished handle (so each completion costs O(1), not
/// a new scan of every handle).
struct Tally {
    ready: Arc<Ready>,
    keys: Vec<Option<u64>>,
    done: Vec<bool>,
    done_count: usize,
    any_error: bool,
}

impl Tally {
    /// Registers on every handle not finished yet (a handle that finishes
    /// meanwhile is reported at once).
    fn register<T>(handles: &[TaskHandle<T>], consumer: Waker) -> Tally {
        let ready = Arc::new(Ready {
            state: parking_lot::Mutex::new(ReadyState {
                indices: VecDeque::new(),
                consumer: Some(consumer),
            }),
        });
        // Handles finished already are queued directly, without a waker.
        let mut finished = VecDeque::new();
        let keys = handles
            .iter()
            .enumerate()
            .map(|(index, h)| {
                if h.is_finished() {
                    finished.push_back(index);
                    return None;
                }
                let waker = Waker::from(Arc::new(IndexWaker {
                    ready: ready.clone(),
                    index,
                }));
                let key = h.watch(&waker);
                if key.is_none() {
                    finished.push_back(index);
                }
                key
            })
            .collect();
        {
            let mut st = ready.state.lock();
            finished.extend(st.indices.drain(..));
            st.indices = finished;
        }
        Tally {
            ready,
            keys,
            done: vec![false; handles.len()],
            done_count: 0,
            any_error: false,
        }
    }

    /// Takes in the tasks reported finished since the last call and leaves
    /// `consumer` to be woken by the next. Returns whether `when` is met.
    fn update<T>(&mut self, handles: &[TaskHandle<T>], when: ReturnWhen, consumer: &Waker) -> bool {
        let arrived: Vec<usize> = {
            let mut st = self.ready.state.lock();
            match &st.consumer {
                Some(c) if c.will_wake(consumer) => {}
                _ => st.consumer = Some(consumer.clone()),
            }
            st.indices.drain(..).collect()
        };
        for index in arrived {
            if std::mem::replace(&mut self.done[index], true) {
                continue;
            }
            self.keys[index] = None;
            self.done_count += 1;
            self.any_error |= handles[index].finished_with_error() == Some(true);
        }
        self.done_count == handles.len()
            || match when {
                ReturnWhen::FirstCompleted => self.done_count > 0,
                ReturnWhen::FirstException => self.any_error,
                ReturnWhen::AllCompleted => false,
            }
    }

    fn unregister<T>(&mut self, handles: &[TaskHandle<T>]) {
        for (h, key) in handles.iter().zip(self.keys.iter_mut()) {
            if let Some(key) = key.take() {
                h.unwatch(key);
            }
        }
    }
}

/// Blocks until the tasks meet `return_when`, or `timeout` passes (`None`:
/// no limit), and says which have finished (Python's
/// `concurrent.futures.wait`). The handles keep their results; take them
/// with `join`.
///
/// An empty slice returns at once. The cost is linear in the number of
/// handles: one look at each to start with and to report, and O(1) per
/// task that finishes meanwhile.
///
/// ```
/// use std::time::Duration;
/// use weft_sync::{ReturnWhen, TaskHandle, wait};
///
/// let (c0, h0) = TaskHandle::<u32>::pair();
/// let (_c1, h1) = TaskHandle::<u32>::pair();
/// c0.set_result(10);
/// let handles = vec![h0, h1];
/// let r = wait(&handles, ReturnWhen::FirstCompleted, None);
/// assert_eq!((r.done, r.not_done), (vec![0], vec![1]));
/// let r = wait(&handles, ReturnWhen::AllCompleted, Some(Duration::from_millis(10)));
/// assert_eq!(r.not_done, vec![1]);
/// ```
pub fn wait<T>(
    handles: &[TaskHandle<T>],
    return_when: ReturnWhen,
    timeout: Option<Duration>,
) -> WaitResult {
    let (satisfied, result) = evaluate(handles, return_when);
    if satisfied {
        return result;
    }
    let deadline = timeout.and_then(deadline_after);
    let forever = timeout.is_none() || deadline.is_none();
    let (parker, waker) = ThreadWaker::current();
    let mut tally = Tally::register(handles, waker.clone());
    // A task reported after `update` drained the queue wakes the parker,
    // whose flag makes the park return at once.
    while !tally.update(handles, return_when, &waker) {
        if !parker.park_until(if forever { None } else { deadline }) {
            break;
        }
    }
    tally.unregister(handles);
    evaluate(handles, return_when).1
}

/// The async form of [`wait`], for use inside any executor. For a time limit,
/// wrap it in your runtime's timeout (weft-async's `timeout`).
///
/// Dropping the future before it completes is safe: it unregisters itself.
pub fn wait_async<T>(handles: &[TaskHandle<T>], return_when: ReturnWhen) -> WaitAsync<'_, T> {
    WaitAsync {
        handles,
        return_when,
        tally: None,
    }
}

/// The future returned by [`wait_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitAsync<'a, T> {
    handles: &'a [TaskHandle<T>],
    return_when: ReturnWhen,
    /// Registered on the first poll that does not finish at once; later
    /// polls only update the waker to wake (O(1), not O(handles)).
    tally: Option<Tally>,
}

impl<T> Future for WaitAsync<'_, T> {
    type Output = WaitResult;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WaitResult> {
        let this = self.get_mut();
        let satisfied = match &mut this.tally {
            None => {
                let (satisfied, result) = evaluate(this.handles, this.return_when);
                if satisfied {
                    return Poll::Ready(result);
                }
                let mut tally = Tally::register(this.handles, cx.waker().clone());
                let satisfied = tally.update(this.handles, this.return_when, cx.waker());
                this.tally = Some(tally);
                satisfied
            }
            Some(tally) => tally.update(this.handles, this.return_when, cx.waker()),
        };
        if satisfied {
            if let Some(mut tally) = this.tally.take() {
                tally.unregister(this.handles);
            }
            return Poll::Ready(evaluate(this.handles, this.return_when).1);
        }
        // Finished tasks that arrived after `update` looked wake us again.
        Poll::Pending
    }
}

impl<T> Drop for WaitAsync<'_, T> {
    fn drop(&mut self) {
        if let Some(mut tally) = self.tally.take() {
            tally.unregister(self.handles);
        }
    }
}

/// One finished task from [`as_completed`]: its index in the input and its outcome.
pub type Completed<T> = (usize, Result<T, TaskError>);

/// The finished-task queue behind [`AsCompleted`].
struct Ready {
    state: parking_lot::Mutex<ReadyState>,
}

struct ReadyState {
    indices: VecDeque<usize>,
    consumer: Option<Waker>,
}

impl Ready {
    fn push(&self, index: usize) {
        let mut st = self.state.lock();
        st.indices.push_back(index);
        let consumer = st.consumer.take();
        drop(st);
        if let Some(w) = consumer {
            w.wake();
        }
    }
}

/// Wakes the [`AsCompleted`] consumer with the index of the task that finished.
struct IndexWaker {
    ready: Arc<Ready>,
    index: usize,
}

impl Wake for IndexWaker {
    fn wake(self: Arc<Self>) {
        self.ready.push(self.index);
    }
}

/// Yields tasks' outcomes in the order they finish (Python's
/// `concurrent.futures.as_completed`).
///
/// Takes ownership of the handles and returns an [`AsCompleted`]: a
/// blocking [`Iterator`] of `(index, outcome)` pairs, where `index` is the
/// handle's position in the input. For async code, turn it into a stream
/// with [`AsCompleted::into_stream`].
///
/// ```
/// use weft_sync::{TaskHandle, as_completed};
///
/// let (c0, h0) = TaskHandle::pair();
/// let (c1, h1) = TaskHandle::pair();
/// c1.set_result("second submitted, first done");
/// let mut it = as_completed([h0, h1]);
/// assert_eq!(it.next(), Some((1, Ok("second submitted, first done"))));
/// c0.set_result("first submitted");
/// assert_eq!(it.next(), Some((0, Ok("first submitted"))));
/// assert_eq!(it.next(), None);
/// ```
pub fn as_completed<T, I>(handles: I) -> AsCompleted<T>
where
    I: IntoIterator<Item = TaskHandle<T>>,
{
    let handles: Vec<Option<TaskHandle<T>>> = handles.into_iter().map(Some).collect();
    let ready = Arc::new(Ready {
        state: parking_lot::Mutex::new(ReadyState {
            indices: VecDeque::new(),
            consumer: None,
        }),
    });
    let mut keys = Vec::with_capacity(handles.len());
    // Handles finished already are queued directly, without a waker each.
    let mut finished = VecDeque::new();
    for (index, h) in handles.iter().enumerate() {
        let h = h.as_ref().expect("just filled");
        if h.is_finished() {
            finished.push_back(index);
            keys.push(None);
            continue;
        }
        let waker = Waker::from(Arc::new(IndexWaker {
            ready: ready.clone(),
            index,
        }));
        let key = h.watch(&waker);
        if key.is_none() {
            finished.push_back(index);
        }
        keys.push(key);
    }
    {
        let mut st = ready.state.lock();
        finished.extend(st.indices.drain(..));
        st.indices = finished;
    }
    AsCompleted {
        remaining: handles.len(),
        handles,
        keys,
        ready,
        taken: VecDeque::new(),
    }
}

/// The iterator returned by [`as_completed`].
pub struct AsCompleted<T> {
    handles: Vec<Option<TaskHandle<T>>>,
    keys: Vec<Option<u64>>,
    ready: Arc<Ready>,
    remaining: usize,
    /// Indices taken from `ready` in one go (one lock for many outcomes).
    taken: VecDeque<usize>,
}

impl<T> AsCompleted<T> {
    /// How many outcomes are still to come.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    fn take_ready(&mut self, consumer: Option<&Waker>) -> Option<(usize, Result<T, TaskError>)> {
        if self.taken.is_empty() {
            let mut st = self.ready.state.lock();
            if st.indices.is_empty() {
                if let Some(w) = consumer {
                    st.consumer = Some(w.clone());
                }
                return None;
            }
            std::mem::swap(&mut self.taken, &mut st.indices);
        }
        match self.taken.pop_front() {
            Some(index) => {
                let handle = self.handles[index]
                    .take()
                    .expect("each index is reported once");
                self.keys[index] = None;
                self.remaining -= 1;
                Some((index, handle.join()))
            }
            None => unreachable!("refilled above"),
        }
    }

    /// The next outcome, waiting at most `timeout` for it. `Ok(None)` when
    /// all have been yielded; `Err(Timeout)` if the time ran out first
    /// (Python's `TimeoutError`). Iteration can go on after a timeout.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Completed<T>>, Timeout> {
        self.next_until(deadline_after(timeout)).ok_or(Timeout)
    }

    /// Puts a total deadline, `timeout` from now, on the whole iteration
    /// (Python's `as_completed(fs, timeout)`): the returned iterator yields
    /// `Ok((index, outcome))` as tasks finish, then `Err(Timeout)` once if the
    /// deadline passes before all have, and then ends. The tasks not yet
    /// yielded are still there: [`AsCompletedWithin::into_remaining`] gives
    /// them back (to cancel them, say). A timeout too large to represent
    /// (such as `Duration::MAX`) means no deadline.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_sync::{TaskHandle, Timeout, as_completed};
    ///
    /// let (c0, h0) = TaskHandle::<u32>::pair();
    /// let (_c1, h1) = TaskHandle::<u32>::pair(); // never finishes
    /// c0.set_result(7);
    /// let mut it = as_completed([h0, h1]).within(Duration::from_millis(20));
    /// assert_eq!(it.next(), Some(Ok((0, Ok(7)))));
    /// assert_eq!(it.next(), Some(Err(Timeout)));
    /// assert_eq!(it.next(), None);
    /// let left = it.into_remaining();
    /// assert_eq!(left.len(), 1);
    /// assert_eq!(left[0].0, 1);
    /// ```
    pub fn within(self, timeout: Duration) -> AsCompletedWithin<T> {
        AsCompletedWithin {
            deadline: deadline_after(timeout),
            inner: self,
            timed_out: false,
        }
    }

    /// The handles not yielded yet, with their indices in the input, in
    /// input order. Their results are untouched.
    pub fn into_remaining(mut self) -> Vec<(usize, TaskHandle<T>)> {
        // Outcomes already reported but not yet taken are still in their
        // handles: give those back too.
        let mut left = Vec::with_capacity(self.remaining);
        for (index, (slot, key)) in self.handles.iter_mut().zip(&mut self.keys).enumerate() {
            if let Some(h) = slot.take() {
                if let Some(key) = key.take() {
                    h.unwatch(key);
                }
                left.push((index, h));
            }
        }
        self.remaining = 0;
        left
    }

    /// `None` if the deadline passed; `Some(None)` when exhausted.
    fn next_until(
        &mut self,
        deadline: Option<std::time::Instant>,
    ) -> Option<Option<(usize, Result<T, TaskError>)>> {
        if self.remaining == 0 {
            return Some(None);
        }
        let (parker, waker) = ThreadWaker::current();
        loop {
            if let Some(item) = self.take_ready(Some(&waker)) {
                return Some(Some(item));
            }
            if !parker.park_until(deadline) {
                // One last look, then give up for now.
                let item = self.take_ready(None);
                self.ready.state.lock().consumer = None;
                return item.map(Some);
            }
        }
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = (usize, Result<T, TaskError>);

    /// Blocks until the next task finishes.
    fn next(&mut self) -> Option<Self::Item> {
        self.next_until(None).flatten()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// [`AsCompleted`] with a total deadline, made by [`AsCompleted::within`]:
/// yields `Ok((index, outcome))` in completion order, then `Err(Timeout)`
/// once if the deadline passes first, then ends.
#[derive(Debug)]
pub struct AsCompletedWithin<T> {
    inner: AsCompleted<T>,
    deadline: Option<std::time::Instant>,
    timed_out: bool,
}

impl<T> AsCompletedWithin<T> {
    /// How many outcomes are still to come (not counting a timeout).
    pub fn remaining(&self) -> usize {
        self.inner.remaining
    }

    /// The handles not yielded yet, with their indices in the input: see
    /// [`AsCompleted::into_remaining`].
    pub fn into_remaining(self) -> Vec<(usize, TaskHandle<T>)> {
        self.inner.into_remaining()
    }
}

impl<T> Iterator for AsCompletedWithin<T> {
    type Item = Result<Completed<T>, Timeout>;

    /// Blocks until the next task finishes or the deadline passes.
    fn next(&mut self) -> Option<Self::Item> {
        if self.timed_out {
            return None;
        }
        match self.inner.next_until(self.deadline) {
            Some(item) => item.map(Ok),
            None => {
                self.timed_out = true;
                Some(Err(Timeout))
            }
        }
    }
}

impl<T> std::iter::FusedIterator for AsCompletedWithin<T> {}

/// The async form of [`AsCompleted`]: a [`Stream`](futures_core::Stream)
/// of `(index, outcome)` pairs in completion order, made by
/// [`AsCompleted::into_stream`].
///
/// ```
/// use futures_lite::StreamExt;
/// use weft_sync::{TaskHandle, as_completed};
///
/// let (c0, h0) = TaskHandle::pair();
/// let (c1, h1) = TaskHandle::pair();
/// let mut stream = as_completed([h0, h1]).into_stream();
/// c1.set_result('b');
/// c0.set_result('a');
/// futures_lite::future::block_on(async {
///     assert_eq!(stream.next().await, Some((1, Ok('b'))));
///     assert_eq!(stream.next().await, Some((0, Ok('a'))));
///     assert_eq!(stream.next().await, None);
/// });
/// ```
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct AsCompletedStream<T> {
    inner: AsCompleted<T>,
}

impl<T> AsCompleted<T> {
    /// Turns the blocking iterator into an async stream.
    pub fn into_stream(self) -> AsCompletedStream<T> {
        AsCompletedStream { inner: self }
    }
}

impl<T> futures_core::Stream for AsCompletedStream<T> {
    type Item = (usize, Result<T, TaskError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut self.get_mut().inner;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        match this.take_ready(Some(cx.waker())) {
            Some(item) => Poll::Ready(Some(item)),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.inner.remaining, Some(self.inner.remaining))
    }
}

impl<T> Unpin for AsCompletedStream<T> {}

impl<T> Unpin for AsCompleted<T> {}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        for (h, key) in self.handles.iter().zip(&self.keys) {
            if let (Some(h), Some(key)) = (h, key) {
                h.unwatch(*key);
            }
        }
    }
}

impl<T> std::fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}
