"""exchange: cursors, leases, applied ledger, cycles, arrivals, upward aggregation

Revision ID: 0003_exchange
Revises: 0002_services
Create Date: 2026-11-26

Tables of the exchange (see certstore/store/models.py): ``exchange_cursors`` (per source and front-end table:
watermark, applied numbers above it, open gaps), ``exchange_leases`` (one worker per source),
``exchange_applied`` (the exactly-once ledger, written with each change's effect), ``exchange_cycles``
(statistics), ``arrivals`` (deadlines, 第十一条), ``upward_targets`` and ``upward_received`` (aggregation to
the province, both ends).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0003_exchange"
down_revision: str | Sequence[str] | None = "0002_services"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "arrivals",
        sa.Column("id", ID, nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("completed_at", UTC_TIME, nullable=False),
        sa.Column("arrived_at", UTC_TIME, nullable=False),
        sa.Column("deadline_at", UTC_TIME, nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_arrivals")),
        sa.UniqueConstraint("identifier", name=op.f("uq_arrivals_identifier")),
    )
    with op.batch_alter_table("arrivals", schema=None) as batch_op:
        batch_op.create_index("ix_arrivals_issuer_late", ["issuer_code", "late"], unique=False)

    op.create_table(
        "exchange_applied",
        sa.Column("id", ID, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=True),
        sa.Column(
            "problems",
            DOCUMENT,
            nullable=True,
        ),
        sa.Column("receipt_written", sa.Boolean(), nullable=False),
        sa.Column("applied_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_applied")),
        sa.UniqueConstraint(
            "source", "table_name", "seq", name=op.f("uq_exchange_applied_source_table_name_seq")
        ),
    )
    op.create_table(
        "exchange_cursors",
        sa.Column("id", ID, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column(
            "applied_above",
            DOCUMENT,
            nullable=False,
        ),
        sa.Column(
            "gaps",
            DOCUMENT,
            nullable=False,
        ),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_cursors")),
        sa.UniqueConstraint("source", "table_name", name=op.f("uq_exchange_cursors_source_table_name")),
    )
    op.create_table(
        "exchange_cycles",
        sa.Column("id", ID, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("started_at", UTC_TIME, nullable=False),
        sa.Column("finished_at", UTC_TIME, nullable=True),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("lag_seconds", sa.Double(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_cycles")),
    )
    with op.batch_alter_table("exchange_cycles", schema=None) as batch_op:
        batch_op.create_index("ix_exchange_cycles_source_started", ["source", "started_at"], unique=False)

    op.create_table(
        "exchange_leases",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("lease_until", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_exchange_leases")),
    )
    op.create_table(
        "upward_received",
        sa.Column("id", ID, nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_id", sa.BigInteger(), nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=True),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upward_received")),
        sa.UniqueConstraint(
            "sender", "kind", "source_id", name=op.f("uq_upward_received_sender_kind_source_id")
        ),
    )
    op.create_table(
        "upward_targets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("event_cursor", sa.BigInteger(), nullable=False),
        sa.Column("catalogue_cursor", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_success_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_upward_targets")),
    )


def downgrade() -> None:
    op.drop_table("upward_targets")
    op.drop_table("upward_received")
    op.drop_table("exchange_leases")
    with op.batch_alter_table("exchange_cycles", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_cycles_source_started")

    op.drop_table("exchange_cycles")
    op.drop_table("exchange_cursors")
    op.drop_table("exchange_applied")
    with op.batch_alter_table("arrivals", schema=None) as batch_op:
        batch_op.drop_index("ix_arrivals_issuer_late")

    op.drop_table("arrivals")
