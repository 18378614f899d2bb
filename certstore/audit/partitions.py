"""Retention in the database (保存期限): monthly partitions, the retention period, the application role's grants.

PostgreSQL keeps ``audit_events`` partitioned by month of ``at`` (schema ``audit_partitions``, tables
``audit_events_YYYY_MM`` plus ``audit_events_default`` for rows of a month nobody created). Partitions are made
ahead by :func:`ensure_partitions` — the maintenance command ``certstore audit partitions`` (cron, as the owning
role) and, when its role may, each API process at start. Archiving a month drops its partition
(:mod:`certstore.audit.archive`).

Triggers (revision 0005_audit) refuse UPDATE of any entry and DELETE of entries younger than the retention
period (``audit_chain.retention_years``, 3 unless raised; it can only grow). :func:`grant_statements` is the SQL
that gives the application's database role exactly what it needs — no UPDATE, DELETE or TRUNCATE on the audit
tables — so the database refuses tampering twice over; :func:`superuser_statements` installs the event triggers
(revision 0010_audit_append_only) that refuse DISABLE TRIGGER, DETACH and DROP of protected partitions to the
owner too; :func:`check_role` is what ``certstore serve`` asks before serving. SQLite has the row triggers (no
roles, no DDL hooks: tamper evidence there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text

from certstore.store.db import Database

__all__ = [
    "MIN_RETENTION_YEARS",
    "PARTITION_SCHEMA",
    "RetentionError",
    "RoleCheck",
    "check_role",
    "ensure_partitions",
    "grant_statements",
    "list_partitions",
    "month_bounds",
    "partition_name",
    "retention_years",
    "set_retention_years",
    "superuser_statements",
]

PARTITION_SCHEMA = "audit_partitions"
MIN_RETENTION_YEARS = 3  # 第二十三条: access logs kept no less than 3 years
_ROLE = re.compile(r"[a-z_][a-z0-9_$]{0,62}")
_MONTH = re.compile(r"(\d{4})-(\d{2})")

#: Tables the application role only reads and appends to (``audit_request_ids``: client request ids, each
#: claimed once — :mod:`certstore.audit.requests`).
APPEND_ONLY_TABLES = ("audit_events", "audit_checkpoints", "audit_tree_nodes", "audit_request_ids")
#: Tables only the maintenance role writes.
READ_ONLY_TABLES = ("audit_archives",)
#: Other tables the application role only reads and appends to: the matter bindings (知悉范围, one matter serves
#: one holder — a binding, once written, is never changed; :mod:`certstore.services.scope`).
#: Uploaded catalogue base images (issue 20) are content-addressed, written once: read and append only too.
APPEND_ONLY_STATE_TABLES = ("matter_bindings", "catalogue_assets")
#: Tables the application role reads, appends to and updates but never deletes from: registered matters (closed
#: or withdrawn by an update, never removed) and holders' authorisations (revoked by an update) — issue 19,
#: :mod:`certstore.services.matters`, :mod:`certstore.services.authorisations`.
KEPT_STATE_TABLES = ("matters", "holder_authorisations")
#: Notification tables (issue 19 item 5), kept the same way: outbox rows are updated as they are claimed, sent or
#: given up, contacts replaced, webhook subscriptions disabled — none deleted (:mod:`certstore.services.notifications`).
NOTIFICATION_TABLES = ("notification_outbox", "holder_contacts", "webhook_subscriptions")


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


#: The SECURITY DEFINER functions through which the application role appends (revision 0010_audit_append_only).
APPEND_FUNCTIONS = (
    "audit_head_lock()",
    "audit_head_store(bigint, bytea, timestamptz, text, bigint, timestamptz)",
    "audit_pending_consume(bigint[])",
)


def grant_statements(app_role: str, *, schema: str = "public") -> list[str]:
    """SQL for the owning role to run so that ``app_role`` (the API's database login) can use certstore but
    never change or remove audit entries: everything it needs on the other tables; SELECT + INSERT on the
    append-only audit tables, the pending entries and the matter bindings; SELECT only on the chain head and the
    archive records; EXECUTE on the functions that lock and advance the head and consume chained pending
    entries (the head's trigger lets it move only over appended entries)."""
    if not _ROLE.fullmatch(app_role):
        raise ValueError(f"unsafe role name {app_role!r}")
    if not _ROLE.fullmatch(schema):
        raise ValueError(f"unsafe schema name {schema!r}")
    audit = ", ".join(APPEND_ONLY_TABLES)
    functions = ", ".join(f"{schema}.{f}" for f in APPEND_FUNCTIONS)
    return [
        f"GRANT USAGE ON SCHEMA {schema}, {PARTITION_SCHEMA} TO {app_role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {audit}, audit_pending, "
        f"{', '.join(READ_ONLY_TABLES)}, audit_chain FROM {app_role}",
        f"REVOKE INSERT ON {', '.join(READ_ONLY_TABLES)}, audit_chain FROM {app_role}",
        f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(APPEND_ONLY_STATE_TABLES)} FROM {app_role}",
        f"REVOKE DELETE, TRUNCATE ON {', '.join(KEPT_STATE_TABLES)} FROM {app_role}",
        f"REVOKE DELETE, TRUNCATE ON {', '.join(NOTIFICATION_TABLES)} FROM {app_role}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {PARTITION_SCHEMA} FROM {app_role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {PARTITION_SCHEMA} REVOKE ALL ON TABLES FROM {app_role}",
        f"GRANT EXECUTE ON FUNCTION {functions} TO {app_role}",
    ]


def superuser_statements(*, schema: str = "public") -> list[str]:
    """SQL for a superuser to run once after ``certstore db upgrade`` (the migration does it itself when it
    runs as a superuser): the event triggers that refuse DISABLE TRIGGER, DROP TRIGGER, DETACH and DROP of
    protected partitions and changes to the guard functions — to the owner role too — with their functions
    owned by the superuser, so that the owner cannot replace them. Revision 0010_audit_append_only installs the
    same statements from its own copy (a migration imports no application code); a test keeps the two equal."""
    if not _ROLE.fullmatch(schema):
        raise ValueError(f"unsafe schema name {schema!r}")
    return [
        "DROP EVENT TRIGGER IF EXISTS audit_ddl_guard",
        "DROP EVENT TRIGGER IF EXISTS audit_drop_guard",
        f"ALTER FUNCTION {schema}.audit_ddl_guard() OWNER TO CURRENT_USER",
        f"ALTER FUNCTION {schema}.audit_drop_guard() OWNER TO CURRENT_USER",
        f"ALTER FUNCTION {schema}.audit_guard_state() OWNER TO CURRENT_USER",
        f"ALTER FUNCTION {schema}.audit_has_protected_rows(regclass) OWNER TO CURRENT_USER",
        f"CREATE EVENT TRIGGER audit_ddl_guard ON ddl_command_end EXECUTE FUNCTION {schema}.audit_ddl_guard()",
        f"CREATE EVENT TRIGGER audit_drop_guard ON sql_drop EXECUTE FUNCTION {schema}.audit_drop_guard()",
    ]


@dataclass(frozen=True)
class RoleCheck:
    """What the database role a process runs as may do to the audit tables (PostgreSQL)."""

    role: str
    owner: str
    superuser: bool
    event_triggers: bool
    member_of_owner: bool = False

    @property
    def owns_audit_tables(self) -> bool:
        """The role is the audit tables' owner (or a member of it) or a superuser: it could alter or drop them."""
        return self.superuser or self.role == self.owner or self.member_of_owner


def check_role(db: Database) -> RoleCheck | None:
    """The role ``db`` connects as, and whether it owns the audit tables (None on SQLite: no roles)."""
    if db.backend != "postgresql":
        return None
    with db.connect(readonly=True) as conn:
        row = conn.execute(
            text(
                "SELECT current_user, pg_get_userbyid(c.relowner), r.rolsuper, "
                "pg_has_role(current_user, c.relowner, 'USAGE'), "
                "EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname IN ('audit_ddl_guard', 'audit_drop_guard') "
                "AND evtenabled <> 'D') "
                "FROM pg_class c, pg_roles r WHERE c.oid = 'audit_events'::regclass AND r.rolname = current_user"
            )
        ).one()
    return RoleCheck(
        role=row[0],
        owner=row[1],
        superuser=bool(row[2]),
        event_triggers=bool(row[4]),
        member_of_owner=bool(row[3]),
    )
