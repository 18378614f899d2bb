"""web pages: staff passwords and browser sessions

Revision ID: 0004_credentials
Revises: 0003_exchange
Create Date: 2026-11-26

``principal_credentials`` (one scrypt password per principal, with salt, parameters and the failed-attempt
lockout) and ``web_sessions`` (logged-in browsers: SM3 of the cookie token, idle and absolute expiry, logout
time, the encrypted window case in progress). See certstore/services/logins.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004_credentials"
down_revision: str | Sequence[str] | None = "0003_exchange"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "principal_credentials",
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("r", sa.Integer(), nullable=False),
        sa.Column("p", sa.Integer(), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=32), nullable=False),
        sa.Column("password_hash", sa.LargeBinary(length=64), nullable=False),
        sa.Column("set_at", UTC_TIME, nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UTC_TIME, nullable=True),
        sa.Column("last_login_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"],
            ["principals.id"],
            name=op.f("fk_principal_credentials_principal_id_principals"),
        ),
        sa.PrimaryKeyConstraint("principal_id", name=op.f("pk_principal_credentials")),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", ID, nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("principal_id", ID, nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("last_seen_at", UTC_TIME, nullable=False),
        sa.Column("expires_at", UTC_TIME, nullable=False),
        sa.Column("ended_at", UTC_TIME, nullable=True),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("serving", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["principal_id"], ["principals.id"], name=op.f("fk_web_sessions_principal_id_principals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_principal_id"), ["principal_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_principal_id"))
    op.drop_table("web_sessions")
    op.drop_table("principal_credentials")
