//! The cost of the `deadlock-detection` feature: the same uncontended
//! lock/unlock as `mutex_uncontended` in `benches/sync.rs`, with detection
//! on, against parking_lot (which has no detection). Compare with the
//! `mutex_uncontended/weft` row of `cargo bench --bench sync` for the cost of
//! the feature itself.
//!
//! Run: `cargo bench -p weft-sync --features deadlock-detection --bench deadlock`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

fn mutex_lock_unlock_detection_on(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_lock_unlock_detection_on");
    let weft = weft_sync::Mutex::new(0u64);
    g.bench_function("weft", |b| b.iter(|| *black_box(&weft).lock() += 1));
    let pl = parking_lot::Mutex::new(0u64);
    g.bench_function("parking_lot", |b| b.iter(|| *black_box(&pl).lock() += 1));
    g.finish();
}

/// The nested case, where detection does its work: one lock held while
/// another is taken (the ordering edge exists after the first iteration).
fn mutex_nested_detection_on(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_nested_detection_on");
    let (a, b) = (weft_sync::Mutex::new(0u64), weft_sync::Mutex::new(0u64));
    g.bench_function("weft", |bench| {
        bench.iter(|| {
            let _a = black_box(&a).lock();
            *black_box(&b).lock() += 1;
        })
    });
    let (a, b) = (parking_lot::Mutex::new(0u64), parking_lot::Mutex::new(0u64));
    g.bench_function("parking_lot", |bench| {
        bench.iter(|| {
            let _a = black_box(&a).lock();
            *black_box(&b).lock() += 1;
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = mutex_lock_unlock_detection_on, mutex_nested_detection_on
}
criterion_main!(benches);
