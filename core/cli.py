"""The ``reviewscore`` command. Core commands live here; each part adds its own.

Parts register through the ``reviewscore.cli`` entry-point group (``register(app)``), so
``core`` imports none of them and a part whose extra is not installed simply has no commands.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from core.config import (
    get_database_settings,
    get_infra_settings,
    get_kafka_settings,
)
from core.config.infra import log_level as known_level
from core.logs import configure_logging
from core.text import not_utf8

if TYPE_CHECKING:
    from pydantic import ValidationError

    from core.embedded import EmbeddedBroker
    from core.rollup import Drift

app = typer.Typer(
    name="reviewscore",
    help="Streaming review sentiment scoring: Kafka -> model -> PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped for the source: Markdown joins their lines into paragraphs again
    # (plain "rich" mode kept the breaks mid-sentence) and shows ``code`` as code.
    rich_markup_mode="markdown",
)
infra_app = typer.Typer(
    help="Embedded Kafka-protocol broker and PostgreSQL for development.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(infra_app, name="infra")
log = logging.getLogger("reviewscore")


@app.callback()
def _root(
    log_level: Annotated[str | None, typer.Option(help="Log level (default: REVIEWSCORE_LOG_LEVEL).")] = None,
) -> None:
    infra = get_infra_settings()
    try:
        level = known_level(log_level) if log_level is not None else infra.log_level
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--log-level") from None
    configure_logging(level, infra.log_json)


@app.command()
def migrate(
    revision: Annotated[
        str | None,
        typer.Argument(
            help="Target revision (default: head). Required with --downgrade: a revision id, base, "
            "or -1 for one step (type `-- -1`)."
        ),
    ] = None,
    downgrade: Annotated[
        bool, typer.Option(help="Downgrade to REVISION, which must be given, instead of upgrading.")
    ] = False,
) -> None:
    """Upgrade (or downgrade) the database schema."""
    from alembic.util import CommandError

    from core import migrate as migrations
    from core.runtime import ensure_infra

    if downgrade and revision is None:
        # Downgrading drops tables: the target must be said, never defaulted.
        typer.echo("error: --downgrade needs a target revision: a revision id, base, or `-- -1` for one step", err=True)
        raise typer.Exit(2)
    move = migrations.downgrade if downgrade else migrations.upgrade
    with ensure_infra(kafka=False, start_embedded=False) as conn:
        assert conn.database_url
        current = migrations.current_revision(conn.database_url)
        if not downgrade and revision and migrations.older_than(revision, current):
            # Alembic's upgrade to a past revision does nothing and says nothing.
            typer.echo(
                f"error: the database is at {current}, past {revision}; to go back, pass --downgrade {revision}",
                err=True,
            )
            raise typer.Exit(2)
        database = get_database_settings()
        try:
            move(conn.database_url, revision or "head", database.readonly_role, database.migration_lock_timeout_ms)
        except (CommandError, migrations.MigrationLockError) as exc:  # the user's input or a busy table
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(f"database at revision {migrations.current_revision(conn.database_url)}")


@app.command()
def rollup(
    rebuild: Annotated[bool, typer.Option(help="Recompute the rollups from sentiments (locks out writers).")] = False,
) -> None:
    """Check that the rollups behind stats (brand-day, daily, all-time totals) equal the rows; exit 1 if one drifted."""
    from sqlalchemy import create_engine, pool

    from core import migrate as migrations
    from core import rollup as rollups
    from core.db import sqlalchemy_url
    from core.runtime import ensure_infra

    with ensure_infra(kafka=False, start_embedded=False) as conn:
        assert conn.database_url
        # The rollups' keys follow the migrations (0010 added the rating): another release's
        # check would report drift that is not there, and its rebuild would write the wrong key.
        if mismatch := migrations.schema_mismatch(conn.database_url):
            typer.echo(f"error: {mismatch[1]}; check and rebuild the rollups with the matching release", err=True)
            raise typer.Exit(2)
        engine = create_engine(sqlalchemy_url(conn.database_url), poolclass=pool.NullPool)
        try:
            with engine.begin() as db:
                if not rollups.installed(db):
                    typer.echo("the rollups are not in this database: run `reviewscore migrate` first", err=True)
                    raise typer.Exit(2)
                off = rollups.disabled_triggers(db)
                found = rollups.drift(db)
            if rebuild:
                _report_drift(found, "before the rebuild: ")
                # The rebuild's own transaction holds writers out; the check after it runs outside
                # that lock (one snapshot per statement, so concurrent writes cannot skew it).
                with engine.begin() as db:
                    for table, groups in rollups.rebuild(db).items():
                        typer.echo(f"{table} rebuilt: {groups} groups")
                with engine.begin() as db:
                    found = rollups.drift(db)
        finally:
            engine.dispose()
    _report_drift(found, "after it: " if rebuild else "")
    if off:
        typer.echo(
            f"error: triggers disabled on sentiments ({', '.join(off)}): the rollups drift again as rows are "
            "written; ALTER TABLE sentiments ENABLE TRIGGER USER",
            err=True,
        )
    if off or not all(one.exact for one in found):
        raise typer.Exit(1)


def _report_drift(found: list[Drift], prefix: str) -> None:
    for one in found:
        verdict = "exact" if one.exact else "drifted"
        typer.echo(f"{prefix}{one.table} {verdict}: {one.missing} missing, {one.extra} extra groups")


@infra_app.command("up")
def infra_up(
    migrate_db: Annotated[bool, typer.Option("--migrate/--no-migrate", help="Upgrade the schema at start.")] = True,
) -> None:
    """Start the embedded broker and database, migrate, and stay up until Ctrl-C or SIGTERM.

    Exits 1 when the broker cannot start (e.g. REVIEWSCORE_BROKER_PORT is taken) or dies, and
    when an ``infra up`` already serves this state directory (a second one would share its
    PostgreSQL data directory and take over the file other commands find the first one by).
    """
    from core import migrate as migrations
    from core.embedded import (
        BrokerStartError,
        EmbeddedBroker,
        EmbeddedDatabase,
        StateDirBusyError,
        holding_state_dir,
        read_infra_file,
        remove_infra_file,
        write_infra_file,
    )

    started = time.perf_counter()
    infra = get_infra_settings()
    kafka = get_kafka_settings()
    # Held until this process ends: two `infra up` started together cannot both pass a check of
    # the state file, which is written only once they are up.
    held = ExitStack()  # not closed: the lock goes with the process
    try:
        held.enter_context(holding_state_dir(infra.state_dir))
    except StateDirBusyError:
        running = read_infra_file(infra.state_dir)
        where = f" (database {running['DATABASE_URL']}, broker {running['KAFKA_BOOTSTRAP_SERVERS']})" if running else ""
        typer.echo(
            f"error: an `infra up` (or a `worker --embedded`) already serves {infra.state_dir}{where}; other "
            "commands here use it by themselves. Stop it first, or set REVIEWSCORE_STATE_DIR for a second one",
            err=True,
        )
        raise typer.Exit(1) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with (
            EmbeddedDatabase(infra.state_dir / "pgdata") as db,
            EmbeddedBroker(
                infra.state_dir, topics={kafka.topic: kafka.partitions, kafka.dlq_topic: 1}, port=infra.broker_port
            ) as broker,
        ):
            if migrate_db and (why := migrations.upgrade_unless_ahead(db.url, get_database_settings().readonly_role)):
                typer.echo(f"warning: {why}; left as it is", err=True)
            write_infra_file(infra.state_dir, db.url, broker.bootstrap_servers)
            typer.echo(f"ready in {time.perf_counter() - started:.2f}s")
            typer.echo(f"export DATABASE_URL='{db.url}'")
            typer.echo(f"export KAFKA_BOOTSTRAP_SERVERS='{broker.bootstrap_servers}'")
            typer.echo("export KAFKA_FLAVOR=tansu")
            typer.echo("(other reviewscore commands in this directory find these by themselves)", err=True)
            try:
                broker_died = _serve_until_stopped(stop, broker)
            finally:
                remove_infra_file(infra.state_dir)
    except BrokerStartError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("stopped")
    if broker_died:
        raise typer.Exit(1)


def _serve_until_stopped(stop: threading.Event, broker: EmbeddedBroker) -> bool:
    """Wait for Ctrl-C/SIGTERM; True when the broker died first (a failure, not a clean stop)."""
    while not stop.wait(0.5):
        if not broker.alive:
            typer.echo("error: the embedded broker exited; stopping", err=True)
            return True
    return False


@app.command()
def publish(
    file: Annotated[
        Path,
        typer.Argument(dir_okay=False, help="CSV, TSV or JSONL file of reviews; - for standard input."),
    ],
    source: Annotated[str, typer.Option(help="Source for rows that have none.")] = "cli",
    fmt: Annotated[str | None, typer.Option("--format", help="csv, tsv or jsonl (default: from the suffix).")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: KAFKA_TOPIC).")] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the review text.")] = "text",
    id_column: Annotated[str, typer.Option(help="Column holding the producer's review id.")] = "review_id",
    brand_column: Annotated[str, typer.Option(help="Column holding the brand.")] = "brand",
    rating_column: Annotated[str, typer.Option(help="Column holding 1-5 stars.")] = "rating",
    url_column: Annotated[str, typer.Option(help="Column holding the review URL.")] = "url",
    author_column: Annotated[str, typer.Option(help="Column holding the author.")] = "author",
    date_column: Annotated[str, typer.Option(help="Column holding the ISO-8601 publication time.")] = "published_at",
    lang_column: Annotated[str, typer.Option(help="Column holding the language tag.")] = "lang",
    strict: Annotated[
        bool, typer.Option(help="Check the whole file first and send nothing when any line is rejected.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Publish at most this many valid rows (reading stops there).")
    ] = None,
) -> None:
    """Validate a file of reviews and publish the valid ones to the reviews topic.

    The file is read, checked and sent a row at a time, so its size does not matter; each
    rejected line is reported as it is met.
    """
    from collections.abc import Iterator

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from core.messages import ReviewMessage
    from core.publish import BrokerUnavailableError, ColumnMap, Reject, Screen, checked, publish_messages, spooled_rows
    from core.runtime import ensure_infra

    columns = ColumnMap(
        text=text_column,
        review_id=id_column,
        brand=brand_column,
        rating=rating_column,
        url=url_column,
        author=author_column,
        published_at=date_column,
        lang=lang_column,
    )

    dlq_topic = get_kafka_settings().dlq_topic
    if topic == dlq_topic:  # before the file is read (KAFKA_TOPIC itself can never be the DLQ's)
        typer.echo(f"error: {dlq_topic!r} is the dead-letter topic (KAFKA_DLQ_TOPIC), not for reviews", err=True)
        raise typer.Exit(2)

    def say(reject: Reject) -> None:
        # sys.stderr as it is now: while the progress display is live, rich's proxy, which prints
        # the line above the display (click's own stderr would write into the spinner's line).
        typer.echo(f"rejected line {reject.line}: {reject.reason}", file=sys.stderr)

    stopped: list[Exception] = []

    def until_unreadable(items: Iterator[tuple[int, ReviewMessage]]) -> Iterator[tuple[int, ReviewMessage]]:
        """The rest of the file; an error reading it ends the stream, so what was sent is flushed and told."""
        try:
            yield from items
        except (ValueError, OSError) as exc:
            stopped.append(exc)

    with ExitStack() as stack:
        try:
            # A pipe (``<(zcat f.gz)``, a FIFO) is a file too: read once, or spooled under --strict.
            # (typer's allow_dash does not match a Path "-", hence no exists=True above.)
            if str(file) != "-" and not file.exists():
                raise ValueError(f"{file} does not exist")
            rows = stack.enter_context(spooled_rows(file, fmt, sys.stdin, passes=2 if strict else 1))
            total = None
            if strict:  # a first pass that only checks, so a bad file is reported, not half-sent
                check = Screen(say)
                for _ in check.messages(checked(rows(), columns, source)):
                    pass
                if check.rejected:
                    typer.echo(f"sent 0, rejected {check.rejected} (--strict: nothing sent)")
                    raise typer.Exit(1)
                total = check.passed if limit is None else min(check.passed, limit)
            screen = Screen(say)
            messages = screen.messages(checked(rows(), columns, source))
            if limit is not None:
                messages = itertools.islice(messages, limit)
            first = next(messages, None)  # before the broker is needed: a file of rejects needs none
        except (ValueError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if first is None:
            if screen.rejected:  # a wrong --text-column, say: a failure, not a success
                typer.echo(f"sent 0, rejected {screen.rejected} (every line was rejected)")
                raise typer.Exit(1)
            typer.echo("sent 0, rejected 0, failed 0 (no reviews in the file)")
            return
        stack.enter_context(ensure_infra(database=False, start_embedded=False))
        progress = stack.enter_context(
            Progress(
                SpinnerColumn(),
                TextColumn("publishing: {task.completed:.0f} confirmed"),
                TimeElapsedColumn(),
                transient=True,
                disable=not sys.stderr.isatty(),
            )
        )
        task = progress.add_task("publishing", total=total)
        kafka = get_kafka_settings()
        try:
            delivery = publish_messages(
                itertools.chain([first], until_unreadable(messages)),
                kafka,
                topic=topic,
                on_progress=lambda n: progress.advance(task, n),
            )
        except BrokerUnavailableError as exc:
            typer.echo(f"error: {exc}; nothing was sent", err=True)
            raise typer.Exit(2) from exc
    for failure in delivery.failed:
        typer.echo(f"failed line {failure.line}: {failure.reason}", err=True)
    typer.echo(f"sent {delivery.sent}, rejected {screen.rejected}, failed {len(delivery.failed)}")
    if stopped:
        typer.echo(f"error: reading stopped part-way, the rest was not sent: {stopped[0]}", err=True)
        raise typer.Exit(2)
    if delivery.failed:
        raise typer.Exit(1)


@app.command()
def demo(
    once: Annotated[bool, typer.Option(help="Exit once every demo review is scored (for CI).")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for the reviews to be scored.")] = 300.0,
) -> None:
    """Run the whole pipeline on embedded parts and show it working."""
    from core.demo import run_demo

    commands = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    raise typer.Exit(run_demo(commands, once=once, timeout=timeout, say=typer.echo))


@app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the review message for producers."""
    from core.messages import render_json_schema

    typer.echo(render_json_schema(), nl=False)


def _load_plugins() -> None:
    for entry in entry_points(group="reviewscore.cli"):
        try:
            register = entry.load()
        except ModuleNotFoundError as exc:
            if os.environ.get("REVIEWSCORE_DEBUG_PLUGINS"):
                print(f"reviewscore: commands of {entry.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        register(app)


def main() -> None:
    from confluent_kafka import KafkaException
    from pydantic import ValidationError
    from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError

    from core.db import is_undefined_table
    from core.embedded import BrokerStartError, StateDirNotADirectoryError
    from core.runtime import InfraNotConfiguredError

    _load_plugins()
    try:
        app()
    except (InfraNotConfiguredError, StateDirNotADirectoryError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from exc
    except (OperationalError, InterfaceError) as exc:  # unreachable, refused, no such database: not a crash
        typer.echo(f"error: the database did not answer: {_first_line(exc.orig or exc)}", err=True)
        raise SystemExit(2) from exc
    except ProgrammingError as exc:
        if not is_undefined_table(exc):  # a database never migrated is the user's to fix, any other a bug
            raise
        typer.echo(f"error: {_first_line(exc.orig or exc)}: run `reviewscore migrate` first", err=True)
        raise SystemExit(2) from exc
    except ValidationError as exc:  # a setting from the environment or .env that does not parse
        if not exc.title.endswith("Settings"):
            raise
        typer.echo(f"error: invalid setting: {settings_problems(exc)}", err=True)
        raise SystemExit(2) from exc
    except BrokerStartError as exc:  # a command that starts the embedded broker for itself
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from exc
    except UnicodeDecodeError as exc:  # ./.env, which every command's settings read
        if not _is_dotenv_error(exc):
            raise
        typer.echo(f"error: {not_utf8('./.env', exc)}; save it as UTF-8", err=True)
        raise SystemExit(2) from exc
    except KafkaException as exc:  # librdkafka refused the client settings (SASL mechanism, CA file)
        typer.echo(f"error: the Kafka client settings were refused: {_first_line(exc)}", err=True)
        raise SystemExit(2) from exc


def _is_dotenv_error(exc: UnicodeDecodeError) -> bool:
    """Whether the undecodable bytes came from reading ./.env (pydantic-settings' dotenv source)."""
    traceback = exc.__traceback__
    while traceback is not None:
        if "dotenv" in traceback.tb_frame.f_code.co_filename:
            return True
        traceback = traceback.tb_next
    return False


def settings_problems(exc: ValidationError) -> str:
    """``KAFKA_PARTITIONS: Input should be greater than 0`` for each refused setting: the
    environment variable the user set, not the field's name."""
    import core.config

    settings_class = getattr(core.config, exc.title, None)
    prefix = settings_class.model_config.get("env_prefix", "") if settings_class is not None else ""
    problems = []
    for error in exc.errors():
        where = "_".join(str(part) for part in error["loc"])  # empty for a rule across settings
        problems.append(f"{(prefix + where).upper()}: {error['msg']}" if where else error["msg"])
    return "; ".join(problems)


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


if __name__ == "__main__":
    main()
