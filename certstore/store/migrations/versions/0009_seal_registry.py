"""seal registry: seals and their state changes

Revision ID: 0009_seal_registry
Revises: 0008_short_code_index
Create Date: 2026-12-06

``seals`` — one row per electronic seal (电子印章) the repository knows: its GB/T 38540 ES ID, display name, the
key-store name it is kept under (None for a seal registered from elsewhere), the organisation it belongs to (the
credit code and name of the signer certificate it lists), its validity, when it was registered. Rows are never
updated.

``seal_events`` — suspensions (挂起), resumptions (恢复) and revocations (吊销) of a seal, appended, each with the
time it takes effect (possibly before it was recorded: "revoked as of when the key leaked") and who recorded it
why. A seal's state at a time is its events effective by then, folded in order
(:mod:`certstore.services.seals`).

The key store's seals are registered by the application on first use (``certstore seal list``, API start-up):
the upgrade creates the tables only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0009_seal_registry"
down_revision: str | Sequence[str] | None = "0008_short_code_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "seals",
        sa.Column("es_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("keystore_name", sa.String(length=100), nullable=True),
        sa.Column("owner_code", sa.String(length=32), nullable=False),
        sa.Column("owner_name", sa.String(length=200), nullable=False),
        sa.Column("valid_start", UTC_TIME, nullable=False),
        sa.Column("valid_end", UTC_TIME, nullable=False),
        sa.Column("registered_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("es_id", name=op.f("pk_seals")),
        sa.UniqueConstraint("keystore_name", name=op.f("uq_seals_keystore_name")),
    )
    op.create_index(op.f("ix_seals_owner_code"), "seals", ["owner_code"], unique=False)
    op.create_table(
        "seal_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("es_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("effective_at", UTC_TIME, nullable=False),
        sa.Column("recorded_at", UTC_TIME, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["es_id"], ["seals.es_id"], name=op.f("fk_seal_events_es_id_seals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seal_events")),
    )
    op.create_index(op.f("ix_seal_events_es_id"), "seal_events", ["es_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_seal_events_es_id"), table_name="seal_events")
    op.drop_table("seal_events")
    op.drop_index(op.f("ix_seals_owner_code"), table_name="seals")
    op.drop_table("seals")
