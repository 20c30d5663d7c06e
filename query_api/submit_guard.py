"""Who may submit, and how often: optional API keys and a per-client rate limit on ``POST /sentiments/``.

Submission is the API's one door into the pipeline: every accepted review costs a broker write
and a model pass. Reads stay open (the dashboard and analysts' tools), as does the dashboard's
page. Both guards are off by default, so the embedded demo needs no set-up; a deployment that
exposes submission sets ``API_SUBMIT_API_KEYS`` and/or ``API_SUBMIT_RATE_PER_MINUTE``.

The rate limit is a token bucket per client (the API key when one is given, else the client's
address), one token per review (a batch of 50 costs 50), in this process: with ``API_WORKERS=N``
a client gets up to N times the rate, which the README says. It is meant to stop a runaway
producer or a form-spamming script, not to meter.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_CLIENTS = 10_000  # buckets kept; the least recently seen go first (a full one is a fresh one)


def presented_key(authorization: str | None, api_key_header: str | None) -> str | None:
    """The key a request carries: ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if api_key_header and api_key_header.strip():
        return api_key_header.strip()
    return None


NO_MATCH = object()
"""``key_owner``'s answer when no key matches (None is a matching key without a name)."""


def key_owner(presented: str, keys: Sequence[tuple[str | None, str]]) -> str | object | None:
    """The name of the key ``presented`` is (None for an unnamed one), or ``NO_MATCH``; every key is
    compared, in constant time, so timing says nothing of which one nearly matched."""
    given = presented.encode()
    owner: str | object | None = NO_MATCH
    for name, key in keys:
        if hmac.compare_digest(given, key.encode()):
            owner = name
    return owner


def submission_source(owner: str | None) -> str:
    """``api:<name>`` for a named producer's key, else ``user``: named producers' ids never collide."""
    return f"api:{owner}" if owner else "user"


def client_id(presented: str | None, address: str | None) -> str:
    """What the rate limit counts by: the key (as a digest, never kept in memory) or the address."""
    if presented:
        return "key:" + hashlib.sha256(presented.encode()).hexdigest()[:16]
    return f"addr:{address or 'unknown'}"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``per_minute`` submissions per client, in bursts of up to ``burst`` (default: a minute's worth)."""

    def __init__(self, per_minute: int, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else per_minute)
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, client: str, cost: int = 1) -> float:
        """0.0 when ``client`` may submit ``cost`` reviews now (that many tokens taken), else the
        seconds until it may. A cost over the burst never fits: the caller refuses it first."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.pop(client, None) or _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets[client] = bucket  # most recently seen last
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate

    def give_back(self, client: str, cost: int = 1) -> None:
        """Return ``cost`` tokens taken for reviews the broker did not take: only what was sent costs."""
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is not None:
                bucket.tokens = min(self.capacity, bucket.tokens + cost)


def retry_after(seconds: float) -> str:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
