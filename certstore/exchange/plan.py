"""What a front-end row becomes (the exchange's planning step): a plan to apply, or a rejection with field-level
reasons — before anything is written.

A certificate row (``fe_certificates``) is checked like an API push: the issuer is the source's agency, the
version a whole number, the channel and business completion time (第十一条) valid, DATA.json a valid draft of a
catalogue type the agency issues (:func:`certstore.services.authorization.require_issuer_of_type`, the rule every
entry point shares), an agency-sealed file VALID and for this certificate. A status row (``fe_status_changes``)
names a known action and explains it. Each plan carries its :class:`~certstore.services.calls.Call`: the
source's agency system as actor, the exchange as origin with a request id that is stable for the front-end row
(:func:`row_request_id`) — so an audit entry written with the row's effect is the same entry on every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certstore.access import AccessDeniedError, Actor
from certstore.catalogue import CatalogueEntry
from certstore.checks import Indication
from certstore.crypto.sm3 import sm3, sm3_hex
from certstore.crypto.trust import TrustStore
from certstore.exchange.cursor import Problems
from certstore.exchange.source import ExchangeSource
from certstore.lifecycle import Action, Status
from certstore.records import CertificateDraft, PreparedVersion, RecordError, draft_from_json, prepare_version
from certstore.services import deadlines
from certstore.services.authorization import require_issuer_of_type
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import UnknownCatalogueError, get_entry
from certstore.services.certificates import stored_version
from certstore.store.repository import Repository
from certstore.verify import verify_file

__all__ = [
    "ACTION_RESULT",
    "STATUS_ACTIONS",
    "CertificatePlan",
    "Defer",
    "Planner",
    "Reject",
    "StatusPlan",
    "error_problems",
    "prefixed",
    "row_request_id",
]

STATUS_ACTIONS = {
    a.value: a for a in (Action.SUSPEND, Action.RESUME, Action.REVOKE, Action.CANCEL, Action.ANNUL)
}
#: The status an action leaves a version in: an action whose result is already in place is a repeat (accepted).
ACTION_RESULT = {
    Action.SUSPEND: Status.SUSPENDED,
    Action.RESUME: Status.VALID,
    Action.REVOKE: Status.REVOKED,
    Action.CANCEL: Status.CANCELLED,
    Action.ANNUL: Status.ANNULLED,
}
_MAX_REQUEST_ID = 64  # the audit log's request_id column


@dataclass
class Reject:
    problems: Problems


@dataclass
class Defer:
    why: str


@dataclass
class CertificatePlan:
    seq: int
    prepared: PreparedVersion
    draft: CertificateDraft
    channel: str
    completed_at: datetime
    file: bytes | None
    file_media_type: str | None
    call: Call

    @property
    def version(self) -> int:
        return self.prepared.identifier.version

    @property
    def number(self) -> str:
        return self.draft.certificate_number


@dataclass
class StatusPlan:
    seq: int
    number: str
    version: int | None
    action: Action
    reason: str
    call: Call


def prefixed(prefix: str, problems: Iterable[Any]) -> Problems:
    out: Problems = []
    for item in problems:
        path, message = (
            (item[0], item[1]) if isinstance(item, list | tuple) and len(item) == 2 else ("$", item)
        )
        path = str(path)
        out.append((f"{prefix}.{path}" if path not in ("$", "") else prefix, str(message)))
    return out


def error_problems(exc: BaseException, path: str) -> Problems:
    listed = getattr(exc, "problems", None) or getattr(exc, "errors", None)
    if listed:
        return prefixed(path, listed)
    return [(path, str(exc))]


def row_request_id(source: str, table: str, seq: int) -> str:
    """The stable request id of front-end row ``seq`` of ``table`` in ``source`` (``source/table/seq``, or its
    SM3 when longer than the audit column): the same on every run, so its audit entry names the row."""
    readable = f"{source}/{table}/{seq}"
    if len(readable) <= _MAX_REQUEST_ID:
        return readable
    return "x-" + sm3_hex(readable.encode())[: _MAX_REQUEST_ID - 2]


class Planner:
    """Turns one source's front-end rows into plans (see the module docstring). Catalogue entries are looked
    up once per cycle (:meth:`forget_entries` after a catalogue row changed them)."""

    def __init__(self, repo: Repository, source: ExchangeSource, *, trust: TrustStore | None) -> None:
        self.repo, self.source, self.trust = repo, source, trust
        self.actor: Actor = source.actor
        self._entries: dict[str, CatalogueEntry | Exception] = {}

    def call(
        self, table: str, seq: int, *, completed_at: datetime | None = None, channel: str | None = None
    ) -> Call:
        """The call of front-end row ``seq`` of ``table``: the source's agency system through the exchange."""
        origin = Origin(
            Via.EXCHANGE, request_id=row_request_id(self.source.name, table, seq), source=self.source.name,
            completed_at=completed_at, channel=channel, details={"table": table, "seq": seq},
        )  # fmt: skip
        return Call(self.actor, origin)

    def entry(self, code: str) -> CatalogueEntry:
        cached = self._entries.get(code)
        if cached is None:
            try:
                cached = get_entry(self.repo, code)
            except UnknownCatalogueError as exc:
                cached = exc
            self._entries[code] = cached
        if isinstance(cached, Exception):
            raise cached
        return cached

    def forget_entries(self) -> None:
        self._entries.clear()

    def _issuer_problems(self, issuer_code: Any) -> Problems:
        if issuer_code != self.source.issuer_code:
            return [
                ("issuer_code", f"this front-end delivers for {self.source.issuer_code}, not {issuer_code}")
            ]
        return []

    def certificate(self, table: str, row: Any, now: datetime) -> CertificatePlan | Reject:
        """The plan of a certificate row (version 1: 签发, later versions: 变更), or why it is rejected."""
        problems = self._issuer_problems(row.issuer_code)
        version = row.version
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            problems.append(("version", f"a whole number ≥ 1, got {version!r}"))
        if row.channel not in {c.value for c in deadlines.Channel}:
            problems.append(("channel", f"one of online, offline, bulk; got {row.channel!r}"))
        completed_at = row.completed_at
        if not isinstance(completed_at, datetime):
            problems.append(("completed_at", f"not an ISO 8601 time: {completed_at!r}"))
        else:
            try:
                completed_at = deadlines.check_completed_at(completed_at, now=now)
            except deadlines.ArrivalError as exc:
                problems.append(("completed_at", exc.message))
        if row.file is not None and not isinstance(row.file, bytes | bytearray | memoryview):
            problems.append(("file", "the file column holds bytes (BLOB / bytea)"))
        elif row.file is not None and not row.file_media_type:
            problems.append(("file_media_type", "required with a file (application/ofd or application/pdf)"))
        try:
            document = json.loads(row.data)
        except (json.JSONDecodeError, TypeError) as exc:
            return Reject([*problems, ("data", f"not JSON: {exc}")])
        try:
            draft = draft_from_json(document)
        except RecordError as exc:
            return Reject([*problems, *prefixed("data", exc.problems)])
        if draft.certificate_number != row.certificate_number:
            problems.append(
                (
                    "data.certificate_number",
                    f"{draft.certificate_number!r} is not the row's {row.certificate_number!r}",
                )
            )
        try:
            entry = self.entry(draft.catalogue_code)
        except UnknownCatalogueError as exc:
            return Reject([*problems, ("data.catalogue", str(exc))])
        try:
            require_issuer_of_type(self.actor, entry)
        except AccessDeniedError as exc:
            problems.append(("data.catalogue", f"{entry.name}: {exc}"))
        if problems:
            return Reject(problems)
        file_key = sm3(row.file).hex() if row.file is not None else None
        try:
            # a new version keeps the serial its certificate was first stored with
            number = draft.certificate_number
            earlier = None if version == 1 else stored_version(self.repo, entry.issuer.credit_code, number)
            prepared = prepare_version(
                entry,
                draft,
                version=version,
                holder_key=self.repo.holder_key,
                serial_key=self.repo.serial_key,
                serial=earlier.serial if earlier is not None else None,
                file_key=file_key,
            )
        except RecordError as exc:
            return Reject(prefixed("data", exc.problems))
        if row.file is not None:
            problem = self.check_file(bytes(row.file), str(prepared.identifier))
            if problem is not None:
                return Reject([("file", problem)])
        seq = int(row.seq)
        call = self.call(table, seq, completed_at=completed_at, channel=row.channel)
        return CertificatePlan(
            seq, prepared, draft, row.channel, completed_at, row.file, row.file_media_type, call
        )

    def check_file(self, file: bytes, identifier: str) -> str | None:
        """Why an agency-sealed file cannot be stored for ``identifier`` (None: VALID and for it)."""
        if self.trust is None:
            return "this exchange has no trust anchors to verify agency-sealed files with"
        report = verify_file(file, trust=self.trust)
        if report.indication is not Indication.VALID:
            reasons = "; ".join(report.problems) or "; ".join(
                f"{c.name}: {c.reason}" for s in report.signatures for c in s.checks if c.reason
            )
            return f"the sealed file is {report.indication.value}: {reasons or 'see certstore verify'}"[:1000]
        if report.certificate is None or report.certificate.identifier != identifier:
            claimed = None if report.certificate is None else report.certificate.identifier
            return f"the file is for certificate {claimed}, the data for {identifier}"
        return None

    def status(self, table: str, row: Any) -> StatusPlan | Reject:
        """The plan of a status row (挂起 / 恢复 / 吊销 / 注销 / 废止), or why it is rejected."""
        problems = self._issuer_problems(row.issuer_code)
        action = STATUS_ACTIONS.get(row.action)
        if action is None:
            problems.append(("action", f"one of {', '.join(STATUS_ACTIONS)}; got {row.action!r}"))
        version = row.version
        if version is not None and (not isinstance(version, int) or version < 1):
            problems.append(("version", f"a whole number ≥ 1 or empty (the latest), got {version!r}"))
        if not isinstance(row.reason, str) or not row.reason.strip():
            problems.append(("reason", "required: why (every status change is explained)"))
        if problems or action is None:
            return Reject(problems)
        seq = int(row.seq)
        return StatusPlan(seq, row.certificate_number, version, action, row.reason, self.call(table, seq))
