"""The front-end database contract (数据库前置机): the tables an agency writes and the repository reads.

An agency that runs its own system delivers certificates by writing rows into a database of its own (SQLite,
PostgreSQL or any database SQLAlchemy reaches), which the exchange task reads every 2 minutes
(``certstore.exchange.worker``). :func:`init_frontend` creates the tables; ``docs/exchange.md`` and the JSON
Schemas in ``schemas/exchange/`` describe them for agencies' developers.

Tables (this module's own :data:`FRONTEND_METADATA`, not the repository's):

- ``fe_catalogue_entries`` — 证照目录 entries the agency registers (pending the bureau's approval).
- ``fe_certificates`` — certificate versions: the DATA.json document of ``certstore issue`` / POST
  /certificates, the version, the operation (empty: by the version — 1 签发, N > 1 变更; ``renew``: 延续), the
  channel (办理渠道) and the business completion time (业务办结时间), and optionally a file the agency sealed
  itself (a BLOB / ``bytea`` column: the raw bytes).
- ``fe_status_changes`` — 挂起 / 恢复 / 吊销 / 注销 / 废止 of a version (or of the latest one).
- ``fe_receipts`` — 回执: the repository writes one per row it read, accepted (with the identifier) or rejected
  (with field-level reasons).

**Append-only.** Every agency table has an auto-increment ``seq`` primary key that the exchange reads in order;
agencies only ever INSERT. A correction is a new row (a rejected row stays rejected; its fix gets a new ``seq``
and its own receipt). Rows are never updated or deleted by agencies: the exchange would not see an update, and
a deleted row looks like a rolled-back write.

Times: ``completed_at`` and ``written_at`` are moments. On databases with a time-zone type (PostgreSQL
``timestamptz``) write any offset; on SQLite, which has none, the columns hold UTC (the
:class:`FrontendWriter` converts). **A time written without an offset is UTC** (Beijing time needs ``+08:00``).

JSON documents (``document``, ``data``, ``problems``) are UTF-8 JSON text in ``TEXT`` columns, so every
database can hold them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator, TypeEngine

from certstore.store.bulk import insert_many

__all__ = [
    "CATALOGUE_TABLE",
    "CERTIFICATE_TABLE",
    "FRONTEND_METADATA",
    "RECEIPT_TABLE",
    "STATUS_TABLE",
    "FrontendTime",
    "FrontendWriter",
    "Receipt",
    "frontend_engine",
    "init_frontend",
    "write_receipts",
]

FRONTEND_METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class FrontendTime(TypeDecorator[datetime]):
    """A moment: ``timestamptz`` where the database has it; on SQLite ISO 8601 text in UTC. Reading is lenient,
    because agencies write with their own tools: any ISO 8601 form (``T`` or space, ``Z`` or an offset; no
    offset = UTC) becomes an aware datetime, and text that is not a time comes back as the text, so the
    exchange rejects that one row with a receipt instead of failing to read the table."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(Text() if dialect.name == "sqlite" else DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or isinstance(value, str):
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a front-end time column: give a time zone")
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        raw = value
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                return raw
        if isinstance(value, datetime):
            try:
                return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
                return raw if isinstance(raw, str) else value.isoformat()
        return value


# SQLite only auto-increments INTEGER PRIMARY KEY; elsewhere a 64-bit sequence.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")
SQLITE_BUSY_TIMEOUT_MS = 10_000

CATALOGUE_TABLE = Table(
    "fe_catalogue_entries",
    FRONTEND_METADATA,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("document", Text, nullable=False),  # catalogue-entry JSON (schemas/catalogue-entry.schema.json)
    Column("written_at", FrontendTime(), nullable=False),
    comment="证照目录 entries an agency registers; append-only",
)

CERTIFICATE_TABLE = Table(
    "fe_certificates",
    FRONTEND_METADATA,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("issuer_code", String(18), nullable=False),  # 颁发机构代码 (unified social credit code)
    Column("certificate_number", String(128), nullable=False),  # 证照编号
    Column("version", Integer, nullable=False),  # 1 = 签发, N > 1 = 变更 (or 延续) of version N-1
    # NULL: by the version (1 签发, N > 1 变更); 'issue' | 'change' | 'renew' (延续: a later end of validity)
    Column("operation", String(8), nullable=True),
    Column("data", Text, nullable=False),  # DATA.json of `certstore issue` / POST /certificates
    Column("file", LargeBinary, nullable=True),  # the agency's own sealed OFD/PDF, if it seals itself
    Column("file_media_type", String(64), nullable=True),
    Column("channel", String(8), nullable=False),  # online | offline | bulk (办理渠道)
    Column("completed_at", FrontendTime(), nullable=False),  # 业务办结时间
    Column("written_at", FrontendTime(), nullable=False),
    Index("ix_fe_certificates_key", "issuer_code", "certificate_number", "version"),
    comment="certificate versions an agency delivers; append-only",
)

STATUS_TABLE = Table(
    "fe_status_changes",
    FRONTEND_METADATA,
    Column("seq", _SEQ, primary_key=True, autoincrement=True),
    Column("issuer_code", String(18), nullable=False),
    Column("certificate_number", String(128), nullable=False),
    Column("version", Integer, nullable=True),  # NULL: the latest version
    Column("action", String(16), nullable=False),  # suspend | resume | revoke | cancel | annul
    Column("reason", Text, nullable=False),
    Column("written_at", FrontendTime(), nullable=False),
    comment="挂起/恢复/吊销/注销/废止 of certificate versions; append-only",
)

RECEIPT_TABLE = Table(
    "fe_receipts",
    FRONTEND_METADATA,
    Column("table_name", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),  # accepted | rejected
    Column("identifier", String(128), nullable=True),  # 证照标识 (catalogue rows: CODE/vN)
    Column("message", Text, nullable=True),  # one readable line
    Column("problems", Text, nullable=True),  # JSON [[path, message], ...]
    Column("written_at", FrontendTime(), nullable=False),
    comment="回执: written by the repository, one per agency row",
)

AGENCY_TABLES = (CATALOGUE_TABLE, CERTIFICATE_TABLE, STATUS_TABLE)
#: Columns added to the contract after its first release: a front-end created earlier may lack them
#: (``init-frontend`` adds them; until then the exchange reads them as NULL).
ADDED_COLUMNS = {"fe_certificates": ("operation",)}


def _sqlite_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}").close()


def frontend_engine(url: str, **kwargs: Any) -> Engine:
    """An engine on a front-end database. ``postgresql://`` gets the psycopg 3 driver; SQLite waits up to 10 s
    for a writer's lock instead of failing at once."""
    parsed = make_url(url.strip())
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    options: dict[str, Any] = {"pool_pre_ping": True}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
    return engine


def init_frontend(url: str) -> list[str]:
    """Create the front-end tables at ``url`` (those missing; existing tables are left alone). A SQLite file is
    switched to WAL so the exchange reads while the agency writes. Returns the names of the tables created."""
    engine = frontend_engine(url)
    try:
        existing = set(inspect(engine).get_table_names())
        if engine.dialect.name == "sqlite":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        FRONTEND_METADATA.create_all(engine)
        inspector = inspect(engine)
        for table_name, columns in ADDED_COLUMNS.items():
            present = {c["name"] for c in inspector.get_columns(table_name)}
            for name in columns:
                if name not in present:  # a front-end of an earlier release: add the column (nullable)
                    column = FRONTEND_METADATA.tables[table_name].c[name]
                    kind = column.type.compile(dialect=engine.dialect)
                    with engine.begin() as conn:
                        conn.exec_driver_sql(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}")
        return [t.name for t in FRONTEND_METADATA.sorted_tables if t.name not in existing]
    finally:
        engine.dispose()


# --- receipts (回执) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """The repository's answer to one agency row."""

    table_name: str
    seq: int
    status: str  # accepted | rejected
    identifier: str | None
    message: str | None
    problems: tuple[tuple[str, str], ...]
    written_at: datetime

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


def _receipt(row: Any) -> Receipt:
    problems = json.loads(row.problems) if row.problems else []
    return Receipt(
        row.table_name,
        int(row.seq),
        row.status,
        row.identifier,
        row.message,
        tuple((str(p), str(m)) for p, m in problems),
        row.written_at,
    )


def write_receipts(conn: Connection, receipts: Sequence[Mapping[str, Any]]) -> None:
    """Upsert receipts by (table_name, seq) in the caller's transaction: writing one again (a re-send after a
    crash) replaces it with the same content. Each mapping has the columns of ``fe_receipts`` (``problems`` as a
    list, serialised here)."""
    if not receipts:
        return
    rows = [
        {
            **r,
            "problems": None if r.get("problems") is None else json.dumps(r["problems"], ensure_ascii=False),
        }
        for r in receipts
    ]
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        dialect: Any = sqlite if name == "sqlite" else postgresql
        statement = dialect.insert(RECEIPT_TABLE)
        statement = statement.on_conflict_do_update(
            index_elements=["table_name", "seq"],
            set_={
                c: statement.excluded[c]
                for c in ("status", "identifier", "message", "problems", "written_at")
            },
        )
        insert_many(conn, statement, rows)
        return
    for row in rows:  # other databases: insert, or update what is there
        try:
            with conn.begin_nested():
                conn.execute(insert(RECEIPT_TABLE), row)
        except IntegrityError:
            conn.execute(
                update(RECEIPT_TABLE)
                .where(RECEIPT_TABLE.c.table_name == row["table_name"], RECEIPT_TABLE.c.seq == row["seq"])
                .values({k: v for k, v in row.items() if k not in ("table_name", "seq")})
            )


# --- the agency's side ------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class FrontendWriter:
    """What an agency's script (or a test) uses to write its front-end database: one method per table, each
    returning the new row's ``seq``, and the receipts to read back. ``with writer.transaction() as tx:`` writes
    several rows in one transaction (pass ``tx`` as ``conn``).

    Documents may be given as objects (serialised as JSON) or as text (written as it is — also malformed text,
    which the exchange then rejects with a receipt)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        if create:
            init_frontend(url)
        self.engine = frontend_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> FrontendWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _insert(self, table: Table, values: dict[str, Any], conn: Connection | None) -> int:
        values.setdefault("written_at", _now())
        if conn is not None:
            return int(conn.execute(insert(table).values(**values)).inserted_primary_key[0])
        with self.engine.begin() as own:
            return int(own.execute(insert(table).values(**values)).inserted_primary_key[0])

    def catalogue_entry(self, document: Mapping[str, Any] | str, *, conn: Connection | None = None) -> int:
        """A catalogue entry (证照目录) to register; the bureau approves it in the repository."""
        return self._insert(CATALOGUE_TABLE, {"document": _json(document)}, conn)

    def certificate(
        self,
        issuer_code: str,
        certificate_number: str,
        version: int,
        data: Mapping[str, Any] | str,
        *,
        channel: str = "online",
        completed_at: datetime | None = None,
        file: bytes | None = None,
        file_media_type: str | None = None,
        operation: str | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Version ``version`` of a certificate: ``data`` is its DATA.json document; ``file`` the agency's own
        sealed file, if it seals itself (else the repository seals); ``operation="renew"`` for a 延续."""
        values = {
            "issuer_code": issuer_code,
            "certificate_number": certificate_number,
            "version": version,
            "data": _json(data),
            "file": file,
            "file_media_type": file_media_type,
            "operation": operation,
            "channel": channel,
            "completed_at": completed_at or _now(),
        }
        return self._insert(CERTIFICATE_TABLE, values, conn)

    def status_change(
        self,
        issuer_code: str,
        certificate_number: str,
        action: str,
        reason: str,
        *,
        version: int | None = None,
        conn: Connection | None = None,
    ) -> int:
        """挂起/恢复/吊销/注销/废止 (suspend/resume/revoke/cancel/annul) of a version (None: the latest)."""
        values = {
            "issuer_code": issuer_code,
            "certificate_number": certificate_number,
            "version": version,
            "action": action,
            "reason": reason,
        }
        return self._insert(STATUS_TABLE, values, conn)

    def receipts(self, table_name: str | None = None) -> list[Receipt]:
        """Every receipt (of one table), in (table, seq) order."""
        query = select(RECEIPT_TABLE).order_by(RECEIPT_TABLE.c.table_name, RECEIPT_TABLE.c.seq)
        if table_name is not None:
            query = query.where(RECEIPT_TABLE.c.table_name == table_name)
        with self.engine.connect() as conn:
            return [_receipt(row) for row in conn.execute(query)]

    def receipt(self, table_name: str, seq: int) -> Receipt | None:
        query = select(RECEIPT_TABLE).where(
            RECEIPT_TABLE.c.table_name == table_name, RECEIPT_TABLE.c.seq == seq
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _receipt(row)
