"""``reviewscore worker``, ``rescore``, ``search-index`` and ``dlq show|replay``.

Thin shells over the library: heavy imports (faust, torch, confluent-kafka) happen inside the
commands so ``reviewscore --help`` stays fast.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from core.config import KafkaSettings
    from model.base import Scorer
    from stream.dlq import DeadLetter, Outgoing, ReplaySelection

dlq_app = typer.Typer(
    help="Inspect and replay the dead-letter topic.", no_args_is_help=True, rich_markup_mode="markdown"
)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("rescore")(rescore)
    app.command("search-index")(search_index)
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
    from core.embedded import admin_config
    from core.embedded import create_topics as create_kafka_topics
    from core.runtime import ensure_infra
    from stream.worker import build_worker, run_worker

    with ExitStack() as stack:
        try:
            connections = stack.enter_context(ensure_infra(start_embedded=embedded))
        except RuntimeError as exc:
            typer.echo(f"error: {exc}{'' if embedded else ' (or pass --embedded)'}", err=True)
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
            if why := migrations.upgrade_unless_ahead(connections.database_url, database.readonly_role):
                typer.echo(f"warning: {why}; left as it is", err=True)
        else:
            _check_schema(connections.database_url)
        if create_topics:
            assert kafka.bootstrap_servers
            with _broker_errors(f"create the topics on {kafka.bootstrap_servers}"):
                create_kafka_topics(
                    kafka.bootstrap_servers,
                    {kafka.topic: kafka.partitions, kafka.dlq_topic: 1},
                    kafka.replication_factor,
                    client_config=admin_config(kafka),
                )
        else:  # the topics are infra's: a broker that does not answer is said now, not as Faust's crash
            _check_topics(kafka)
        if connections.started_database or connections.started_broker:
            # Also when only one was started: the other commands here need the configured other
            # one too, and find both in the file.
            assert connections.bootstrap_servers
            _announce(stack, connections.database_url, connections.bootstrap_servers)
        scorer = _load_scorer(stream.scorer, model or get_model_settings().path, model_given=model is not None)
        try:
            built = build_worker(
                scorer, kafka, stream, database, datadir=get_infra_settings().state_dir.resolve() / "faust"
            )
        except RuntimeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        # The level in force (the root --log-level or REVIEWSCORE_LOG_LEVEL), not the setting alone.
        run_worker(built, log_level=logging.getLevelName(logging.getLogger().getEffectiveLevel()))


def _check_topics(kafka: KafkaSettings) -> None:
    from confluent_kafka.admin import AdminClient

    from core.embedded import admin_config
    from core.kafka_metadata import topic_problem

    if problem := topic_problem(AdminClient(admin_config(kafka)), kafka.topic, 10.0, kafka.dlq_topic):
        typer.echo(f"error: {kafka.bootstrap_servers}: {problem} (--no-create-topics: infra creates them)", err=True)
        raise typer.Exit(2)


def _announce(stack: ExitStack, database_url: str, bootstrap_servers: str) -> None:
    """Let the other commands of this directory find the servers ``--embedded`` started, as they
    find those of ``infra up`` (the file goes before the servers stop)."""
    from core.config import get_infra_settings
    from core.embedded import remove_infra_file, write_infra_file

    state = get_infra_settings().state_dir
    write_infra_file(state, database_url, bootstrap_servers)
    stack.callback(remove_infra_file, state)
    typer.echo(f"embedded servers: DATABASE_URL={database_url} KAFKA_BOOTSTRAP_SERVERS={bootstrap_servers}", err=True)
    typer.echo("(other reviewscore commands in this directory find them by themselves)", err=True)


def rescore(
    model: Annotated[
        Path | None, typer.Option(help="Model artifact directory (default: MODEL_PATH, else the shipped model).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows read, scored and updated per round.")] = 256,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after re-scoring this many rows (resume later).")
    ] = None,
    fail_on_skip: Annotated[
        bool, typer.Option("--fail-on-skip", help="Exit 1 when rows were skipped (they are listed either way).")
    ] = False,
) -> None:
    """Re-score stored rows with another model version; resumable (rows already at it are skipped).

    A row the new model fails on, or whose scores the table refuses, keeps its old scores and is
    listed; the job goes on (exit 0, or 1 with --fail-on-skip). When the model fails on a
    known-good text too it stops (exit 2).
    """
    import psycopg2  # type: ignore[import-untyped,unused-ignore]
    from rich.console import Console
    from rich.progress import Progress
    from sqlalchemy.exc import OperationalError

    from core.config import get_database_settings, get_model_settings, get_stream_settings
    from core.db import make_engine
    from core.runtime import ensure_infra
    from stream.pipeline import ScorerUnavailableError
    from stream.rescore import pending_rows, rescore_rows

    with ensure_infra(kafka=False, start_embedded=False) as connections:
        assert connections.database_url
        _check_schema(connections.database_url)
        scorer = _load_scorer(
            get_stream_settings().scorer, model or get_model_settings().path, model_given=model is not None
        )
        engine = make_engine(get_database_settings(), application_name="reviewscore-rescore")
        done = 0
        try:
            todo = pending_rows(engine, scorer.model_version)
            total = min(todo, limit) if limit else todo
            typer.echo(f"{todo} rows not at model version {scorer.model_version}; re-scoring {total}")

            def advance(rescored: int, skipped: int) -> None:
                nonlocal done
                done += rescored
                progress.advance(task, rescored if limit else rescored + skipped)

            # On stderr, as its tty decides: `rescore > report.txt` keeps the bar out of the report.
            with Progress(console=Console(stderr=True), disable=not sys.stderr.isatty()) as progress:
                task = progress.add_task("rescoring", total=total)
                result = rescore_rows(
                    engine,
                    scorer,
                    batch_size=batch_size,
                    limit=limit,
                    max_batch_tokens=get_stream_settings().max_batch_tokens,
                    on_progress=advance,
                )
        except ScorerUnavailableError as exc:
            typer.echo(f"error: {exc}; rows done so far keep their new scores, run it again later", err=True)
            raise typer.Exit(2) from exc
        except (OperationalError, psycopg2.OperationalError) as exc:  # the page writes go through psycopg2
            raise _database_stopped(exc, _resume_hint(done)) from exc
        except KeyboardInterrupt:
            typer.echo(f"interrupted; {_resume_hint(done)}", err=True)
            raise typer.Exit(130) from None
        finally:
            engine.dispose()
    typer.echo(f"re-scored {result.rescored} rows to model version {scorer.model_version}")
    if result.skipped:
        ids = ", ".join(str(row_id) for row_id in sorted(result.skipped)[:20])
        more = f" and {len(result.skipped) - 20} more" if len(result.skipped) > 20 else ""
        typer.echo(
            f"skipped {len(result.skipped)} rows the new model or the table refused (ids {ids}{more}); "
            "they keep their old scores, the log says why",
            err=True,
        )
        if fail_on_skip:
            raise typer.Exit(1)


def search_index(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Queue every row again first (after a change of search configuration).")
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep indexing as rows arrive, until interrupted (workers run with STREAM_SEARCH_INDEXER=false).",
        ),
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows written per transaction.")] = 2000,
) -> None:
    """Write the full-text search documents of the rows waiting for one, then exit (or --follow).

    The worker does this itself between bursts (STREAM_SEARCH_INDEXER); ?q= finds a review only once
    its document is written. --rebuild after writes made with the triggers on sentiments disabled.
    """
    import time

    from sqlalchemy.exc import OperationalError

    from core.config import get_database_settings
    from core.db import make_engine
    from core.runtime import ensure_infra
    from core.search import index_pending, pending_count, requeue_all

    with ensure_infra(kafka=False, start_embedded=False) as connections:
        assert connections.database_url
        _check_schema(connections.database_url)
        engine = make_engine(get_database_settings(), application_name="reviewscore-search-index")
        written = 0
        try:
            if rebuild:
                with engine.begin() as conn:
                    typer.echo(f"queued {requeue_all(conn)} rows again")
            with engine.connect() as conn:
                typer.echo(f"{pending_count(conn)} rows waiting for their search document")
            while True:
                with engine.begin() as conn:
                    done = index_pending(conn, batch_size)
                written += done.written
                if done.taken < batch_size:
                    if not follow:
                        break
                    time.sleep(0.5)
        except OperationalError as exc:
            raise _database_stopped(exc, f"{written} documents written so far") from exc
        except KeyboardInterrupt:
            typer.echo(f"interrupted; {written} documents written", err=True)
            raise typer.Exit(130) from None
        finally:
            engine.dispose()
    typer.echo(f"wrote {written} search documents")


@dlq_app.command("show")
def dlq_show(
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason code.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (input for replay --file).")
    ] = False,
    idle_timeout: Annotated[
        float, typer.Option(min=0.1, help="Stop reading after this long without a message (s).")
    ] = 3.0,
) -> None:
    """Print the dead letters: reason, error, origin and the original message.

    A letter marked ``(replayed)`` is a message that ``dlq replay`` re-published and that failed again.
    """
    from core.config import get_kafka_settings
    from core.runtime import ensure_infra
    from stream.dlq import DeadLetterReader

    _check_reason(reason)
    shown = 0
    with (
        ensure_infra(database=False, start_embedded=False),
        _broker_errors("read the dead-letter topic"),
        DeadLetterReader(get_kafka_settings()) as reader,
    ):
        for letter in reader.read(idle_timeout, _warn_foreign):
            if reason and letter.reason != reason:
                continue
            if as_json:
                typer.echo(letter.to_json().decode("utf-8"))
            else:
                typer.echo(_describe(letter))
            shown += 1
            if limit and shown >= limit:
                break
    typer.echo(f"{shown} dead letters", err=True)
    _say_deferred(reader.deferred)


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
    idle_timeout: Annotated[float, typer.Option(min=0.1, help="Stop reading the DLQ after this long idle (s).")] = 3.0,
    include_permanent: Annotated[
        bool,
        typer.Option(
            help="Also replay letters whose reason the same bytes always get again (bad_json, invalid, …); "
            "--reason R asks for one such reason. Its own position: the first run also re-sends what a plain "
            "replay sent (harmless: the worker leaves unchanged rows as they are)."
        ),
    ] = False,
) -> None:
    """Re-publish dead letters to the reviews topic: fixed ones from --file, else as they were.

    Without --file each dead letter is replayed once per selection (--reason, --include-permanent):
    the position is committed after the broker confirmed the re-published messages, so running
    it again sends only dead letters that arrived since (a failed run is repeated, never skipped).
    Letters whose reason depends on the message alone (bad_json, invalid, not_utf8, …) are skipped
    and counted: unchanged, they would come back to the DLQ on every replay. A letter that holds
    only the start of a message too large for the DLQ is never replayed.
    """
    from core.config import get_kafka_settings
    from core.runtime import ensure_infra
    from stream.dlq import DeadLetterReader, KafkaSender, select_for_replay

    _check_reason(reason)
    if file is not None:
        ignored = [
            name
            for name, given in [
                ("--from-beginning", from_beginning),
                ("--group", group is not None),
                ("--include-permanent", include_permanent),
                ("--idle-timeout", idle_timeout != 3.0),
            ]
            if given
        ]
        if ignored:
            typer.echo(f"error: {', '.join(ignored)} apply to replays from the topic, not with --file", err=True)
            raise typer.Exit(2)
        letters = _letters_in(file)
    with ensure_infra(database=False, start_embedded=False), _broker_errors("replay the dead letters"):
        settings = get_kafka_settings()
        target = topic or settings.topic
        if target == settings.dlq_topic:
            typer.echo(f"error: {target!r} is the dead-letter topic itself: replay to the reviews topic", err=True)
            raise typer.Exit(2)
        if file is not None:
            # Letters from a file were fixed by hand: every reason may succeed now.
            selection = select_for_replay(letters, reason, True)
            if selection.truncated:
                for letter in selection.truncated:
                    typer.echo(f"error: cannot replay {letter.where()}: {letter.replay_refusal()}", err=True)
                typer.echo("error: nothing replayed (put the whole message in value, value_truncated: false)", err=True)
                raise typer.Exit(2)
            KafkaSender(settings).send(target, [_replayed(letter) for letter in selection.send])
        else:
            # One position per selection; "all" is no reason's name (an unknown --reason is refused).
            selected = reason or ("all" if include_permanent else "")
            name = group or f"reviewscore-dlq-replay{f'-{selected}' if selected else ''}"
            with DeadLetterReader(settings, group=name, from_beginning=from_beginning) as reader:
                selection = select_for_replay(reader.read(idle_timeout, _warn_foreign), reason, include_permanent)
                KafkaSender(settings).send(target, [_replayed(letter) for letter in selection.send])
                reader.commit()
                _say_deferred(reader.deferred)
    for line in _skipped(selection):
        typer.echo(line, err=True)
    typer.echo(f"replayed {len(selection.send)} dead letters to {target}")


def _say_deferred(count: int) -> None:
    if count:
        typer.echo(
            f"{count} dead letters arrived after this read began (or carry a clock ahead of this host's): "
            "left for the next run",
            err=True,
        )


def _check_reason(reason: str | None) -> None:
    from stream.dlq import REASONS

    if reason is not None and reason not in REASONS:
        typer.echo(f"error: unknown reason {reason!r}; the reasons are {', '.join(sorted(REASONS))}", err=True)
        raise typer.Exit(2)


def _warn_foreign(problem: str) -> None:
    """A message on the DLQ topic that is no dead letter (another producer's): said, not hidden."""
    typer.echo(f"warning: {problem}; left as it is", err=True)


def _letters_in(file: Path) -> list[DeadLetter]:
    """The letters of a ``dlq show --json`` file, one per line; a line that is none is an error naming it.

    Split on newlines only: a review's text may hold U+2028 or U+0085, which ``json.dumps`` writes
    as they are and ``str.splitlines`` would have cut the letter at.
    """
    from core.text import not_utf8
    from stream.dlq import DeadLetter

    letters = []
    try:
        content = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        typer.echo(f"error: {not_utf8(file, exc)}: not from `dlq show --json`", err=True)
        raise typer.Exit(2) from None
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            letters.append(DeadLetter.from_json(line))
        except (ValueError, TypeError, AttributeError) as exc:
            typer.echo(f"error: {file}: line {number} is not a dead letter from `dlq show --json` ({exc})", err=True)
            raise typer.Exit(2) from None
    return letters


def _skipped(selection: ReplaySelection) -> list[str]:
    """What a replay left on the DLQ and why, one line per kind."""
    lines = []
    if selection.permanent:
        counts = ", ".join(f"{reason} {n}" for reason, n in sorted(selection.permanent.items()))
        lines.append(
            f"skipped {sum(selection.permanent.values())} dead letters whose reason the same message always gets "
            f"again ({counts}): fix them (dlq show --json, then dlq replay --file), or replay them anyway with "
            "--reason R or --include-permanent"
        )
    if selection.truncated:
        lines.append(f"skipped {len(selection.truncated)} dead letters that no longer hold their message:")
        lines.extend(f"    {letter.where()}: {letter.replay_refusal()}" for letter in selection.truncated)
    return lines


def _describe(letter: DeadLetter) -> str:
    """Two lines of ``dlq show``: origin, time, reason and error; then (the start of) the original value."""
    value = letter.value if letter.value is not None else "(none)"
    if len(value) > 200:
        value = value[:200] + f"… ({len(value)} chars)"
    encoding = letter.value_encoding
    if letter.value_truncated:
        encoding += f", cut from {letter.value_bytes or 0:,} bytes, sha256 {letter.value_sha256}"
    replayed = " (replayed)" if letter.replayed else ""
    return (
        f"{letter.where()} {letter.dead_lettered_at} {letter.reason}{replayed}: {letter.error}\n    {encoding}: {value}"
    )


def _replayed(letter: DeadLetter) -> Outgoing:
    """The original message again, with headers naming where it came from and when it was sent.

    The original time travels in a header, not as the record's timestamp: the broker may stamp
    its own (``LogAppendTime``), and an old CreateTime would look expired to time-based retention.
    The worker orders versions of one review by it, so an old version of a review edited since
    comes back as what it is and leaves the edit alone. A letter whose original had no usable time
    (none, or a clock far ahead) sends the time it was dead-lettered instead: the original was
    published before that, so an edit stored after it still wins over the replay.
    """
    headers = {"replayed_from": f"{letter.topic}:{letter.partition}:{letter.offset}".encode()}
    if moment := letter.timestamp or _seconds(letter.dead_lettered_at):
        headers["original_timestamp"] = str(round(moment * 1000)).encode()
    return letter.original_key(), letter.original_value(), headers


def _seconds(iso: str) -> float | None:
    """An ISO-8601 time with its offset as epoch seconds; None when it is not one."""
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _load_scorer(spec: str | None, model: Path | None, *, model_given: bool = False) -> Scorer:
    """The worker's scorer, or a one-line error and exit 2 for a path that holds no model."""
    from model.artifact import ArtifactError
    from stream.scorers import load_worker_scorer

    if spec and model_given:  # STREAM_SCORER wins over a model: --model would be silently ignored
        typer.echo(f"error: --model and STREAM_SCORER={spec} both name what scores; unset one", err=True)
        raise typer.Exit(2)
    try:
        return load_worker_scorer(spec, model)
    except (ArtifactError, ImportError, AttributeError, TypeError) as exc:
        typer.echo(f"error: no scorer to run: {exc}", err=True)
        raise typer.Exit(2) from exc


def _database_stopped(exc: Exception, progress: str) -> typer.Exit:
    """Say in one line why the database stopped a long job (a timeout behind a lock, the server
    gone) and what was done by then; the caller raises the exit (code 2) it returns."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error; psycopg2's own is bare
    why = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    typer.echo(f"error: the database stopped the job ({why}); {progress}", err=True)
    return typer.Exit(2)


def _resume_hint(done: int) -> str:
    return f"{done} rows re-scored so far keep their new scores: run it again to resume"


def _check_schema(database_url: str) -> None:
    """Exit 2 on a schema behind this code (its writes would fail and retry for ever); warn when ahead."""
    from core import migrate as migrations

    if mismatch := migrations.schema_mismatch(database_url):
        kind, why = mismatch
        typer.echo(f"{'error' if kind == 'behind' else 'warning'}: {why}", err=True)
        if kind == "behind":
            raise typer.Exit(2)


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
