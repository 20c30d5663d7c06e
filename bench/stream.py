"""Stream benchmark: model alone, end to end, no-op pipeline, seed-style baseline, latency.

    python bench/stream.py [--n 2000] [--noop-n 40000] [--baseline-n 200] [--ab-rounds 3] [--model DIR]

Everything runs on embedded parts (Tansu broker, embedded PostgreSQL) in a temporary directory;
the worker is the real ``reviewscore worker`` in a subprocess. Texts come from
/work/shared/data (womens_clothing_reviews test + train, real lengths). The model is
``--model``, else model/artifacts/default when it exists, else a tiny model trained on the spot
(the output says which). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from math import nan
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, pool, text  # noqa: E402
from variants import parse_variant  # noqa: E402  (bench/, the script's own directory)

from core import migrate  # noqa: E402
from core.config import DatabaseSettings, KafkaSettings, ModelSettings, StreamSettings  # noqa: E402
from core.db import make_engine, sqlalchemy_url  # noqa: E402
from core.embedded import EmbeddedBroker, EmbeddedDatabase, create_topics, free_port  # noqa: E402
from core.messages import ReviewMessage  # noqa: E402
from core.schema import CHANGES_TRIGGER  # noqa: E402
from stream.dlq import KafkaSender  # noqa: E402
from stream.records import Record, to_row, triage  # noqa: E402
from stream.sink import COLUMNS, PostgresSink  # noqa: E402

DATA = Path(os.environ.get("REVIEWSCORE_DATA", "/work/shared/data")) / "womens_clothing_reviews"


def load_texts(n: int) -> list[str]:
    texts: list[str] = []
    for name in ("test.csv", "train.csv"):
        with (DATA / name).open(encoding="utf-8", newline="") as handle:
            texts.extend(row["text"] for row in csv.DictReader(handle) if row["text"].strip())
    out = [texts[i % len(texts)] + ("" if i < len(texts) else f" #{i}") for i in range(n)]
    return out


def messages(texts: list[str], tag: str) -> list[tuple[bytes, bytes]]:
    return [ReviewMessage(text=t, source="bench", review_id=f"{tag}-{i}").to_kafka() for i, t in enumerate(texts)]


def pick_model(explicit: str | None, workdir: Path) -> tuple[Path, str]:
    if explicit:
        return Path(explicit), f"--model {explicit}"
    default = REPO / "model" / "artifacts" / "default"
    if (default / "model_card.json").exists() or default.exists():
        return default, "model/artifacts/default"
    from model.testing import build_tiny_model

    print("no model/artifacts/default: training a tiny model for the benchmark…", file=sys.stderr)
    return build_tiny_model(workdir / "tiny-model", seed=0), "TINY test model (2 layers, 32 wide) — not the default"


class Infra:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = self._database_with_commit_times(workdir / "pg")
        self.broker = EmbeddedBroker(workdir / "tansu").start()
        self.kafka = KafkaSettings(bootstrap_servers=self.broker.bootstrap_servers, flavor="tansu")

    @staticmethod
    def _database_with_commit_times(data_dir: Path) -> EmbeddedDatabase:
        """A server that records when each transaction committed, so latency ends at the commit
        (a row's ``created_on`` is its write transaction's start, before the write ran)."""
        db = EmbeddedDatabase(data_dir).start()
        admin = create_engine(sqlalchemy_url(db.url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("ALTER SYSTEM SET track_commit_timestamp = on"))  # read at server start
        admin.dispose()
        db.stop()
        return EmbeddedDatabase(data_dir).start()

    def fresh(self, name: str, partitions: int = 4) -> tuple[str, KafkaSettings]:
        admin = create_engine(sqlalchemy_url(self.db.url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = self.db.url.replace("/postgres?", f"/{name}?")
        migrate.upgrade(url, "head", "reviewscore_reader")
        kafka = self.kafka.model_copy(update={"topic": f"reviews-{name}", "dlq_topic": f"reviews-{name}.dlq"})
        create_topics(self.broker.bootstrap_servers, {kafka.topic: partitions, kafka.dlq_topic: 1})
        return url, kafka

    def close(self) -> None:
        for engine in _COUNTERS.values():
            engine.dispose()
        _COUNTERS.clear()
        self.broker.stop()
        self.db.stop()


_COUNTERS: dict[str, Any] = {}


def count(url: str) -> int:
    """Rows so far, over one kept connection per database: a new connection per poll forks a
    Postgres backend each time, CPU the worker under test would lose (≈15% of a core at 50/s)."""
    if url not in _COUNTERS:
        _COUNTERS[url] = create_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)
    with _COUNTERS[url].connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM sentiments")).scalar_one())


def start_worker(url: str, kafka: KafkaSettings, extra: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {
        # MODEL_* stays: the worker runs the model as (a) does in this process (threads, token budget).
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "KAFKA_", "STREAM_"))},
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers or "",
        "KAFKA_FLAVOR": "tansu",
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_DLQ_TOPIC": kafka.dlq_topic,
        "STREAM_WEB_PORT": str(free_port()),
        "REVIEWSCORE_LOG_LEVEL": "WARNING",
        "REVIEWSCORE_STATE_DIR": str(log.parent / "state"),
        # A consumer group per run: Faust and librdkafka members cannot share a group (their
        # assignment protocols differ), and a fresh group starts every run at offset 0.
        "STREAM_APP_ID": f"bench-{log.stem}",
        **extra,
    }
    with log.open("ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "core.cli", "worker"], env=env, stdout=handle, stderr=handle)


def drain_rate(url: str, n: int, worker: subprocess.Popen[bytes], timeout: float = 600) -> float:
    """Reviews/s from the first committed row until ``n`` are (worker start-up excluded).

    Callers publish more than ``n`` (``padded``): a last, partial batch waits STREAM_MAX_WAIT for
    reviews that never come, and that idle half second was inside the clock."""
    deadline = time.monotonic() + timeout
    while (first := count(url)) == 0:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("worker produced no rows")
        time.sleep(0.05)
    if first >= n > 1:  # n == 1 is the warm-up wait of latency()
        raise RuntimeError(f"all {n} rows landed in the first batch: raise --n above STREAM_MAX_BATCH")
    started = time.perf_counter()
    while (done := count(url)) < n:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker stopped at {done}/{n}")
        time.sleep(0.05)
    return (done - first) / (time.perf_counter() - started)


def search_catch_up(url: str, worker: subprocess.Popen[bytes], timeout: float = 600) -> float:
    """Seconds from now (the last timed row committed) until the worker's search indexer has
    written every queued document."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        with _COUNTERS[url].connect() as conn:  # drain_rate opened it
            if conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM sentiment_search_pending)")).scalar_one():
                return time.perf_counter() - started
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("search index never caught up")
        time.sleep(0.05)


def padded(texts: list[str], extra: dict[str, str]) -> list[str]:
    """``texts`` and then two full batches more, so the timed ones never end on a partial batch."""
    # The worker's batch: start_worker passes it only STREAM_* of ``extra``, not the shell's.
    batch = int(extra.get("STREAM_MAX_BATCH") or StreamSettings.model_fields["max_batch"].default)
    count = 2 * batch
    return texts + [texts[i * len(texts) // count] + " (padding)" for i in range(count)]  # spread, not the first


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def end_to_end(
    infra: Infra, name: str, texts: list[str], extra: dict[str, str], search_lag: list[float] | None = None
) -> float:
    """Publish ``texts``, start a worker, reviews/s from its first row to its last; with
    ``search_lag``, then also wait for the search index and append how long it took.

    ``BENCH_DROP_INDEX=name`` and ``BENCH_SQL=statement`` in ``extra`` are not passed to the
    worker: the bench drops that index, or runs that statement, on the fresh database first (an
    ablation: what one index or one storage setting costs the pipeline)."""
    extra = dict(extra)
    statements = [f'DROP INDEX "{drop}"'] if (drop := extra.pop("BENCH_DROP_INDEX", None)) else []
    statements += [sql] if (sql := extra.pop("BENCH_SQL", None)) else []
    url, kafka = infra.fresh(name)
    if statements:
        admin = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
        admin.dispose()
    KafkaSender(kafka).send(kafka.topic, [(k, v, {}) for k, v in messages(padded(texts, extra), name)])
    log = infra.workdir / f"{name}.log"
    worker = start_worker(url, kafka, extra, log)
    try:
        rate = drain_rate(url, len(texts), worker)
        if search_lag is not None:
            search_lag.append(search_catch_up(url, worker) if extra.get("STREAM_SEARCH_INDEXER") != "false" else nan)
        return rate
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}; worker log:\n{log.read_text(errors='replace')[-3000:]}") from exc
    finally:
        stop(worker)


def latency(
    infra: Infra, texts: list[str], rate: float, seconds: float, extra: dict[str, str], name: str = "latency"
) -> list[float]:
    """Publish at ``rate``/s to a running worker; latency = the row's commit time - send time."""
    url, kafka = infra.fresh(name)
    worker = start_worker(url, kafka, extra, infra.workdir / f"{name}.log")
    try:
        warm = messages(texts[:20], "warm")
        KafkaSender(kafka).send(kafka.topic, [(k, v, {}) for k, v in warm])
        drain_rate(url, 1, worker)
        time.sleep(2)
        n = max(1, int(rate * seconds))
        payload = messages([texts[i % len(texts)] for i in range(n)], "lat")
        from confluent_kafka import Producer

        producer = Producer({**kafka.producer_config(), "linger.ms": 0})
        sent: dict[str, float] = {}
        started = time.perf_counter()
        for i, (key, value) in enumerate(payload):
            target = started + i / rate
            while (now := time.perf_counter()) < target:
                time.sleep(min(0.002, target - now))
            sent[key.decode()] = time.time()
            producer.produce(kafka.topic, key=key, value=value)
            producer.poll(0)
        producer.flush(30)
        while count(url) < n + len(warm):
            if worker.poll() is not None:
                raise RuntimeError("worker died")
            time.sleep(0.1)
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        with engine.connect() as conn:
            committed = "extract(epoch from pg_xact_commit_timestamp(xmin))"
            rows = conn.execute(text(f"SELECT review_key, {committed} FROM sentiments")).all()
        engine.dispose()
        return [float(t) - sent[k] for k, t in rows if k in sent]
    finally:
        stop(worker)


def seed_baseline(infra: Infra, scorer: Any, texts: list[str]) -> float:
    """The seed's shape: one model call per review and one INSERT + commit per row."""
    url, _ = infra.fresh("baseline")
    engine = make_engine(DatabaseSettings(url=url))
    insert = text(f"INSERT INTO sentiments ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})")
    records = [Record("reviews", 0, i, k, v) for i, (k, v) in enumerate(messages(texts, "seed"))]
    parsed, _ = triage(records, 20_000)
    started = time.perf_counter()
    for item in parsed:
        (score,) = scorer.predict([item.message.text])
        with engine.begin() as conn:
            conn.execute(insert, to_row(item, score))
    elapsed = time.perf_counter() - started
    engine.dispose()
    return len(parsed) / elapsed


def overlap(infra: Infra, scorer: Any, texts: list[str], batch: int = 256) -> tuple[float, float, float, float]:
    """Sequential (score N, then write N) vs overlapped (score N while writing N-1): reviews/s,
    plus the model and database shares of the sequential run."""
    records = [Record("reviews", 0, i, k, v) for i, (k, v) in enumerate(messages(texts, "ov"))]
    parsed, _ = triage(records, 20_000)
    batches = [parsed[i : i + batch] for i in range(0, len(parsed), batch)]
    results = []
    model_s = db_s = 0.0
    for mode in ("sequential", "overlapped"):
        url, _ = infra.fresh(f"overlap_{mode}")
        engine = make_engine(DatabaseSettings(url=url))
        sink = PostgresSink(engine)
        started = time.perf_counter()
        if mode == "sequential":
            for items in batches:
                t0 = time.perf_counter()
                scores = scorer.predict([p.message.text for p in items])
                t1 = time.perf_counter()
                sink.write([to_row(p, s) for p, s in zip(items, scores, strict=True)])
                model_s += t1 - t0
                db_s += time.perf_counter() - t1
        else:
            with ThreadPoolExecutor(1) as writer:
                pending = None
                for items in batches:
                    scores = scorer.predict([p.message.text for p in items])
                    if pending is not None:
                        pending.result()
                    rows = [to_row(p, s) for p, s in zip(items, scores, strict=True)]
                    pending = writer.submit(sink.write, rows)
                if pending is not None:
                    pending.result()
        results.append(len(parsed) / (time.perf_counter() - started))
        engine.dispose()
    return results[0], results[1], model_s, db_s


SinkVariant = tuple[str, int, bool]
"""(method, batch size, rollup triggers on)."""


def sink_methods(infra: Infra, total: int, batch_sizes: tuple[int, ...]) -> dict[SinkVariant, tuple[float, float]]:
    """Rows/s of the sink's two methods (multi-row INSERT … ON CONFLICT vs COPY + merge) at
    several batch sizes, full schema (all indexes), one after another in one run, once each (a
    single pass: compare rows against the machine's run-to-run spread); COPY also with the
    rollups' triggers disabled, which prices what they add to the write path. Each variant writes
    the rows, then re-delivers them unchanged (every row conflicts and is compared, none
    rewritten). The connection is opened before the clock; the first delivery still creates the
    session's staging table, once."""
    records = [Record("reviews", 0, i, k, v) for i, (k, v) in enumerate(messages(load_texts(total), "snk"))]
    parsed, _ = triage(records, 20_000)
    from model.base import Score

    rows = [to_row(p, Score("neutral", 0.5, 0.9, 3, "v1")) for p in parsed]
    out: dict[SinkVariant, tuple[float, float]] = {}
    for batch in batch_sizes:
        for method, rollup in (("insert", True), ("copy", True), ("copy", False)):
            url, _ = infra.fresh(f"sink_{method}_{batch}_{'rollup' if rollup else 'bare'}")
            engine = make_engine(DatabaseSettings(url=url))
            if not rollup:
                with engine.begin() as conn:
                    # The rollups' and the search queue's triggers: the change notification (0011) stays on.
                    conn.execute(text("ALTER TABLE sentiments DISABLE TRIGGER USER"))
                    conn.execute(text(f"ALTER TABLE sentiments ENABLE TRIGGER {CHANGES_TRIGGER}"))
            with engine.connect() as conn:  # the pool keeps it: the first batch does not pay the connect
                conn.execute(text("SELECT 1"))
            sink = PostgresSink(engine, method=method)  # type: ignore[arg-type]
            rates = []
            for _delivery in ("first", "again"):
                started = time.perf_counter()
                for i in range(0, len(rows), batch):
                    sink.write(rows[i : i + batch])
                rates.append(len(rows) / (time.perf_counter() - started))
            out[(method, batch, rollup)] = (rates[0], rates[1])
            engine.dispose()
    return out


def print_sink_rates(sink_rates: dict[SinkVariant, tuple[float, float]]) -> None:
    for (method, batch, rollup), (first, again) in sink_rates.items():
        triggers = "" if rollup else ", rollup and search triggers off"
        rates = f"{first:,.0f} rows/s, re-delivered unchanged {again:,.0f} rows/s"
        print(f"sink alone, {method}, {batch}-row batches{triggers}: {rates}")


def chosen_variants(specs: list[str]) -> list[tuple[str, dict[str, str]]]:
    """``--variant`` specs, or the defaults alone; labels must differ (each names its own runs)."""
    variants = [parse_variant(spec) for spec in specs] or [("default", {})]
    if len({name for name, _ in variants}) < len(variants):
        raise SystemExit("--variant labels must differ: each names its own column of runs")
    return variants


def noop_variants(args: argparse.Namespace) -> None:
    """(c) for several worker settings in one run, interleaved so machine load hits them alike."""
    variants = chosen_variants(args.variant)
    texts = load_texts(args.noop_n)
    rates: dict[str, list[float]] = {name: [] for name, _ in variants}
    lags: dict[str, list[float]] = {name: [] for name, _ in variants}
    with tempfile.TemporaryDirectory(prefix="reviewscore-bench-") as tmp:
        infra = Infra(Path(tmp))
        try:
            for round_ in range(args.rounds):
                # Alternating order: no variant always follows the same one (and its database's
                # autovacuum and checkpoint work).
                order = list(enumerate(variants)) if round_ % 2 == 0 else list(enumerate(variants))[::-1]
                for i, (name, env) in order:
                    extra = {"STREAM_SCORER": "stream.scorers:NoopScorer", **env}
                    rates[name].append(end_to_end(infra, f"noop_{round_}_{i}", texts, extra, lags[name]))
                    print(f"round {round_ + 1} {name}: {rates[name][-1]:,.0f} reviews/s", file=sys.stderr)
            sink_rates = sink_methods(infra, args.sink_n, (256, 2000)) if args.sink_n else {}
        finally:
            infra.close()
    print(f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {args.noop_n} reviews per run")
    print()
    print("| (c) variant | worker settings | reviews/s (median) | runs | search current after the last row (s) |")
    print("|---|---|---:|---|---|")
    for name, env in variants:
        settings = ", ".join(f"{k}={v}" for k, v in env.items()) or "defaults"
        runs = " / ".join(f"{r:,.0f}" for r in rates[name])
        caught_up = " / ".join(f"{lag:.1f}" for lag in lags[name])
        print(f"| {name} | {settings} | {statistics.median(rates[name]):,.0f} | {runs} | {caught_up} |")
    print()
    print_sink_rates(sink_rates)


def latency_only(args: argparse.Namespace, engines: list[str]) -> None:
    """Publish -> committed row at one rate, with the model, per engine and variant.

    In the full run this phase follows the no-op runs, whose 80,000 rows leave the server's
    autovacuum and checkpoints busy: its latencies read up to twice these."""
    variants = chosen_variants(args.variant)
    with tempfile.TemporaryDirectory(prefix="reviewscore-bench-") as tmp:
        workdir = Path(tmp)
        model_dir, model_name = pick_model(args.model, workdir)
        texts = load_texts(max(1, int(args.rate * args.latency_seconds)))
        infra = Infra(workdir)
        results: list[tuple[str, str, list[float]]] = []
        try:
            for name, env in variants:
                for e in engines:
                    extra = {"MODEL_PATH": str(model_dir), "STREAM_ENGINE": e, **env}
                    tag = re.sub(r"\W", "_", f"lat_{name}_{e}").lower()
                    results.append((name, e, latency(infra, texts, args.rate, args.latency_seconds, extra, tag)))
        finally:
            infra.close()
    print(
        f"model: {model_name}; {args.rate:,.0f} reviews/s for {args.latency_seconds:.0f} s; cpu cores: {os.cpu_count()}"
    )
    print()
    print("| variant | engine | p50 ms | p99 ms | reviews |")
    print("|---|---|---:|---:|---:|")
    for name, e, lat in results:
        q = statistics.quantiles(lat, n=100)
        print(f"| {name} | {e} | {q[49] * 1000:,.0f} | {q[98] * 1000:,.0f} | {len(lat)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="reviews for (a), (b)")
    parser.add_argument("--noop-n", type=int, default=40000, help="reviews for (c)")
    parser.add_argument("--baseline-n", type=int, default=200, help="reviews for (d)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--noop-only",
        action="store_true",
        help="measure only (c), once per --variant, side by side (no model needed)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE,...",
        help=(
            "extra worker environment for a (c) variant, e.g. 'big:STREAM_MAX_BATCH=4000'; repeatable; "
            "BENCH_DROP_INDEX=NAME drops that index first, BENCH_SQL=STATEMENT runs it first (ablations)"
        ),
    )
    parser.add_argument("--sink-n", type=int, default=20_000, help="rows for the sink-alone comparison (0: skip)")
    parser.add_argument("--rounds", type=int, default=1, help="(c) variants: interleaved rounds, median reported")
    parser.add_argument(
        "--ab-rounds", type=int, default=1, help="(a) and (b): interleaved rounds, medians and the median ratio"
    )
    parser.add_argument(
        "--engines", default="faust,batch", help="STREAM_ENGINE values measured for (b), (c) and latency"
    )
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help=(
            "measure only publish -> committed row latency at --rate, per engine (and per --variant), each on a "
            "fresh worker and database with nothing else written to the server before it"
        ),
    )
    parser.add_argument("--rate", type=float, default=96.0, help="--latency-only: reviews/s published")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e]
    if args.noop_only:
        noop_variants(args)
        return
    if args.latency_only:
        latency_only(args, engines)
        return

    with tempfile.TemporaryDirectory(prefix="reviewscore-bench-") as tmp:
        workdir = Path(tmp)
        model_dir, model_name = pick_model(args.model, workdir)
        from model import load_scorer

        settings = ModelSettings()
        scorer = load_scorer(model_dir, settings)
        texts = load_texts(max(args.n, args.baseline_n))
        model_env = {"MODEL_PATH": str(model_dir)}
        print(
            f"model: {model_name} (version {scorer.model_version}, device {settings.device}, variant {scorer.variant})"
        )
        print(
            f"texts: womens_clothing_reviews, mean {statistics.mean(len(t.split()) for t in texts[: args.n]):.0f} words"
        )
        print(f"cpu cores: {os.cpu_count()}")

        scorer.predict(texts[:64])  # warm-up

        def model_rate() -> float:
            started = time.perf_counter()
            for i in range(0, args.n, 256):
                scorer.predict(texts[i : min(i + 256, args.n)])
            return args.n / (time.perf_counter() - started)

        infra = Infra(workdir)
        noop_env = {"STREAM_SCORER": "stream.scorers:NoopScorer"}
        try:
            # (a) and (b) alternate, round by round, so a slow spell of the machine hits both;
            # the ratio is taken within each round and its median reported.
            alone: list[float] = []
            rounds: dict[str, list[float]] = {e: [] for e in engines}
            for r in range(args.ab_rounds):
                alone.append(model_rate())
                for e in engines:
                    extra = {**model_env, "STREAM_ENGINE": e}
                    rounds[e].append(end_to_end(infra, f"e2e_{e}_{r}", texts[: args.n], extra))
            model_alone = statistics.median(alone)
            e2e = {e: statistics.median(rates) for e, rates in rounds.items()}
            ratio = {
                e: statistics.median(b / a for a, b in zip(alone, rates, strict=True)) for e, rates in rounds.items()
            }
            noop_texts = load_texts(args.noop_n)
            noop_lag: dict[str, list[float]] = {e: [] for e in engines}
            noop = {
                e: end_to_end(infra, f"noop_{e}", noop_texts, {**noop_env, "STREAM_ENGINE": e}, noop_lag[e])
                for e in engines
            }
            # (d) on texts spread over (a)'s and (b)'s: the first ones are shorter than the average.
            pool = texts[: max(args.n, args.baseline_n)]
            baseline = seed_baseline(infra, scorer, pool[:: max(1, len(pool) // args.baseline_n)][: args.baseline_n])
            lat = {
                e: latency(
                    infra, texts, e2e[e] / 2, args.latency_seconds, {**model_env, "STREAM_ENGINE": e}, f"latency_{e}"
                )
                for e in engines
            }
            seq, ovl, model_s, db_s = overlap(infra, scorer, texts[: min(args.n, 1024)])
            sink_rates = sink_methods(infra, args.sink_n, (256, 2000)) if args.sink_n else {}
        finally:
            infra.close()

    print()
    print("| measure | reviews/s |")
    print("|---|---:|")
    runs = f" (median of {args.ab_rounds})" if args.ab_rounds > 1 else ""
    print(f"| (a) model alone, batches of 256{runs} | {model_alone:,.0f} |")
    for e in engines:
        print(f"| (b) end to end: Tansu -> worker -> Postgres, same model, {e} engine{runs} | {e2e[e]:,.0f} |")
    for e in engines:
        print(f"| (c) same pipeline, no-op scorer, {e} engine | {noop[e]:,.0f} |")
    for e in engines:
        print(f"(c) {e}: search index current {noop_lag[e][0]:.1f} s after the last row (indexed behind the stream)")
    print(f"| (d) seed-style: one review per model call, one INSERT per row | {baseline:,.0f} |")
    print()
    for e in engines:
        q = statistics.quantiles(lat[e], n=100)
        per_round = " / ".join(f"{b / a:.2f}" for a, b in zip(alone, rounds[e], strict=True))
        print(f"{e}: (b)/(a) = {ratio[e]:.2f} (rounds: {per_round})   (b)/(d) = {e2e[e] / baseline:.1f}")
        print(
            f"{e}: latency publish -> committed row at {e2e[e] / 2:,.0f}/s for {args.latency_seconds:.0f}s "
            f"({len(lat[e])} reviews): p50 {q[49] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms"
        )
    print(
        f"overlap model(N) with write(N-1): sequential {seq:,.0f}/s, overlapped {ovl:,.0f}/s "
        f"({(ovl / seq - 1) * 100:+.1f}%); sequential time split model {model_s:.2f}s / db {db_s:.2f}s"
    )
    print_sink_rates(sink_rates)


if __name__ == "__main__":
    main()
