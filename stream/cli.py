"""``reviewscore worker``, ``reviewscore rescore`` and ``reviewscore dlq show|replay``.

Thin shells over the library: heavy imports (faust, torch, confluent-kafka) happen inside the
commands so ``reviewscore --help`` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from model.base import Scorer
    from stream.dlq import DeadLetter, Outgoing

dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("rescore")(rescore)
    app.add_typer(dlq_app, name="dlq")


def worker(
    model: Annotated[
        Path | None, typer.Option(help="Model artifact directory (default: MODEL_PATH, else the default model).")
    ] = None,
    embedded: Annotated[
        bool, typer.Option(help="Start the embedded broker and database for what is not configured, and migrate.")
    ] = False,
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="Partitions when the reviews topic is created (default: KAFKA_PARTITIONS)."),
    ] = None,
    web_port: Annotated[
        int | None, typer.Option(min=0, help="Port of /metrics and /healthz (default: STREAM_WEB_PORT).")
    ] = None,
    create_topics: Annotated[bool, typer.Option(help="Create the reviews and dead-letter topics when missing.")] = True,
) -> None:
    """Consume reviews, score them in micro-batches and upsert them into PostgreSQL."""
    from core import migrate as migrations
    from core.config import (
        get_database_settings,
        get_infra_settings,
        get_kafka_settings,
        get_model_settings,
        get_stream_settings,
    )
    from core.embedded import create_topics as create_kafka_topics
    from core.runtime import ensure_infra
    from stream.worker import build_worker, run_worker

    with ExitStack() as stack:
        try:
            connections = stack.enter_context(ensure_infra(start_embedded=embedded))
        except RuntimeError as exc:
            typer.echo(f"error: {exc} (or pass --embedded)", err=True)
            raise typer.Exit(2) from exc
        kafka = get_kafka_settings()
        if partitions is not None:
            kafka = kafka.model_copy(update={"partitions": partitions})
        stream = get_stream_settings()
        if web_port is not None:
            stream = stream.model_copy(update={"web_port": web_port})
        database = get_database_settings()
        assert connections.database_url
        if embedded:
            migrations.upgrade(connections.database_url, "head", database.readonly_role)
        elif mismatch := migrations.schema_mismatch(connections.database_url):
            kind, why = mismatch
            typer.echo(f"{'error' if kind == 'behind' else 'warning'}: {why}", err=True)
            if kind == "behind":
                raise typer.Exit(2)
        if create_topics:
            assert kafka.bootstrap_servers
            create_kafka_topics(kafka.bootstrap_servers, {kafka.topic: kafka.partitions, kafka.dlq_topic: 1})
        scorer = _load_scorer(stream.scorer, model or get_model_settings().path)
        built = build_worker(
            scorer, kafka, stream, database, datadir=get_infra_settings().state_dir.resolve() / "faust"
        )
        run_worker(built, log_level=get_infra_settings().log_level)


def rescore(
    model: Annotated[Path | None, typer.Option(help="Model artifact directory (default: MODEL_PATH).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows read, scored and updated per round.")] = 256,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after this many rows (resume later).")] = None,
) -> None:
    """Re-score stored rows with another model version; resumable (rows already at it are skipped)."""
    from rich.progress import Progress

    from core.config import get_database_settings, get_model_settings, get_stream_settings
    from core.db import make_engine
    from core.runtime import ensure_infra
    from stream.rescore import pending_rows, rescore_rows

    with ensure_infra(kafka=False, start_embedded=False):
        scorer = _load_scorer(get_stream_settings().scorer, model or get_model_settings().path)
        engine = make_engine(get_database_settings(), application_name="reviewscore-rescore")
        try:
            todo = pending_rows(engine, scorer.model_version)
            total = min(todo, limit) if limit else todo
            typer.echo(f"{todo} rows not at model version {scorer.model_version}; re-scoring {total}")
            with Progress(disable=not sys.stderr.isatty()) as progress:
                task = progress.add_task("rescoring", total=total)
                done = rescore_rows(
                    engine,
                    scorer,
                    batch_size=batch_size,
                    limit=limit,
                    max_batch_tokens=get_stream_settings().max_batch_tokens,
                    on_progress=lambda n: progress.advance(task, n),
                )
        finally:
            engine.dispose()
    typer.echo(f"re-scored {done} rows to model version {scorer.model_version}")


@dlq_app.command("show")
def dlq_show(
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason code.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (input for replay --file).")
    ] = False,
    idle_timeout: Annotated[float, typer.Option(help="Stop reading after this long without a message (s).")] = 3.0,
) -> None:
    """Print the dead letters: reason, error, origin and the original message."""
    from core.config import get_kafka_settings
    from core.runtime import ensure_infra
    from stream.dlq import read_dead_letters

    shown = 0
    with ensure_infra(database=False, start_embedded=False), _broker_errors("read the dead-letter topic"):
        for letter in read_dead_letters(get_kafka_settings(), idle_timeout=idle_timeout):
            if reason and letter.reason != reason:
                continue
            if as_json:
                typer.echo(letter.to_json().decode("utf-8"))
            else:
                value = letter.value if letter.value is not None else "(none)"
                if len(value) > 200:
                    value = value[:200] + f"… ({len(value)} chars)"
                typer.echo(
                    f"{letter.topic}[{letter.partition}]@{letter.offset} {letter.dead_lettered_at} "
                    f"{letter.reason}: {letter.error}\n    {letter.value_encoding}: {value}"
                )
            shown += 1
            if limit and shown >= limit:
                break
    typer.echo(f"{shown} dead letters", err=True)


@dlq_app.command("replay")
def dlq_replay(
    file: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="JSONL of dead letters (from `dlq show --json`), edited."),
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason code.")] = None,
    topic: Annotated[str | None, typer.Option(help="Publish to this topic (default: KAFKA_TOPIC).")] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="Replay every dead letter again, not only those no replay has sent yet.")
    ] = False,
    group: Annotated[
        str | None,
        typer.Option(help="Consumer group that remembers what was replayed (default: per --reason selection)."),
    ] = None,
    idle_timeout: Annotated[float, typer.Option(help="Stop reading the DLQ after this long idle (s).")] = 3.0,
) -> None:
    """Re-publish dead letters to the reviews topic: fixed ones from --file, else as they were.

    Without --file each dead letter is replayed once per --reason selection: the position is
    committed after the broker confirmed the re-published messages, so running it again sends
    only dead letters that arrived since (a failed run is repeated, never skipped).
    """
    from core.config import get_kafka_settings
    from core.runtime import ensure_infra
    from stream.dlq import DeadLetter, DeadLetterReader, KafkaSender

    with ensure_infra(database=False, start_embedded=False), _broker_errors("replay the dead letters"):
        settings = get_kafka_settings()
        target = topic or settings.topic
        if file is not None:
            letters = [DeadLetter.from_json(line) for line in file.read_text(encoding="utf-8").splitlines() if line]
            letters = [letter for letter in letters if not reason or letter.reason == reason]
            KafkaSender(settings).send(target, [_replayed(letter) for letter in letters])
        else:
            name = group or f"reviewscore-dlq-replay{f'-{reason}' if reason else ''}"
            with DeadLetterReader(settings, group=name, from_beginning=from_beginning) as reader:
                letters = [letter for letter in reader.read(idle_timeout) if not reason or letter.reason == reason]
                KafkaSender(settings).send(target, [_replayed(letter) for letter in letters])
                reader.commit()
    typer.echo(f"replayed {len(letters)} dead letters to {target}")


def _replayed(letter: DeadLetter) -> Outgoing:
    """The original message again, with headers naming where it came from and when it was sent.

    The original time travels in a header, not as the record's timestamp: the broker may stamp
    its own (``LogAppendTime``), and an old CreateTime would look expired to time-based retention.
    The worker orders versions of one review by it, so an old version of a review edited since
    comes back as what it is and leaves the edit alone.
    """
    headers = {"replayed_from": f"{letter.topic}:{letter.partition}:{letter.offset}".encode()}
    if letter.timestamp:
        headers["original_timestamp"] = str(round(letter.timestamp * 1000)).encode()
    return letter.original_key(), letter.original_value(), headers


def _load_scorer(spec: str | None, model: Path | None) -> Scorer:
    """The worker's scorer, or a one-line error and exit 2 for a path that holds no model."""
    from model.artifact import ArtifactError
    from stream.scorers import load_worker_scorer

    try:
        return load_worker_scorer(spec, model)
    except (ArtifactError, ImportError, AttributeError, TypeError) as exc:
        typer.echo(f"error: no scorer to run: {exc}", err=True)
        raise typer.Exit(2) from exc


@contextmanager
def _broker_errors(doing: str) -> Iterator[None]:
    """A broker that is down or refuses is a one-line error and exit 2, not a traceback."""
    from confluent_kafka import KafkaException

    from stream.dlq import DeliveryError

    try:
        yield
    except typer.Exit:
        raise
    except (KafkaException, DeliveryError, RuntimeError) as exc:
        typer.echo(f"error: could not {doing}: {exc}", err=True)
        raise typer.Exit(2) from exc
