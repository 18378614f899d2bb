"""audit: tamper-evident trail — hash chain, Merkle tree, checkpoints, retention, monthly partitions

Revision ID: 0005_audit
Revises: 0004_credentials
Create Date: 2026-11-27

Rebuilds ``audit_events`` as the chained log (see docs/audit.md and certstore/store/models.py): ``seq``,
``prev_hash``, ``entry_hash``, ``at`` (chained at; the partition key) and ``occurred_at``, plus user agent,
certificate identifier and grant id; ``details`` becomes canonical JSON text. New tables: ``audit_chain`` (the
chain head, one row), ``audit_pending`` (events written in an action's own transaction, chained later),
``audit_checkpoints`` (signed tree heads), ``audit_tree_nodes`` (complete subtrees of 256+ leaves) and
``audit_archives`` (months moved to the Object Lock archive).

Existing events are not lost: they move to ``audit_pending`` in their order and the first writer chains them.

Retention, in the database itself:

- PostgreSQL: ``audit_events`` is partitioned by month of ``at`` (partitions in schema ``audit_partitions``, a
  DEFAULT partition catches rows of a month nobody created); a trigger refuses every UPDATE and every DELETE
  of a row younger than ``audit_chain.retention_years`` (3 unless raised) unless its month is archived, and
  TRUNCATE; ``audit_chain`` cannot shrink nor lower the retention; checkpoints, tree nodes and archive records
  are never changed. The grants that keep UPDATE/DELETE from the application's role are in docs/audit.md.
- SQLite: the same triggers (RAISE(ABORT)).

Types are spelled out, as in 0001–0004, so this revision keeps building the same schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0005_audit"
down_revision: str | Sequence[str] | None = "0004_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)
PARTITION_SCHEMA = "audit_partitions"
MONTHS_AHEAD = 3
ZERO_HASH = bytes(32)

_PG_FUNCTIONS = r"""
CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    years integer;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit_events: entry % cannot be updated (the audit trail is append-only)', OLD.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    SELECT retention_years INTO years FROM audit_chain WHERE id = 1;
    years := greatest(coalesce(years, 3), 3);
    IF OLD.at > now() - make_interval(years => years) AND NOT EXISTS (
        SELECT 1 FROM audit_archives a WHERE OLD.seq >= a.first_seq AND OLD.seq < a.end_seq
    ) THEN
        RAISE EXCEPTION 'audit_events: entry % (%) is younger than the retention period of % years and cannot be deleted',
            OLD.seq, OLD.at, years USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%: rows are never % (the audit trail is append-only)', TG_TABLE_NAME, lower(TG_OP)
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE FUNCTION audit_chain_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_chain: the chain head cannot be deleted' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.size < OLD.size THEN
        RAISE EXCEPTION 'audit_chain: the log cannot shrink (% -> %)', OLD.size, NEW.size
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.retention_years < OLD.retention_years OR NEW.retention_years < 3 THEN
        RAISE EXCEPTION 'audit_chain: the retention period can only be raised (% -> % years, at least 3)',
            OLD.retention_years, NEW.retention_years USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER audit_events_retain BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_guard();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_chain_guard BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_guard();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_tree_nodes_append_only BEFORE UPDATE OR DELETE ON audit_tree_nodes
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_archives_append_only BEFORE UPDATE OR DELETE ON audit_archives
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
"""

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events: entries cannot be updated (the audit trail is append-only)'); END""",
    """CREATE TRIGGER audit_events_retain BEFORE DELETE ON audit_events
WHEN old.at > datetime('now', '-' || max(3, coalesce((SELECT retention_years FROM audit_chain WHERE id = 1), 3))
                             || ' years')
 AND NOT EXISTS (SELECT 1 FROM audit_archives a WHERE old.seq >= a.first_seq AND old.seq < a.end_seq)
BEGIN SELECT RAISE(ABORT, 'audit_events: entries younger than the retention period cannot be deleted'); END""",
    """CREATE TRIGGER audit_chain_guard BEFORE UPDATE ON audit_chain
WHEN new.size < old.size OR new.retention_years < old.retention_years OR new.retention_years < 3
BEGIN SELECT RAISE(ABORT, 'audit_chain: the log cannot shrink and the retention period can only be raised'); END""",
    """CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN SELECT RAISE(ABORT, 'audit_chain: the chain head cannot be deleted'); END""",
    *(
        f"""CREATE TRIGGER {table}_no_{op_name} BEFORE {op_name.upper()} ON {table}
BEGIN SELECT RAISE(ABORT, '{table}: rows are never changed (the audit trail is append-only)'); END"""
        for table in ("audit_checkpoints", "audit_tree_nodes", "audit_archives")
        for op_name in ("update", "delete")
    ),
]

_SQLITE_TRIGGER_NAMES = [
    "audit_events_no_update",
    "audit_events_retain",
    "audit_chain_guard",
    "audit_chain_no_delete",
    *(
        f"{table}_no_{op_name}"
        for table in ("audit_checkpoints", "audit_tree_nodes", "audit_archives")
        for op_name in ("update", "delete")
    ),
]


def _months_from(year: int, month: int, count: int) -> list[tuple[int, int]]:
    months = []
    for _ in range(count):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _create_partitions() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {PARTITION_SCHEMA}")
    op.execute(f"CREATE TABLE {PARTITION_SCHEMA}.audit_events_default PARTITION OF audit_events DEFAULT")
    now = datetime.now(UTC)
    for (year, month), (next_year, next_month) in zip(
        _months_from(now.year, now.month, MONTHS_AHEAD + 1),
        _months_from(now.year, now.month, MONTHS_AHEAD + 2)[1:],
        strict=True,
    ):
        op.execute(
            f"CREATE TABLE {PARTITION_SCHEMA}.audit_events_{year:04d}_{month:02d} PARTITION OF audit_events "
            f"FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00') "
            f"TO ('{next_year:04d}-{next_month:02d}-01 00:00:00+00')"
        )


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"

    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_matter")
        batch_op.drop_index("ix_audit_events_at")
    op.rename_table("audit_events", "audit_events_legacy")
    if postgres:
        op.execute(
            "ALTER TABLE audit_events_legacy RENAME CONSTRAINT pk_audit_events TO pk_audit_events_legacy"
        )

    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("occurred_at", UTC_TIME, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=True),
        sa.Column("organisation_code", sa.String(length=32), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("resource", sa.String(length=300), nullable=True),
        sa.Column("matter", sa.String(length=100), nullable=True),
        sa.Column("holder_digest", sa.String(length=64), nullable=True),
        sa.Column("certificate_identifier", sa.String(length=128), nullable=True),
        sa.Column("grant_id", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", "at", name=op.f("pk_audit_events")),
        postgresql_partition_by="RANGE (at)",
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_occurred", ["occurred_at", "seq"], unique=False)
        batch_op.create_index("ix_audit_events_principal", ["principal", "occurred_at", "seq"], unique=False)
        batch_op.create_index(
            "ix_audit_events_organisation", ["organisation_code", "occurred_at", "seq"], unique=False
        )
        batch_op.create_index("ix_audit_events_action", ["action", "occurred_at", "seq"], unique=False)
        for name, columns in (
            ("ix_audit_events_certificate", ["certificate_identifier", "occurred_at", "seq"]),
            ("ix_audit_events_holder", ["holder_digest", "occurred_at", "seq"]),
            ("ix_audit_events_matter", ["matter", "organisation_code"]),
            ("ix_audit_events_grant", ["grant_id", "occurred_at"]),
        ):
            where = sa.text(f"{columns[0]} IS NOT NULL")
            batch_op.create_index(name, columns, unique=False, postgresql_where=where, sqlite_where=where)
    if postgres:
        _create_partitions()

    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("last_at", UTC_TIME, nullable=True),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_at", UTC_TIME, nullable=True),
        sa.Column("retention_years", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.create_table(
        "audit_pending",
        sa.Column("id", ID, nullable=False),
        sa.Column("occurred_at", UTC_TIME, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_pending")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", ID, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("head_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("chain", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_tree_size"), ["tree_size"], unique=False)
    op.create_table(
        "audit_tree_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "position", name=op.f("pk_audit_tree_nodes")),
    )
    op.create_table(
        "audit_archives",
        sa.Column("id", ID, nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("end_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier_end", sa.Text(), nullable=False),
        sa.Column("manifest_key", sa.String(length=64), nullable=False),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("retain_until", UTC_TIME, nullable=False),
        sa.Column("archived_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_archives")),
        sa.UniqueConstraint("month", name=op.f("uq_audit_archives_month")),
    )

    chain = sa.table(
        "audit_chain",
        sa.column("id", sa.Integer()),
        sa.column("size", sa.BigInteger()),
        sa.column("head_hash", sa.LargeBinary()),
        sa.column("frontier", sa.Text()),
        sa.column("checkpoint_size", sa.BigInteger()),
        sa.column("retention_years", sa.Integer()),
    )
    op.execute(
        chain.insert().values(
            id=1, size=0, head_hash=ZERO_HASH, frontier="[]", checkpoint_size=0, retention_years=3
        )
    )

    # The events logged so far wait in audit_pending, in their order, for the first writer to chain them (the
    # payload is certstore.audit.events.event_to_payload's version 1). Plain SQL, so `alembic upgrade --sql`
    # renders it too.
    if postgres:
        op.execute(
            "INSERT INTO audit_pending (occurred_at, payload) SELECT at, json_build_object("
            "'v', 1, 'event_id', md5(random()::text || id::text), "
            "'occurred_at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
            "'request_id', request_id, 'principal', principal, 'organisation_code', organisation_code, "
            "'role', role, 'action', action, 'resource', resource, 'matter', matter, "
            "'holder_digest', holder_digest, 'certificate_identifier', NULL, 'grant_id', NULL, "
            "'outcome', outcome, 'status_code', status_code, 'reason', reason, 'client', client, "
            "'user_agent', NULL, 'details', details)::text FROM audit_events_legacy ORDER BY id"
        )
    else:
        op.execute(
            "INSERT INTO audit_pending (occurred_at, payload) SELECT at, json_object("
            "'v', 1, 'event_id', lower(hex(randomblob(16))), "
            "'occurred_at', strftime('%Y-%m-%dT%H:%M:%S', at) || '.' || substr(CASE WHEN substr(at, 20, 1) = '.' "
            "THEN substr(substr(at, 21), 1, CASE WHEN instr(substr(at, 21), '+') > 0 "
            "THEN instr(substr(at, 21), '+') - 1 ELSE 6 END) ELSE '' END || '000000', 1, 6) || 'Z', "
            "'request_id', request_id, 'principal', principal, 'organisation_code', organisation_code, "
            "'role', role, 'action', action, 'resource', resource, 'matter', matter, "
            "'holder_digest', holder_digest, 'certificate_identifier', NULL, 'grant_id', NULL, "
            "'outcome', outcome, 'status_code', status_code, 'reason', reason, 'client', client, "
            "'user_agent', NULL, 'details', json(details)) FROM audit_events_legacy ORDER BY id"
        )
    op.drop_table("audit_events_legacy")

    if postgres:
        op.execute(_PG_FUNCTIONS)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        for trigger, table in (
            ("audit_events_retain", "audit_events"),
            ("audit_events_no_truncate", "audit_events"),
            ("audit_chain_guard", "audit_chain"),
            ("audit_checkpoints_append_only", "audit_checkpoints"),
            ("audit_tree_nodes_append_only", "audit_tree_nodes"),
            ("audit_archives_append_only", "audit_archives"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for function in ("audit_events_guard", "audit_refuse_change", "audit_chain_guard"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")

    op.rename_table("audit_events", "audit_events_chained")
    if postgres:
        op.execute(
            "ALTER TABLE audit_events_chained RENAME CONSTRAINT pk_audit_events TO pk_audit_events_chained"
        )
    op.create_table(
        "audit_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=True),
        sa.Column("organisation_code", sa.String(length=32), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=100), nullable=False),
        sa.Column("resource", sa.String(length=300), nullable=True),
        sa.Column("matter", sa.String(length=100), nullable=True),
        sa.Column("holder_digest", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("details", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    columns = (
        "request_id, principal, organisation_code, role, action, resource, matter, holder_digest, outcome, "
        "status_code, reason, client"
    )
    details = "CAST(details AS JSONB)" if postgres else "details"
    op.execute(
        f"INSERT INTO audit_events (at, {columns}, details) "
        f"SELECT occurred_at, {columns}, {details} FROM audit_events_chained ORDER BY seq"
    )
    if postgres:
        op.execute(
            f"INSERT INTO audit_events (at, {columns}, details) SELECT occurred_at, "
            + ", ".join(
                f"(payload::jsonb ->> '{name}')::integer"
                if name == "status_code"
                else f"payload::jsonb ->> '{name}'"
                for name in columns.split(", ")
            )
            + ", coalesce(payload::jsonb -> 'details', '{}'::jsonb) FROM audit_pending ORDER BY id"
        )
    else:
        op.execute(
            f"INSERT INTO audit_events (at, {columns}, details) SELECT occurred_at, "
            + ", ".join(f"json_extract(payload, '$.{name}')" for name in columns.split(", "))
            + ", coalesce(json_extract(payload, '$.details'), '{}') FROM audit_pending ORDER BY id"
        )

    op.drop_table("audit_archives")
    op.drop_table("audit_tree_nodes")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_tree_size"))
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_pending")
    op.drop_table("audit_chain")
    op.drop_table("audit_events_chained")  # PostgreSQL: with its partitions
    if postgres:
        op.execute(f"DROP SCHEMA IF EXISTS {PARTITION_SCHEMA} CASCADE")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_events_matter", ["organisation_code", "matter"], unique=False)
