//! A set of child futures polled by one parent, where a wake-up polls only
//! the children that were woken (so awaiting n futures costs O(n) polls in
//! all, not O(n) per wake-up). Backs `join_all`, `try_join_all`,
//! `as_completed` and `TaskGroup`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// Which children were woken, and the parent to wake.
#[derive(Default)]
struct ReadyList {
    inner: Mutex<ReadyInner>,
}

#[derive(Default)]
struct ReadyInner {
    ready: Vec<usize>,
    parent: Option<Waker>,
}

impl ReadyList {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReadyInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The waker of one child: queues its index and wakes the parent.
struct ChildWake {
    index: usize,
    queued: AtomicBool,
    list: Arc<ReadyList>,
}

impl Wake for ChildWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            let parent = {
                let mut inner = self.list.lock();
                inner.ready.push(self.index);
                inner.parent.take()
            };
            if let Some(parent) = parent {
                // The parent's waker is user code, and this may run where a
                // panic aborts the process (async-task wakes a task's
                // awaiter under an abort-on-panic guard): contain it.
                crate::task::wake_contained(parent);
            }
        }
    }
}

struct Child<F: ?Sized> {
    future: Option<Pin<Box<F>>>,
    wake: Arc<ChildWake>,
    waker: Waker,
}

/// The child futures of one parent.
pub(crate) struct Children<F: ?Sized> {
    children: Vec<Child<F>>,
    list: Arc<ReadyList>,
    scratch: Vec<usize>,
    left: usize,
    /// Slots of finished children, for [`push`](Children::push) to reuse
    /// (kept only by a set made with [`dynamic`](Children::dynamic)).
    free: Option<Vec<usize>>,
}

/// What the parent wants after a child finished.
pub(crate) enum Next {
    /// Keep polling the other ready children.
    Continue,
    /// Stop polling for now (the rest stay queued for the next poll).
    Stop,
}

impl<F: Future> Children<F> {
    pub(crate) fn new(futures: impl IntoIterator<Item = F>) -> Self {
        Children::from_boxed(futures.into_iter().map(Box::pin))
    }
}

impl<F: Future + ?Sized> Children<F> {
    pub(crate) fn from_boxed(futures: impl IntoIterator<Item = Pin<Box<F>>>) -> Self {
        let list = Arc::new(ReadyList::default());
        let children: Vec<Child<F>> = futures
            .into_iter()
            .enumerate()
            .map(|(index, f)| {
                let wake = Arc::new(ChildWake {
                    index,
                    queued: AtomicBool::new(true),
                    list: list.clone(),
                });
                Child {
                    future: Some(f),
                    waker: Waker::from(wake.clone()),
                    wake,
                }
            })
            .collect();
        list.lock().ready = (0..children.len()).collect();
        let left = children.len();
        Children {
            children,
            list,
            scratch: Vec::new(),
            left,
            free: None,
        }
    }

    /// An empty set that grows with [`push`](Children::push) and reuses the
    /// slots of finished children.
    pub(crate) fn dynamic() -> Self {
        let mut children = Children::from_boxed(std::iter::empty());
        children.free = Some(Vec::new());
        children
    }

    /// Adds a child, to be polled at the next
    /// [`poll_children`](Children::poll_children); returns its slot (a
    /// finished child's slot may be reused).
    pub(crate) fn push(&mut self, future: Pin<Box<F>>) -> usize {
        let slot = self
            .free
            .as_mut()
            .and_then(Vec::pop)
            .unwrap_or(self.children.len());
        let wake = Arc::new(ChildWake {
            index: slot,
            queued: AtomicBool::new(true),
            list: self.list.clone(),
        });
        let child = Child {
            future: Some(future),
            waker: Waker::from(wake.clone()),
            wake,
        };
        if slot == self.children.len() {
            self.children.push(child);
        } else {
            // A stale wake-up of the slot's previous child may still queue
            // the slot: at worst one spurious poll of the new one.
            self.children[slot] = child;
        }
        self.list.lock().ready.push(slot);
        self.left += 1;
        slot
    }

    /// Takes every unfinished child out of the set, which is left empty.
    pub(crate) fn drain(&mut self) -> Vec<Pin<Box<F>>> {
        let taken = self
            .children
            .iter_mut()
            .filter_map(|child| child.future.take())
            .collect();
        self.children.clear();
        self.list.lock().ready.clear();
        if let Some(free) = &mut self.free {
            free.clear();
        }
        self.left = 0;
        taken
    }

    /// How many children have not finished.
    pub(crate) fn left(&self) -> usize {
        self.left
    }

    /// How many children there are in all.
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    /// Polls the children that were woken (all of them, the first time) and
    /// hands each finished one's output to `done`. `poll` polls one child (so
    /// the caller can catch panics). Returns `Ready` when no child is left.
    pub(crate) fn poll_children<O>(
        &mut self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(Pin<&mut F>, &mut Context<'_>) -> Poll<O>,
        mut done: impl FnMut(usize, O) -> Next,
    ) -> Poll<()> {
        if self.left == 0 {
            return Poll::Ready(());
        }
        {
            let mut inner = self.list.lock();
            match &inner.parent {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => inner.parent = Some(cx.waker().clone()),
            }
            std::mem::swap(&mut inner.ready, &mut self.scratch);
        }
        let mut i = 0;
        while i < self.scratch.len() {
            let index = self.scratch[i];
            i += 1;
            let child = &mut self.children[index];
            child.wake.queued.store(false, Ordering::Release);
            let Some(future) = child.future.as_mut() else {
                continue;
            };
            let mut child_cx = Context::from_waker(&child.waker);
            let polled = crate::waker::polling_with(&mut child_cx, |cx| poll(future.as_mut(), cx));
            if let Poll::Ready(out) = polled {
                child.future = None;
                self.left -= 1;
                if let Some(free) = &mut self.free {
                    free.push(index);
                }
                if let Next::Stop = done(index, out) {
                    // Requeue the ones not polled yet.
                    let rest: Vec<usize> = self.scratch[i..].to_vec();
                    for &r in &rest {
                        self.children[r].wake.queued.store(true, Ordering::Release);
                    }
                    self.list.lock().ready.extend(rest);
                    break;
                }
            }
        }
        self.scratch.clear();
        if self.left == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
