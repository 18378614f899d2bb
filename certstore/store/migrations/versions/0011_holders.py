"""holders — holder identities and sessions (一号 login)

Revision ID: 0011_holders
Revises: 0010_audit_append_only
Create Date: 2026-12-07

``holders`` — one row per holder (证照持有人) who logged in by one ID (OpenID Connect): the keyed reference of the
ID (never the number), person or legal person, the vouched name, the assurance level of the latest login.

``holder_sessions`` — holders' browser sessions and API tokens: the SM3 hash of the token, and the identity
(ID type and number, names) encrypted under a key derived from the token.

``holder_login_attempts`` — pending OpenID Connect logins: the hashes of the browser's cookie token and of the
``state``, where to return, until when, and when it was used (once).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011_holders"
down_revision: str | Sequence[str] | None = "0010_audit_append_only"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "holders",
        sa.Column("id", ID, nullable=False),
        sa.Column("holder_ref", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("acr", sa.String(length=100), nullable=True),
        sa.Column("first_login_at", UTC_TIME, nullable=False),
        sa.Column("last_login_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holders")),
        sa.UniqueConstraint("holder_ref", name=op.f("uq_holders_holder_ref")),
    )
    op.create_table(
        "holder_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("holder_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("acr", sa.String(length=100), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_seen_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("ended_at", UTC_TIME, nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("identity", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["holder_id"], ["holders.id"], name=op.f("fk_holder_sessions_holder_id_holders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_holder_sessions_token_hash")),
    )
    op.create_index(op.f("ix_holder_sessions_holder_id"), "holder_sessions", ["holder_id"], unique=False)
    op.create_table(
        "holder_login_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("return_to", sa.String(length=300), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("used_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_holder_login_attempts")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_holder_login_attempts_token_hash")),
    )
    op.create_index(
        op.f("ix_holder_login_attempts_expires_at"), "holder_login_attempts", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_holder_login_attempts_expires_at"), table_name="holder_login_attempts")
    op.drop_table("holder_login_attempts")
    op.drop_index(op.f("ix_holder_sessions_holder_id"), table_name="holder_sessions")
    op.drop_table("holder_sessions")
    op.drop_table("holders")
