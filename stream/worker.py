"""Assemble and run one worker process: scorer, sink, DLQ sender, metrics server, consumer engine.

``build_worker`` wires the parts from settings (any Scorer can be injected: the real model, a
benchmark's no-op scorer, a test scorer) around the engine ``STREAM_ENGINE`` names, the Faust
app or the librdkafka batch consumer; both drive the same ``BatchProcessor``. ``run_worker``
runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import DatabaseSettings, KafkaSettings, StreamSettings
from core.db import make_engine
from core.kafka_patch import apply_leave_group_patch
from model.base import Scorer
from stream.broker_probe import BrokerProbe
from stream.dlq import KafkaSender
from stream.metrics import Health, Metrics, MetricsServer
from stream.pipeline import BatchProcessor
from stream.search_indexer import SearchIndexer, has_backlog
from stream.sink import PostgresSink

log = logging.getLogger(__name__)


@dataclass
class Worker:
    app: Any  # a faust.App, or a stream.consumer.BatchConsumer
    processor: BatchProcessor
    executor: ThreadPoolExecutor
    server: MetricsServer | None
    engine: Any
    topic: str
    event_loop: str  # the Faust engine's (STREAM_EVENT_LOOP)
    probe: BrokerProbe | None = None  # the Faust engine's broker health (the batch engine reads librdkafka's)
    dead_letters: KafkaSender | None = None  # the DLQ producer this worker made, closed with it
    indexer: SearchIndexer | None = None  # started by run_worker

    def close(self) -> None:
        self.processor.abandon.set()
        if self.probe:
            self.probe.stop(wait=False)  # a daemon thread: the in-flight batch need not wait for it
        if self.indexer:
            self.indexer.stop()  # its slice in flight commits or rolls back as a whole
        self.executor.shutdown(wait=True)  # the in-flight batch, dead letters included, is done
        if self.dead_letters:
            self.dead_letters.close()
        if self.server:
            self.server.stop()
        self.engine.dispose()


def build_worker(
    scorer: Scorer,
    kafka: KafkaSettings,
    stream: StreamSettings,
    database: DatabaseSettings,
    *,
    serve_metrics: bool = True,
    datadir: Path | None = None,
) -> Worker:
    apply_leave_group_patch()  # Tansu numbers the first generation 0; see core/kafka_patch.py
    metrics = Metrics()
    health = Health(metrics)
    device, variant = getattr(scorer, "device", "unknown"), getattr(scorer, "variant", "unknown")
    metrics.model_info.labels(scorer.model_version, str(device), str(variant)).set(1)
    engine = make_engine(database, application_name="reviewscore-worker")
    dead_letters = KafkaSender(kafka)
    processor = BatchProcessor(
        scorer=scorer,
        sink=PostgresSink(engine, method=stream.sink_method),
        dead_letters=dead_letters,
        dlq_topic=kafka.dlq_topic,
        max_text_chars=stream.max_text_chars,
        max_batch_tokens=stream.max_batch_tokens,
        max_sub_batch=stream.max_sub_batch,
        retry_initial=stream.retry_initial,
        retry_max=stream.retry_max,
        metrics=metrics,
        health=health,
    )
    server = None
    if serve_metrics:
        try:
            server = MetricsServer(metrics, health, stream.web_host, stream.web_port).start()
        except OSError as exc:  # said as what to do: a second worker on one host needs its own port
            engine.dispose()
            raise RuntimeError(
                f"cannot serve metrics and health on {stream.web_host}:{stream.web_port} ({exc.strerror}); "
                "another worker on this host? pass --web-port (or STREAM_WEB_PORT) with a free port"
            ) from exc
        log.info("metrics on http://%s:%d/metrics, health on /healthz", stream.web_host, server.port)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reviewscore-batch")
    app: Any
    probe = None
    if stream.engine == "batch":
        from stream.consumer import BatchConsumer

        app = BatchConsumer(kafka, stream, processor, executor)
    else:
        from stream.app import create_app

        datadir = datadir or Path(tempfile.mkdtemp(prefix="reviewscore-faust-"))
        datadir.mkdir(parents=True, exist_ok=True)
        app = create_app(kafka, stream, processor, executor, datadir)
        probe = BrokerProbe(kafka, health)  # started by run_worker
    indexer = None
    if stream.search_indexer:
        indexer = SearchIndexer(
            engine,
            backlog=lambda: has_backlog(processor.last_batch, stream.max_batch, time.monotonic()),
            batch=stream.search_batch,
            max_lag=stream.search_max_lag,
            metrics=metrics,
        )
    return Worker(
        indexer=indexer,
        app=app,
        processor=processor,
        executor=executor,
        server=server,
        engine=engine,
        topic=kafka.topic,
        probe=probe,
        dead_letters=dead_letters,
        event_loop=stream.event_loop,
    )


def run_worker(worker: Worker, log_level: str = "INFO") -> None:
    """Run until a signal stops it (Faust's Worker, or the batch consumer, handles SIGTERM/SIGINT)."""
    from stream.consumer import BatchConsumer

    if isinstance(worker.app, BatchConsumer):
        log.info(
            "worker %s (batch engine) consuming %s with model %s",
            worker.app.stream.app_id,
            worker.topic,
            worker.processor.scorer.model_version,
        )
        worker.app.install_signal_handlers()
        if worker.indexer:
            worker.indexer.start()
        try:
            worker.app.run()
        finally:
            worker.close()
            log.info("worker stopped")
        return

    import faust

    from core.logs import hold_back_repeats

    # aiokafka retries a lost broker every 100 ms from several places and logs every failure.
    hold_back_repeats("aiokafka")
    log.info(
        "worker %s consuming %s with model %s",
        worker.app.conf.id,
        worker.topic,
        worker.processor.scorer.model_version,
    )
    # Logging stays as configure_logging set it (JSON lines when REVIEWSCORE_LOG_JSON, the --log-level
    # given): Faust's own setup replaced it with its text format once the worker started.
    loop = use_event_loop(worker.event_loop)
    faust_worker = faust.Worker(
        worker.app, loglevel=log_level, quiet=True, redirect_stdouts=False, override_logging=False, loop=loop
    )
    faust_worker.spinner = None  # its terminal codes ("\x1b[?25h") landed in logs that are no terminal
    if worker.probe:
        worker.probe.start()
    if worker.indexer:
        worker.indexer.start()
    try:
        faust_worker.execute_from_commandline()  # raises SystemExit with Faust's exit code
    finally:
        worker.close()
        log.info("worker stopped")


def use_event_loop(choice: str) -> asyncio.AbstractEventLoop | None:
    """Make uvloop this thread's event loop when asked and installed, and return it (None: the
    current loop stays). The Faust worker is handed it too, so nothing that asked for a loop
    earlier can keep it on another.

    Faust's own per-message path (fetch, conductor, stream, acks) is asyncio callbacks, and with
    the no-op scorer it is a third of a batch's time: uvloop runs them about a tenth faster
    (stream/README.md). Only this thread's loop is set, not the process's policy.
    """
    if choice != "uvloop":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("STREAM_EVENT_LOOP=uvloop, but uvloop is not installed: running on asyncio's own loop")
        return None
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop
