"""knowledge scope: matter bindings

Revision ID: 0007_matter_bindings
Revises: 0006_file_key_index
Create Date: 2026-12-06

``matter_bindings`` — one row per (using unit, matter): the holder the matter serves, who first used it and when
(知悉范围; see certstore/services/scope.py). Until this revision the rule "one matter serves one holder" was
decided by reading the audit log; the upgrade carries that state over: each matter window staff looked up a
holder under (the first allowed entry naming a holder digest) is bound to that first holder, so a case in
progress keeps its holder across the upgrade.

On PostgreSQL the application role needs only SELECT and INSERT on the table (``certstore audit grants`` prints
the statements; bindings are never updated or deleted by the application).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_matter_bindings"
down_revision: str | Sequence[str] | None = "0006_file_key_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)

#: The first allowed look-up of each (organisation, matter) by window staff that named a holder, in log order.
_FROM_THE_LOG = """
INSERT INTO matter_bindings (organisation_code, matter, holder_digest, principal, first_used_at)
SELECT organisation_code, matter, holder_digest, principal, occurred_at
FROM (
    SELECT organisation_code, matter, holder_digest, COALESCE(principal, '') AS principal, occurred_at,
           ROW_NUMBER() OVER (PARTITION BY organisation_code, matter ORDER BY seq) AS position
    FROM audit_events
    WHERE role = 'window' AND outcome = 'allow' AND organisation_code IS NOT NULL
      AND matter IS NOT NULL AND holder_digest IS NOT NULL
) AS firsts
WHERE position = 1
"""


def upgrade() -> None:
    op.create_table(
        "matter_bindings",
        sa.Column("id", ID, nullable=False),
        sa.Column("organisation_code", sa.String(length=32), nullable=False),
        sa.Column("matter", sa.String(length=100), nullable=False),
        sa.Column("holder_digest", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=False),
        sa.Column("first_used_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matter_bindings")),
        sa.UniqueConstraint(
            "organisation_code", "matter", name=op.f("uq_matter_bindings_organisation_code_matter")
        ),
    )
    op.execute(_FROM_THE_LOG)


def downgrade() -> None:
    op.drop_table("matter_bindings")
