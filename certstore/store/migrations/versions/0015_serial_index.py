"""certificates: one serial index — ``ix_certificates_serial`` (issuer_code, serial) dropped

Revision ID: 0015_serial_index
Revises: 0014_catalogue_assets
Create Date: 2026-12-07

Every lookup by serial (流水号) — the issuer's versions of one certificate, the QR code's short path — is served
by ``ix_certificates_serial_version`` (serial, version): a serial is a keyed digest, unique to one certificate of
one issuer, so the issuer adds nothing to the search. The dropped index was one more B-tree every new version
wrote at a random place (a serial is random): on the bulk paths (the exchange, the import) about a fifth of the
index pages a transaction rewrites.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0015_serial_index"
down_revision: str | Sequence[str] | None = "0014_catalogue_assets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_certificates_serial", table_name="certificates")


def downgrade() -> None:
    op.create_index("ix_certificates_serial", "certificates", ["issuer_code", "serial"])
