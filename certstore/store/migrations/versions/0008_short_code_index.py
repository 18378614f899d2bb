"""certificates: index on (serial, version) for the QR code's short path

Revision ID: 0008_short_code_index
Revises: 0007_matter_bindings
Create Date: 2026-12-06

The QR code carries ``/v/<short code>``: the serial (流水号) and the version in base32, without the issuer
(:func:`certstore.identifiers.short_code`). Resolving it asks for the certificate with that serial and version;
the existing index starts with the issuer code, so without this one each scan of a QR code would read the whole
table. On a large PostgreSQL table, create the index ``CONCURRENTLY`` by hand before upgrading (the migration then
finds it and only records the revision).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0008_short_code_index"
down_revision: str | Sequence[str] | None = "0007_matter_bindings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_certificates_serial_version", "certificates", ["serial", "version"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_certificates_serial_version", table_name="certificates")
