//! One allocation per spawned task: counted with a wrapping global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the thread being measured only: the test harness and other
    /// tests (and `async-io`'s helper thread) allocate on other threads.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn one_allocation_per_spawned_task() {
    const N: usize = 1000;
    let allocs = weft_async::run(async {
        // Warm up: grow the run queue and the handle vector once.
        let mut tasks = Vec::with_capacity(N);
        for i in 0..N {
            tasks.push(weft_async::spawn(async move { i }));
        }
        for t in tasks.drain(..) {
            t.await.unwrap();
        }
        ALLOCS.store(0, Ordering::SeqCst);
        COUNTING.with(|c| c.set(true));
        for i in 0..N {
            tasks.push(weft_async::spawn(async move { i }));
        }
        let mut sum = 0;
        for t in tasks.drain(..) {
            sum += t.await.unwrap();
        }
        COUNTING.with(|c| c.set(false));
        assert_eq!(sum, N * (N - 1) / 2);
        ALLOCS.load(Ordering::SeqCst)
    });
    assert_eq!(allocs, N, "one allocation per task, nothing else");
}

#[test]
fn a_task_handle_is_three_words() {
    // A million handles in a Vec (the spawn-and-await workload) cost 24 MB,
    // not the 40 MB of a handle that carried its name and outcome inline.
    assert!(std::mem::size_of::<weft_async::Task<()>>() <= 3 * std::mem::size_of::<usize>());
    assert!(std::mem::size_of::<weft_async::Task<u64>>() <= 3 * std::mem::size_of::<usize>());
}
