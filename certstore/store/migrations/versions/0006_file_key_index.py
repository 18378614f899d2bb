"""certificates: index on file_key

Revision ID: 0006_file_key_index
Revises: 0005_audit
Create Date: 2026-11-26

The orphan sweep (``certificates.sweep_orphan_blobs``) walks the blob store in batches and asks which keys of a
batch some certificate row references; without this index each such question scans the table. On a large
PostgreSQL table, create the index ``CONCURRENTLY`` by hand before upgrading (the migration then finds it and
only records the revision).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006_file_key_index"
down_revision: str | Sequence[str] | None = "0005_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_certificates_file_key", "certificates", ["file_key"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_certificates_file_key", table_name="certificates")
