#!/usr/bin/env python3
"""Python peers for crates/weft-process/benches/process.rs.

Runs the same workloads on multiprocessing.Pool (impl "python-mp-pool") and
concurrent.futures.ProcessPoolExecutor (impl "python-process-pool-executor"),
multiprocessing.Process ("python-process-fork", "python-process-spawn") and
multiprocessing.Queue ("python-mp-queue"), and prints a JSON list of {"bench", "impl", "ns_per_iter", "lo", "hi"} rows
(the format of target/weft-bench/results.json: the median of the timed runs,
and a 95% confidence interval of that median from order statistics) on
stdout. Meant to be run by
`cargo xtask bench weft-process` when python3 is present:

    python3 crates/weft-process/benches/python_peers.py [--quick]

Workloads without a row, and why:
- crash_to_replacement: a worker that dies hangs multiprocessing.Pool's task
  forever and breaks a ProcessPoolExecutor for good (BrokenProcessPool), so
  there is no "replacement serving tasks" to time.
- pool_startup is timed as "constructor + first tiny task + teardown" (the
  `with` block's exit: Pool.terminate() and ProcessPoolExecutor.shutdown(),
  each of which joins the workers), as weft's row is: build, first task,
  drop. Neither Python pool waits for its workers in its constructor.

Python's default start method on Linux (fork, before 3.14) is used: the
pools as their users get them.
"""

import concurrent.futures
import json
import math
import multiprocessing
import os
import statistics
import sys
import time


def square(x):
    return x * x


def echo(b):
    return b


def empty():
    pass


def fill(q, n):
    for i in range(n):
        q.put(i)


def median_ci(samples):
    """The median and a 95% confidence interval of it (order statistics:
    ranks n/2 -+ 0.98 sqrt(n), so min..max for n <= 5)."""
    s = sorted(samples)
    n = len(s)
    half = 0.98 * math.sqrt(n)
    lo = min(n, max(1, math.floor(n / 2 - half))) - 1
    hi = max(1, min(n, math.ceil(n / 2 + half))) - 1
    return statistics.median(s), s[lo], s[hi]


def timed(fn, iters, warmup=1):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(iters):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return median_ci(samples)


def main():
    quick = "--quick" in sys.argv[1:]
    scale = 1 if quick else 3
    procs = os.cpu_count() or 1
    n_map = 1_000_000
    chunk = -(-n_map // (procs * 4))  # the chunk size weft and Pool.map pick
    payload = b"\xa5" * (64 << 20)
    rows = []

    def row(bench, impl, stats):
        ns, lo, hi = stats
        rows.append({"bench": bench, "impl": impl, "ns_per_iter": float(ns),
                     "lo": float(lo), "hi": float(hi)})

    # round_trip_tiny_task_one_cpu: this process and its workers (which
    # inherit the mask) on one CPU, as process.rs does for every row.
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})
    with multiprocessing.Pool(1) as pool:
        row("round_trip_tiny_task_one_cpu", "python-mp-pool",
            timed(lambda: pool.apply(square, (7,)), 2000 * scale, warmup=100))
    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        row("round_trip_tiny_task_one_cpu", "python-process-pool-executor",
            timed(lambda: ex.submit(square, 7).result(), 2000 * scale, warmup=100))
    os.sched_setaffinity(0, everywhere)

    with multiprocessing.Pool(1) as pool:
        row("round_trip_tiny_task", "python-mp-pool",
            timed(lambda: pool.apply(square, (7,)), 2000 * scale, warmup=100))
        row("bytes_64mib_round_trip", "python-mp-pool",
            timed(lambda: pool.apply(echo, (payload,)), 3 * scale))
    with multiprocessing.Pool(procs) as pool:
        row("submit_10k_tiny_tasks", "python-mp-pool",
            timed(lambda: sum(r.get() for r in
                              [pool.apply_async(square, (i,)) for i in range(10_000)]),
                  3 * scale))
        row("map_1m_tiny_tasks", "python-mp-pool",
            timed(lambda: sum(pool.map(square, range(n_map))), 2 * scale))

    with concurrent.futures.ProcessPoolExecutor(1) as ex:
        row("round_trip_tiny_task", "python-process-pool-executor",
            timed(lambda: ex.submit(square, 7).result(), 2000 * scale, warmup=100))
        row("bytes_64mib_round_trip", "python-process-pool-executor",
            timed(lambda: ex.submit(echo, payload).result(), 3 * scale))
    with concurrent.futures.ProcessPoolExecutor(procs) as ex:
        row("submit_10k_tiny_tasks", "python-process-pool-executor",
            timed(lambda: sum(f.result() for f in
                              [ex.submit(square, i) for i in range(10_000)]),
                  3 * scale))
        row("map_1m_tiny_tasks", "python-process-pool-executor",
            timed(lambda: sum(ex.map(square, range(n_map), chunksize=chunk)), 2 * scale))

    def start_pool():
        with multiprocessing.Pool(2) as p:
            p.apply(square, (1,))

    def start_executor():
        with concurrent.futures.ProcessPoolExecutor(2) as e:
            e.submit(square, 1).result()

    row("pool_startup", "python-mp-pool", timed(start_pool, 5 * scale))
    row("pool_startup", "python-process-pool-executor", timed(start_executor, 5 * scale))

    # process_start_join: an empty function's Process, started and joined,
    # with each start method weft is compared with.
    for method in ("fork", "spawn"):
        ctx = multiprocessing.get_context(method)

        def start_join(ctx=ctx):
            p = ctx.Process(target=empty)
            p.start()
            p.join()

        row("process_start_join", "python-process-" + method,
            timed(start_join, 10 * scale))

    # queue_100k_items: a forked Process fills a multiprocessing.Queue with
    # 100,000 ints; this process gets them all.
    n_items = 100_000

    def queue_items():
        ctx = multiprocessing.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=fill, args=(q, n_items))
        p.start()
        total = sum(q.get() for _ in range(n_items))
        p.join()
        return total

    row("queue_100k_items", "python-mp-queue", timed(queue_items, 3 * scale, warmup=0))

    json.dump(rows, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
