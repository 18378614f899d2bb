"""SQLAlchemy models: the repository's tables. The schema itself is made only by Alembic migrations
(``certstore/store/migrations``); these classes describe it for the ORM and for autogenerate.

Tables:

- ``catalogue_entries`` — 证照目录, one row per (code, version); the full definition as JSON.
- ``certificates`` — one row per certificate *version* (变更/延续 add a row); identity of a push is
  (issuer_code, certificate_number, version), which makes repeated pushes idempotent.
- ``certificate_events`` — the lifecycle history of every version, appended, never updated.
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
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "CatalogueEntryRow", "CertificateEventRow", "CertificateRow", "UTCDateTime"]

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
    status: Mapped[str] = mapped_column(String(16), default="approved")
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CertificateRow(Base):
    """One version of one certificate (电子证照), with its metadata, face data and file."""

    __tablename__ = "certificates"
    __table_args__ = (
        UniqueConstraint("issuer_code", "certificate_number", "version"),
        Index("ix_certificates_holder", "holder_id_digest"),
        Index("ix_certificates_serial", "issuer_code", "serial"),
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
