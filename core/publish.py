"""Publishing review files (CSV or JSONL) to the ``reviews`` topic.

Pure part: ``read_rows`` + ``checked`` turn a file into a stream of validated messages and
rejects with line numbers, one row at a time, so a file of any size is published in constant
memory (holding a million validated messages took about 1.7 GB). I/O part:
``publish_messages`` sends them with an idempotent producer and checks every delivery report.
Keys are ``review_key``, so running the same file twice is harmless; ``--strict`` reads the
file once to check it before a second pass sends it, so a bad file is reported, not half-sent.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from pydantic import ValidationError

from core.config import KafkaSettings
from core.delimited import csv_records, tsv_records
from core.logs import client_logger
from core.messages import SCHEMA_VERSION, ReviewMessage, describe_validation_error

FIELDS = ("text", "review_id", "brand", "rating", "url", "author", "published_at", "lang", "source")


@dataclass(frozen=True)
class ColumnMap:
    """Which input column feeds which message field; None means the field is not in the file."""

    text: str = "text"
    review_id: str | None = "review_id"
    brand: str | None = "brand"
    rating: str | None = "rating"
    url: str | None = "url"
    author: str | None = "author"
    published_at: str | None = "published_at"
    lang: str | None = "lang"
    source: str | None = "source"


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str


@dataclass
class Prepared:
    messages: list[tuple[int, ReviewMessage]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".tsv"):
        return suffix[1:]
    raise ValueError(f"cannot tell the format of {path.name}: use .csv, .tsv or .jsonl, or pass --format")


FORMATS = ("csv", "tsv", "jsonl")

# Longest CSV field read: far above the contract's text limit, so an over-long review reaches
# validation and is rejected with the contract's reason, yet bounded, so an unclosed quote
# cannot pull a whole large file into one field (beyond it the csv error is the line's reason).
CSV_FIELD_LIMIT = 16 * 1024 * 1024


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) pairs; a row that cannot be parsed comes back as an error string.

    ``utf-8-sig``: Excel's "CSV UTF-8" starts with a byte-order mark, which would otherwise
    become part of the first column's name. ``surrogateescape``: a byte that is not UTF-8
    (a Latin-1 "é" in one review) survives reading as a lone surrogate, and ``to_message``
    rejects that row alone; strict decoding stopped the whole file at the first such byte.
    """
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        yield from read_handle(handle, fmt)


def read_handle(handle: Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """``read_rows`` for an open text stream (standard input, say), in a known format."""
    if fmt == "tsv":  # core.delimited says how a stray quote is kept from swallowing rows
        yield from _decoded_header(tsv_records(handle))
    elif fmt == "csv":
        yield from _decoded_header(_csv_rows(handle, ","))
    elif fmt == "jsonl":
        yield from _jsonl_rows(handle)
    else:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def _decoded_header(rows: Iterable[tuple[int, dict[Any, Any] | str]]) -> Iterator[tuple[int, dict[Any, Any] | str]]:
    """A header that is not UTF-8 is the file's error, not a row's: its columns would match no
    ``--*-column`` and an optional one (brand, rating...) would be dropped from every row, silently."""
    seen = False
    for line, row in rows:
        if not seen and isinstance(row, dict):
            seen = True
            for name in row:
                if isinstance(name, str):
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        raise ValueError(
                            f"the header is not UTF-8 (column {name!r}): is the file in another encoding? "
                            "Save it as UTF-8"
                        ) from None
        yield line, row


@contextmanager
def spooled_rows(
    path: Path, fmt: str | None, stdin: TextIO | None, passes: int = 1
) -> Iterator[Callable[[], Iterator[tuple[int, dict[str, Any] | str]]]]:
    """A way to read ``path`` (``-``: standard input) ``passes`` times, each call a fresh read.

    A file is simply opened again. Standard input and pipes (``<(zcat f.gz)``, a FIFO) can be read
    once, so for more passes they are first copied to a temporary file (on disk, not in memory),
    which is removed afterwards.
    """
    from_stdin = str(path) == "-"
    if not from_stdin and (passes == 1 or path.is_file()):
        yield lambda: read_rows(path, fmt)
        return
    if from_stdin and fmt is None:
        raise ValueError("reading standard input needs --format (csv, tsv or jsonl)")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    with contextlib.ExitStack() as stack:
        source: IO[bytes]
        if not from_stdin:
            source = stack.enter_context(path.open("rb"))
        elif stdin is None:  # started with its standard input closed (``<&-``)
            raise ValueError("standard input is closed: nothing to read")
        else:
            source = stdin.buffer
        if passes > 1:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="reviewscore-publish-"))
            copy = Path(folder) / f"input.{fmt}"
            with copy.open("wb") as out:
                shutil.copyfileobj(source, out)
            yield lambda: read_rows(copy, fmt)
            return
        reads = 0

        def once() -> Iterator[tuple[int, dict[str, Any] | str]]:
            nonlocal reads
            reads += 1
            if reads > 1:
                raise RuntimeError("standard input was asked for a second pass it cannot give")
            handle = io.TextIOWrapper(source, encoding="utf-8-sig", errors="surrogateescape", newline="")
            return read_handle(handle, fmt)

        yield once


def _csv_rows(handle: Iterable[str], delimiter: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Rows of a CSV file, read strictly (``core.delimited``); a record that cannot be read is its
    lines' reject, not the file's end."""
    previous_limit = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield from csv_records(handle, delimiter)
    finally:
        csv.field_size_limit(previous_limit)


def _jsonl_rows(handle: Iterable[str]) -> Iterator[tuple[int, dict[str, Any] | str]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"bad JSON: {exc.msg} at column {exc.colno}"
            continue
        except (ValueError, RecursionError) as exc:  # a 5,000-digit number, nesting past the stack
            yield number, f"unreadable JSON: {type(exc).__name__}: {exc}"[:300]
            continue
        if isinstance(value, dict):
            yield number, value
        else:
            yield number, f"expected a JSON object, got {type(value).__name__}"


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _rating(value: Any) -> Any:
    """CSV gives strings: '4' and '4.0' become 4; anything else is left for validation to reject."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_message(row: dict[Any, Any], columns: ColumnMap, default_source: str) -> ReviewMessage:
    extra = [value for value in row.get(None) or [] if str(value).strip()]
    if extra:
        # csv puts fields beyond the header under None: an unquoted comma in a text shifted the
        # rest of the row (text "Great", brand "really great"), and it was published so.
        raise ValueError(f"{len(extra)} more field(s) than the header names (an unquoted delimiter in a text?)")
    version = _clean(row.get("schema_version"))
    if version is not None and str(version) != str(SCHEMA_VERSION):
        # Sent on as version 1, its fields would be read by the wrong rules (or dropped).
        raise ValueError(f"schema_version {version!r} is not supported (this producer writes {SCHEMA_VERSION})")
    data: dict[str, Any] = {}
    for name in FIELDS:
        column = getattr(columns, name)
        if column is not None and column in row:
            value = _clean(row[column])
            if value is not None:
                data[name] = value
    _refuse_undecoded_bytes(data)
    data.setdefault("source", default_source)
    if "rating" in data:
        data["rating"] = _rating(data["rating"])
    if "review_id" in data and not isinstance(data["review_id"], str):
        data["review_id"] = str(data["review_id"])
    if "text" not in data:
        raise ValueError(f"column {columns.text!r} is missing or empty")
    return ReviewMessage.model_validate(data)


def _refuse_undecoded_bytes(data: dict[str, Any]) -> None:
    """A lone surrogate is a byte ``read_rows`` could not decode (or a JSON ``\\ud800``): say
    which field and byte, where pydantic would only say "unable to parse raw data"."""
    for name, value in data.items():
        if not isinstance(value, str):
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(value[exc.start])
            what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
            raise ValueError(f"{name}: not valid UTF-8 ({what} at character {exc.start + 1})") from None


def checked(
    rows: Iterable[tuple[int, dict[str, Any] | str]], columns: ColumnMap, default_source: str
) -> Iterator[tuple[int, ReviewMessage] | Reject]:
    """Each row as a (line, message) pair or as its Reject, lazily and in file order."""
    for line, row in rows:
        if isinstance(row, str):
            yield Reject(line, row)
            continue
        try:
            yield line, to_message(row, columns, default_source)
        except ValidationError as exc:
            yield Reject(line, describe_validation_error(exc))
        except ValueError as exc:
            yield Reject(line, str(exc))


def prepare(rows: Iterable[tuple[int, dict[str, Any] | str]], columns: ColumnMap, default_source: str) -> Prepared:
    """The whole of ``checked`` in memory: for small files (the demo's samples, tests)."""
    prepared = Prepared()
    for item in checked(rows, columns, default_source):
        if isinstance(item, Reject):
            prepared.rejects.append(item)
        else:
            prepared.messages.append(item)
    return prepared


@dataclass
class Screen:
    """Lets a stream's messages through one at a time, counting its rejects and handing each
    to ``on_reject`` as it is met (printed, in the CLI), so nothing of the file is held."""

    on_reject: Callable[[Reject], None]
    rejected: int = 0
    passed: int = 0

    def messages(self, items: Iterable[tuple[int, ReviewMessage] | Reject]) -> Iterator[tuple[int, ReviewMessage]]:
        for item in items:
            if isinstance(item, Reject):
                self.rejected += 1
                self.on_reject(item)
            else:
                self.passed += 1
                yield item


class BrokerUnavailableError(RuntimeError):
    """No broker answered before publishing, or it does not have the topic."""


@dataclass
class Delivery:
    sent: int = 0
    failed: list[Reject] = field(default_factory=list)


def publish_messages(
    messages: Iterable[tuple[int, ReviewMessage]],
    settings: KafkaSettings,
    topic: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    flush_timeout: float = 30.0,
    broker_timeout: float | None = 10.0,
) -> Delivery:
    """Send messages and wait for every delivery report; failures come back with their line.

    ``messages`` is consumed as it is sent (a generator over a file is never held whole), and
    only the lines still awaiting their report are remembered. The broker is asked for the topic
    first (``broker_timeout`` seconds; None: not asked), and ``BrokerUnavailableError`` says why
    nothing was sent.
    """
    from confluent_kafka import Producer

    from core.kafka_metadata import topic_problem

    producer = Producer(settings.producer_config(), logger=client_logger(f"{__name__}.librdkafka"))
    topic = topic or settings.topic
    # Asked first: with no broker, librdkafka would retry every message until its own timeout
    # (minutes for a large file) and then name each line "not confirmed", never the broker.
    if broker_timeout is not None and (problem := topic_problem(producer, topic, broker_timeout)):
        raise BrokerUnavailableError(f"cannot publish to {topic!r} at {settings.bootstrap_servers}: {problem}")
    result = Delivery()
    unreported: set[int] = set()  # lines whose delivery report has not come yet

    def report(line: int) -> Callable[[Any, Any], None]:
        def on_delivery(err: Any, _msg: Any) -> None:
            unreported.discard(line)
            if err is None:
                result.sent += 1
            else:
                result.failed.append(Reject(line, f"delivery failed: {err}"))
            if on_progress:
                on_progress(1)

        return on_delivery

    for line, message in messages:
        key, value = message.to_kafka()
        unreported.add(line)
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=report(line))
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: let deliveries drain
        producer.poll(0)
    producer.flush(flush_timeout)
    # Each line the broker never confirmed is a failure of its own, named by its line.
    result.failed.extend(
        Reject(line, f"not confirmed by the broker within {flush_timeout}s") for line in sorted(unreported)
    )
    return result
