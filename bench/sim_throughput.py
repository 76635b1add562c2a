"""Throughput of the upstream simulator: requests per second it serves on loopback.

    .venv/bin/python bench/sim_throughput.py [--threads 8] [--seconds 5]

Measures two kinds of request with zero simulated latency (pure serving cost): GET /health and
POST /get_booking_number on a live session (session block, data lookup, call history). Each
thread uses its own session (one browser, one request) and its own keep-alive connection.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emodal_sim import DEFAULT_LATENCIES, SimConfig, SimServer  # noqa: E402
from emodal_sim.data import containers_for  # noqa: E402


def run(url: str, threads: int, seconds: float, make_request: object) -> tuple[int, list[float]]:
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(index: int) -> None:
        http = requests.Session()
        call = make_request(http, index)  # type: ignore[operator]
        barrier.wait()
        while not stop.is_set():
            started = time.perf_counter()
            call()
            latencies[index].append(time.perf_counter() - started)
            counts[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    time.sleep(seconds)  # the measurement window
    stop.set()
    for thread in pool:
        thread.join()
    return sum(counts), [x for per in latencies for x in per]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    config = SimConfig(time_scale=0.0, latencies=dict.fromkeys(DEFAULT_LATENCIES, 0.0))
    with SimServer(config, host="127.0.0.1", port=0).start() as server:
        url = server.url

        def health(http: requests.Session, index: int) -> object:
            return lambda: http.get(f"{url}/health", timeout=10).raise_for_status()

        def booking(http: requests.Session, index: int) -> object:
            username = f"bench-{index}"
            sid = http.post(
                f"{url}/get_session",
                json={"username": username, "password": "p", "captcha_api_key": "k"},
                timeout=10,
            ).json()["session_id"]
            container = containers_for(username, config)[0]["Container #"]
            body = {"session_id": sid, "container_id": container}
            return lambda: http.post(
                f"{url}/get_booking_number", json=body, timeout=10
            ).raise_for_status()

        for name, factory in (("GET /health", health), ("POST /get_booking_number", booking)):
            total, latencies = run(url, args.threads, args.seconds, factory)
            latencies.sort()
            p95 = latencies[int(len(latencies) * 0.95)] * 1000
            print(
                f"{name:<26} {args.threads} threads: {total / args.seconds:7.0f} req/s, "
                f"p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95:.1f} ms"
            )


if __name__ == "__main__":
    main()
