"""Sharing (共享服务): the reads of certificate data by issuing agencies, using units' window staff and holders — one
certificate, its history, its business status, a holder's certificates (一号查询), the face preview, the sealed
copy (副本) and the attachment of certificates to a matter — each authorised by the knowledge-scope rules
(:mod:`certstore.services.scope`) and audited here, whichever entry point (API, pages) calls.

Every function takes the :class:`~certstore.app.Application`, the :class:`~certstore.services.calls.Call` and the
window's :class:`~certstore.services.scope.Serving` (ignored for agencies, except a stated matter, which is
recorded). The rules:

- an agency sees only certificates it issued; its look-up of a holder (一号查询) is answered with the holder's
  certificates of its own issue and audited with the holder's digest;
- window staff see only certificates of the holder they serve, under a matter their unit's case system registered
  for that holder — all of that holder's certificates — or under the holder's authorisation — only what it names
  (:mod:`certstore.services.scope`); history and copies show only versions held by that holder (and covered by
  the authorisation), so a certificate whose holder was changed does not reveal the new holder to a clerk serving
  the old one;
- a holder (role holder) sees their own certificates — read, history, status, preview, copy (for 持证人本人), and
  the look-up by their own ID;
- an identifier the served holder does not hold answers exactly as one that does not exist
  (:class:`~certstore.services.certificates.CertificateNotFoundError`, same message);
- window staff attach to a matter only certificates in force (现行有效): one revoked, cancelled, annulled,
  suspended, expired or superseded is refused (:class:`NotInForceError`, a denial with status 422) and nothing is
  attached; its copy (副本) is still made, its watermark headed by its status (:mod:`certstore.services.copies`);
- every other role is refused.

Exactly one audit entry per call (:func:`~certstore.services.calls.audit_now` through ``app.audit``), allowed or
refused, with the actor, the action (``certificate.read``, ``certificate.history``, ``certificate.status``,
``certificate.preview``, ``certificate.copy``, ``holder.lookup``, ``matter.attach_certificates``), the
certificate, the holder digest, the matter and the outcome. The entry of an allowed call is durable before its
data is returned: if it cannot be written the call fails and returns nothing. A refusal (403), a certificate that
is not found or not the served holder's (404 — the entry says which, the caller is not told) or a failure is
recorded with its status and reason before the exception goes on; the call's ``recorded`` list then names the
entry, so the API middleware does not log the request again. Should that entry itself fail to be written, the
exception still goes on unrecorded and the adapter (the middleware) logs the request instead — never twice.

Window look-ups are limited per clerk and watched for bursts (:mod:`certstore.services.lookup_limits`): a
clerk over the limit is refused (429, audited as a denial) before anything is read; a clerk naming more distinct
holders in the alert window than allowed raises the alert (``holder.lookup_burst`` entry, metric). The scope
decision reads the registered matters and authorisations and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from certstore.access import AccessDeniedError, Role
from certstore.audit import Outcome
from certstore.identifiers import HolderIdType, holder_id_digest, holder_ref, validate_holder_id
from certstore.keystore import KeyStoreError
from certstore.lifecycle import Status
from certstore.records import Certificate
from certstore.services import certificates, copies, lookup_limits, renditions
from certstore.services.calls import Call, audit_now
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.lookup_limits import LookupRateLimitedError
from certstore.services.scope import (
    NotAuthorisedError,
    NotHeldError,
    Served,
    Serving,
    authorize,
    declared,
    not_found,
    own,
    refuse_uncovered,
    serve,
)
from certstore.timezones import CHINA_STANDARD_TIME

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "CertificateStatus",
    "Copy",
    "NotInForceError",
    "attach",
    "copy",
    "history",
    "holder_certificates",
    "not_in_force_since",
    "preview",
    "read",
    "status",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CertificateStatus:
    """The business status of a certificate at ``checked_at`` (业务状态核验)."""

    identifier: str
    status: Status
    valid_until: date | None
    superseded_by: str | None
    checked_at: datetime


@dataclass(frozen=True)
class Copy:
    """A sealed, watermarked copy (副本) as OFD bytes and the file name to offer it under."""

    data: bytes
    file_name: str


def not_in_force_since(certificate: Certificate, status: Status) -> date | None:
    """The day (China Standard Time) since which ``certificate`` has had ``status``, a status other than valid:
    the day after ``valid_until`` when expired, else the day its stored status last changed."""
    if status is Status.VALID:
        return None
    if status is Status.EXPIRED:
        return certificate.valid_until + timedelta(days=1) if certificate.valid_until else None
    return certificate.status_changed_at.astimezone(CHINA_STANDARD_TIME).date()


class NotInForceError(ValueError):
    """A certificate that is not in force (非现行有效: revoked, cancelled, annulled, suspended, expired or
    superseded) was to be attached to a matter: window staff attach only valid certificates (用证)."""

    def __init__(self, identifier: str, status: Status, since: date | None) -> None:
        self.identifier, self.status, self.since = identifier, status, since
        when = f" since {since.isoformat()}" if since else ""
        super().__init__(
            f"certificate {identifier} is not in force ({status.value}{when}): only valid certificates are "
            "attached to a matter"
        )


@dataclass
class _Entry:
    """What the call's one audit entry says, filled in as the use case learns it."""

    action: str
    certificate: str | None = None
    holder_digest: str | None = None
    matter: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    served: Served | None = None  # the window's checked declaration, once known


def _refusal(exc: BaseException) -> tuple[Outcome, int, str]:
    """Outcome, status and reason of the entry of a call that ended in ``exc`` (the status the API answers)."""
    if isinstance(exc, LookupRateLimitedError):
        return Outcome.DENY, 429, str(exc)
    if isinstance(exc, NotAuthorisedError):
        return Outcome.DENY, 404, "the holder's authorisation does not cover this certificate (知悉范围)"
    if isinstance(exc, NotHeldError):
        return Outcome.DENY, 404, "the certificate is not held by the holder being served (知悉范围)"
    if isinstance(exc, NotInForceError):
        return Outcome.DENY, 422, str(exc)
    if isinstance(exc, AccessDeniedError):
        return Outcome.DENY, 403, str(exc)
    if isinstance(exc, CertificateNotFoundError):
        return Outcome.ALLOW, 404, str(exc)
    if isinstance(exc, KeyStoreError):
        return Outcome.ERROR, 503, str(exc)
    if isinstance(exc, ValueError):
        return Outcome.ALLOW, 422, str(exc)
    return Outcome.ERROR, 500, f"unexpected error: {type(exc).__name__}"


def _record(app: Application, call: Call, entry: _Entry, **outcome: Any) -> None:
    assert app.audit is not None
    event = call.event(
        entry.action,
        certificate=entry.certificate,
        holder_digest=entry.holder_digest,
        matter=entry.matter,
        details=entry.details or None,
        **outcome,
    )
    audit_now(app.audit, call, event)


@contextmanager
def _audited(app: Application, call: Call, entry: _Entry) -> Iterator[_Entry]:
    """Run the use case's body, then write its one entry: allowed when the body returned (before the caller gets
    the data), refused or failed otherwise (the exception goes on; a certificate of another holder goes on as
    the not-found of a certificate that does not exist)."""
    try:
        if call.actor.role is Role.WINDOW:  # the per-clerk limit, before anything is read
            lookup_limits.guard_of(app).admit(call.actor.ref)
        yield entry
    except Exception as exc:
        outcome, status_code, reason = _refusal(exc)
        try:
            _record(app, call, entry, outcome=outcome, status_code=status_code, reason=reason)
        except Exception:
            log.exception("audit entry of refused %s could not be written; the adapter logs it", entry.action)
        if isinstance(exc, NotHeldError):
            raise CertificateNotFoundError(str(exc)) from None
        raise
    _record(app, call, entry)


def _reader(call: Call) -> Role:
    role = call.actor.role
    if role not in (Role.AGENCY, Role.WINDOW, Role.HOLDER):
        raise AccessDeniedError(f"role {role.value} does not read certificates")
    return role


def _stated_matter(serving: Serving) -> str | None:
    matter = (serving.matter or "").strip()
    return matter[:100] or None


def _serve(app: Application, call: Call, serving: Serving, entry: _Entry) -> Served:
    """:func:`certstore.services.scope.serve`, with the declared matter and holder in the entry even when the
    declaration is refused (an auditor searching by holder or matter finds the attempt)."""
    entry.matter = _stated_matter(serving)
    entry.holder_digest = declared(app.repo.holder_key, serving).holder_ref
    _note_holder(app, call, entry.holder_digest)
    served = serve(app, call, serving)
    entry.matter, entry.holder_digest, entry.served = served.matter, served.holder_ref, served
    if served.basis != "matter":
        entry.details["authorisations"] = [a.id for a in served.authorisations]
    return served


def _note_holder(app: Application, call: Call, holder: str) -> None:
    """Count the holder a clerk named towards the burst alert; on a burst, the summary entry
    ``holder.lookup_burst`` (:mod:`certstore.services.lookup_limits`)."""
    guard = lookup_limits.guard_of(app)
    distinct = guard.note(call.actor.ref, call.actor.organisation_code, holder)
    if distinct is None:
        return
    limits = guard.limits
    details = {
        "distinct_holders": distinct,
        "threshold": limits.alert_holders,
        "window_seconds": limits.alert_window,
    }
    try:
        assert app.audit is not None
        audit_now(app.audit, call, call.event("holder.lookup_burst", reason="look-up burst", details=details))
    except Exception:
        log.exception("the look-up burst alert of %s could not be recorded", call.actor.ref)
    log.warning("look-up burst: %s named %d distinct holders", call.actor.ref, distinct)


def _readable(app: Application, call: Call, identifier: str, serving: Serving, entry: _Entry) -> Certificate:
    """The certificate ``identifier`` if ``call`` may read it; fills in the entry (window: the matter is checked
    before anything is read)."""
    entry.certificate = identifier[:128]
    role = _reader(call)
    served: Served | None = None
    entry.matter = _stated_matter(serving)
    if role is Role.WINDOW:
        served = _serve(app, call, serving, entry)
    elif role is Role.HOLDER:
        entry.holder_digest = call.actor.holder_ref
    try:
        certificate = certificates.get(app.repo, identifier)
    except CertificateNotFoundError:
        raise not_found(identifier) from None
    if role is Role.HOLDER:
        own(call.actor, certificate)
    elif served is None:
        entry.holder_digest = certificate.holder_ref
        authorize(app, call, certificate, serving)
    else:
        refuse_uncovered(served, certificate)
    return certificate


def read(app: Application, call: Call, identifier: str, serving: Serving) -> Certificate:
    """One certificate version: metadata, face data, holder (``certificate.read``)."""
    with _audited(app, call, _Entry("certificate.read")) as entry:
        return _readable(app, call, identifier, serving, entry)


def history(app: Application, call: Call, identifier: str, serving: Serving) -> list[Certificate]:
    """Every version of the certificate ``identifier`` belongs to, oldest first, with its lifecycle events
    (``certificate.history``) — for window staff only the versions held by the holder they serve."""
    with _audited(app, call, _Entry("certificate.history")) as entry:
        certificate = _readable(app, call, identifier, serving, entry)
        versions = [
            version
            for version in certificates.history(app.repo, identifier)
            if call.actor.role is Role.AGENCY
            or (
                entry.served.covers(version) if entry.served else version.holder_ref == certificate.holder_ref
            )
        ]
        entry.details["versions"] = [version.identifier for version in versions]
        return versions


def status(app: Application, call: Call, identifier: str, serving: Serving) -> CertificateStatus:
    """The business status of a certificate now, in real time (``certificate.status``)."""
    with _audited(app, call, _Entry("certificate.status")) as entry:
        certificate = _readable(app, call, identifier, serving, entry)
        at = app.now()
        return CertificateStatus(
            identifier=certificate.identifier,
            status=certificate.status_at(at),
            valid_until=certificate.valid_until,
            superseded_by=certificate.superseded_by,
            checked_at=at.replace(microsecond=0),
        )


def preview(
    app: Application,
    call: Call,
    identifier: str,
    serving: Serving,
    dpi: int = 96,
    *,
    max_px: int | None = None,
    image_format: str = "png",
) -> bytes:
    """The face as a PNG (or ``image_format``, e.g. ``webp`` for pages) at ``dpi`` (or a thumbnail of ``max_px``)
    (``certificate.preview``)."""
    with _audited(app, call, _Entry("certificate.preview")) as entry:
        certificate = _readable(app, call, identifier, serving, entry)
        return renditions.preview_png(app, certificate, dpi=dpi, max_px=max_px, image_format=image_format)


def copy(app: Application, call: Call, identifier: str, purpose: str, serving: Serving) -> Copy:
    """The sealed, watermarked copy (副本) of ``identifier`` for the matter being served and ``purpose``
    (``certificate.copy``): window staff, and a holder of their own certificate. The copy names the caller's unit
    (for a holder: 持证人本人), the matter and the caller (:class:`certstore.services.copies.CopyRequest`); it is
    made, then recorded, then returned."""
    with _audited(app, call, _Entry("certificate.copy")) as entry:
        if call.actor.role not in (Role.WINDOW, Role.HOLDER):
            _reader(call)
            raise AccessDeniedError("copies (副本) are made for using units' window staff and holders only")
        certificate = _readable(app, call, identifier, serving, entry)
        principal = call.actor.principal
        if call.actor.role is Role.HOLDER:
            using_unit = "持证人本人"
        else:
            using_unit = principal.organisation_name if principal else call.actor.organisation_code or ""
        request = copies.CopyRequest(
            using_unit=using_unit,
            matter=entry.matter or ("本人使用" if call.actor.role is Role.HOLDER else ""),
            purpose=purpose,
            requested_by=call.actor.ref,
        )
        entry.details["purpose"] = request.purpose
        data = copies.make_copy(
            app.repo,
            certificate.identifier,
            request,
            key=app.repository_sealing_key(),
            trust=app.trust,
            verify_base_url=app.sealing_base_url(),
        )
        return Copy(data, f"{certificate.certificate_number}-副本.ofd")


def holder_certificates(
    app: Application,
    call: Call,
    id_type: HolderIdType | str,
    id_number: str,
    serving: Serving,
    include_superseded: bool = False,
) -> list[Certificate]:
    """A holder's certificates by ID number (一号查询, ``holder.lookup``), newest first; superseded versions only
    with ``include_superseded``. Window staff look up the holder they serve (``serving``'s holder, when stated,
    must be this one) under the matter — all of them under a matter registered for that holder, only the
    authorised ones under the holder's authorisation; an agency gets the holder's certificates of its own issue;
    a holder only their own ID. Raises :class:`ValueError` for an invalid ID."""
    with _audited(app, call, _Entry("holder.lookup")) as entry:
        role = _reader(call)
        kind = HolderIdType(id_type)
        number = validate_holder_id(kind, id_number)
        looked_up = holder_ref(holder_id_digest(app.repo.holder_key, kind, number))
        entry.holder_digest, entry.matter = looked_up, _stated_matter(serving)
        if role is Role.WINDOW:
            if not (serving.holder_id_type or serving.holder_id):
                serving = Serving(serving.matter, kind.value, number)
            stated = _serve(app, call, serving, entry)
            entry.holder_digest = looked_up  # the holder whose certificates were asked for
            if stated.holder_ref != looked_up:
                raise AccessDeniedError("window staff look up only the holder they are serving (知悉范围)")
        if role is Role.HOLDER and looked_up != call.actor.holder_ref:
            raise AccessDeniedError("a holder looks up only their own certificates (by their own ID)")
        found = certificates.list_by_holder(app.repo, kind, number, current_only=not include_superseded)
        if role is Role.AGENCY:
            found = [c for c in found if c.issuer_code == call.actor.organisation_code]
        elif role is Role.WINDOW and entry.served is not None:
            found = [c for c in found if entry.served.covers(c)]
        entry.details["identifiers"] = [c.identifier for c in found]
        return found


def attach(app: Application, call: Call, identifiers: Sequence[str], serving: Serving) -> list[str]:
    """Window staff attach certificates of the holder they serve to the matter (用证记录,
    ``matter.attach_certificates``): every identifier must be that holder's and in force now — a certificate that
    is not (revoked, suspended, expired, superseded …) is refused with :class:`NotInForceError` (a denial, 422),
    and nothing is attached. Returns the identifiers, once each."""
    chosen = list(dict.fromkeys(identifiers))
    with _audited(app, call, _Entry("matter.attach_certificates")) as entry:
        if call.actor.role is not Role.WINDOW:
            raise AccessDeniedError("certificates are attached to matters by window staff")
        served = _serve(app, call, serving, entry)
        entry.details["identifiers"] = chosen
        at = app.now()
        for identifier in chosen:
            try:
                certificate = certificates.get(app.repo, identifier)
            except CertificateNotFoundError:
                raise not_found(identifier) from None
            if not served.covers(certificate):
                entry.certificate = identifier[:128]
                refuse_uncovered(served, certificate)
            state = certificate.status_at(at)
            if state is not Status.VALID:
                entry.certificate = identifier[:128]
                raise NotInForceError(identifier, state, not_in_force_since(certificate, state))
        return chosen
