"""Many certificate writes in one transaction of the caller (the exchange's chunks, the import's chunks), under
the rules of :func:`certstore.services.certificates.issue`, ``change`` and ``act``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from certstore.lifecycle import Action, Status, transition
from certstore.records import PreparedVersion, RecordError
from certstore.services.certificates import (
    CertificateNotFoundError,
    DuplicateConflictError,
    NotLatestVersionError,
    event_values,
    row_values,
)
from certstore.store.blobs import BlobRef
from certstore.store.models import CertificateEventRow, CertificateRow
from certstore.store.repository import Repository

__all__ = ["CertificateBatch"]


class _Version:
    """A version as :class:`CertificateBatch` sees it: a stored row (``id`` set) or one it will insert."""

    __slots__ = ("catalogue_code", "changed", "digest", "id", "identifier", "number", "status", "successor",
                 "valid_until", "values", "version")  # fmt: skip

    def __init__(self, id: int | None, identifier: str, number: str, version: int, status: str,
                 valid_until: date | None, catalogue_code: str, digest: str,
                 values: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.id, self.identifier, self.number, self.version = id, identifier, number, version
        self.status, self.valid_until, self.catalogue_code, self.digest = (
            status,
            valid_until,
            catalogue_code,
            digest,
        )
        self.values = values  # the new row's columns; None for a stored row
        self.successor: _Version | None = None
        self.changed = False  # a stored row whose status changed


class CertificateBatch:
    """Many certificate writes in the caller's transaction, under the rules of :func:`issue`, :func:`change` and
    :func:`act` — the same rows, lifecycle events and errors — for versions without a file (a file is made and
    stored before its row by those functions, one at a time). The exchange applies a chunk of front-end rows
    with its ledger this way: one commit for hundreds of changes.

    Every stored version of the certificate numbers named up front is loaded (``FOR UPDATE`` on PostgreSQL, so
    concurrent API calls on them wait); the methods decide in memory, in call order (a version issued earlier
    in the batch can be changed or suspended later in it); :meth:`flush` writes everything with a few
    multi-row statements. A version inserted meanwhile by someone else makes the flush fail with
    ``IntegrityError``: roll the transaction back and run the batch again (it then sees that version).

    Errors are raised before anything is recorded for the call, so a refused call leaves the batch usable:
    :class:`DuplicateConflictError`, :class:`CertificateNotFoundError` (the version to change or act on is not
    stored), :class:`NotLatestVersionError`, :class:`~certstore.lifecycle.TransitionError`, ``RecordError``."""

    def __init__(
        self,
        repo: Repository,
        session: Session,
        *,
        issuer_code: str,
        numbers: Iterable[str],
        at: datetime | None = None,
    ) -> None:
        self.repo = repo
        self.session = session
        self.issuer_code = issuer_code
        self.at = at or repo.now()
        self._versions: dict[str, dict[int, _Version]] = {}
        self._new: list[_Version] = []
        self._events: list[tuple[_Version, dict[str, Any]]] = []
        wanted = sorted(set(numbers))
        c = CertificateRow
        for start in range(0, len(wanted), 500):
            query = select(
                c.id, c.identifier, c.certificate_number, c.version, c.status, c.valid_until, c.catalogue_code,
                c.content_digest, c.superseded_by_id,
            ).where(c.issuer_code == issuer_code, c.certificate_number.in_(wanted[start : start + 500]))  # fmt: skip
            if session.get_bind().dialect.name == "postgresql":
                query = query.order_by(c.id).with_for_update()  # one lock order: no deadlock between batches
            for row in session.execute(query):
                version = _Version(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7])
                if row[8] is not None:
                    version.successor = version  # replaced by a stored version (its id is not needed)
                self._versions.setdefault(version.number, {})[version.version] = version

    def _key_check(self, prepared: PreparedVersion) -> _Version | None:
        if prepared.identifier.issuer_code != self.issuer_code:
            raise ValueError(f"this batch writes certificates of issuer {self.issuer_code} only")
        existing = self._versions.get(prepared.draft.certificate_number, {}).get(prepared.identifier.version)
        if existing is not None and existing.digest != prepared.digest:
            raise DuplicateConflictError(
                f"certificate {existing.number!r} version {existing.version} of issuer "
                f"{self.issuer_code} was already pushed with different content ({existing.identifier})"
            )
        return existing

    def _add(self, prepared: PreparedVersion, event: dict[str, Any], blob: BlobRef | None = None) -> _Version:
        values = row_values(prepared, blob, at=self.at)
        version = _Version(
            None, values["identifier"], values["certificate_number"], values["version"], values["status"],
            values["valid_until"], values["catalogue_code"], values["content_digest"], values,
        )  # fmt: skip
        self._new.append(version)
        self._events.append((version, event))
        self._versions.setdefault(version.number, {})[version.version] = version
        return version

    def _set_status(self, version: _Version, status: Status, event: dict[str, Any]) -> None:
        version.status = status.value
        if version.values is not None:
            version.values["status"] = status.value
            version.values["status_changed_at"] = self.at
        else:
            version.changed = True
        self._events.append((version, event))

    def issue(
        self, prepared: PreparedVersion, *, actor: str, blob: BlobRef | None = None
    ) -> tuple[str, bool]:
        """签发 version 1; returns (identifier, created) — created False for an identical earlier version.

        ``blob``: the certificate file, already in the blob store (file before row, as :func:`issue` does) —
        the bulk import seals and stores files in worker processes, then commits their rows here."""
        if prepared.identifier.version != 1:
            raise ValueError("issue makes version 1; later versions are changes")
        existing = self._key_check(prepared)
        if existing is not None:
            return existing.identifier, False
        event = event_values(Action.ISSUE, None, Status.VALID, "签发", actor, self.at)
        version = self._add(prepared, event, blob)
        return version.identifier, True

    def change(self, prepared: PreparedVersion, *, reason: str, actor: str) -> tuple[str, bool]:
        """变更: version N of ``prepared`` replaces version N-1; returns (identifier, created)."""
        existing = self._key_check(prepared)
        if existing is not None:
            return existing.identifier, False
        number, version = prepared.draft.certificate_number, prepared.identifier.version
        old = self._versions.get(number, {}).get(version - 1)
        if old is None:
            raise CertificateNotFoundError(
                f"version {version - 1} of certificate {number!r} of issuer {self.issuer_code} is not stored"
            )
        if old.successor is not None:
            raise NotLatestVersionError(f"{old.identifier} was already replaced; change the latest version")
        if prepared.entry.code != old.catalogue_code:
            raise RecordError(
                f"a new version keeps the catalogue type {old.catalogue_code}",
                [("catalogue_code", f"{prepared.entry.code} is not {old.catalogue_code}")],
            )
        event = transition(
            Status(old.status), Action.CHANGE, valid_until=old.valid_until, reason=reason, actor=actor,
            at=self.at,
        )  # fmt: skip
        new = self._add(
            prepared,
            event_values(
                Action.CHANGE, None, Status.VALID, event.reason, actor, self.at, replaces=old.identifier
            ),
        )
        old.successor = new
        self._set_status(
            old, event.to_status,
            event_values(Action.CHANGE, event.from_status, event.to_status, event.reason, actor, self.at,
                          replaced_by=new.identifier),
        )  # fmt: skip
        return new.identifier, True

    def version(self, number: str, version: int | None = None) -> tuple[str, Status] | None:
        """(identifier, stored status) of that version (None: the latest) as this batch sees it, or None."""
        versions = self._versions.get(number)
        if not versions:
            return None
        found = versions[max(versions)] if version is None else versions.get(version)
        return None if found is None else (found.identifier, Status(found.status))

    def act(self, number: str, version: int | None, action: Action, *, reason: str, actor: str) -> str:
        """挂起 / 恢复 / 吊销 / 注销 / 废止 on version ``version`` (None: the latest); returns its identifier."""
        if action.creates_version or action is Action.ISSUE:
            raise ValueError(f"{action.value} makes a new version: use issue/change")
        versions = self._versions.get(number, {})
        target = (versions[max(versions)] if versions else None) if version is None else versions.get(version)
        if target is None:
            which = "any version" if version is None else f"version {version}"
            raise CertificateNotFoundError(
                f"{which} of certificate {number!r} of issuer {self.issuer_code} is not stored"
            )
        event = transition(
            Status(target.status),
            action,
            valid_until=target.valid_until,
            reason=reason,
            actor=actor,
            at=self.at,
        )
        self._set_status(
            target, event.to_status,
            event_values(action, event.from_status, event.to_status, event.reason, actor, self.at),
        )  # fmt: skip
        return target.identifier

    def flush(self) -> None:
        """Write everything: new versions, status changes of stored ones, links to successors, events."""
        session, c, table = self.session, CertificateRow, CertificateRow.__table__
        if self._new:
            # Core executemany, then the ids by identifier (unique): RETURNING in parameter order would make
            # SQLite insert one row per statement.
            columns = {attr.key: attr.columns[0].key for attr in c.__mapper__.column_attrs}
            session.execute(insert(table), [{columns[k]: v for k, v in n.values.items()} for n in self._new])
            by_identifier = {n.identifier: n for n in self._new}
            wanted = list(by_identifier)
            for start in range(0, len(wanted), 500):
                for id_, identifier in session.execute(
                    select(c.id, c.identifier).where(c.identifier.in_(wanted[start : start + 500]))
                ):
                    by_identifier[identifier].id = id_
        updates = [
            {"_id": v.id, "status": v.status, "status_changed_at": self.at}
            for versions in self._versions.values() for v in versions.values() if v.changed
        ]  # fmt: skip
        if updates:
            session.execute(
                update(c.__table__)
                .where(c.__table__.c.id == bindparam("_id"))
                .values(status=bindparam("status"), status_changed_at=bindparam("status_changed_at")),
                updates,
            )
        links = [
            {"_id": v.id, "successor": v.successor.id}
            for versions in self._versions.values() for v in versions.values()
            if v.successor is not None and v.successor is not v
        ]  # fmt: skip
        if links:
            session.execute(
                update(c.__table__)
                .where(c.__table__.c.id == bindparam("_id"))
                .values(superseded_by_id=bindparam("successor")),
                links,
            )
        if self._events:
            session.execute(
                insert(CertificateEventRow.__table__),
                [{**event, "certificate_id": v.id} for v, event in self._events],
            )
        self._new, self._events = [], []
        for versions in self._versions.values():
            for v in versions.values():
                v.changed = False
                if v.successor is not None:
                    v.successor = v  # linked now: stored
