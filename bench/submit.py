"""Submission benchmark: reviews per second into Kafka through the API, one per request against batches.

    python bench/submit.py [--reviews 3000] [--clients 16] [--batch 100 --batch 500]

Starts the embedded PostgreSQL and Tansu under ``.reviewscore/bench-submit`` (or uses
``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS``), serves the real app with uvicorn in a subprocess
(its own interpreter, so the client's CPU and GIL are not the server's) and drives it with httpx:
``POST /sentiments/`` from ``--clients`` concurrent clients, and ``POST /sentiments/batch`` with
each ``--batch`` size, one request after another, on texts of the same shape. Each row is warmed
up first; with ``--rounds N`` the rows run N times, in alternating order, and the median is
printed. Every request waits for the broker's acknowledgement (acks=all), as a real submission
does. No worker runs: this measures the way in, not scoring. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def serve(database_url: str, bootstrap_servers: str) -> Iterator[str]:
    """The real app on a free port, in a uvicorn subprocess."""
    from core.embedded import free_port

    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers}
    command = [sys.executable, "-m", "uvicorn", "query_api.app:create_app", "--factory", "--port", str(port)]
    server = subprocess.Popen([*command, "--log-level", "warning", "--no-access-log"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the API exited with {server.returncode} before it answered")
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not answer /readyz within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def texts(count: int, run: str) -> list[dict[str, object]]:
    """Distinct reviews of a realistic length (about 160 characters), keyed by this run."""
    words = [
        "fast",
        "delivery",
        "lovely",
        "fabric",
        "broken",
        "zip",
        "refund",
        "support",
        "slow",
        "great",
        "price",
        "size",
        "colour",
        "return",
    ]
    return [
        {
            "text": " ".join(words[(i * 7 + j) % len(words)] for j in range(25)) + f" {i}",
            "brand": f"Brand{i % 20:02d}",
            "rating": i % 5 + 1,
            "review_id": f"{run}-{i}",
        }
        for i in range(count)
    ]


async def one_by_one(base: str, reviews: list[dict[str, object]], clients: int) -> float:
    queue = iter(reviews)

    async def client(http: httpx.AsyncClient) -> None:
        for review in queue:
            response = await http.post("/sentiments/", json=review)
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return time.perf_counter() - started


def batched(base: str, reviews: list[dict[str, object]], size: int) -> float:
    with httpx.Client(base_url=base, timeout=60) as http:
        started = time.perf_counter()
        for start in range(0, len(reviews), size):
            response = http.post("/sentiments/batch", json={"reviews": reviews[start : start + size]})
            response.raise_for_status()
        return time.perf_counter() - started


def run_row(base: str, size: int | None, reviews: list[dict[str, object]], clients: int) -> float:
    """Seconds to submit ``reviews`` one per request (``size`` None) or in batches of ``size``."""
    if size is None:
        return asyncio.run(one_by_one(base, reviews, clients))
    return batched(base, reviews, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reviews", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for one-by-one POSTs")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 100 and 500)")
    parser.add_argument("--rounds", type=int, default=1, help="times each row runs, alternating the order; median")
    args = parser.parse_args()
    sizes = args.batch or [100, 500]
    if max(sizes) > 1000 or min(sizes) < 1:
        parser.error("--batch takes 1 to 1000 (POST /sentiments/batch's bound)")
    if args.rounds < 1 or args.reviews < 1 or args.clients < 1:
        parser.error("--rounds, --reviews and --clients take 1 or more")

    os.environ.setdefault("REVIEWSCORE_STATE_DIR", ".reviewscore/bench-submit")
    os.environ.setdefault("API_MAX_BODY_BYTES", str(max(300_000, 400 * max(sizes))))
    os.environ.setdefault("API_SUBMIT_BATCH_MAX", str(max(sizes)))
    from core import migrate
    from core.runtime import ensure_infra

    Path(os.environ["REVIEWSCORE_STATE_DIR"]).mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, int | None]] = [(f"POST /sentiments/, {args.clients} clients", None)]
    rows += [(f"POST /sentiments/batch, {size} a request", size) for size in sizes]
    with ensure_infra() as connections:
        assert connections.database_url is not None
        assert connections.bootstrap_servers is not None
        migrate.upgrade(connections.database_url)
        with serve(connections.database_url, connections.bootstrap_servers) as base:
            for _name, size in rows:  # warm-up: connections, the producer, the first batch of each shape
                run_row(
                    base, size, texts(max(size or args.clients, args.clients) * 2, uuid.uuid4().hex[:8]), args.clients
                )
            seconds: dict[str, list[float]] = {name: [] for name, _ in rows}
            for round_ in range(args.rounds):
                for name, size in rows if round_ % 2 == 0 else rows[::-1]:
                    reviews = texts(args.reviews, uuid.uuid4().hex[:8])  # new keys: nothing is deduplicated
                    seconds[name].append(run_row(base, size, reviews, args.clients))
    rounds = f", median of {args.rounds} alternated rounds" if args.rounds > 1 else ""
    print(f"{args.reviews:,} reviews per row{rounds}; {os.cpu_count()} CPUs shared by the client, API and broker")
    print(f"{'way in':36} {'seconds':>8} {'reviews/s':>10}")
    for name, _size in rows:
        elapsed = statistics.median(seconds[name])
        print(f"{name:36} {elapsed:8.2f} {args.reviews / elapsed:10,.0f}")


if __name__ == "__main__":
    main()
