"""audit append-only: the application role appends, nobody edits — pending entries, the chain head, partitions

Revision ID: 0010_audit_append_only
Revises: 0009_seal_registry
Create Date: 2026-12-07

PostgreSQL (see docs/audit.md, "Who can do what"):

- ``audit_pending`` (mutations' entries waiting to be chained) is append-only: a trigger refuses every UPDATE,
  and a DELETE unless the entry is chained — a row with the same event id and exactly the same fields at a
  position inside the chain head; TRUNCATE is refused. The application role only INSERTs and SELECTs it and
  consumes chained rows through ``audit_pending_consume(ids)`` (SECURITY DEFINER).
- ``audit_chain`` (the head) moves only over appended entries: its trigger checks that the positions
  ``[old size, new size)`` are present after the old head (exactly that many rows), that the first links to the
  old head hash and that the new head hash and time are the last entry's; head hash, time and tree cannot change
  otherwise; the checkpoint size never shrinks nor passes the size. The application role has SELECT only and
  locks/stores the head through ``audit_head_lock()`` / ``audit_head_store(...)`` (SECURITY DEFINER).
- TRUNCATE is refused on ``audit_chain``, ``audit_pending``, ``audit_checkpoints``, ``audit_tree_nodes``,
  ``audit_archives``, and on every partition of ``audit_events`` holding an entry younger than the retention
  that no archive covers (a statement trigger per partition: a parent's TRUNCATE trigger does not reach them).
- Event triggers (created only when the migration runs as a superuser; otherwise ``certstore audit grants``
  prints the statements for one): ``audit_ddl_guard`` (ddl_command_end) puts the TRUNCATE trigger on each new
  partition and refuses any DDL that leaves a guard trigger missing, disabled or pointing elsewhere, a guard
  function replaced or altered, a partition detached while it holds protected entries, or a partition named
  otherwise than its month; ``audit_drop_guard`` (sql_drop) refuses dropping an audit table, a guard trigger or
  function, or a month's partition unless the month is archived or older than the retention.

SQLite (no roles, no DDL hooks): a trigger refuses UPDATE of ``audit_pending``; the rest stays tamper evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010_audit_append_only"
down_revision: str | Sequence[str] | None = "0009_seal_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARTITION_SCHEMA = "audit_partitions"

#: (table, trigger, function) of every statement/row guard outside the partitions.
GUARDS = (
    ("audit_events", "audit_events_retain", "audit_events_guard"),
    ("audit_events", "audit_events_no_truncate", "audit_refuse_change"),
    ("audit_chain", "audit_chain_guard", "audit_chain_guard"),
    ("audit_chain", "audit_chain_no_truncate", "audit_refuse_change"),
    ("audit_pending", "audit_pending_guard", "audit_pending_guard"),
    ("audit_pending", "audit_pending_no_truncate", "audit_refuse_change"),
    ("audit_checkpoints", "audit_checkpoints_append_only", "audit_refuse_change"),
    ("audit_checkpoints", "audit_checkpoints_no_truncate", "audit_refuse_change"),
    ("audit_tree_nodes", "audit_tree_nodes_append_only", "audit_refuse_change"),
    ("audit_tree_nodes", "audit_tree_nodes_no_truncate", "audit_refuse_change"),
    ("audit_archives", "audit_archives_append_only", "audit_refuse_change"),
    ("audit_archives", "audit_archives_no_truncate", "audit_refuse_change"),
)
NEW_TRUNCATE_GUARDS = [g for g in GUARDS if g[1].endswith("_no_truncate") and g[0] != "audit_events"]
AUDIT_TABLES = sorted({table for table, _, _ in GUARDS})
GUARD_FUNCTIONS = (
    "audit_events_guard",
    "audit_refuse_change",
    "audit_chain_guard",
    "audit_pending_guard",
    "audit_partition_truncate_guard",
    "audit_has_protected_rows",
    "audit_head_lock",
    "audit_head_store",
    "audit_pending_consume",
    "audit_guard_state",
    "audit_ddl_guard",
    "audit_drop_guard",
)

_CHAIN_GUARD_0005 = r"""
CREATE OR REPLACE FUNCTION audit_chain_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""


def _functions(schema: str) -> str:
    path = f"SET search_path = {schema}, pg_temp"
    guard_list = ", ".join(f"'{name}'" for name in GUARD_FUNCTIONS)
    table_list = ", ".join(f"'{name}'" for name in AUDIT_TABLES)
    expected = ", ".join(f"('{t}', '{g}', '{f}')" for t, g, f in GUARDS)
    return rf"""
CREATE OR REPLACE FUNCTION audit_chain_guard() RETURNS trigger LANGUAGE plpgsql {path} AS $$
DECLARE
    found bigint;
    first_prev bytea;
    last_hash bytea;
    last_at timestamptz;
    since timestamptz := coalesce(OLD.last_at, '-infinity'::timestamptz);
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_chain: the chain head cannot be deleted' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'audit_chain: the chain head stays row 1' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.size < OLD.size THEN
        RAISE EXCEPTION 'audit_chain: the log cannot shrink (% -> %)', OLD.size, NEW.size
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.retention_years < OLD.retention_years OR NEW.retention_years < 3 THEN
        RAISE EXCEPTION 'audit_chain: the retention period can only be raised (% -> % years, at least 3)',
            OLD.retention_years, NEW.retention_years USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.size > OLD.size THEN
        SELECT count(*) INTO found FROM audit_events
            WHERE seq >= OLD.size AND seq < NEW.size AND at >= since;
        SELECT prev_hash INTO first_prev FROM audit_events WHERE seq = OLD.size AND at >= since LIMIT 1;
        SELECT entry_hash, at INTO last_hash, last_at FROM audit_events WHERE seq = NEW.size - 1 AND at >= since LIMIT 1;
        IF found <> NEW.size - OLD.size OR first_prev IS DISTINCT FROM OLD.head_hash
           OR last_hash IS DISTINCT FROM NEW.head_hash OR last_at IS DISTINCT FROM NEW.last_at THEN
            RAISE EXCEPTION 'audit_chain: the head moves only over the entries appended after it (% -> %: % rows, link %, head %)',
                OLD.size, NEW.size, found, first_prev IS NOT DISTINCT FROM OLD.head_hash,
                last_hash IS NOT DISTINCT FROM NEW.head_hash
                USING ERRCODE = 'integrity_constraint_violation';
        END IF;
    ELSIF NEW.head_hash IS DISTINCT FROM OLD.head_hash OR NEW.last_at IS DISTINCT FROM OLD.last_at
          OR NEW.frontier IS DISTINCT FROM OLD.frontier THEN
        RAISE EXCEPTION 'audit_chain: the head hash, time and tree change only by appending entries'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.checkpoint_size < OLD.checkpoint_size OR NEW.checkpoint_size > NEW.size
       OR NEW.checkpoint_at < OLD.checkpoint_at THEN
        RAISE EXCEPTION 'audit_chain: the checkpoint mark only moves forward, up to the size'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION audit_pending_guard() RETURNS trigger LANGUAGE plpgsql {path} AS $$
DECLARE
    doc jsonb;
    head_size bigint;
    chained jsonb;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit_pending: entry % cannot be updated (it is chained as it was written)', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    doc := OLD.payload::jsonb;
    SELECT size INTO head_size FROM audit_chain WHERE id = 1;
    SELECT jsonb_build_object(
        'event_id', e.event_id, 'occurred_at', e.occurred_at, 'request_id', e.request_id,
        'principal', e.principal, 'organisation_code', e.organisation_code, 'role', e.role, 'action', e.action,
        'resource', e.resource, 'matter', e.matter, 'holder_digest', e.holder_digest,
        'certificate_identifier', e.certificate_identifier, 'grant_id', e.grant_id, 'outcome', e.outcome,
        'status_code', e.status_code, 'reason', e.reason, 'client', e.client, 'user_agent', e.user_agent,
        'details', e.details::jsonb)
    INTO chained
    FROM audit_events e
    WHERE e.occurred_at BETWEEN OLD.occurred_at - interval '1 second' AND OLD.occurred_at + interval '1 second'
      AND e.event_id = doc ->> 'event_id' AND e.seq < head_size
    LIMIT 1;
    IF chained IS NULL THEN
        RAISE EXCEPTION 'audit_pending: entry % is not chained yet and cannot be deleted', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (chained - 'occurred_at') IS DISTINCT FROM (doc - 'v' - 'occurred_at' - 'details'
            || jsonb_build_object('details', CASE WHEN jsonb_typeof(doc -> 'details') = 'object'
                                                  THEN doc -> 'details' ELSE '{{}}'::jsonb END))
       OR (chained ->> 'occurred_at')::timestamptz IS DISTINCT FROM (doc ->> 'occurred_at')::timestamptz THEN
        RAISE EXCEPTION 'audit_pending: entry % was chained with other fields than it was written with', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN OLD;
END
$$;

CREATE FUNCTION audit_has_protected_rows(relation regclass) RETURNS boolean LANGUAGE plpgsql {path} AS $$
DECLARE
    years integer;
    found boolean;
BEGIN
    SELECT retention_years INTO years FROM audit_chain WHERE id = 1;
    years := greatest(coalesce(years, 3), 3);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s e WHERE e.at > now() - make_interval(years => $1) '
                   'AND NOT EXISTS (SELECT 1 FROM audit_archives a WHERE e.seq >= a.first_seq AND e.seq < a.end_seq))',
                   relation)
        INTO found USING years;
    RETURN found;
END
$$;

CREATE FUNCTION audit_partition_truncate_guard() RETURNS trigger LANGUAGE plpgsql {path} AS $$
BEGIN
    IF audit_has_protected_rows(TG_RELID::regclass) THEN
        RAISE EXCEPTION '%.%: holds entries younger than the retention period and cannot be truncated',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION audit_head_lock() RETURNS SETOF audit_chain LANGUAGE sql SECURITY DEFINER {path} AS $$
    SELECT * FROM audit_chain WHERE id = 1 FOR UPDATE
$$;

CREATE FUNCTION audit_head_store(p_size bigint, p_head_hash bytea, p_last_at timestamptz, p_frontier text,
                                 p_checkpoint_size bigint, p_checkpoint_at timestamptz)
RETURNS void LANGUAGE sql SECURITY DEFINER {path} AS $$
    UPDATE audit_chain SET size = p_size, head_hash = p_head_hash, last_at = p_last_at, frontier = p_frontier,
        checkpoint_size = p_checkpoint_size, checkpoint_at = p_checkpoint_at
    WHERE id = 1
$$;

CREATE FUNCTION audit_pending_consume(p_ids bigint[]) RETURNS bigint LANGUAGE sql SECURITY DEFINER {path} AS $$
    WITH gone AS (DELETE FROM audit_pending WHERE id = ANY (p_ids) RETURNING 1) SELECT count(*) FROM gone
$$;

REVOKE ALL ON FUNCTION audit_head_lock(), audit_pending_consume(bigint[]),
    audit_head_store(bigint, bytea, timestamptz, text, bigint, timestamptz) FROM PUBLIC;

CREATE FUNCTION audit_guard_state() RETURNS void LANGUAGE plpgsql {path} AS $$
DECLARE
    guard record;
    part record;
    bound text;
    expected text;
BEGIN
    FOR guard IN
        SELECT g.tab, g.trig, g.fn, t.tgenabled, p.proname, p.pronamespace
        FROM (VALUES {expected}) AS g(tab, trig, fn)
        LEFT JOIN pg_trigger t ON t.tgrelid = to_regclass('{schema}.' || g.tab) AND t.tgname = g.trig
        LEFT JOIN pg_proc p ON p.oid = t.tgfoid
        UNION ALL
        SELECT c.oid::regclass::text, g.trig, g.fn, t.tgenabled, p.proname, p.pronamespace
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        CROSS JOIN (VALUES ('audit_events_retain', 'audit_events_guard'),
                           ('audit_partition_no_truncate', 'audit_partition_truncate_guard')) AS g(trig, fn)
        LEFT JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = g.trig
        LEFT JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE i.inhparent = to_regclass('{schema}.audit_events')
    LOOP
        IF guard.tgenabled IS NULL OR guard.tgenabled NOT IN ('O', 'A') OR guard.proname IS DISTINCT FROM guard.fn
           OR guard.pronamespace IS DISTINCT FROM '{schema}'::regnamespace THEN
            RAISE EXCEPTION 'audit guard: trigger % on % must exist, be enabled and run %() (the audit trail is append-only)',
                guard.trig, guard.tab, guard.fn USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    FOR part IN
        SELECT c.oid, c.relname, c.relispartition, n.nspname,
               (SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid) AS parent
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND (n.nspname = '{PARTITION_SCHEMA}' OR c.oid IN (
            SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass('{schema}.audit_events')))
    LOOP
        IF part.parent IS DISTINCT FROM to_regclass('{schema}.audit_events') THEN
            IF part.relname ~ '^audit_events_' AND audit_has_protected_rows(part.oid::regclass) THEN
                RAISE EXCEPTION 'audit guard: %.% holds entries younger than the retention period and stays a partition of audit_events',
                    part.nspname, part.relname USING ERRCODE = 'insufficient_privilege';
            END IF;
            CONTINUE;
        END IF;
        bound := pg_get_expr((SELECT relpartbound FROM pg_class WHERE oid = part.oid), part.oid);
        IF bound = 'DEFAULT' THEN
            expected := 'audit_events_default';
        ELSE
            expected := 'audit_events_' || to_char(
                (substring(bound FROM $r$FROM \('([^']+)'\)$r$))::timestamptz AT TIME ZONE 'UTC', 'YYYY_MM');
        END IF;
        IF part.nspname <> '{PARTITION_SCHEMA}' OR part.relname <> expected THEN
            RAISE EXCEPTION 'audit guard: the partition %.% of audit_events must be {PARTITION_SCHEMA}.%',
                part.nspname, part.relname, expected USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION audit_ddl_guard() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER {path} AS $$
DECLARE
    command record;
BEGIN
    FOR command IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF command.classid = 'pg_proc'::regclass AND command.schema_name = '{schema}'
           AND (SELECT proname FROM pg_proc WHERE oid = command.objid) IN ({guard_list}) THEN
            RAISE EXCEPTION 'audit guard: % of % refused (the audit trail''s guards cannot be changed)',
                command.command_tag, command.object_identity USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF command.command_tag = 'CREATE TABLE' AND command.object_type = 'table'
           AND command.schema_name = '{PARTITION_SCHEMA}'
           AND EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = command.objid
                       AND inhparent = to_regclass('{schema}.audit_events'))
           AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = command.objid
                           AND tgname = 'audit_partition_no_truncate') THEN
            EXECUTE format('CREATE TRIGGER audit_partition_no_truncate BEFORE TRUNCATE ON %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION {schema}.audit_partition_truncate_guard()',
                           command.objid::regclass);
        END IF;
    END LOOP;
    IF to_regclass('{schema}.audit_chain') IS NOT NULL THEN
        PERFORM audit_guard_state();
    END IF;
END
$$;

CREATE FUNCTION audit_drop_guard() RETURNS event_trigger LANGUAGE plpgsql SECURITY DEFINER {path} AS $$
DECLARE
    dropped record;
    dropped_month text;
    years integer;
    parts text[];
BEGIN
    SELECT retention_years INTO years FROM audit_chain WHERE id = 1;
    years := greatest(coalesce(years, 3), 3);
    FOR dropped IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP
        IF dropped.object_type = 'table' AND dropped.schema_name = '{schema}'
           AND dropped.object_name IN ({table_list}) THEN
            RAISE EXCEPTION 'audit guard: the table % cannot be dropped', dropped.object_identity
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF dropped.object_type = 'table' AND dropped.schema_name = '{PARTITION_SCHEMA}' THEN
            IF dropped.object_name = 'audit_events_default' THEN
                RAISE EXCEPTION 'audit guard: the DEFAULT partition cannot be dropped'
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
            IF dropped.object_name ~ '^audit_events_[0-9]{{4}}_[0-9]{{2}}$' THEN
                dropped_month := replace(substr(dropped.object_name, 14), '_', '-');
                IF NOT EXISTS (SELECT 1 FROM audit_archives a WHERE a.month = dropped_month)
                   AND (dropped_month || '-01')::date + interval '1 month' > now() - make_interval(years => years) THEN
                    RAISE EXCEPTION 'audit guard: the partition % holds a month younger than the retention period that is not archived (certstore audit archive)',
                        dropped.object_identity USING ERRCODE = 'insufficient_privilege';
                END IF;
            END IF;
        END IF;
        IF dropped.object_type = 'trigger' THEN
            parts := regexp_match(dropped.object_identity, '^(\S+) on (.+)$');
            IF parts[1] IN ('audit_events_retain', 'audit_partition_no_truncate',
                            {", ".join(f"'{g}'" for _, g, _ in GUARDS)})
               AND to_regclass(parts[2]) IS NOT NULL THEN
                RAISE EXCEPTION 'audit guard: the trigger % cannot be dropped', dropped.object_identity
                    USING ERRCODE = 'insufficient_privilege';
            END IF;
        END IF;
        IF dropped.object_type = 'function' AND dropped.schema_name = '{schema}'
           AND split_part(split_part(dropped.object_identity, '(', 1), '.', 2) IN ({guard_list}) THEN
            RAISE EXCEPTION 'audit guard: the function % cannot be dropped', dropped.object_identity
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
END
$$;
"""


def superuser_statements(schema: str) -> list[str]:
    """What a superuser runs once (the migration does it when it runs as one): the event triggers, their
    functions owned by the superuser so that the owner role cannot replace them."""
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


def _each_partition(statement: str) -> str:
    """A DO block running ``statement`` (``%s`` = the partition) for every partition of audit_events."""
    return (
        "DO $$ DECLARE part regclass; BEGIN FOR part IN SELECT inhrelid::regclass FROM pg_inherits "
        "WHERE inhparent = 'audit_events'::regclass LOOP EXECUTE format("
        + "'"
        + statement.replace("'", "''")
        + "', part); END LOOP; END $$"
    )


def upgrade() -> None:
    # client-chosen request ids, each used once (X-Request-ID; docs/audit.md "What an entry holds")
    op.create_table(
        "audit_request_ids",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_audit_request_ids")),
    )
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.execute(
            "CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending BEGIN SELECT "
            "RAISE(ABORT, 'audit_pending: entries cannot be updated (chained as they were written)'); END"
        )
        return
    # the functions name their schema (a SECURITY DEFINER function must not resolve tables through the
    # caller's pg_temp); `alembic upgrade --sql` renders it for `public`
    offline = op.get_context().as_sql
    schema = "public" if offline else bind.exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute(_functions(schema))
    op.execute(
        "CREATE TRIGGER audit_pending_guard BEFORE UPDATE OR DELETE ON audit_pending "
        "FOR EACH ROW EXECUTE FUNCTION audit_pending_guard()"
    )
    for table, trigger, function in NEW_TRUNCATE_GUARDS:
        op.execute(
            f"CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    op.execute(
        _each_partition(
            "CREATE TRIGGER audit_partition_no_truncate BEFORE TRUNCATE ON %s "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_partition_truncate_guard()"
        )
    )
    statements = "".join(f"EXECUTE '{statement}'; " for statement in superuser_statements(schema))
    op.execute(
        "DO $$ BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN "
        + statements
        + "ELSE RAISE WARNING '0010_audit_append_only: not a superuser: the event triggers that refuse "
        "DISABLE TRIGGER, DETACH and DROP of audit partitions are not installed; have a superuser run the "
        'statements `certstore audit grants` prints under "as a superuser"\'; END IF; END $$'
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_pending_no_update")
        op.drop_table("audit_request_ids")
        return
    op.execute("DROP EVENT TRIGGER IF EXISTS audit_ddl_guard")
    op.execute("DROP EVENT TRIGGER IF EXISTS audit_drop_guard")
    op.execute(_each_partition("DROP TRIGGER IF EXISTS audit_partition_no_truncate ON %s"))
    for table, trigger, _ in NEW_TRUNCATE_GUARDS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
    op.execute("DROP TRIGGER IF EXISTS audit_pending_guard ON audit_pending")
    for function in (
        "audit_drop_guard()",
        "audit_ddl_guard()",
        "audit_guard_state()",
        "audit_pending_consume(bigint[])",
        "audit_head_store(bigint, bytea, timestamptz, text, bigint, timestamptz)",
        "audit_head_lock()",
        "audit_partition_truncate_guard()",
        "audit_has_protected_rows(regclass)",
        "audit_pending_guard()",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    op.execute(_CHAIN_GUARD_0005)
    op.drop_table("audit_request_ids")
