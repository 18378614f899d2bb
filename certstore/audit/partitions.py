"""Retention in the database (保存期限): monthly partitions, the retention period, the application role's grants.

PostgreSQL keeps ``audit_events`` partitioned by month of ``at`` (schema ``audit_partitions``, tables
``audit_events_YYYY_MM`` plus ``audit_events_default`` for rows of a month nobody created). Partitions are made
ahead by :func:`ensure_partitions` — the maintenance command ``certstore audit partitions`` (cron, as the owning
role) and, when its role may, each API process at start. Archiving a month drops its partition
(:mod:`certstore.audit.archive`).

Triggers (revision 0005_audit) refuse UPDATE of any entry and DELETE of entries younger than the retention
period (``audit_chain.retention_years``, 3 unless raised; it can only grow). :func:`grant_statements` is the SQL
that gives the application's database role exactly what it needs — no UPDATE, DELETE or TRUNCATE on the audit
tables — so the database refuses tampering twice over. SQLite has the same triggers (no roles).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import text

from certstore.store.db import Database

__all__ = [
    "MIN_RETENTION_YEARS",
    "PARTITION_SCHEMA",
    "RetentionError",
    "ensure_partitions",
    "grant_statements",
    "list_partitions",
    "month_bounds",
    "partition_name",
    "retention_years",
    "set_retention_years",
]

PARTITION_SCHEMA = "audit_partitions"
MIN_RETENTION_YEARS = 3  # 第二十三条: access logs kept no less than 3 years
_ROLE = re.compile(r"[a-z_][a-z0-9_$]{0,62}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")

#: Tables the application role only reads and appends to.
APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints", "audit_tree_nodes")
#: Tables only the maintenance role writes.
READ_ONLY_TABLES = ("audit_archives",)
#: Other tables the application role only reads and appends to: the matter bindings (知悉范围, one matter serves
#: one holder — a binding, once written, is never changed; :mod:`certstore.services.scope`).
APPEND_ONLY_STATE_TABLES = ("matter_bindings",)


class RetentionError(ValueError):
    """The retention period cannot be set that way (lowered, or under the legal minimum)."""


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``"YYYY-MM"`` → [first instant, first instant of the next month), UTC."""
    match = _MONTH.fullmatch(month)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"not a month: {month!r} (expected YYYY-MM)")
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if number == 12 else datetime(year, number + 1, 1, tzinfo=UTC)
    return start, end


def partition_name(month: str) -> str:
    month_bounds(month)
    return f"audit_events_{month.replace('-', '_')}"


def _months(start: datetime, count: int) -> list[str]:
    year, month = start.year, start.month
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def list_partitions(db: Database) -> list[str]:
    """Names of the partitions of ``audit_events`` (PostgreSQL; empty on SQLite)."""
    if db.backend != "postgresql":
        return []
    with db.connect(readonly=True) as conn:
        return list(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'audit_events' ORDER BY 1"
                )
            ).scalars()
        )


def ensure_partitions(db: Database, *, months_ahead: int = 3, now: datetime | None = None) -> list[str]:
    """Create the partitions of this month and ``months_ahead`` following ones where missing (PostgreSQL;
    nothing on SQLite); returns the ones created. Needs the right to create tables in ``audit_partitions``
    and to attach them (the owning role)."""
    if db.backend != "postgresql":
        return []
    existing = set(list_partitions(db))
    created = []
    for month in _months(now or datetime.now(UTC), months_ahead + 1):
        name = partition_name(month)
        if name in existing:
            continue
        start, end = month_bounds(month)
        with db.engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {PARTITION_SCHEMA}"))
            conn.execute(
                text(
                    f"CREATE TABLE IF NOT EXISTS {PARTITION_SCHEMA}.{name} PARTITION OF audit_events "
                    f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
            )
        created.append(name)
    return created


def retention_years(db: Database) -> int:
    with db.connect(readonly=True) as conn:
        return int(conn.execute(text("SELECT retention_years FROM audit_chain WHERE id = 1")).scalar_one())


def set_retention_years(db: Database, years: int) -> int:
    """Raise the retention period (it can never be lowered, nor be under 3 years); returns the new value."""
    if years < MIN_RETENTION_YEARS:
        raise RetentionError(f"the retention period is at least {MIN_RETENTION_YEARS} years (第二十三条)")
    current = retention_years(db)
    if years < current:
        raise RetentionError(f"the retention period can only be raised: it is {current} years, not {years}")
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_chain SET retention_years = :y WHERE id = 1"), {"y": years})
    return years


def grant_statements(app_role: str, *, schema: str = "public") -> list[str]:
    """SQL for the owning role to run so that ``app_role`` (the API's database login) can use certstore but
    never change or remove audit entries: everything it needs on the other tables, SELECT + INSERT on the
    append-only audit tables and the matter bindings, SELECT on archive records, and UPDATE only on the chain
    head row's table (whose trigger lets it only grow)."""
    if not _ROLE.fullmatch(app_role):
        raise ValueError(f"unsafe role name {app_role!r}")
    if not _ROLE.fullmatch(schema):
        raise ValueError(f"unsafe schema name {schema!r}")
    audit = ", ".join(APPEND_ONLY_TABLES)
    return [
        f"GRANT USAGE ON SCHEMA {schema}, {PARTITION_SCHEMA} TO {app_role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {audit}, {', '.join(READ_ONLY_TABLES)}, audit_chain FROM {app_role}",
        f"REVOKE INSERT ON {', '.join(READ_ONLY_TABLES)} FROM {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(APPEND_ONLY_STATE_TABLES)} FROM {app_role}",
        f"GRANT UPDATE ON audit_chain TO {app_role}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {PARTITION_SCHEMA} FROM {app_role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {PARTITION_SCHEMA} REVOKE ALL ON TABLES FROM {app_role}",
    ]
