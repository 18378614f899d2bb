"""catalogue assets — base images (底图) uploaded with a catalogue entry

Revision ID: 0014_catalogue_assets
Revises: 0013_notifications
Create Date: 2026-12-07

``catalogue_assets`` — a base image an agency uploaded (PNG, or SVG rasterised to PNG on upload), checked and
stored once under the SM3 digest of its bytes; a catalogue-entry document names it ``asset:<digest>``. Rows are
written once and never changed or removed (the application role gets SELECT and INSERT only:
``certstore.audit.partitions.grant_statements``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0014_catalogue_assets"
down_revision: str | Sequence[str] | None = "0013_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalogue_assets",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("width_px", sa.Integer(), nullable=False),
        sa.Column("height_px", sa.Integer(), nullable=False),
        sa.Column("dpi", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("uploaded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_catalogue_assets")),
    )
    op.create_index(
        op.f("ix_catalogue_assets_issuer_code"), "catalogue_assets", ["issuer_code"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_catalogue_assets_issuer_code"), table_name="catalogue_assets")
    op.drop_table("catalogue_assets")
