"""Catalogue use cases (证照目录): register versioned entries, look them up, load the shipped definitions."""

from __future__ import annotations

import json
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from certstore.catalogue import CatalogueEntry
from certstore.catalogue.definitions import shipped_entries
from certstore.services.repository import Repository
from certstore.store.models import CatalogueEntryRow

__all__ = [
    "CatalogueConflictError",
    "UnknownCatalogueError",
    "get_entry",
    "list_entries",
    "load_shipped",
    "register_entry",
]


class UnknownCatalogueError(LookupError):
    """No catalogue entry with that code (and version)."""


class CatalogueConflictError(ValueError):
    """A catalogue version that already exists with different content, or a version that goes backwards."""


def _row_to_entry(row: CatalogueEntryRow) -> CatalogueEntry:
    return _entry_from_json(json.dumps(row.definition, ensure_ascii=False, sort_keys=True))


@lru_cache(maxsize=256)
def _entry_from_json(document: str) -> CatalogueEntry:
    """Validated once per distinct document: a stored catalogue version never changes, and every issuance
    reads its entry (schema validation costs ~5 ms)."""
    return CatalogueEntry.from_document(json.loads(document))


def register_entry(
    repo: Repository, entry: CatalogueEntry, *, status: str = "approved"
) -> tuple[CatalogueEntry, bool]:
    """Store ``entry``; returns (entry, created). Registering the same version again with the same content is a
    no-op; a different document under an existing version, or a version lower than the latest, is refused."""
    document = entry.to_document()
    with repo.db.session() as session:
        existing = session.scalars(
            select(CatalogueEntryRow)
            .where(CatalogueEntryRow.code == entry.code)
            .order_by(CatalogueEntryRow.version)
        ).all()
        for row in existing:
            if row.version == entry.version:
                if row.definition == document:
                    return _row_to_entry(row), False
                raise CatalogueConflictError(
                    f"catalogue {entry.code} version {entry.version} already exists with different content; "
                    f"register it as version {existing[-1].version + 1}"
                )
        if existing and entry.version < existing[-1].version:
            raise CatalogueConflictError(
                f"catalogue {entry.code}: version {entry.version} is older than the latest ({existing[-1].version})"
            )
        session.add(
            CatalogueEntryRow(
                code=entry.code,
                version=entry.version,
                name=entry.name,
                category=str(entry.category),
                issuer_code=entry.issuer.credit_code,
                holder_type=str(entry.holder_type),
                status=status,
                definition=document,
                created_at=repo.now(),
            )
        )
    return entry, True


def _latest(session: Session, code: str, version: int | None) -> CatalogueEntryRow:
    query = select(CatalogueEntryRow).where(CatalogueEntryRow.code == code)
    if version is None:
        query = query.where(CatalogueEntryRow.status == "approved").order_by(CatalogueEntryRow.version.desc())
    else:
        query = query.where(CatalogueEntryRow.version == version)
    row = session.scalars(query.limit(1)).first()
    if row is None:
        what = f"{code} version {version}" if version is not None else f"{code} (approved)"
        raise UnknownCatalogueError(f"no catalogue entry {what}")
    return row


def get_entry(repo: Repository, code: str, version: int | None = None) -> CatalogueEntry:
    """The given version, or the latest approved one."""
    with repo.db.session() as session:
        return _row_to_entry(_latest(session, code, version))


def list_entries(repo: Repository) -> list[CatalogueEntry]:
    """The latest version of every catalogue code."""
    with repo.db.session() as session:
        rows = session.scalars(
            select(CatalogueEntryRow).order_by(CatalogueEntryRow.code, CatalogueEntryRow.version)
        ).all()
        latest: dict[str, CatalogueEntryRow] = {row.code: row for row in rows}
        return [_row_to_entry(row) for row in latest.values()]


def load_shipped(repo: Repository) -> list[CatalogueEntry]:
    """Register the definitions shipped in ``schemas/catalogue`` (idempotent); returns those newly added."""
    added = []
    for entry in shipped_entries():
        _, created = register_entry(repo, entry)
        if created:
            added.append(entry)
    return added
