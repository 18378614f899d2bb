"""initial: the catalogue, certificate versions and their lifecycle events

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26

Tables (see certstore/store/models.py for the meaning of each column):

- ``catalogue_entries`` — 证照目录, one row per (code, version);
- ``certificates`` — one row per certificate version, unique per (issuer_code, certificate_number, version);
- ``certificate_events`` — the lifecycle history, appended only.

Constraint and index names follow the models' naming convention (``pk_<table>``, ``uq_<table>_<columns>``,
``fk_<table>_<column>_<referred table>``, ``ix_<table>_<column>``), so later revisions can name them on every
backend. The column types are spelled out here rather than imported: this revision must keep building the
same schema however the application code changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit ids on PostgreSQL (BIGSERIAL); SQLite only auto-increments an INTEGER PRIMARY KEY.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# JSON documents: JSONB on PostgreSQL, JSON (text) on SQLite.
DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
# What certstore's UTCDateTime stores: timestamptz on PostgreSQL, naive UTC text on SQLite.
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalogue_entries",
        sa.Column("id", ID, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("holder_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("definition", DOCUMENT, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_entries")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_catalogue_entries_code_version")),
    )
    op.create_index(op.f("ix_catalogue_entries_code"), "catalogue_entries", ["code"])
    op.create_index(op.f("ix_catalogue_entries_issuer_code"), "catalogue_entries", ["issuer_code"])

    op.create_table(
        "certificates",
        sa.Column("id", ID, nullable=False),
        sa.Column("identifier", sa.String(length=128), nullable=False),
        sa.Column("type_code", sa.String(length=32), nullable=False),
        sa.Column("issuer_code", sa.String(length=18), nullable=False),
        sa.Column("issuer_name", sa.String(length=200), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("certificate_number", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("catalogue_code", sa.String(length=32), nullable=False),
        sa.Column("catalogue_version", sa.Integer(), nullable=False),
        sa.Column("holder_name", sa.String(length=200), nullable=False),
        sa.Column("holder_id_type", sa.String(length=8), nullable=False),
        sa.Column("holder_id", sa.String(length=64), nullable=False),
        sa.Column("holder_id_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("face", DOCUMENT, nullable=False),
        sa.Column("metadata", DOCUMENT, nullable=False),
        sa.Column("content_digest", sa.String(length=64), nullable=False),
        sa.Column("file_key", sa.String(length=64), nullable=True),
        sa.Column("file_media_type", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_changed_at", UTC_TIME, nullable=False),
        sa.Column("superseded_by_id", ID, nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.ForeignKeyConstraint(
            ["superseded_by_id"],
            ["certificates.id"],
            name=op.f("fk_certificates_superseded_by_id_certificates"),
        ),
        sa.UniqueConstraint("identifier", name=op.f("uq_certificates_identifier")),
        sa.UniqueConstraint(
            "issuer_code",
            "certificate_number",
            "version",
            name=op.f("uq_certificates_issuer_code_certificate_number_version"),
        ),
    )
    op.create_index(op.f("ix_certificates_catalogue_code"), "certificates", ["catalogue_code"])
    op.create_index(op.f("ix_certificates_status"), "certificates", ["status"])
    op.create_index("ix_certificates_holder", "certificates", ["holder_id_digest"])
    op.create_index("ix_certificates_serial", "certificates", ["issuer_code", "serial"])

    op.create_table(
        "certificate_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("certificate_id", ID, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.Column("details", DOCUMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_events")),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_events_certificate_id_certificates"),
        ),
    )
    op.create_index(op.f("ix_certificate_events_certificate_id"), "certificate_events", ["certificate_id"])


def downgrade() -> None:
    op.drop_table("certificate_events")  # dropping a table drops its indexes
    op.drop_table("certificates")
    op.drop_table("catalogue_entries")
