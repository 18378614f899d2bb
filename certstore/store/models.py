"""SQLAlchemy models: the repository's tables. The schema itself is made only by Alembic migrations
(``certstore/store/migrations``); these classes describe it for the ORM and for autogenerate.

Tables:

- ``catalogue_entries`` — 证照目录, one row per (code, version); the full definition as JSON.
- ``certificates`` — one row per certificate *version* (变更/延续 add a row); identity of a push is
  (issuer_code, certificate_number, version), which makes repeated pushes idempotent.
- ``certificate_events`` — the lifecycle history of every version, appended, never updated.

Service layer (revision 0002):

- ``organisations`` / ``principals`` / ``api_tokens`` — who calls the API: principals belong to an
  organisation and have one role; tokens are stored as SM3 hashes with expiry and revocation (``kind`` "mtls"
  rows bind a client-certificate fingerprint passed by a TLS-terminating proxy instead of a secret).
- ``access_grants`` — time-limited grants for bulk queries and exports, issued by the big-data bureau.
- ``audit_events`` — every API operation and every denial, appended (revision 0005_audit rebuilds it as a
  hash chain + Merkle tree with ``audit_chain``, ``audit_pending``, ``audit_checkpoints``, ``audit_tree_nodes``
  and ``audit_archives``; PostgreSQL partitions it by month — see ``docs/audit.md``).
- ``review_requests`` — 复核 requests with their 5-working-day deadline; ``calendar_days`` — the configurable
  working-day calendar (holidays and make-up workdays).
- ``inspections`` — 年检 results per certificate and year.
- ``batch_jobs`` / ``batch_items`` — batch pushes, processed in the background, resumable item by item.

The exchange (revision 0003): ``exchange_cursors``, ``exchange_leases``, ``exchange_applied`` (the exactly-once
ledger), ``exchange_cycles`` (per-cycle statistics), ``arrivals`` (deadline tracking, 第十一条), and for upward
aggregation ``upward_targets`` (sender side) and ``upward_received`` (receiver side).

Knowledge scope (revision 0007): ``matter_bindings`` — which holder a using unit's matter (办件) served, fixed by
its first look-up under the rule before issue 19; kept read-only for history. Revision 0012: ``matters`` — the
matters a unit's case-handling system registers — and ``holder_authorisations`` — holders' authorisations of using
units (证照授权使用), which decide window look-ups now (知悉范围; see :mod:`certstore.services.scope`).

Seal registry (revision 0009): ``seals`` — the electronic seals (电子印章) the repository knows and the
organisation each belongs to; ``seal_events`` — their suspensions, resumptions and revocations with effective
times (see :mod:`certstore.services.seals`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "AccessGrantRow",
    "ApiTokenRow",
    "ArrivalRow",
    "AuditArchiveRow",
    "AuditChainRow",
    "AuditCheckpointRow",
    "AuditEventRow",
    "AuditPendingRow",
    "AuditRequestIdRow",
    "AuditTreeNodeRow",
    "Base",
    "BatchItemRow",
    "BatchJobRow",
    "CalendarDayRow",
    "CatalogueEntryRow",
    "CertificateEventRow",
    "CertificateRow",
    "ExchangeAppliedRow",
    "ExchangeCursorRow",
    "ExchangeCycleRow",
    "ExchangeLeaseRow",
    "InspectionRow",
    "OrganisationRow",
    "PrincipalRow",
    "ReviewRequestRow",
    "UTCDateTime",
    "UpwardReceivedRow",
    "UpwardTargetRow",
]

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit identities.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CatalogueEntryRow(Base):
    """证照目录 entry, versioned. ``definition`` is the whole catalogue-entry document (schemas/)."""

    __tablename__ = "catalogue_entries"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    issuer_code: Mapped[str] = mapped_column(String(18), index=True)
    holder_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="approved")  # pending | approved | rejected
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_by: Mapped[str | None] = mapped_column(
        String(200), nullable=True
    )  # principal that registered it
    reviewed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)  # bureau principal
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class CertificateRow(Base):
    """One version of one certificate (电子证照), with its metadata, face data and file."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("issuer_code", "certificate_number", "version"),
        Index("ix_certificates_holder", "holder_id_digest"),
        Index("ix_certificates_file_key", "file_key"),  # the orphan sweep asks "is this blob referenced?"
        # the QR code's short path, and every lookup by serial: a serial is one issuer's (migration 0015)
        Index("ix_certificates_serial_version", "serial", "version"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(128), unique=True)  # 证照标识
    type_code: Mapped[str] = mapped_column(String(32))  # 证照类型代码
    issuer_code: Mapped[str] = mapped_column(String(18))  # 颁发机构代码
    issuer_name: Mapped[str] = mapped_column(String(200))
    serial: Mapped[str] = mapped_column(String(64))  # 流水号, shared by all versions
    version: Mapped[int] = mapped_column(Integer)  # 版本号
    certificate_number: Mapped[str] = mapped_column(String(128))  # 证照编号
    name: Mapped[str] = mapped_column(String(200))  # 证照名称
    catalogue_code: Mapped[str] = mapped_column(String(32), index=True)
    catalogue_version: Mapped[int] = mapped_column(Integer)
    holder_name: Mapped[str] = mapped_column(String(200))  # 持证主体
    holder_id_type: Mapped[str] = mapped_column(String(8))  # 持证主体代码类型 (GB/T 36903 code)
    holder_id: Mapped[str] = mapped_column(String(64))  # 持证主体代码
    holder_id_digest: Mapped[bytes] = mapped_column(LargeBinary(32))  # HMAC-SM3: index and log form
    issue_date: Mapped[date] = mapped_column(Date)  # 颁发日期
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, nullable=True)  # None: 长期
    face: Mapped[dict[str, Any]] = mapped_column(JSONDocument)  # 照面数据
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument)  # 元数据 (GB/T 36903 style)
    content_digest: Mapped[str] = mapped_column(String(64))  # SM3 of the canonical content, for idempotency
    file_key: Mapped[str | None] = mapped_column(String(64), nullable=True)  # blob key (SM3 hex) of the file
    file_media_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    events: Mapped[list[CertificateEventRow]] = relationship(
        back_populates="certificate", order_by="CertificateEventRow.id", lazy="selectin"
    )


class CertificateEventRow(Base):
    """A lifecycle event (签发, 变更, 延续, 挂起, 恢复, 吊销, 注销, 废止) on one certificate version."""

    __tablename__ = "certificate_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    details: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)

    certificate: Mapped[CertificateRow] = relationship(back_populates="events")


# --- service layer (revision 0002) -------------------------------------------------------------------------


class OrganisationRow(Base):
    """An organisation calling the API: an issuing agency, a using unit, the big-data bureau, the province."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # USCC (统一社会信用代码) or another org code
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PrincipalRow(Base):
    """A caller (a person's account or a system) of one organisation, with one role."""

    __tablename__ = "principals"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # agency | window | bureau | auditor | upstream
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    organisation: Mapped[OrganisationRow] = relationship(lazy="joined")


class ApiTokenRow(Base):
    """An API credential. ``lookup`` is the public part of a bearer token (or the SHA-256 fingerprint of a
    client certificate for ``kind`` "mtls"); ``secret_hash`` is SM3 of the secret part, never the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="bearer")  # bearer | mtls
    lookup: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    principal: Mapped[PrincipalRow] = relationship(lazy="joined")


class AccessGrantRow(Base):
    """A time-limited grant for bulk queries / exports (批量查询、数据分析须经授权), issued by the bureau.
    ``scope`` narrows it: {"catalogue_codes": [...], "issuer_codes": [...]} (absent key: no restriction)."""

    __tablename__ = "access_grants"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    grantee_organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    scope: Mapped[dict[str, Any]] = mapped_column(JSONDocument, default=dict)
    issued_by: Mapped[str] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    grantee: Mapped[OrganisationRow] = relationship(lazy="joined")


class AuditEventRow(Base):
    """One entry of the audit trail (审计日志): an API call or web action (allowed, denied or failed), an exchange
    row, a status change, a verification. Appended only, in one total order (``seq``), each entry hash-chained to
    the previous one and a leaf of the log's Merkle tree (see :mod:`certstore.audit`).

    ``occurred_at`` is when it happened; ``at`` when it was chained — never earlier than the entry before it, so a
    month of ``at`` (PostgreSQL: one partition) is one contiguous range of ``seq``. Holder IDs appear only as their
    keyed reference (``holder_digest``); ``details`` is canonical JSON text, hashed exactly as stored.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        PrimaryKeyConstraint("seq", "at"),
        Index("ix_audit_events_occurred", "occurred_at", "seq"),
        Index("ix_audit_events_principal", "principal", "occurred_at", "seq"),
        Index("ix_audit_events_organisation", "organisation_code", "occurred_at", "seq"),
        Index("ix_audit_events_action", "action", "occurred_at", "seq"),
        Index(
            "ix_audit_events_certificate",
            "certificate_identifier",
            "occurred_at",
            "seq",
            postgresql_where=text("certificate_identifier IS NOT NULL"),
            sqlite_where=text("certificate_identifier IS NOT NULL"),
        ),
        Index(
            "ix_audit_events_holder",
            "holder_digest",
            "occurred_at",
            "seq",
            postgresql_where=text("holder_digest IS NOT NULL"),
            sqlite_where=text("holder_digest IS NOT NULL"),
        ),
        Index(
            "ix_audit_events_matter",
            "matter",
            "organisation_code",
            postgresql_where=text("matter IS NOT NULL"),
            sqlite_where=text("matter IS NOT NULL"),
        ),
        Index(
            "ix_audit_events_grant",
            "grant_id",
            "occurred_at",
            postgresql_where=text("grant_id IS NOT NULL"),
            sqlite_where=text("grant_id IS NOT NULL"),
        ),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    seq: Mapped[int] = mapped_column(BigInteger, autoincrement=False)  # position in the log, from 0
    at: Mapped[datetime] = mapped_column(UTCDateTime())  # chained at (partition key)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))  # entry_hash of seq - 1 (zeros for seq 0)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))  # SM3 of the canonical encoding
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    event_id: Mapped[str] = mapped_column(
        String(32)
    )  # random, unique per event (spool replay de-duplication)
    request_id: Mapped[str] = mapped_column(String(64))
    principal: Mapped[str | None] = mapped_column(String(200), nullable=True)  # "ORGCODE/name"
    organisation_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    action: Mapped[str] = mapped_column(String(100))  # e.g. "issue_certificate", "holder_certificates"
    resource: Mapped[str | None] = mapped_column(String(300), nullable=True)
    matter: Mapped[str | None] = mapped_column(String(100), nullable=True)  # 事项/办件 number
    holder_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    certificate_identifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    grant_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # bulk-access grant used
    outcome: Mapped[str] = mapped_column(String(8))  # allow | deny | error
    status_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)  # client address
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    details: Mapped[str] = mapped_column(Text)  # canonical JSON


class AuditChainRow(Base):
    """The head of the audit chain: one row (``id`` 1), locked by every append so that all writers — threads,
    API worker processes, hosts — extend one total order. ``frontier`` holds the Merkle tree in compact form
    (hex hashes of its complete subtrees, largest first); ``retention_years`` can only grow (a trigger refuses
    lowering it, and anything under 3)."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)  # entries so far = the next seq
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32))  # entry_hash of seq size - 1 (zeros when empty)
    last_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    frontier: Mapped[str] = mapped_column(Text)  # JSON list of hex hashes
    checkpoint_size: Mapped[int] = mapped_column(BigInteger)  # tree size of the newest checkpoint
    checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retention_years: Mapped[int] = mapped_column(Integer)


class AuditPendingRow(Base):
    """An audit event written in the transaction of the action it records (a mutation), waiting to be chained:
    it commits or rolls back with the action; a writer moves it into ``audit_events`` in order."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payload: Mapped[str] = mapped_column(Text)  # the event as JSON


class AuditRequestIdRow(Base):
    """A request id a client chose (``X-Request-ID``) that an audit entry carries: each is used once — a client
    sending one again gets a server id in its entry, its own kept as ``details.client_request_id`` (issue 17)."""

    __tablename__ = "audit_request_ids"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditCheckpointRow(Base):
    """A signed checkpoint (签名检查点): tree size, root hash, head entry hash and time, signed with the
    repository's SM2 key (``body`` is exactly the signed text)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary())
    certificate: Mapped[bytes] = mapped_column(LargeBinary())  # DER of the signing certificate
    chain: Mapped[bytes] = mapped_column(LargeBinary())  # PEM of its issuers (may be empty)


class AuditTreeNodeRow(Base):
    """A complete subtree of the Merkle tree (2^level leaves from ``position`` · 2^level), stored for levels ≥ 8 as
    the chain grows, so proofs read a few hundred rows whatever the log's size."""

    __tablename__ = "audit_tree_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditArchiveRow(Base):
    """One archived month (归档): its entries [first_seq, end_seq) left the hot table after a sealed, verified
    export into the Object Lock archive (COMPLIANCE retention until ``retain_until``). ``frontier_end`` is the
    tree in compact form after the month, so later entries still verify against every checkpoint."""

    __tablename__ = "audit_archives"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)  # "YYYY-MM" of ``at``
    first_seq: Mapped[int] = mapped_column(BigInteger)
    end_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32))  # entry_hash of end_seq - 1
    frontier_end: Mapped[str] = mapped_column(Text)  # JSON list of hex hashes (tree of end_seq leaves)
    manifest_key: Mapped[str] = mapped_column(String(64))  # SM3 key of the manifest in the archive
    segments: Mapped[str] = mapped_column(Text)  # JSON list of the SM3 keys of the JSONL segments
    retain_until: Mapped[datetime] = mapped_column(UTCDateTime())
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewRequestRow(Base):
    """复核 (第二十条): a dispute about a certificate; the issuer answers within 5 working days."""

    __tablename__ = "review_requests"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    certificate_identifier: Mapped[str] = mapped_column(String(128), index=True)
    issuer_code: Mapped[str] = mapped_column(String(18), index=True)
    requester: Mapped[str] = mapped_column(String(200))  # principal "ORGCODE/name"
    requester_organisation_code: Mapped[str] = mapped_column(String(32))
    matter: Mapped[str | None] = mapped_column(String(100), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | answered | withdrawn
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_date: Mapped[date] = mapped_column(Date)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    answered_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # confirmed | corrected | rejected
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)


class CalendarDayRow(Base):
    """An exception to the Monday–Friday week: a holiday on a weekday or a make-up workday on a weekend."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # holiday | workday
    name: Mapped[str] = mapped_column(String(100))


class InspectionRow(Base):
    """年检 (第二十二条): one annual-inspection result for one certificate (serial) and year."""

    __tablename__ = "inspections"
    __table_args__ = (UniqueConstraint("issuer_code", "serial", "year"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    certificate_identifier: Mapped[str] = mapped_column(String(128), index=True)
    issuer_code: Mapped[str] = mapped_column(String(18))
    serial: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(16))  # passed | failed
    inspected_on: Mapped[date] = mapped_column(Date)
    remarks: Mapped[str] = mapped_column(Text, default="")
    inspector: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BatchJobRow(Base):
    """A batch push: many certificates submitted at once, processed in the background."""

    __tablename__ = "batch_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID
    organisation_code: Mapped[str] = mapped_column(String(32), index=True)
    submitted_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # queued | running | done
    total: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # worker holding it


class BatchItemRow(Base):
    """One certificate of a batch: its submitted document and, once processed, its identifier or error."""

    __tablename__ = "batch_items"
    __table_args__ = (UniqueConstraint("job_id", "position"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("batch_jobs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16))  # pending | issued | existing | rejected
    identifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)


# --- the exchange (revision 0003) ---------------------------------------------------------------------------


class ExchangeCursorRow(Base):
    """Where the exchange stands in one front-end table of one source (前置机): every change with a sequence
    number ≤ ``watermark`` is applied; ``applied_above`` lists applied numbers beyond it (sequences from
    concurrent writers commit out of order), ``gaps`` the missing numbers below the highest seen, with the time
    each was first noticed (a gap still open after the grace period is taken as a rolled-back write)."""

    __tablename__ = "exchange_cursors"
    __table_args__ = (UniqueConstraint("source", "table_name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    table_name: Mapped[str] = mapped_column(String(64))
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_above: Mapped[list[int]] = mapped_column(JSONDocument, default=list)
    gaps: Mapped[dict[str, str]] = mapped_column(JSONDocument, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeLeaseRow(Base):
    """One worker at a time per source: the holder and until when (a conditional UPDATE takes it)."""

    __tablename__ = "exchange_leases"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ExchangeAppliedRow(Base):
    """The ledger of applied front-end changes, written in the same transaction as their effect: a change is
    applied at most once whatever the worker's crashes (exactly once together with the cursor)."""

    __tablename__ = "exchange_applied"
    __table_args__ = (UniqueConstraint("source", "table_name", "seq"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    table_name: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | rejected
    identifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    problems: Mapped[list[Any] | None] = mapped_column(JSONDocument, nullable=True)
    receipt_written: Mapped[bool] = mapped_column(default=False)
    applied_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExchangeCycleRow(Base):
    """One exchange cycle of one source: what it saw, accepted and rejected, its lag and duration."""

    __tablename__ = "exchange_cycles"
    __table_args__ = (Index("ix_exchange_cycles_source_started", "source", "started_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    worker: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seen: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    lag_seconds: Mapped[float | None] = mapped_column(nullable=True)  # age of the oldest change not applied
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ArrivalRow(Base):
    """When a certificate reached the repository against its deadline (第十一条): online in real time,
    offline within 1 working day, bulk within 3 working days of the business completion time."""

    __tablename__ = "arrivals"
    __table_args__ = (Index("ix_arrivals_issuer_late", "issuer_code", "late"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identifier: Mapped[str] = mapped_column(String(128), unique=True)
    issuer_code: Mapped[str] = mapped_column(String(18))
    source: Mapped[str] = mapped_column(String(100))  # "api" or an exchange source
    channel: Mapped[str] = mapped_column(String(8))  # online | offline | bulk
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime())  # 业务办结时间
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(default=False)


class UpwardTargetRow(Base):
    """A repository this one aggregates into (the province): how far each feed has been delivered, and the
    retry state while the target is down."""

    __tablename__ = "upward_targets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # certificate_events.id delivered
    catalogue_cursor: Mapped[int] = mapped_column(BigInteger, default=0)  # catalogue_entries.id delivered
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class UpwardReceivedRow(Base):
    """On the receiving (province) side: which deliveries of which sending repository were applied, so a
    delivery repeated after a lost acknowledgement is applied once."""

    __tablename__ = "upward_received"
    __table_args__ = (UniqueConstraint("sender", "kind", "source_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sender: Mapped[str] = mapped_column(String(32))  # organisation code of the sending repository
    kind: Mapped[str] = mapped_column(String(16))  # event | catalogue
    source_id: Mapped[int] = mapped_column(BigInteger)
    identifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- web pages: staff logins (revision 0004_credentials) ---------------------------------------------------


class PrincipalCredentialRow(Base):
    """A principal's password for the web pages (员工登录口令): scrypt with its salt and parameters stored, so
    they can be raised later without invalidating older hashes. Failed logins add to a score that decays and, high
    enough, locks the login for a while: ``failed_attempts`` is that score as of ``locked_until``, the end of the
    lock or the time the decay is counted from (``certstore/services/logins.py``)."""

    __tablename__ = "principal_credentials"

    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))  # "scrypt"
    n: Mapped[int] = mapped_column(Integer)  # scrypt CPU/memory cost
    r: Mapped[int] = mapped_column(Integer)  # block size
    p: Mapped[int] = mapped_column(Integer)  # parallelism
    salt: Mapped[bytes] = mapped_column(LargeBinary(32))
    password_hash: Mapped[bytes] = mapped_column(LargeBinary(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    principal: Mapped[PrincipalRow] = relationship(lazy="joined")


class WebSessionRow(Base):
    """A logged-in browser (会话). The cookie holds a random token; only its SM3 hash is stored. ``serving`` is
    the window case in progress (matter and holder being served), encrypted under a key derived from the token,
    so the table alone never shows a holder's ID number."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # absolute end, whatever the activity
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # logout
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)
    serving: Mapped[bytes | None] = mapped_column(LargeBinary(), nullable=True)

    principal: Mapped[PrincipalRow] = relationship(lazy="joined")


class MatterBindingRow(Base):
    """A matter (事项/办件编号) of a using unit bound to the one holder it serves (知悉范围), written by the matter's
    first look-up under the rule before issue 19 — no longer written or read for decisions (kept for history;
    :class:`MatterRow` decides now) — and never changed: the unique key (organisation, matter) is what makes two concurrent first
    look-ups for different holders serve only one of them. ``holder_digest`` is the holder's keyed reference
    (:func:`certstore.identifiers.holder_ref`, as certificates and audit entries show it), never the number."""

    __tablename__ = "matter_bindings"
    __table_args__ = (UniqueConstraint("organisation_code", "matter"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_code: Mapped[str] = mapped_column(String(32))
    matter: Mapped[str] = mapped_column(String(100))
    holder_digest: Mapped[str] = mapped_column(String(64))
    principal: Mapped[str] = mapped_column(String(200))  # who first used the matter: "ORGCODE/name"
    first_used_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SealRow(Base):
    """An electronic seal (电子印章) the repository knows (revision 0009): its GB/T 38540 ES ID, display name, the
    key-store name it is kept under (None for a seal registered from elsewhere), its owner — the organisation of
    the signer certificate it lists (credit code and name) — its validity and when it was registered. Never
    updated: the seal's state comes from its ``seal_events`` (:mod:`certstore.services.seals`)."""

    __tablename__ = "seals"

    es_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    keystore_name: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    owner_code: Mapped[str] = mapped_column(String(32), index=True)
    owner_name: Mapped[str] = mapped_column(String(200))
    valid_start: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_end: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SealEventRow(Base):
    """A state change of a seal (挂起 suspend / 恢复 resume / 吊销 revoke), appended, never updated: effective
    from ``effective_at`` (which may lie before ``recorded_at`` — a leak found late), recorded at
    ``recorded_at`` by ``actor`` (``ORGCODE/name`` or ``operator:user@host``) with ``reason``."""

    __tablename__ = "seal_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    es_id: Mapped[str] = mapped_column(ForeignKey("seals.es_id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)


__all__ += ["MatterBindingRow", "PrincipalCredentialRow", "SealEventRow", "SealRow", "WebSessionRow"]


# --- holders (0011_holders): holder identities and sessions (一号 login) ------------------------------------


class HolderRow(Base):
    """A holder (证照持有人) who has logged in by one ID (一号, OpenID Connect): the keyed reference of their ID
    (:func:`certstore.identifiers.holder_ref`, never the number), natural or legal person, the name the identity
    platform vouched for, the assurance level (``acr``) of the latest login. Written at each login."""

    __tablename__ = "holders"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    holder_ref: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # person | legal
    name: Mapped[str] = mapped_column(String(200))
    acr: Mapped[str | None] = mapped_column(String(100), nullable=True)
    first_login_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HolderSessionRow(Base):
    """A holder's browser session (``kind`` web) or API token (``kind`` api, made from a web session). Only the
    SM3 hash of the cookie or bearer token is stored; ``identity`` (ID type and number, names, the ID token for
    logout) is encrypted under a key derived from the token, so the table alone never shows an ID number."""

    __tablename__ = "holder_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("holders.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # web | api
    label: Mapped[str | None] = mapped_column(String(100), nullable=True)
    acr: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)
    identity: Mapped[bytes] = mapped_column(LargeBinary())

    holder: Mapped[HolderRow] = relationship(lazy="joined")


class HolderLoginAttemptRow(Base):
    """One pending OpenID Connect login (state, nonce, PKCE): the browser's cookie token and the ``state`` sent
    to the provider, both only as SM3 hashes (the nonce and the code verifier are derived from the cookie token
    with the session key, so nothing secret is stored). Used once: ``used_at`` is set before the code is
    exchanged, so a replayed callback is refused."""

    __tablename__ = "holder_login_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    state_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    return_to: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


__all__ += ["HolderLoginAttemptRow", "HolderRow", "HolderSessionRow"]


# --- matters (0012_matters): registered matters (办件) and authorised use (证照授权使用) -------------------------


class MatterRow(Base):
    """A matter (办件) registered by a using unit's case-handling system (一窗受理/审批系统, role case_system): the
    matter number, the holder it is for (``holder_digest``: the keyed reference,
    :func:`certstore.identifiers.holder_ref` — the ID number is never stored), the using unit (the case system's
    organisation), the purpose and the validity. Window look-ups of that unit are allowed for that holder under
    it while it is active (:mod:`certstore.services.scope`). Closing or withdrawing sets ``closed_at`` /
    ``close_reason`` ("closed" 办结 | "withdrawn" 撤回); a row is never deleted."""

    __tablename__ = "matters"
    __table_args__ = (UniqueConstraint("organisation_code", "matter"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    organisation_code: Mapped[str] = mapped_column(String(32))  # the using unit (用证单位)
    matter: Mapped[str] = mapped_column(String(100))  # 办件编号
    holder_digest: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_by: Mapped[str] = mapped_column(String(200))  # "ORGCODE/name" of the case system
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)


class HolderAuthorisationRow(Base):
    """A holder's authorisation of a using unit (证照授权使用): one named certificate (``certificate_identifier``)
    or all of the holder's certificates of one type (``catalogue_code``), for one matter or any registered matter
    of the unit (``matter`` None), until ``valid_until``; revoked by setting ``revoked_at``
    (:mod:`certstore.services.authorisations`)."""

    __tablename__ = "holder_authorisations"
    __table_args__ = (Index("ix_holder_authorisations_holder_unit", "holder_digest", "using_unit"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    holder_digest: Mapped[str] = mapped_column(String(64))
    using_unit: Mapped[str] = mapped_column(String(32))
    using_unit_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    certificate_identifier: Mapped[str | None] = mapped_column(String(128), nullable=True)
    catalogue_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    matter: Mapped[str | None] = mapped_column(String(100), nullable=True)
    purpose: Mapped[str] = mapped_column(Text)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


__all__ += ["HolderAuthorisationRow", "MatterRow"]


# --- notifications (0013_notifications): the transactional outbox, holder contacts, webhook subscriptions ----


class HolderContactRow(Base):
    """A holder's contact for notifications (通知联系方式), set by the holder (or from the verified ``email`` claim
    of their login): keyed by the holder's reference (:func:`certstore.identifiers.holder_ref`), never the ID
    number. Their webhook, if any, is a :class:`WebhookSubscriptionRow` of subscriber ``holder:<holder_ref>``."""

    __tablename__ = "holder_contacts"

    holder_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookSubscriptionRow(Base):
    """Where signed webhooks go: a holder's (subscriber ``holder:<holder_ref>``) or an issuing agency's
    (``org:<credit code>``) URL with its own secret (the key of the SM3-HMAC signature) and the kinds it receives.
    ``disabled_at`` set: replaced or removed (kept, so the outbox rows that name it stay explained)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    subscriber: Mapped[str] = mapped_column(String(100), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[bytes] = mapped_column(LargeBinary(32))
    kinds: Mapped[str] = mapped_column(String(200))  # comma-separated notification kinds
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class NotificationOutboxRow(Base):
    """One message to one recipient (通知发件箱), written in the transaction of the event it tells of and delivered
    afterwards by the notification worker (:mod:`certstore.services.notifications`): at least once, once per
    (idempotency key, channel) — the receiver de-duplicates on the key (the mail's Message-ID, the webhook's
    header). ``status``: pending → sent, or failed after the last attempt; a worker holds a row while it sends
    (``lease_owner`` until ``lease_until``)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", "channel"),
        Index("ix_notification_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    holder_ref: Mapped[str] = mapped_column(String(64), index=True)
    subject_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))  # "email" or "webhook:<subscription id>"
    address: Mapped[str] = mapped_column(String(500))  # the mail address or the webhook URL
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_subscriptions.id"), nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


__all__ += ["HolderContactRow", "NotificationOutboxRow", "WebhookSubscriptionRow"]


# --- catalogue assets (0014_catalogue_assets): base images uploaded with catalogue entries ---------------


class CatalogueAssetRow(Base):
    """A base image (底图) an agency uploaded for its catalogue entries, named in an entry document as
    ``asset:<digest>``: content-addressed by the SM3 digest of ``data`` (a checked, re-encoded PNG), written once
    and never changed (the application role may only read and insert — :mod:`certstore.audit.partitions`)."""

    __tablename__ = "catalogue_assets"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # SM3 of data, lower-case hex
    media_type: Mapped[str] = mapped_column(String(32))  # image/png
    data: Mapped[bytes] = mapped_column(LargeBinary)
    width_px: Mapped[int] = mapped_column(Integer)
    height_px: Mapped[int] = mapped_column(Integer)
    dpi: Mapped[int] = mapped_column(Integer)
    source_type: Mapped[str] = mapped_column(String(32))  # what was uploaded: image/png or image/svg+xml
    issuer_code: Mapped[str] = mapped_column(String(18), index=True)  # the uploading organisation
    uploaded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


__all__ += ["CatalogueAssetRow"]
