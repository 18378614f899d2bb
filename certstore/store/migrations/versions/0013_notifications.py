"""notifications — the transactional outbox, holder contacts, webhook subscriptions

Revision ID: 0013_notifications
Revises: 0012_matters
Create Date: 2026-12-07

``holder_contacts`` — a holder's mail address for notifications, keyed by the holder's reference (the keyed
digest, never the ID number).

``webhook_subscriptions`` — signed-webhook receivers: a holder's (``holder:<ref>``) or an issuing agency's
(``org:<credit code>``) URL, its own SM3-HMAC secret and the kinds it receives; disabled, never deleted.

``notification_outbox`` — one message to one recipient, written in the transaction of the event it tells of,
unique per (idempotency key, channel); the notification worker claims due rows with a lease, sends, and marks them
sent, or retries with back-off until the last attempt marks them failed (see ``docs/holders.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0013_notifications"
down_revision: str | Sequence[str] | None = "0012_matters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TIME = sa.DateTime(timezone=True)
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "holder_contacts",
        sa.Column("holder_ref", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("holder_ref", name=op.f("pk_holder_contacts")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", ID, nullable=False),
        sa.Column("subscriber", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kinds", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("disabled_at", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_index(
        op.f("ix_webhook_subscriptions_subscriber"), "webhook_subscriptions", ["subscriber"], unique=False
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("holder_ref", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("subscription_id", ID, nullable=True),
        sa.Column("payload", JSON_DOCUMENT, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TIME, nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", UTC_TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("sent_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_notification_outbox_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
        sa.UniqueConstraint(
            "idempotency_key", "channel", name=op.f("uq_notification_outbox_idempotency_key_channel")
        ),
    )
    op.create_index(
        "ix_notification_outbox_due", "notification_outbox", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(
        op.f("ix_notification_outbox_holder_ref"), "notification_outbox", ["holder_ref"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_notification_outbox_holder_ref"), table_name="notification_outbox")
    op.drop_index("ix_notification_outbox_due", table_name="notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_index(op.f("ix_webhook_subscriptions_subscriber"), table_name="webhook_subscriptions")
    op.drop_table("webhook_subscriptions")
    op.drop_table("holder_contacts")
