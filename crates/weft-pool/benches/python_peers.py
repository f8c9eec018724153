#!/usr/bin/env python3
"""Python peers for crates/weft-pool/benches/pool.rs: the ThreadPoolExecutor
path (submit from outside the pool, one future per task).

Runs the same workloads as the Rust rows on
concurrent.futures.ThreadPoolExecutor (impl "python-thread-pool-executor")
with as many workers as the Rust pools (WEFT_BENCH_THREADS when set, else
os.cpu_count()), and prints a JSON
list of {"bench", "impl", "ns_per_iter"} rows on stdout, which
`cargo xtask bench weft-pool` merges:

    python3 crates/weft-pool/benches/python_peers.py [--quick]

Every row is in the unit of its Rust row:
- spawn_join_1m_{1thread,4threads}_per_task: ns per task. 1M submits take Python tens of
  seconds, so it runs 100k tasks per sample (25k per thread for 4 threads;
  --quick: 50k) and reports the time per task, median of the samples; the
  Rust rows are also per task, over bursts of 1M.
- spawn_to_start_idle_p50/_p99: ns from just before submit() to the first
  thing the task does (reading the clock), one task at a time into an idle
  pool (2 ms apart, so the workers are waiting on their queue).
- as_completed_100k_finished_per_handle: ns per future, draining as_completed (and
  taking each result()) over 100k futures that have all finished.
"""

import concurrent.futures as cf
import json
import os
import statistics
import sys
import threading
import time


def empty():
    return None


def spawn_join(ex, n):
    fs = [ex.submit(empty) for _ in range(n)]
    for f in fs:
        f.result()


def spawn_join_threads(ex, total, threads):
    ts = [threading.Thread(target=spawn_join, args=(ex, total // threads))
          for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def per_task(fn, tasks, samples):
    fn()  # warm-up
    out = []
    for _ in range(samples):
        t = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t) / tasks)
    return statistics.median(out)


def idle_latency(ex, samples):
    lat = []
    for i in range(samples + samples // 10):
        time.sleep(0.002)
        t0 = time.perf_counter_ns()
        started = ex.submit(time.perf_counter_ns).result()
        if i >= samples // 10:
            lat.append(started - t0)
    lat.sort()

    def at(q):
        return float(lat[min(int(len(lat) * q), len(lat) - 1)])

    return at(0.50), at(0.99)


def main():
    quick = "--quick" in sys.argv[1:]
    workers = int(os.environ.get("WEFT_BENCH_THREADS") or 0) or os.cpu_count() or 1
    tasks = 50_000 if quick else 100_000
    samples = 3 if quick else 5
    impl = "python-thread-pool-executor"
    rows = []

    def row(bench, ns):
        rows.append({"bench": bench, "impl": impl, "ns_per_iter": float(ns)})

    with cf.ThreadPoolExecutor(max_workers=workers) as ex:
        row("spawn_join_1m_1thread_per_task",
            per_task(lambda: spawn_join_threads(ex, tasks, 1), tasks, samples))
        row("spawn_join_1m_4threads_per_task",
            per_task(lambda: spawn_join_threads(ex, tasks, 4), tasks, samples))
        p50, p99 = idle_latency(ex, 1000 if quick else 2000)
        row("spawn_to_start_idle_p50", p50)
        row("spawn_to_start_idle_p99", p99)

        n = 100_000
        times = []
        for _ in range(samples):
            fs = [ex.submit(empty) for _ in range(n)]
            cf.wait(fs)
            t = time.perf_counter_ns()
            k = 0
            for f in cf.as_completed(fs):
                f.result()
                k += 1
            times.append((time.perf_counter_ns() - t) / n)
            assert k == n
        row("as_completed_100k_finished_per_handle", statistics.median(times))

    json.dump(rows, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
