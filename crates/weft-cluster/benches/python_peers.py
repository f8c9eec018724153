#!/usr/bin/env python3
"""Celery 5 on a Redis broker: the peer of crates/weft-cluster/benches/cluster.rs.

Starts a redis-server of its own (free port, no persistence) and one
`celery worker -c 2` (prefork, two processes: as the weft bench's two
one-process workers), then measures the bench's workloads on the same tiny
task (x * x) with Redis as broker and result backend, and prints a JSON list
of {"bench", "impl", "ns_per_iter", "lo", "hi"} rows (impl "celery-5-redis")
on stdout, as `cargo xtask bench weft-cluster` reads them:

    python3 crates/weft-cluster/benches/python_peers.py [--quick]

Rows: throughput_1k_tiny_tasks (1,000 `delay()`s, then every `.get()`; one
iteration is the batch), round_trip_tiny_task (one `delay().get()`), and
its _p50 / _p99 over single round trips. Celery's defaults otherwise
(prefetch multiplier 4, acks early), which favour it.

Missing redis-server or celery: a message on stderr and no rows.
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TASKS = """
from celery import Celery
import os
url = os.environ["WEFT_BENCH_REDIS"]
app = Celery("weft_bench_tasks", broker=url, backend=url)
app.conf.update(worker_hijack_root_logger=False, result_expires=600, broker_connection_retry_on_startup=True)

@app.task
def square(x):
    return x * x
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def median_ci(samples):
    """The median and a ~95% interval of it from order statistics."""
    v = sorted(samples)
    n = len(v)
    half = 0.98 * n ** 0.5
    lo = max(int(n / 2 - half), 0)
    hi = min(int(n / 2 + half + 0.999), n - 1)
    return statistics.median(v), v[lo], v[hi]


def main():
    quick = "--quick" in sys.argv[1:]
    if not shutil.which("redis-server") or not shutil.which("celery"):
        print(
            "celery peers skipped: needs redis-server (apt-get install redis-server) "
            "and celery (pip install 'celery[redis]>=5,<6')",
            file=sys.stderr,
        )
        print("[]")
        return
    tmp = tempfile.mkdtemp(prefix="weft-celery-bench-")
    port = free_port()
    url = "redis://127.0.0.1:%d/0" % port
    env = dict(os.environ, WEFT_BENCH_REDIS=url, PYTHONPATH=tmp)
    with open(os.path.join(tmp, "weft_bench_tasks.py"), "w") as f:
        f.write(TASKS)
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)
        worker = subprocess.Popen(
            ["celery", "-A", "weft_bench_tasks", "worker", "-c", "2", "--pool", "prefork",
             "-l", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        sys.path.insert(0, tmp)
        os.environ["WEFT_BENCH_REDIS"] = url
        from weft_bench_tasks import square  # noqa: E402

        # Warm up (and wait for the worker to serve).
        square.delay(1).get(timeout=60)
        for r in [square.delay(i) for i in range(100)]:
            r.get(timeout=60)

        rows = []
        runs = 3 if quick else 10
        samples = []
        for _ in range(runs):
            t = time.perf_counter_ns()
            results = [square.delay(i) for i in range(1000)]
            for r in results:
                r.get(timeout=120)
            samples.append(time.perf_counter_ns() - t)
        mid, lo, hi = median_ci(samples)
        rows.append({"bench": "throughput_1k_tiny_tasks", "impl": "celery-5-redis",
                     "ns_per_iter": mid, "lo": lo, "hi": hi})

        n = 200 if quick else 400
        trips = []
        for _ in range(n):
            t = time.perf_counter_ns()
            square.delay(3).get(timeout=60)
            trips.append(time.perf_counter_ns() - t)
        mid, lo, hi = median_ci(trips)
        rows.append({"bench": "round_trip_tiny_task", "impl": "celery-5-redis",
                     "ns_per_iter": mid, "lo": lo, "hi": hi})
        v = sorted(trips)
        rows.append({"bench": "round_trip_tiny_task_p50", "impl": "celery-5-redis",
                     "ns_per_iter": v[len(v) // 2]})
        rows.append({"bench": "round_trip_tiny_task_p99", "impl": "celery-5-redis",
                     "ns_per_iter": v[min(int(len(v) * 0.99), len(v) - 1)]})
        json.dump(rows, sys.stdout, indent=2)
        print()
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        redis.kill()
        redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
