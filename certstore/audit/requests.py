"""Request ids (``X-Request-ID``) in the audit trail: unique per request, a client's duplicate kept apart.

A request's entry carries one ``request_id``. A client may choose it (``X-Request-ID``), but only once: the first
time a value is seen it is claimed in ``audit_request_ids`` (a primary key: one row per value, whichever process
claims it) and becomes the entry's id; a value seen before, malformed, or of the server's own form gets a fresh
server id (40 lowercase hex digits — a form no client value is adopted in, so no client can claim an id the server
handed out) and the client's value is kept as ``details.client_request_id``. The application role may insert claims, never update or delete them
(:func:`certstore.audit.partitions.grant_statements`).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from certstore.store.db import Database
from certstore.store.models import AuditRequestIdRow

__all__ = ["MAX_LENGTH", "SERVER_FORM", "adoptable", "claim_request_id", "client_value", "server_request_id"]

#: The form of server-made request ids; a client's X-Request-ID of this form is never adopted.
SERVER_FORM = re.compile(r"[0-9a-f]{40}")
MAX_LENGTH = 64


def server_request_id() -> str:
    """A fresh server request id (40 random lowercase hex digits)."""
    return secrets.token_hex(20)


def client_value(sent: str) -> str | None:
    """A client's X-Request-ID as it may be kept (printable, cut to 64 characters), None when it cannot be."""
    value = "".join(ch for ch in sent if ch.isprintable())[:MAX_LENGTH]
    return value or None


def adoptable(sent: str) -> bool:
    """Whether ``sent`` may become an entry's request id at all (before claiming it)."""
    return 0 < len(sent) <= MAX_LENGTH and sent.isprintable() and SERVER_FORM.fullmatch(sent) is None


def claim_request_id(db: Database, value: str, *, now: datetime | None = None) -> bool:
    """Claim ``value`` for one request: True the first time (in any process), False when it was used before or
    cannot be adopted (or the claim could not be written — the request then gets a server id)."""
    if not adoptable(value):
        return False
    row = {"request_id": value, "first_seen": now or datetime.now(UTC)}
    dialect = pg_insert if db.backend == "postgresql" else sqlite_insert
    statement = dialect(AuditRequestIdRow).values(**row).on_conflict_do_nothing()
    try:
        with db.session() as session:
            claimed = session.execute(statement.returning(AuditRequestIdRow.request_id)).scalar_one_or_none()
            return claimed is not None
    except SQLAlchemyError:
        return False
