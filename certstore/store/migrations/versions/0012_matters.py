"""matters — registered matters and authorised use

Revision ID: 0012_matters
Revises: 0011_holders
Create Date: 2026-12-07

``matters`` — the matters (办件) a using unit's case-handling system registers (number, holder reference, purpose,
validity, closing); ``holder_authorisations`` — a holder's authorisations of a using unit to use a certificate or
a type of certificate (证照授权使用). Window look-ups are decided by these two tables from this revision on
(certstore/services/scope.py).

``matter_bindings`` (revision 0007) is kept, read-only for history: the bindings made by first look-ups under
the old rule are not carried into ``matters`` — a matter a clerk once typed in was never registered by a case
system, so it must not become one. The application no longer writes the table; it stays SELECT + INSERT for the
application role, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0012_matters"
down_revision: str | Sequence[str] | None = "0011_holders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "matters",
        sa.Column("id", ID, nullable=False),
        sa.Column("organisation_code", sa.String(length=32), nullable=False),
        sa.Column("matter", sa.String(length=100), nullable=False),
        sa.Column("holder_digest", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("valid_from", UTC_TIME, nullable=False),
        sa.Column("valid_until", UTC_TIME, nullable=False),
        sa.Column("registered_by", sa.String(length=200), nullable=False),
        sa.Column("registered_at", UTC_TIME, nullable=False),
        sa.Column("closed_at", UTC_TIME, nullable=True),
        sa.Column("closed_by", sa.String(length=200), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matters")),
        sa.UniqueConstraint("organisation_code", "matter", name=op.f("uq_matters_organisation_code_matter")),
    )
    op.create_table(
        "holder_authorisations",
        sa.Column("id", ID, nullable=False),
        sa.Column("holder_digest", sa.String(length=64), nullable=False),
        sa.Column("using_unit", sa.String(length=32), nullable=False),
        sa.Column("using_unit_name", sa.String(length=200), nullable=True),
        sa.Column("certificate_identifier", sa.String(length=128), nullable=True),
        sa.Column("catalogue_code", sa.String(length=32), nullable=True),
        sa.Column("matter", sa.String(length=100), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("valid_until", UTC_TIME, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("revoked_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_authorisations")),
    )
    op.create_index(
        "ix_holder_authorisations_holder_unit",
        "holder_authorisations",
        ["holder_digest", "using_unit"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_holder_authorisations_holder_unit", table_name="holder_authorisations")
    op.drop_table("holder_authorisations")
    op.drop_table("matters")
