"""Catalogue use cases (证照目录): register versioned entries, look them up, load the shipped definitions, and
the management flow (an agency submits its own types, the big-data bureau approves or rejects them)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, Text, bindparam, cast, select
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Principal, Role, require_role
from certstore.catalogue import CatalogueEntry
from certstore.catalogue.definitions import shipped_entries
from certstore.services.catalogue_assets import asset_data, asset_digest
from certstore.services.transaction import Within, run_within
from certstore.store.models import CatalogueEntryRow
from certstore.store.repository import Repository

if TYPE_CHECKING:  # the checks lay faces out (fonts, Pillow): imported where an entry is checked
    from certstore.services.catalogue_checks import EntryChecks, SealCheck

__all__ = [
    "CatalogueConflictError",
    "CatalogueSubmission",
    "UnknownCatalogueError",
    "check_submission",
    "get_entry",
    "get_submission",
    "list_entries",
    "list_submissions",
    "load_shipped",
    "register_entry",
    "review_entry",
    "submission_checks",
    "submit_entry",
    "try_entry",
]


class UnknownCatalogueError(LookupError):
    """No catalogue entry with that code (and version)."""


class CatalogueConflictError(ValueError):
    """A catalogue version that already exists with different content, or a version that goes backwards."""


def _row_to_entry(row: CatalogueEntryRow, session: Session) -> CatalogueEntry:
    """The entry of a stored row, with ``base_image_data`` set when it names an uploaded base image."""
    return _document_to_entry(json.dumps(row.definition, ensure_ascii=False, sort_keys=True), session)


def _document_to_entry(document: str, session: Session) -> CatalogueEntry:
    """The entry of a stored definition's JSON text (any serialisation of it: the text only keys the caches)."""
    entry = _entry_from_json(document)
    digest = asset_digest(entry.base_image)
    if digest is None:
        return entry
    data = asset_data(session, digest)  # cached per process: an asset never changes
    return entry if data is None else _with_image(document, data)


@lru_cache(maxsize=64)
def _with_image(document: str, data: bytes) -> CatalogueEntry:
    return dataclasses.replace(_entry_from_json(document), base_image_data=data)


@lru_cache(maxsize=256)
def _entry_from_json(document: str) -> CatalogueEntry:
    """Validated once per distinct document: a stored catalogue version never changes, and every issuance
    reads its entry (schema validation costs ~5 ms)."""
    return CatalogueEntry.from_document(json.loads(document))


def register_entry(
    repo: Repository,
    entry: CatalogueEntry,
    *,
    status: str = "approved",
    submitted_by: str | None = None,
    within: Within | None = None,
) -> tuple[CatalogueEntry, bool]:
    """Store ``entry``; returns (entry, created). Registering the same version again with the same content is a
    no-op; a different document under an existing version, or a version lower than the latest, is refused.
    ``within`` (:mod:`certstore.services.transaction`) runs in the transaction that stores a new version (not on
    a no-op)."""
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
                    return _row_to_entry(row, session), False
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
                submitted_by=submitted_by,
            )
        )
        run_within(session, within)
    return entry, True


def _version_query(column: Any, *, latest: bool) -> Select[Any]:
    """``column`` of version ``:version`` of catalogue ``:code``, or (``latest``) of its latest approved one."""
    query = select(column).where(CatalogueEntryRow.code == bindparam("code"))
    if latest:
        query = query.where(CatalogueEntryRow.status == "approved").order_by(CatalogueEntryRow.version.desc())
    else:
        query = query.where(CatalogueEntryRow.version == bindparam("version"))
    return query.limit(1)


#: The statements of :func:`_latest` and :func:`get_entry` (every issuance asks), built once: the row, and the
#: definition as the database's JSON text, of a given version (False) or of the latest approved one (True).
_ROW = {latest: _version_query(CatalogueEntryRow, latest=latest) for latest in (False, True)}
_TEXT = {
    latest: _version_query(cast(CatalogueEntryRow.definition, Text), latest=latest)
    for latest in (False, True)
}


def _params(code: str, version: int | None) -> dict[str, Any]:
    return {"code": code} if version is None else {"code": code, "version": version}


def _unknown(code: str, version: int | None) -> UnknownCatalogueError:
    what = f"{code} version {version}" if version is not None else f"{code} (approved)"
    return UnknownCatalogueError(f"no catalogue entry {what}")


def _latest(session: Session, code: str, version: int | None) -> CatalogueEntryRow:
    row = session.scalars(_ROW[version is None], _params(code, version)).first()
    if row is None:
        raise _unknown(code, version)
    return row


def get_entry(repo: Repository, code: str, version: int | None = None) -> CatalogueEntry:
    """The given version, or the latest approved one (a read: it never waits for a writer's lock).

    Every issuance asks, so the definition is read as the database's JSON text (``CAST … AS TEXT``) and the
    entry found by that text in the cache of validated documents: no JSON parsed and written again per call."""
    with repo.db.session(readonly=True) as session:
        text = session.scalar(_TEXT[version is None], _params(code, version))
        if text is None:
            raise _unknown(code, version)
        return _document_to_entry(text, session)


def list_entries(repo: Repository) -> list[CatalogueEntry]:
    """The latest approved version of every catalogue code."""
    with repo.db.session(readonly=True) as session:
        rows = session.scalars(
            select(CatalogueEntryRow)
            .where(CatalogueEntryRow.status == "approved")
            .order_by(CatalogueEntryRow.code, CatalogueEntryRow.version)
        ).all()
        latest: dict[str, CatalogueEntryRow] = {row.code: row for row in rows}
        return [_row_to_entry(row, session) for row in latest.values()]


def load_shipped(repo: Repository) -> list[CatalogueEntry]:
    """Register the definitions shipped in ``schemas/catalogue`` (idempotent); returns those newly added."""
    added = []
    for entry in shipped_entries():
        _, created = register_entry(repo, entry)
        if created:
            added.append(entry)
    return added


# --- catalogue management (agencies register, the bureau approves) ---------------------------------------


@dataclass(frozen=True)
class CatalogueSubmission:
    """One stored catalogue version with its review state (pending | approved | rejected)."""

    entry: CatalogueEntry
    status: str
    submitted_by: str | None
    created_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None


def _submission(row: CatalogueEntryRow, session: Session) -> CatalogueSubmission:
    return CatalogueSubmission(
        entry=_row_to_entry(row, session),
        status=row.status,
        submitted_by=row.submitted_by,
        created_at=row.created_at,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        review_note=row.review_note,
    )


def check_submission(
    repo: Repository, entry: CatalogueEntry, *, seal_check: SealCheck | None = None
) -> EntryChecks:
    """The approval checks of :mod:`certstore.services.catalogue_checks` on ``entry`` (uploaded base images read
    from ``repo``): what the bureau sees before deciding, with the preview of the longest example face.
    ``seal_check`` (:data:`~certstore.services.catalogue_checks.SealCheck`): every entry point passes
    :func:`certstore.services.seals.check_entry_seal` bound to its application (the ``seal_owner`` check)."""
    from certstore.services.catalogue_checks import check_entry

    digest = asset_digest(entry.base_image)
    with repo.db.session(readonly=True) as session:
        if digest is not None and entry.base_image_data is None:
            data = asset_data(session, digest)
            entry = entry if data is None else dataclasses.replace(entry, base_image_data=data)
        return check_entry(entry, session, seal_check=seal_check)


def _own_entry(entry: CatalogueEntry, principal: Principal) -> None:
    require_role(principal, Role.AGENCY, Role.BUREAU)
    if principal.role is Role.AGENCY and entry.issuer.credit_code != principal.organisation_code:
        raise AccessDeniedError(
            f"issuer.credit_code {entry.issuer.credit_code} is not your organisation "
            f"({principal.organisation_code}): agencies register only their own catalogue types"
        )


def _own_document(document: object, principal: Principal) -> CatalogueEntry:
    """The entry of a submitted document, which an agency may send only for its own organisation."""
    require_role(principal, Role.AGENCY, Role.BUREAU)
    entry = CatalogueEntry.from_document(document, source="submitted catalogue entry")
    _own_entry(entry, principal)
    return entry


def try_entry(
    repo: Repository, document: object, *, principal: Principal, seal_check: SealCheck | None = None
) -> tuple[CatalogueEntry, EntryChecks]:
    """The approval checks of a document not (yet) submitted, with the layout of its longest example face — the
    agency's live preview. Stores nothing; an agency only for its own organisation's entries."""
    entry = _own_document(document, principal)
    return entry, check_submission(repo, entry, seal_check=seal_check)


def submission_checks(
    repo: Repository, code: str, version: int, *, principal: Principal, seal_check: SealCheck | None = None
) -> tuple[CatalogueSubmission, EntryChecks]:
    """A stored version and its approval checks as they stand now (the bureau's review; the submitting agency
    sees its own)."""
    submission = get_submission(repo, code, version)
    _own_entry(submission.entry, principal)
    return submission, check_submission(repo, submission.entry, seal_check=seal_check)


def submit_entry(
    repo: Repository,
    document: object,
    *,
    principal: Principal,
    within: Within | None = None,
    seal_check: SealCheck | None = None,
) -> tuple[CatalogueSubmission, bool]:
    """An agency registers a catalogue type or a new version of one (pending until the bureau approves it).

    The entry's issuer must be the agency itself (agencies only touch their own catalogue); the bureau may
    register entries for any issuer. ``seal_check``: the entry may name only a seal its issuer owns (every
    entry point passes the application's, :func:`certstore.services.seals.check_entry_seal`). The approval
    checks (:func:`check_submission`) run first: an entry with a failed check is refused
    (:class:`~certstore.services.catalogue_checks.EntryCheckError`, listing them). Returns (submission,
    created). ``within`` runs in the transaction that stores a new version (:func:`register_entry`)."""
    entry = _own_document(document, principal)
    with repo.db.session(readonly=True) as session:
        others = session.scalars(select(CatalogueEntryRow).where(CatalogueEntryRow.code == entry.code)).all()
    foreign = [row for row in others if row.issuer_code != entry.issuer.credit_code]
    if foreign and principal.role is Role.AGENCY:
        raise AccessDeniedError(f"catalogue code {entry.code} belongs to issuer {foreign[0].issuer_code}")
    checks = check_submission(repo, entry, seal_check=seal_check)
    if not checks.passed:
        from certstore.services.catalogue_checks import EntryCheckError

        raise EntryCheckError(checks, source=f"submitted catalogue entry {entry.code}")
    _, created = register_entry(repo, entry, status="pending", submitted_by=principal.ref, within=within)
    return get_submission(repo, entry.code, entry.version), created


def get_submission(repo: Repository, code: str, version: int) -> CatalogueSubmission:
    with repo.db.session(readonly=True) as session:
        return _submission(_latest(session, code, version), session)


def list_submissions(
    repo: Repository, *, status: str | None = None, issuer_code: str | None = None
) -> list[CatalogueSubmission]:
    """Every stored catalogue version (newest first), optionally only one review state or one issuer's."""
    query = select(CatalogueEntryRow).order_by(CatalogueEntryRow.code, CatalogueEntryRow.version.desc())
    if status is not None:
        query = query.where(CatalogueEntryRow.status == status)
    if issuer_code is not None:
        query = query.where(CatalogueEntryRow.issuer_code == issuer_code)
    with repo.db.session(readonly=True) as session:
        return [_submission(row, session) for row in session.scalars(query).all()]


def review_entry(
    repo: Repository,
    code: str,
    version: int,
    *,
    approve: bool,
    reviewer: Principal,
    note: str = "",
    within: Within | None = None,
    seal_check: SealCheck | None = None,
) -> CatalogueSubmission:
    """The bureau approves or rejects a pending catalogue version; approval makes it the one issuance uses, and
    is refused while an approval check fails (:func:`check_submission`, run again now: a seal revoked or a base
    image gone since the submission counts; ``seal_check`` as for :func:`submit_entry`). ``within`` runs in the
    transaction that records the decision."""
    require_role(reviewer, Role.BUREAU)
    if approve:
        submission = get_submission(repo, code, version)
        if submission.status != "pending":
            raise CatalogueConflictError(f"catalogue {code} version {version} is already {submission.status}")
        checks = check_submission(repo, submission.entry, seal_check=seal_check)
        if not checks.passed:
            from certstore.services.catalogue_checks import EntryCheckError

            raise EntryCheckError(checks, source=f"catalogue entry {code} version {version}")
    with repo.db.session() as session:
        row = _latest(session, code, version)
        if row.status != "pending":
            raise CatalogueConflictError(f"catalogue {code} version {version} is already {row.status}")
        if not approve and not note.strip():
            raise ValueError("note: say why the entry is rejected")
        row.status = "approved" if approve else "rejected"
        row.reviewed_by = reviewer.ref
        row.reviewed_at = repo.now()
        row.review_note = note.strip() or None
        run_within(session, within)
        return _submission(row, session)
