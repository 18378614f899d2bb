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

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from certstore.access import AccessDeniedError, Actor
from certstore.catalogue import CatalogueEntry
from certstore.checks import Indication
from certstore.crypto.sm3 import sm3, sm3_hex
from certstore.crypto.trust import TrustStore
from certstore.exchange import rowcheck
from certstore.exchange.cursor import Problems
from certstore.exchange.source import ExchangeSource
from certstore.lifecycle import Action, Status
from certstore.records import CertificateDraft, PreparedVersion, RecordError, draft_from_json, prepare_version
from certstore.services import deadlines
from certstore.services.authorization import require_issuer_of_type
from certstore.services.calls import Call, Origin, Via
from certstore.services.catalogue import UnknownCatalogueError, get_entry, list_submissions
from certstore.services.certificates import stored_serial, stored_versions
from certstore.store.repository import Repository
from certstore.verify import verify_file

__all__ = [
    "ACTION_RESULT",
    "OPERATIONS",
    "STATUS_ACTIONS",
    "AheadPlan",
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
#: ``fe_certificates.operation``: empty = by the version (1 签发, N > 1 变更); ``renew`` = 延续 of version N-1.
OPERATIONS = ("issue", "change", "renew")
#: A completion time this far ahead looks like Beijing time (UTC+8) written without an offset.
_BEIJING_LOOKING = (timedelta(hours=7), timedelta(hours=8, minutes=5))


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
    renewal: bool = False  # 延续 (operation renew): a new version with a later end of validity

    @property
    def version(self) -> int:
        return self.prepared.identifier.version

    @property
    def number(self) -> str:
        return self.draft.certificate_number


@dataclass(frozen=True)
class AheadPlan:
    """A certificate row's plan made in another process (:mod:`certstore.exchange.planning`), in picklable parts:
    the row as that process read it (without its file), the catalogue type and version it was planned with, the
    prepared version's other fields, the completion time in UTC and the fingerprint of the repository's keys. :meth:`Planner.adopt` turns it into the plan
    this process would have made, or refuses it."""

    row: tuple[Any, ...]
    entry: tuple[str, int]
    prepared: dict[str, Any]
    completed_at: datetime
    keys: bytes  # which holder and serial keys it was planned with (Planner.keys)


#: The fields of a prepared version an :class:`AheadPlan` carries (all but its catalogue entry).
_CARRIED = tuple(f.name for f in fields(PreparedVersion) if f.name != "entry")


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


def _time_problem(value: Any) -> str:
    try:
        datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return f"not an ISO 8601 time: {value!r}"
    return f"{value!r} is out of range: not a moment between the years 1 and 9999 in UTC"


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
        self._awaiting: dict[str, CatalogueEntry] | None = None
        self._serials: dict[tuple[str, str], str] = {}  # (issuer, number) → stored serial (never changes)
        self._stored: set[tuple[str, int]] = set()  # (number, version) of the source's issuer, seen stored

    def prefetch_serials(self, rows: Iterable[Any]) -> None:
        """Look up at once, for the certificates of ``rows``, the stored serial their later versions keep and the
        versions already stored (one query instead of one per row; a serial, once stored, never changes — a
        certificate not stored yet is asked again)."""
        issuer = self.source.issuer_code
        numbers = {
            str(row.certificate_number)
            for row in rows
            if isinstance(getattr(row, "version", None), int)
            and isinstance(getattr(row, "certificate_number", None), str)
        }
        if numbers:
            found = stored_versions(self.repo, issuer, numbers)
            self._serials.update({(issuer, number): serial for number, (serial, _) in found.items()})
            self._stored.update(
                (number, version) for number, (_, versions) in found.items() for version in versions
            )

    def stored(self, number: str, version: int) -> bool:
        """Whether version ``version`` of certificate ``number`` was stored when its row's chunk was looked up
        (:meth:`prefetch_serials`): a row for it is a repeat or a conflict, never a version to seal."""
        return (number, version) in self._stored

    def _serial(self, issuer_code: str, number: str) -> str | None:
        key = (issuer_code, number)
        if key not in self._serials:
            serial = stored_serial(self.repo, issuer_code, number)
            if serial is None:
                return None
            self._serials[key] = serial
        return self._serials[key]

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
        self._awaiting = None

    def awaiting(self, code: str) -> CatalogueEntry | None:
        """The source agency's own catalogue type ``code`` submitted and still awaiting the bureau's approval
        (rows of it wait), or None."""
        if self._awaiting is None:
            pending = list_submissions(self.repo, status="pending", issuer_code=self.source.issuer_code)
            self._awaiting = {s.entry.code: s.entry for s in pending}
        return self._awaiting.get(code)

    def _issuer_problems(self, issuer_code: Any) -> Problems:
        if issuer_code != self.source.issuer_code:
            return [
                ("issuer_code", f"this front-end delivers for {self.source.issuer_code}, not {issuer_code}")
            ]
        return []

    def certificate(self, table: str, row: Any, now: datetime) -> CertificatePlan | Reject | Defer:
        """The plan of a certificate row (version 1: 签发, later versions: 变更, or 延续 with operation
        ``renew``), why it is rejected, or why it waits (its catalogue type awaits the bureau's approval)."""
        problems = self._issuer_problems(row.issuer_code)
        problems += rowcheck.check_text(str(row.certificate_number), "certificate_number")
        version = row.version
        if (
            not isinstance(version, int)
            or isinstance(version, bool)
            or not 1 <= version <= rowcheck.MAX_VERSION
        ):
            problems.append(
                ("version", f"a whole number 1 … {rowcheck.MAX_VERSION} (MAX_VERSION), got {version!r}")
            )
        operation = getattr(row, "operation", None)
        if operation is not None and operation not in OPERATIONS:
            problems.append(("operation", f"empty or one of {', '.join(OPERATIONS)}; got {operation!r}"))
        elif operation == "issue" and version != 1:
            problems.append(("operation", f"issue (签发) is version 1, not {version!r}"))
        elif operation in ("change", "renew") and version == 1:
            problems.append(("operation", f"{operation} makes version N > 1 of an issued certificate"))
        if row.channel not in {c.value for c in deadlines.Channel}:
            problems.append(("channel", f"one of online, offline, bulk; got {row.channel!r}"))
        completed_at = row.completed_at
        if not isinstance(completed_at, datetime):
            problems.append(("completed_at", _time_problem(completed_at)))
        else:
            try:
                completed_at = deadlines.check_completed_at(completed_at, now=now)
            except deadlines.ArrivalError as exc:
                ahead = completed_at - now
                hint = (
                    " — times without an offset are UTC: Beijing time is written with +08:00"
                    if _BEIJING_LOOKING[0] <= ahead <= _BEIJING_LOOKING[1]
                    else ""
                )
                problems.append(("completed_at", exc.message + hint))
        if row.file is not None and not isinstance(row.file, bytes | bytearray | memoryview):
            problems.append(("file", "the file column holds bytes (BLOB / bytea)"))
        elif row.file is not None and not row.file_media_type:
            problems.append(("file_media_type", "required with a file (application/ofd or application/pdf)"))
        elif row.file is not None:
            problem = rowcheck.check_file(bytes(row.file), row.file_media_type)
            if problem is not None:
                problems.append(("file", problem))
        try:
            document = rowcheck.parse_json(row.data, "data")
        except rowcheck.RowCheckError as exc:
            return Reject([*problems, *exc.problems])
        code = document.get("catalogue") if isinstance(document, dict) else None
        known: CatalogueEntry | None = None
        if isinstance(code, str):
            try:
                known = self.entry(code)
            except UnknownCatalogueError:
                known = self.awaiting(code)
        multiline = (
            [f"data.face.{f.name}" for f in known.face_fields() if f.multiline] if known is not None else []
        )
        text_problems = rowcheck.check_tree(document, "data", newline_ok=multiline)
        if text_problems:
            return Reject([*problems, *text_problems])
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
            pending = self.awaiting(draft.catalogue_code)
            if pending is not None and not problems:
                return Defer(
                    f"catalogue type {pending.code} (version {pending.version}) is awaiting the bureau's "
                    "approval; this row is applied once it is approved"
                )
            return Reject([*problems, ("data.catalogue", str(exc))])
        try:
            require_issuer_of_type(self.actor, entry)
        except AccessDeniedError as exc:
            problems.append(("data.catalogue", f"{entry.name}: {exc}"))
        problems += rowcheck.check_dates(entry, draft.issue_date, draft.valid_from, draft.valid_until)
        if problems:
            return Reject(problems)
        file_key = sm3(row.file).hex() if row.file is not None else None
        try:
            # a new version keeps the serial its certificate was first stored with
            number = draft.certificate_number
            serial = None if version == 1 else self._serial(entry.issuer.credit_code, number)
            prepared = prepare_version(
                entry,
                draft,
                version=version,
                holder_key=self.repo.holder_key,
                serial_key=self.repo.serial_key,
                serial=serial,
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
            seq, prepared, draft, row.channel, completed_at, row.file, row.file_media_type, call,
            renewal=operation == "renew",
        )  # fmt: skip

    @cached_property
    def keys(self) -> bytes:
        """A fingerprint of the repository's holder and serial keys (a plan made with other keys is not taken)."""
        holder, serial = self.repo.holder_key, self.repo.serial_key
        return sm3(len(holder).to_bytes(4, "big") + holder + serial)[:16]

    def ahead(self, plan: CertificatePlan, row: Any) -> AheadPlan:
        """``plan`` of ``row`` (read without its file) in picklable parts, for another process to adopt."""
        prepared = plan.prepared
        return AheadPlan(
            tuple(row),
            (prepared.entry.code, prepared.entry.version),
            {name: getattr(prepared, name) for name in _CARRIED},
            plan.completed_at,
            self.keys,
        )

    def adopt(self, table: str, ahead: AheadPlan, row: Any, now: datetime) -> CertificatePlan | None:
        """The plan ``ahead`` stands for, if it is the one :meth:`certificate` would make of ``row`` of ``table``
        (a batch read: without its file, whose presence it says) at ``now``; None: plan the row here.

        Planning is a pure function of the row, the catalogue, the stored serial of a later version, the keys and
        the time. So the plan is taken when the row reads the same; it was made with this repository's keys;
        this planner's catalogue entry of the type is the version it was planned with (a catalogue row of this
        cycle makes the planner forget its entries); a later version's serial is the one stored for its
        certificate now (the other process derives it when the first version was not committed yet — as this
        one would); and its completion time is still not after the arrival (``now``), the one check that reads
        the clock."""
        if ahead.keys != self.keys or ahead.row != tuple(row):
            return None
        try:
            deadlines.check_completed_at(ahead.completed_at, now=now)
        except deadlines.ArrivalError:
            return None
        code, version = ahead.entry
        try:
            entry = self.entry(code)
        except UnknownCatalogueError:
            return None
        if entry.version != version:
            return None
        prepared = PreparedVersion(entry=entry, **ahead.prepared)
        identifier = prepared.identifier
        if identifier.version > 1:
            serial = self._serial(identifier.issuer_code, prepared.draft.certificate_number)
            if serial is not None and serial != identifier.serial:
                return None
        seq = int(row.seq)
        call = self.call(table, seq, completed_at=ahead.completed_at, channel=row.channel)
        return CertificatePlan(
            seq, prepared, prepared.draft, row.channel, ahead.completed_at, None, row.file_media_type, call,
            renewal=getattr(row, "operation", None) == "renew",
        )  # fmt: skip

    def check_file(self, file: bytes, identifier: str) -> str | None:
        """Why an agency-sealed file cannot be stored for ``identifier`` (None: VALID and for it)."""
        if self.trust is None:
            return "this exchange has no trust anchors to verify agency-sealed files with"
        try:
            report = verify_file(file, trust=self.trust)
        except Exception as exc:
            return f"cannot be read as a sealed file: {type(exc).__name__}: {exc}"[:1000]
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
        problems += rowcheck.check_text(str(row.certificate_number), "certificate_number")
        version = row.version
        if version is not None and (
            not isinstance(version, int)
            or isinstance(version, bool)
            or not 1 <= version <= rowcheck.MAX_VERSION
        ):
            problems.append(
                (
                    "version",
                    f"a whole number 1 … {rowcheck.MAX_VERSION} or empty (the latest), got {version!r}",
                )
            )
        if not isinstance(row.reason, str) or not row.reason.strip():
            problems.append(("reason", "required: why (every status change is explained)"))
        else:
            problems += rowcheck.check_text(row.reason, "reason", newline=True)
        if problems or action is None:
            return Reject(problems)
        seq = int(row.seq)
        return StatusPlan(seq, row.certificate_number, version, action, row.reason, self.call(table, seq))
