"""The repository database: where it is, how to connect, sessions, and the schema's revision.

Backends: SQLite (the default, one file ``<data-dir>/certstore.db``) and PostgreSQL (``CERTSTORE_DATABASE_URL``,
driver psycopg 3). The schema is made and changed only by the Alembic migrations in
``certstore/store/migrations`` (``Database.upgrade()`` or ``certstore db upgrade``); nothing here calls
``create_all``. Code that needs the tables calls :meth:`Database.check_schema` first.

Transactions and isolation:

- PostgreSQL runs at READ COMMITTED (set explicitly, whatever the server default). A use case that reads a
  row and then changes it locks it (``SELECT … FOR UPDATE``); uniqueness races end in ``IntegrityError`` from
  the unique constraints, which the services treat as "someone else won".
- SQLite is serialisable by construction (one writer at a time). SQLAlchemy, not the ``sqlite3`` module, emits
  ``BEGIN`` (the module's legacy mode starts no transaction for SELECT or DDL, which breaks repeatable reads,
  SAVEPOINTs and transactional migrations). Read-write sessions begin with ``BEGIN IMMEDIATE``: they take the
  write lock up front, queueing for it (up to ``busy_timeout``, 10 s), so a read-then-write session does not
  fail half-way with "database is locked" (in WAL mode a deferred transaction that read an older snapshot
  cannot become a writer, and SQLite reports that at once instead of waiting). ``session(readonly=True)``
  begins a deferred transaction under ``PRAGMA query_only``: read-only work runs alongside the one writer
  (WAL) and cannot write.
- On both, a ``readonly`` session refuses writes (PostgreSQL: ``READ ONLY`` transaction).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from certstore.store.jsontext import compact_dumps
from certstore.store.private import create_private_file, make_private_dirs

if TYPE_CHECKING:  # Alembic is imported when a migration runs or the schema is not plainly at head: start-up
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "DATABASE_FILE",
    "DATABASE_URL_ENV",
    "MIGRATIONS_DIR",
    "SQLITE_BULK_CACHE_KIB",
    "SQLITE_BULK_CHECKPOINT_PAGES",
    "SQLITE_CACHE_KIB",
    "SQLITE_CHECKPOINT_PAGES",
    "Database",
    "DatabaseURLError",
    "SchemaError",
    "alembic_config",
    "database_url",
    "head_revision",
    "make_engine",
    "mask_url",
    "normalise_url",
    "sqlite_path",
]

DATABASE_URL_ENV = "CERTSTORE_DATABASE_URL"
DATABASE_FILE = "certstore.db"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 10_000  # how long a writer waits for the write lock before "database is locked"
#: SQLite checkpoints its write-ahead log when a commit leaves it this long (pages): SQLite's default for
#: ordinary sessions, ten times more inside :meth:`Database.bulk_writes` (40 MB at 4 KiB pages).
SQLITE_CHECKPOINT_PAGES, SQLITE_BULK_CHECKPOINT_PAGES = 1_000, 10_000
#: A connection's page cache (``PRAGMA cache_size``; negative: KiB): SQLite's default (2 MB), and 64 MB inside
#: :meth:`Database.bulk_writes`, where a transaction of hundreds of rows changes thousands of index pages.
SQLITE_CACHE_KIB, SQLITE_BULK_CACHE_KIB = 2_000, 65_536
POSTGRES_POOL = {"pool_size": 10, "max_overflow": 20, "pool_recycle": 1800, "pool_timeout": 30}

# Alembic's ``context`` and ``op`` are process-wide proxies: one migration run at a time per process.
# Between processes, env.py serialises runs (PostgreSQL advisory lock, SQLite write lock).
_MIGRATION_LOCK = threading.Lock()

_READONLY = "certstore_readonly"  # execution option read by the SQLite BEGIN hook
_BULK: ContextVar[bool] = ContextVar("certstore_bulk_writes", default=False)  # read by the same hook
_json_dumps = compact_dumps(sort_keys=False)  # 中文 stays readable


class DatabaseURLError(ValueError):
    """``CERTSTORE_DATABASE_URL`` (or a URL given in code) is not a usable SQLite or PostgreSQL URL."""


class SchemaError(RuntimeError):
    """The database schema is not at the revision this code needs (message says what to do)."""


# -- where the database is ---------------------------------------------------------------------------


def normalise_url(url: str) -> str:
    """Check ``url`` names a supported backend; ``postgresql://``/``postgres://`` get the psycopg 3 driver."""
    url = url.strip()
    if url.startswith("postgres://"):  # the Heroku-style scheme SQLAlchemy does not know
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseURLError(f"not a database URL: {mask_url(url)!r}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise DatabaseURLError(
            f"unsupported database {parsed.drivername!r} in {mask_url(url)!r}: use sqlite:/// or postgresql://"
        )
    return parsed.render_as_string(hide_password=False)


def database_url(data_dir: Path, env: Mapping[str, str] = os.environ) -> str:
    """``CERTSTORE_DATABASE_URL`` if set, else the SQLite file ``<data_dir>/certstore.db`` (absolute)."""
    configured = env.get(DATABASE_URL_ENV, "").strip()
    if configured:
        return normalise_url(configured)
    path = (Path(data_dir) / DATABASE_FILE).absolute()
    return URL.create("sqlite", database=str(path)).render_as_string(hide_password=False)


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***`` (for messages and ``db status``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return Path(database)


# -- engines -----------------------------------------------------------------------------------------


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine set up for certstore (see the module docstring); ``kwargs`` go to ``create_engine``.

    SQLite: WAL journal, ``foreign_keys=ON``, ``busy_timeout``, ``synchronous=NORMAL`` on every connection,
    SQLAlchemy-emitted BEGIN / BEGIN IMMEDIATE; the file and its directory are created owner-only (0600, 0700). PostgreSQL: READ COMMITTED,
    ``pool_pre_ping`` and a bounded pool.
    """
    parsed = make_url(normalise_url(url) if isinstance(url, str) else url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    if backend == "postgresql":
        options.update(pool_pre_ping=True, isolation_level="READ COMMITTED")
        if "poolclass" not in kwargs:  # sizes apply to the default QueuePool only
            options.update(POSTGRES_POOL)
    options.update(kwargs)
    if backend == "sqlite" and (path := sqlite_path(parsed)) is not None:
        # owner-only whatever the umask: the directory 0700, the file 0600 before SQLite first opens it (its
        # -wal and -shm then get the file's mode); an existing directory or file is left as it is
        make_private_dirs(path.parent)
        create_private_file(path)
    engine = create_engine(parsed, **options)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    dbapi_connection.isolation_level = None  # the sqlite3 module must not BEGIN/COMMIT on its own
    for pragma in (
        f"busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}",  # first: switching a new file to WAL may have to wait
        "journal_mode = WAL",
        "foreign_keys = ON",
        "synchronous = NORMAL",
        f"wal_autocheckpoint = {SQLITE_CHECKPOINT_PAGES}",
        f"cache_size = -{SQLITE_CACHE_KIB}",
    ):
        dbapi_connection.execute(f"PRAGMA {pragma}").close()
    record.info["query_only"] = False
    record.info["bulk"] = False


def _sqlite_begin(conn: Connection) -> None:
    readonly = bool(conn.get_execution_options().get(_READONLY, False))
    info = conn.connection.info
    if info.get("query_only", False) != readonly:
        conn.exec_driver_sql(f"PRAGMA query_only = {int(readonly)}")
        info["query_only"] = readonly
    bulk = _BULK.get()
    if not readonly and info.get("bulk", False) != bulk:  # a writer's: set back for the next ordinary writer
        pages, cache = (
            (SQLITE_BULK_CHECKPOINT_PAGES, SQLITE_BULK_CACHE_KIB)
            if bulk
            else (SQLITE_CHECKPOINT_PAGES, SQLITE_CACHE_KIB)
        )
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint = {pages}")
        conn.exec_driver_sql(f"PRAGMA cache_size = -{cache}")  # a smaller size frees the pages beyond it
        info["bulk"] = bulk
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


# -- migrations --------------------------------------------------------------------------------------


def alembic_config(url: str | None = None, *, connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for certstore's migrations, without an ini file.

    The migration environment uses ``connection`` if given, else ``url``, else the usual
    ``CERTSTORE_DATABASE_URL`` / data-directory rules (see ``migrations/env.py``).
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.attributes["url"] = normalise_url(url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@functools.cache
def _script_directory() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest migration revision in this version of certstore."""
    head = _script_directory().get_current_head()
    if head is None:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def _known_revision(revision: str) -> bool:
    return any(script.revision == revision for script in _script_directory().walk_revisions())


def _newest_revision_file() -> str | None:
    """The head revision as ``migrations/versions`` names it, told without loading Alembic: revisions are
    numbered ``NNNN_<slug>`` in order and each file is named after its revision id (``alembic.ini``:
    ``file_template = %%(rev)s``), so the last file is the head. None when the directory does not plainly say so
    (no revision, or two with one number): Alembic then decides. ``tests/test_app_imports.py`` checks that this
    is :func:`head_revision`."""
    names = sorted(path.stem for path in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
    if not names or len({name[:4] for name in names}) != len(names):
        return None
    return names[-1]


# -- the database ------------------------------------------------------------------------------------


class Database:
    """An engine and its session factory for one database URL.

    ``with db.session() as s: ...`` commits when the block ends normally and rolls back if it raises.
    Sessions do not expire objects on commit, so rows read in a block stay readable after it.
    """

    def __init__(self, url: str | URL, *, engine: Engine | None = None, **engine_kwargs: Any) -> None:
        self.url = normalise_url(url) if isinstance(url, str) else url.render_as_string(hide_password=False)
        self.engine = engine if engine is not None else make_engine(self.url, **engine_kwargs)
        self.sessionmaker: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        readonly_options = (
            {"postgresql_readonly": True} if self.backend == "postgresql" else {_READONLY: True}
        )
        self._readonly_engine = self.engine.execution_options(**readonly_options)
        self._readonly_sessionmaker: sessionmaker[Session] = sessionmaker(
            self._readonly_engine, expire_on_commit=False
        )

    @classmethod
    def from_data_dir(cls, data_dir: Path, env: Mapping[str, str] = os.environ) -> Database:
        """The database configured for ``data_dir`` (see :func:`database_url`)."""
        return cls(database_url(data_dir, env))

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def masked_url(self) -> str:
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"Database({self.masked_url!r})"

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises."""
        session = (self._readonly_sessionmaker if readonly else self.sessionmaker)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @staticmethod
    @contextmanager
    def bulk_writes() -> Iterator[None]:
        """Within the block (this thread or task), SQLite write transactions run as a bulk writer's (an exchange
        cycle, an import: hundreds of rows per transaction), on PostgreSQL nothing changes:

        - the write-ahead log is checkpointed every :data:`SQLITE_BULK_CHECKPOINT_PAGES` pages instead of every
          :data:`SQLITE_CHECKPOINT_PAGES`. A checkpoint copies every page changed since the last one into the
          database file and syncs it; checkpointing ten times less often copies an index page rewritten by ten
          transactions once instead of ten times, and syncs ten times less (the 100k-row exchange cycle: about a
          tenth faster). Durability is unchanged (a commit is in the log either way); the log grows to about
          40 MB between checkpoints;
        - the connection's page cache is :data:`SQLITE_BULK_CACHE_KIB` instead of :data:`SQLITE_CACHE_KIB`: the
          rows of a transaction land all over the unique and lookup indexes (identifiers, serials, holder
          digests), thousands of pages, which a 2 MB cache would spill to the log mid-transaction and read back.

        The connection is set back by its next ordinary write transaction (a reader leaves it as it is)."""
        token = _BULK.set(True)
        try:
            yield
        finally:
            _BULK.reset(token)

    def connect(self, *, readonly: bool = False) -> Connection:
        """A Core connection (close it, e.g. ``with db.connect() as conn``)."""
        return (self._readonly_engine if readonly else self.engine).connect()

    # -- schema revision -----------------------------------------------------------------------------

    def _at_newest_revision(self) -> str | None:
        """The head revision when the database is plainly at it (its one ``alembic_version`` row names the newest
        revision file, :func:`_newest_revision_file`), read with one query and without loading Alembic — every
        command that opens the repository asks, so this is start-up time; else None, and Alembic decides."""
        newest = _newest_revision_file()
        if newest is None:
            return None
        try:
            with self.connect(readonly=True) as conn:
                rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        except SQLAlchemyError:  # no schema yet, or no database: the full path says what is wrong
            return None
        return newest if list(rows) == [newest] else None

    def current_revision(self) -> str | None:
        """The migration revision the database is at; None for a database without certstore's schema."""
        from alembic.runtime.migration import MigrationContext

        with self.connect(readonly=True) as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> tuple[str | None, str | None]:
        """Apply the migrations up to ``revision`` in one transaction; returns (revision before, after).

        Safe to call from several processes at once: they take turns, and the later ones find nothing to do.
        """
        with _MIGRATION_LOCK:
            if revision == "head" and (head := self._at_newest_revision()) is not None:
                return head, head  # nothing to do: Alembic's answer, without loading it
            from alembic import command

            before = self.current_revision()
            with self.engine.connect() as conn:
                command.upgrade(alembic_config(connection=conn), revision)
            return before, self.current_revision()

    def check_schema(self) -> str:
        """Raise :class:`SchemaError` unless the database is at the head revision; returns that revision."""
        if (newest := self._at_newest_revision()) is not None:
            return newest
        head = head_revision()
        current = self.current_revision()
        if current == head:
            return head
        if current is None:
            raise SchemaError(
                f"database {self.masked_url} has no certstore schema (expected revision {head}): "
                "run `certstore db upgrade`"
            )
        if not _known_revision(current):
            raise SchemaError(
                f"database {self.masked_url} is at revision {current}, which this version of certstore does "
                f"not know (its newest is {head}): the database was migrated by a newer certstore"
            )
        raise SchemaError(
            f"database {self.masked_url} is at revision {current}, this version of certstore needs {head}: "
            "run `certstore db upgrade`"
        )

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()
