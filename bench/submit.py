"""Submission benchmark: reviews per second into Kafka through the API, one per request against batches.

    python bench/submit.py [--reviews 3000] [--clients 16] [--batch 100 --batch 500]

Starts the embedded PostgreSQL and Tansu under ``.reviewscore/bench-submit`` (or uses
``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS``), serves the real app with uvicorn in this process
and drives it with httpx: ``POST /sentiments/`` from ``--clients`` concurrent clients, then
``POST /sentiments/batch`` with each ``--batch`` size, one request after another, on the same
texts, in one run. Every request waits for the broker's acknowledgement (acks=all), as a real
submission does. No worker runs: this measures the way in, not scoring. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def serve() -> Iterator[str]:
    """The real app on a free port, in a thread of this process."""
    import socket

    import uvicorn

    from query_api.app import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reviews", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for one-by-one POSTs")
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 100 and 500)")
    args = parser.parse_args()
    sizes = args.batch or [100, 500]
    if max(sizes) > 1000 or min(sizes) < 1:
        parser.error("--batch takes 1 to 1000 (POST /sentiments/batch's bound)")

    os.environ.setdefault("REVIEWSCORE_STATE_DIR", ".reviewscore/bench-submit")
    os.environ.setdefault("API_MAX_BODY_BYTES", str(max(300_000, 400 * max(sizes))))
    os.environ.setdefault("API_SUBMIT_BATCH_MAX", str(max(sizes)))
    from core import migrate
    from core.runtime import ensure_infra

    Path(os.environ["REVIEWSCORE_STATE_DIR"]).mkdir(parents=True, exist_ok=True)
    with ensure_infra() as connections:
        assert connections.database_url is not None
        migrate.upgrade(connections.database_url)
        with serve() as base:
            print(f"{args.reviews:,} reviews per row, {os.cpu_count()} CPUs shared by the client, API and broker")
            print(f"{'way in':36} {'seconds':>8} {'reviews/s':>10}")
            rows = [(f"POST /sentiments/, {args.clients} clients", None)] + [
                (f"POST /sentiments/batch, {size} a request", size) for size in sizes
            ]
            for name, size in rows:
                reviews = texts(args.reviews, uuid.uuid4().hex[:8])  # new keys: nothing is deduplicated
                if size is None:
                    elapsed = asyncio.run(one_by_one(base, reviews, args.clients))
                else:
                    elapsed = batched(base, reviews, size)
                print(f"{name:36} {elapsed:8.2f} {args.reviews / elapsed:10,.0f}")


if __name__ == "__main__":
    main()
