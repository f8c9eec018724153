//! The cost of the `deadlock-detection` feature: the same workloads as
//! `mutex_uncontended` and `mutex_nested` in `benches/sync.rs`, built with
//! detection on. These rows are not a race against a peer: `cargo xtask
//! bench` pairs each `<workload>_detection_on` row with the `<workload>`
//! row of the default build (same run) and reports detection on / off in
//! its own table, "cost of deadlock detection".
//!
//! Run: `cargo bench -p weft-sync --features deadlock-detection --bench deadlock`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

/// `mutex_uncontended/weft` of `benches/sync.rs`, detection on.
fn mutex_uncontended_detection_on(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_uncontended_detection_on");
    let weft = weft_sync::Mutex::new(0u64);
    g.bench_function("weft", |b| b.iter(|| *black_box(&weft).lock() += 1));
    g.finish();
}

/// `mutex_nested/weft` of `benches/sync.rs`, detection on: the case where
/// detection does its work (the ordering edge exists after the first
/// iteration and is looked up on every nested acquisition).
fn mutex_nested_detection_on(c: &mut Criterion) {
    let mut g = c.benchmark_group("mutex_nested_detection_on");
    let (a, b) = (weft_sync::Mutex::new(0u64), weft_sync::Mutex::new(0u64));
    g.bench_function("weft", |bench| {
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
    targets = mutex_uncontended_detection_on, mutex_nested_detection_on
}
criterion_main!(benches);
