#!/usr/bin/env python3
"""Python peers for crates/weft-process/benches/process.rs.

Runs the same workloads on multiprocessing.Pool (impl "python-mp-pool") and
concurrent.futures.ProcessPoolExecutor (impl "python-process-pool-executor"),
multiprocessing.Process ("python-process-fork", "python-process-spawn") and
multiprocessing.Queue ("python-mp-queue"), and loky's reusable executor
("loky", PyPI `loky`, a ProcessPoolExecutor that survives a worker's
crash) on issue 16's 4-worker rows, and prints a JSON list of {"bench", "impl", "ns_per_iter", "lo", "hi"} rows
(the format of target/weft-bench/results.json: the median of the timed runs,
and a 95% confidence interval of that median from order statistics) on
stdout. Meant to be run by
`cargo xtask bench weft-process` when python3 is present:

    python3 crates/weft-process/benches/python_peers.py [--quick]

Workloads without a row, and why:
- crash_to_replacement: a worker that dies hangs multiprocessing.Pool's task
  forever and breaks a ProcessPoolExecutor for good (BrokenProcessPool), so
  there is no "replacement serving tasks" to time.
- crash_recovery_4_workers has loky's row (its executor is restarted by
  get_reusable_executor after a TerminatedWorkerError) and
  ProcessPoolExecutor's made again after BrokenProcessPool (what its users
  must do; the new executor's start is in the time), not
  multiprocessing.Pool's (it hangs on the lost task).

Issue 16's rows (4 workers each): map_4_workers_64_items_{1kib,64kib,1mib}
(Pool.map's own chunk size, which is 4 here; the executors get
chunksize=4), cpu_mix_4_workers_200_tasks (every row chunksize=1; each task
burns a fixed amount of its own thread's CPU time, time.thread_time_ns, so
Python does the same work as Rust), crash_recovery_4_workers (chunksize=7).
loky is held as its documentation shows: one get_reusable_executor, reused
across calls (and across the rows, as its workers are).

`--only NAME[,NAME]` runs only the rows whose bench name contains one of
the NAMEs (for short local runs).
- pool_startup is timed as "constructor + first tiny task + teardown" (the
  `with` block's exit: Pool.terminate() and ProcessPoolExecutor.shutdown(),
  each of which joins the workers), as weft's row is: build, first task,
  drop. Neither Python pool waits for its workers in its constructor.

Python's default start method on Linux (fork, before 3.14) is used: the
pools as their users get them.
"""

import concurrent.futures
import concurrent.futures.process
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


def crash():
    # SIGABRT, as weft's row: without the traceback faulthandler prints.
    import faulthandler
    faulthandler.disable()
    os.abort()


def spin_cpu(us):
    """Burns `us` microseconds of this thread's CPU time."""
    end = time.thread_time_ns() + us * 1000
    while time.thread_time_ns() < end:
        pass
    return us


# The CPU-time mix of cpu_mix_4_workers_200_tasks, in µs (process.rs has
# the same), repeated 25 times.
CPU_MIX = [3000, 50, 200, 50, 1000, 50, 200, 50]


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


def issue16_rows(row, scale, wanted):
    """The 4-worker rows of issue 16, for multiprocessing.Pool,
    ProcessPoolExecutor and loky."""
    try:
        import loky
    except ImportError:
        loky = None
        print("python_peers.py: loky is not installed; its rows are skipped "
              "(cargo xtask services --bench installs it)", file=sys.stderr)
    sizes = [("1kib", 1 << 10), ("64kib", 64 << 10), ("1mib", 1 << 20)]
    tasks = CPU_MIX * 25
    total = sum(tasks)

    def payload_rows(impl, map_fn):
        for name, size in sizes:
            bench = "map_4_workers_64_items_" + name
            if not wanted(bench):
                continue
            items = [bytes([i]) * size for i in range(64)]

            def run(items=items, size=size):
                n = sum(len(b) for b in map_fn(echo, items, 4))
                assert n == 64 * size

            row(bench, impl, timed(run, 5 * scale))
        if wanted("cpu_mix_4_workers_200_tasks"):
            def mix():
                assert sum(map_fn(spin_cpu, tasks, 1)) == total

            row("cpu_mix_4_workers_200_tasks", impl, timed(mix, 5 * scale))

    with multiprocessing.Pool(4) as pool:
        # Pool.map's own chunk size for 64 items on 4 processes is 4.
        payload_rows("python-mp-pool",
                     lambda f, xs, c: pool.map(f, xs) if c == 4 else pool.map(f, xs, c))
    with concurrent.futures.ProcessPoolExecutor(4) as ex:
        payload_rows("python-process-pool-executor",
                     lambda f, xs, c: list(ex.map(f, xs, chunksize=c)))
    if loky is not None:
        ex = loky.get_reusable_executor(max_workers=4)
        payload_rows("loky", lambda f, xs, c: list(ex.map(f, xs, chunksize=c)))

    if not wanted("crash_recovery_4_workers"):
        return

    # crash_recovery_4_workers: a task aborts its worker; the failure is
    # reported, then 100 tiny tasks run on the recovered pool.
    if loky is not None:
        def loky_recovery():
            ex = loky.get_reusable_executor(max_workers=4)
            try:
                ex.submit(crash).result()
                raise AssertionError("the crash did not fail its task")
            except loky.process_executor.TerminatedWorkerError:
                pass
            # The broken executor is replaced by a new one here.
            ex = loky.get_reusable_executor(max_workers=4)
            return sum(ex.map(square, range(100), chunksize=7))

        row("crash_recovery_4_workers", "loky", timed(loky_recovery, 5 * scale))

    state = {"ex": concurrent.futures.ProcessPoolExecutor(4)}

    def executor_recovery():
        try:
            state["ex"].submit(crash).result()
            raise AssertionError("the crash did not fail its task")
        except concurrent.futures.process.BrokenProcessPool:
            pass
        state["ex"].shutdown()
        state["ex"] = concurrent.futures.ProcessPoolExecutor(4)
        return sum(state["ex"].map(square, range(100), chunksize=7))

    row("crash_recovery_4_workers", "python-process-pool-executor",
        timed(executor_recovery, 5 * scale))
    state["ex"].shutdown()


def main():
    args = sys.argv[1:]
    quick = "--quick" in args
    only = None
    if "--only" in args:
        only = args[args.index("--only") + 1].split(",")

    def wanted(bench):
        return only is None or any(o in bench for o in only)

    scale = 1 if quick else 3
    procs = os.cpu_count() or 1
    n_map = 1_000_000
    chunk = -(-n_map // (procs * 4))  # the chunk size weft and Pool.map pick
    # The 64 MiB payload exists only while its rows run: every pool here
    # forks this process, and a fork copies the page tables of all it
    # holds (64 MiB held for good would slow every later fork-based row).
    payload = None
    rows = []

    def row(bench, impl, stats):
        ns, lo, hi = stats
        rows.append({"bench": bench, "impl": impl, "ns_per_iter": float(ns),
                     "lo": float(lo), "hi": float(hi)})

    if wanted("round_trip_tiny_task_one_cpu"):
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

    if wanted("bytes_64mib_round_trip") or wanted("map_1m_tiny_tasks") or wanted("round_trip_tiny_task") or wanted("submit_10k_tiny_tasks"):
        with multiprocessing.Pool(1) as pool:
            row("round_trip_tiny_task", "python-mp-pool",
                timed(lambda: pool.apply(square, (7,)), 2000 * scale, warmup=100))
            payload = b"\xa5" * (64 << 20)
            row("bytes_64mib_round_trip", "python-mp-pool",
                timed(lambda: pool.apply(echo, (payload,)), 3 * scale))
            payload = None
        with multiprocessing.Pool(procs) as pool:
            row("submit_10k_tiny_tasks", "python-mp-pool",
                timed(lambda: sum(r.get() for r in
                                  [pool.apply_async(square, (i,)) for i in range(10_000)]),
                      3 * scale))
            row("map_1m_tiny_tasks", "python-mp-pool",
                timed(lambda: sum(pool.map(square, range(n_map))), 2 * scale))

    if wanted("bytes_64mib_round_trip") or wanted("map_1m_tiny_tasks") or wanted("round_trip_tiny_task") or wanted("submit_10k_tiny_tasks"):
        with concurrent.futures.ProcessPoolExecutor(1) as ex:
            row("round_trip_tiny_task", "python-process-pool-executor",
                timed(lambda: ex.submit(square, 7).result(), 2000 * scale, warmup=100))
            payload = b"\xa5" * (64 << 20)
            row("bytes_64mib_round_trip", "python-process-pool-executor",
                timed(lambda: ex.submit(echo, payload).result(), 3 * scale))
            payload = None
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

    if wanted("pool_startup"):
        row("pool_startup", "python-mp-pool", timed(start_pool, 5 * scale))
        row("pool_startup", "python-process-pool-executor", timed(start_executor, 5 * scale))

    if wanted("process_start_join"):
        # process_start_join: an empty function's Process, started and joined,
        # with each start method weft is compared with.
        for method in ("fork", "spawn"):
            ctx = multiprocessing.get_context(method)

            def start_join(ctx=ctx):
                p = ctx.Process(target=empty)
                p.start()
                p.join()

            # 40 starts (fork, about a second) or 10 (spawn, about 1-2 s)
            # per scale: enough for the median's interval not to be all
            # noise on a loaded machine.
            row("process_start_join", "python-process-" + method,
                timed(start_join, (40 if method == "fork" else 10) * scale))

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

    if wanted("queue_100k_items"):
        row("queue_100k_items", "python-mp-queue", timed(queue_items, 3 * scale, warmup=0))

    issue16_rows(row, scale, wanted)

    json.dump(rows, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
