"""A real, throwaway PostgreSQL server for the tests and the benchmarks.

One cluster per test session: ``initdb`` into a fresh temporary directory, ``pg_ctl start`` on a free
loopback port (the unix socket also lives in that directory), durability switched off (``fsync``,
``synchronous_commit``, ``full_page_writes``), stopped with ``pg_ctl -m fast`` and deleted on teardown — also
after a failed start, on KeyboardInterrupt and, as a last resort, at interpreter exit. When the tests run as
root the server runs as the ``postgres`` user (PostgreSQL refuses to run as root). Without server binaries
(``/usr/lib/postgresql/*/bin`` or ``initdb`` on ``PATH``) the tests that need it are skipped with the reason.

The pytest fixtures on it (``postgres_server``, ``postgres_database``) are in ``tests/servers/postgres.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from devservers.ports import free_port

__all__ = [
    "PostgresServer",
    "PostgresUnavailableError",
    "find_postgres_bin",
]

SERVER_USER = "postgres"  # the OS user the server runs as when we are root, and the database superuser
START_ATTEMPTS = 3  # a free port can be taken between probing and binding; try another one


class PostgresUnavailableError(Exception):
    """PostgreSQL cannot be run on this machine (the reason is the message); the tests are skipped."""


def find_postgres_bin() -> Path:
    """The directory of ``initdb``/``pg_ctl``: the newest ``/usr/lib/postgresql/N/bin``, else from ``PATH``."""

    def major(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(
        (p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")), key=major, reverse=True
    )
    for bin_dir in candidates:
        if (bin_dir / "initdb").is_file():
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise PostgresUnavailableError(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH); "
        "install them with `apt-get install -y postgresql`"
    )


class PostgresServer:
    """A PostgreSQL cluster in its own temporary directory. Use :meth:`start` / :meth:`stop` (or ``with``)."""

    host = "127.0.0.1"
    user = SERVER_USER

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailableError(
                    f"running as root and there is no {SERVER_USER!r} user to run the server as"
                ) from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailableError("running as root and `runuser` is missing")
            self.run_as = SERVER_USER
        self.base_dir: Path | None = None
        self.port = 0
        self._running = False
        self._admin: psycopg.Connection[tuple[object, ...]] | None = None

    # -- paths -----------------------------------------------------------------------------------------

    def _base(self) -> Path:
        if self.base_dir is None:
            raise RuntimeError("the PostgreSQL server has not been started")
        return self.base_dir

    @property
    def data_dir(self) -> Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base() / "socket"

    @property
    def log_file(self) -> Path:
        return self._base() / "server.log"

    # -- running commands ------------------------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            self._command(program, *args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self._base(),  # the server user may not be allowed into the caller's working directory
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return ""
        return "\nserver log:\n" + "\n".join(lines) if lines else ""

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """initdb + pg_ctl start; on any failure (or interrupt) everything made so far is removed again."""
        if self._running:
            return self
        # Not under pytest's tmp dir: that is private to root (0700) and the server user must get in.
        self.base_dir = Path(tempfile.mkdtemp(prefix="certstore-pg-"))
        atexit.register(self.stop)
        try:
            self.socket_dir.mkdir()
            if self.run_as:
                entry = pwd.getpwnam(self.run_as)
                for path in (self.base_dir, self.socket_dir):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            self._run(
                "initdb",
                *("-D", str(self.data_dir), "-U", SERVER_USER, "-A", "trust", "-E", "UTF8"),
                *("--locale=C.UTF-8", "--no-sync", "--no-instructions"),
            )
            for attempt in range(START_ATTEMPTS):
                self.port = free_port()
                try:
                    self._pg_ctl_start()
                    break
                except RuntimeError:
                    if attempt == START_ATTEMPTS - 1 or "could not bind" not in self._log_tail():
                        raise
            self._running = True
        except BaseException:
            self.stop()
            raise
        return self

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            [
                f"-c listen_addresses={self.host}",
                f"-p {self.port}",
                f"-c unix_socket_directories={self.socket_dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        data, log = str(self.data_dir), str(self.log_file)
        self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "30", "-o", options, "start")

    def stop(self) -> None:
        """Stop the server (``-m fast``; SIGQUIT to the postmaster if that fails) and delete its directory."""
        atexit.unregister(self.stop)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
        if self.base_dir is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop")
                except (RuntimeError, subprocess.TimeoutExpired):
                    self._kill_postmaster()
        finally:
            self._running = False
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # immediate shutdown of the server this object started

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of ``database`` on this server (psycopg 3 driver, trust authentication)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(
                host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
            )
        return self._admin

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """Create a database (``test_<random>`` unless named): empty, or a copy of ``template`` (a database no one
        is connected to); returns its name."""
        name = name or f"test_{secrets.token_hex(6)}"
        for each in (name, template or name):
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", each):
                raise ValueError(f"unsafe database name {each!r}")
        copy = f' TEMPLATE "{template}"' if template else ""
        self._admin_connection().execute(f'CREATE DATABASE "{name}"{copy}')  # type: ignore[arg-type]
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, disconnecting whoever is still connected to it."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"unsafe database name {name!r}")
        self._admin_connection().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
