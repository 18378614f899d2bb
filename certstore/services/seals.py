"""The seal registry (电子印章管理): which organisation each seal belongs to, and whether it may still be used.

A seal (电子印章) belongs to one organisation: the one its signer certificate (签章者) names — credit code in
``organizationIdentifier``, name in ``O`` (:mod:`certstore.seal.owner`). The registry (tables ``seals`` and
``seal_events``, revision 0009) records each seal the repository knows with that owner, and its state changes:

* **valid** (有效) from registration; **suspended** (挂起) by ``suspend``; valid again by ``resume`` (only from
  suspended); **revoked** (吊销) by ``revoke`` — final.
* Every change takes effect at its ``effective_at`` (default: now), which may lie in the past — a key that
  leaked is revoked *as of when it leaked* — but never before the seal's ``validStart`` (the seal did not exist
  before) and never in the future. A suspension or resumption is appended to the history: it may not take
  effect before the latest change already recorded. A revocation may be dated before earlier changes (a leak
  found late); from its effective time on the seal is revoked whatever was recorded for later.
* The state at a time ``t`` (:func:`state_at`) is the changes effective at or before ``t`` folded in order of
  effective time (then of recording); after a revocation nothing changes any more.

Who may change a seal's state: the operator at the command line and the big-data bureau (大数据管理局) over the
API, any seal; an agency (发证机构) may suspend or revoke its own seals (owner = its organisation), not resume
them. Every change writes its event and the call's one audit entry (``seal.suspend`` / ``seal.resume`` /
``seal.revoke``) in one transaction; a refusal is audited as a denial.

The key store's seals are registered on first use (:func:`sync_keystore_seals`: ``certstore seal list``, the
API's start-up, :class:`SealGate`); sealing refuses a seal that is suspended or revoked now
(:meth:`SealGate.require_usable`, asked by :meth:`certstore.app.Application.sealing_key`); a catalogue entry may
name only a seal of its issuer that is not revoked (:func:`check_entry_seal`); verification asks the registry
for a seal's owner and state at the signing time (``seal_owner``, :func:`registered_seal_state`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from certstore.access import AccessDeniedError, Role
from certstore.audit import Outcome
from certstore.catalogue import CatalogueEntry, CatalogueError
from certstore.crypto.x509 import Certificate, CertificateError
from certstore.keystore import KeyStore, KeyStoreError
from certstore.seal import SealFormatError, parse_seal
from certstore.seal.owner import Owner, certificate_owner
from certstore.services import calls
from certstore.services.calls import Call
from certstore.store.models import SealEventRow, SealRow
from certstore.store.repository import Repository

if TYPE_CHECKING:
    from certstore.app import Application

__all__ = [
    "RegisteredSeal",
    "SealAction",
    "SealGate",
    "SealState",
    "SealStatus",
    "SealTransitionError",
    "SealWithdrawnError",
    "UnknownSealError",
    "change_seal",
    "check_entry_seal",
    "entry_seal_check",
    "list_seals",
    "registered_seal_state",
    "resume",
    "revoke",
    "seal_state",
    "state_at",
    "suspend",
    "sync_keystore_seals",
    "withdrawn_seals",
]

log = logging.getLogger(__name__)

#: How far ahead of the repository's clock an effective time may lie (clock skew between the caller and us).
_SKEW = timedelta(minutes=1)


class SealStatus(StrEnum):
    VALID = "valid"
    SUSPENDED = "suspended"
    REVOKED = "revoked"

    @property
    def label(self) -> str:
        return {"valid": "有效", "suspended": "挂起", "revoked": "吊销"}[self.value]


class SealAction(StrEnum):
    SUSPEND = "suspend"
    RESUME = "resume"
    REVOKE = "revoke"


#: (from, action) → to. Revoked is final; resume only from suspended.
_TRANSITIONS = {
    (SealStatus.VALID, SealAction.SUSPEND): SealStatus.SUSPENDED,
    (SealStatus.SUSPENDED, SealAction.RESUME): SealStatus.VALID,
    (SealStatus.VALID, SealAction.REVOKE): SealStatus.REVOKED,
    (SealStatus.SUSPENDED, SealAction.REVOKE): SealStatus.REVOKED,
}


class UnknownSealError(LookupError):
    """No seal with that ES ID in the registry."""


class SealTransitionError(ValueError):
    """The state change is not allowed (already revoked, resume of a seal that is not suspended, an effective
    time out of bounds); the message says why."""


class SealWithdrawnError(RuntimeError):
    """Sealing refused: the seal is suspended or revoked now."""


@dataclass(frozen=True)
class SealState:
    """A seal's state at a time: ``status`` and since when (``effective_at``; the registration's validStart for
    a seal that was never withdrawn)."""

    status: SealStatus
    effective_at: datetime


@dataclass(frozen=True)
class RegisteredSeal:
    """A seal as the registry lists it, with its state now."""

    es_id: str
    name: str
    keystore_name: str | None
    owner_code: str
    owner_name: str
    valid_start: datetime
    valid_end: datetime
    registered_at: datetime
    state: SealState

    def to_dict(self) -> dict[str, object]:
        return {
            "es_id": self.es_id,
            "name": self.name,
            "keystore_name": self.keystore_name,
            "owner": {"credit_code": self.owner_code, "name": self.owner_name},
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
            "registered_at": self.registered_at.isoformat(),
            "status": self.state.status.value,
            "label": self.state.status.label,
            "since": self.state.effective_at.isoformat(),
        }


# --- the state at a time -----------------------------------------------------------------------------------


def state_at(valid_start: datetime, events: Sequence[SealEventRow], at: datetime) -> SealState:
    """The state at ``at``: the events effective at or before it, folded in order (see the module docstring)."""
    state = SealState(SealStatus.VALID, valid_start)
    for event in sorted(events, key=lambda e: (e.effective_at, e.id or 0)):
        if event.effective_at > at or state.status is SealStatus.REVOKED:
            break
        to = _TRANSITIONS.get((state.status, SealAction(event.action)))
        if to is not None:  # an event a later-recorded, earlier revocation overtook changes nothing
            state = SealState(to, event.effective_at)
    return state


def _events(session: Session, es_id: str) -> list[SealEventRow]:
    query = select(SealEventRow).where(SealEventRow.es_id == es_id).order_by(SealEventRow.id)
    return list(session.scalars(query).all())


def _registered(row: SealRow, events: Sequence[SealEventRow], now: datetime) -> RegisteredSeal:
    return RegisteredSeal(
        row.es_id, row.name, row.keystore_name, row.owner_code, row.owner_name, row.valid_start,
        row.valid_end, row.registered_at, state_at(row.valid_start, events, now),
    )  # fmt: skip


def registered_seal_state(
    repo: Repository, es_id: str, at: datetime
) -> tuple[RegisteredSeal, SealState] | None:
    """The registered seal ``es_id`` (state now) and its state at ``at``; None when the registry does not know it
    (one indexed read: verification asks this per seal signature)."""
    with repo.db.session(readonly=True) as session:
        row = session.get(SealRow, es_id)
        if row is None:
            return None
        events = _events(session, es_id)
        return _registered(row, events, repo.now()), state_at(row.valid_start, events, at)


def seal_state(repo: Repository, es_id: str, at: datetime | None = None) -> SealState:
    """The state of the registered seal ``es_id`` at ``at`` (default: now) and since when;
    :class:`UnknownSealError` when the registry does not know it."""
    found = registered_seal_state(repo, es_id, at or repo.now())
    if found is None:
        raise UnknownSealError(f"no seal {es_id!r} in the seal registry (see 'certstore seal list')")
    return found[1]


# --- registering the key store's seals ---------------------------------------------------------------------


def _owner(store: KeyStore, name: str, listed: Iterable[bytes]) -> Owner | None:
    """The owner of the key-store seal ``name``: the organisation of the first signer certificate it lists that
    names one, else of the key-store signer it lists (a seal listing digests only)."""
    for der in listed:
        try:
            owner = certificate_owner(Certificate.from_der(der))
        except CertificateError:
            continue
        if owner.credit_code:
            return owner
    from certstore.services.issuance import sealing_key_for_seal  # sealing (pyhanko): imported when needed

    try:
        owner = certificate_owner(sealing_key_for_seal(store, name).certificate)
    except (KeyStoreError, SealFormatError):
        return None
    return owner if owner.credit_code else None


def sync_keystore_seals(app: Application) -> list[str]:
    """Register every seal of the key store the registry does not know yet (by key-store name; idempotent, and
    cheap when nothing is new: one query and a directory listing). Returns the ES IDs registered. A seal whose
    signer certificate names no credit code cannot be tied to an organisation and is left out (logged)."""
    files = app.keystore.seal_files()
    if not files:
        return []
    with app.repo.db.session(readonly=True) as session:
        known = set(session.scalars(select(SealRow.keystore_name)).all())
        es_ids = set(session.scalars(select(SealRow.es_id)).all())
    added: list[SealRow] = []
    now = app.now()
    for path in files:
        if path.stem in known:
            continue
        try:
            seal = parse_seal(path.read_bytes())
        except (SealFormatError, OSError) as exc:
            log.warning("key-store seal %s not registered: %s", path.stem, exc)
            continue
        if seal.es_id in es_ids:
            continue  # the same seal under another key-store name: registered once
        owner = _owner(app.keystore, path.stem, seal.signer_certificates)
        if owner is None or owner.credit_code is None:
            log.warning(
                "key-store seal %s not registered: its signer certificate names no credit code", path.stem
            )
            continue
        es_ids.add(seal.es_id)
        added.append(SealRow(
            es_id=seal.es_id, name=seal.name, keystore_name=path.stem, owner_code=owner.credit_code,
            owner_name=owner.name or owner.credit_code, valid_start=seal.valid_start, valid_end=seal.valid_end,
            registered_at=now,
        ))  # fmt: skip
    if not added:
        return []
    try:
        with app.repo.db.session() as session:
            for row in added:
                if session.get(SealRow, row.es_id) is None:  # another process may have been quicker
                    session.add(row)
    except (
        IntegrityError
    ) as exc:  # a concurrent registration of the same seal (unique key): the next call sees it
        log.info("seal registration raced: %s", exc)
        return []
    return [row.es_id for row in added]


# --- reading -----------------------------------------------------------------------------------------------


def _may_list(call: Call) -> None:
    if call.actor.role not in (Role.OPERATOR, Role.BUREAU, Role.AGENCY, Role.AUDITOR):
        raise AccessDeniedError(f"role {call.actor.role.value} may not list seals")


def list_seals(app: Application, call: Call) -> list[RegisteredSeal]:
    """The registered seals with their state now (the key store's registered first): all of them for the
    operator, the bureau and auditors, an agency's own for an agency. Audited (``seal.list``)."""
    assert app.audit is not None
    try:
        _may_list(call)
    except AccessDeniedError as exc:
        calls.audit_now(app.audit, call, call.event("seal.list", outcome=Outcome.DENY, status_code=403,
                                                    reason=str(exc)))  # fmt: skip
        raise
    sync_keystore_seals(app)
    query = select(SealRow).order_by(SealRow.owner_code, SealRow.es_id)
    if call.actor.role is Role.AGENCY:
        query = query.where(SealRow.owner_code == call.actor.organisation_code)
    now = app.now()
    with app.repo.db.session(readonly=True) as session:
        rows = list(session.scalars(query).all())
        events: dict[str, list[SealEventRow]] = {row.es_id: [] for row in rows}
        for event in session.scalars(select(SealEventRow).order_by(SealEventRow.id)).all():
            if event.es_id in events:
                events[event.es_id].append(event)
        seals = [_registered(row, events[row.es_id], now) for row in rows]
    calls.audit_now(app.audit, call, call.event("seal.list", details={"count": len(seals)}))
    return seals


def withdrawn_seals(app: Application) -> list[tuple[str, str, datetime]]:
    """(ES ID, "suspended" | "revoked", since when) of every seal not valid now — what a status snapshot lists
    (:data:`certstore.services.status_snapshot.SealStates`)."""
    now = app.now()
    with app.repo.db.session(readonly=True) as session:
        rows = {row.es_id: row for row in session.scalars(select(SealRow)).all()}
        grouped: dict[str, list[SealEventRow]] = {}
        for event in session.scalars(select(SealEventRow).order_by(SealEventRow.id)).all():
            grouped.setdefault(event.es_id, []).append(event)
    withdrawn = []
    for es_id, events in sorted(grouped.items()):
        state = state_at(rows[es_id].valid_start, events, now)
        if state.status is not SealStatus.VALID:
            withdrawn.append((es_id, state.status.value, state.effective_at))
    return withdrawn


# --- changing a seal's state -------------------------------------------------------------------------------


def _authorise(call: Call, action: SealAction, row: SealRow) -> None:
    role = call.actor.role
    if role in (Role.OPERATOR, Role.BUREAU):
        return
    if role is Role.AGENCY and action is not SealAction.RESUME:
        if call.actor.organisation_code == row.owner_code:
            return
        raise AccessDeniedError(
            f"seal {row.es_id} belongs to {row.owner_name} ({row.owner_code}), not to your organisation "
            f"({call.actor.organisation_code}): an agency suspends or revokes only its own seals"
        )
    raise AccessDeniedError(
        f"role {role.value} may not {action.value} a seal; allowed: operator, bureau (大数据管理局)"
        + ("" if action is SealAction.RESUME else ", agency (its own seals)")
    )


def _check_time(row: SealRow, events: Sequence[SealEventRow], action: SealAction, effective: datetime,
                now: datetime) -> SealState:  # fmt: skip
    """The state the change applies to, after checking ``effective`` against the seal and its history."""
    when = effective.isoformat()
    if effective > now + _SKEW:
        raise SealTransitionError(f"effective time {when} lies in the future (now {now.isoformat()})")
    if effective < row.valid_start:
        raise SealTransitionError(
            f"effective time {when} is before the seal's validStart {row.valid_start.isoformat()}: the seal did "
            "not exist yet"
        )
    latest = max((e.effective_at for e in events), default=None)
    if action is SealAction.REVOKE:
        state = state_at(row.valid_start, events, effective)
    else:
        if latest is not None and effective < latest:
            raise SealTransitionError(
                f"effective time {when} is before the seal's latest recorded change ({latest.isoformat()}); only "
                "a revocation may be dated back"
            )
        state = state_at(row.valid_start, events, max(effective, latest or effective))
    if (state.status, action) not in _TRANSITIONS:
        if state.status is SealStatus.REVOKED:
            why = f"it is revoked since {state.effective_at.isoformat()} (a revocation is final)"
        elif action is SealAction.RESUME:
            why = f"it is {state.status.value}, not suspended"
        else:
            why = f"it is already {state.status.value} since {state.effective_at.isoformat()}"
        raise SealTransitionError(f"seal {row.es_id} cannot be {_PAST[action]} as of {when}: {why}")
    return state


_PAST = {SealAction.SUSPEND: "suspended", SealAction.RESUME: "resumed", SealAction.REVOKE: "revoked"}


def change_seal(
    app: Application,
    call: Call,
    es_id: str,
    action: SealAction,
    *,
    reason: str,
    effective_at: datetime | None = None,
) -> RegisteredSeal:
    """Suspend, resume or revoke the registered seal ``es_id`` as of ``effective_at`` (default: now), for
    ``reason``: authorise, check the change against the seal's history, append the event and the call's one
    audit entry in one transaction (module docstring). Raises :class:`UnknownSealError`,
    :class:`SealTransitionError`, :class:`~certstore.access.AccessDeniedError` (audited as a denial)."""
    if not reason.strip():
        raise SealTransitionError("reason: say why the seal's state changes")
    if effective_at is not None and effective_at.tzinfo is None:
        raise SealTransitionError("effective time: give a timezone-aware time")
    assert app.audit is not None
    action_name = f"seal.{action.value}"
    sync_keystore_seals(app)
    now = app.now()
    effective = (effective_at or now).replace(microsecond=0)
    try:
        with app.repo.db.session() as session:
            row = session.get(SealRow, es_id, with_for_update=True)
            if row is None:
                raise UnknownSealError(f"no seal {es_id!r} in the seal registry (see 'certstore seal list')")
            _authorise(call, action, row)
            events = _events(session, es_id)
            before = _check_time(row, events, action, effective, now)
            event = SealEventRow(
                es_id=es_id, action=action.value, effective_at=effective, recorded_at=now,
                actor=call.actor.ref, reason=reason.strip(),
            )  # fmt: skip
            session.add(event)
            session.flush()
            events.append(event)
            details = {
                "es_id": es_id, "seal": row.name, "owner": row.owner_code, "action": action.value,
                "from_status": before.status.value, "to_status": _TRANSITIONS[(before.status, action)].value,
                "effective_at": effective.isoformat(),
            }  # fmt: skip
            calls.audit_in(session, call, call.event(action_name, reason=reason.strip(), details=details))
            return _registered(row, events, now)
    except AccessDeniedError as exc:
        calls.audit_now(app.audit, call, call.event(
            action_name, outcome=Outcome.DENY, status_code=403, reason=str(exc), details={"es_id": es_id},
        ))  # fmt: skip
        raise


def suspend(app: Application, call: Call, es_id: str, *, reason: str,
            effective_at: datetime | None = None) -> RegisteredSeal:  # fmt: skip
    """挂起: :func:`change_seal` with :attr:`SealAction.SUSPEND`."""
    return change_seal(app, call, es_id, SealAction.SUSPEND, reason=reason, effective_at=effective_at)


def resume(app: Application, call: Call, es_id: str, *, reason: str,
           effective_at: datetime | None = None) -> RegisteredSeal:  # fmt: skip
    """恢复: :func:`change_seal` with :attr:`SealAction.RESUME`."""
    return change_seal(app, call, es_id, SealAction.RESUME, reason=reason, effective_at=effective_at)


def revoke(app: Application, call: Call, es_id: str, *, reason: str,
           effective_at: datetime | None = None) -> RegisteredSeal:  # fmt: skip
    """吊销 (final): :func:`change_seal` with :attr:`SealAction.REVOKE`."""
    return change_seal(app, call, es_id, SealAction.REVOKE, reason=reason, effective_at=effective_at)


# --- sealing and the catalogue -----------------------------------------------------------------------------


class SealGate:
    """Whether a seal may seal now, as the registry says — cached per ES ID for ``ttl`` seconds (one per
    application: sealing asks on every file, a state change is seen within ``ttl``). Measured on SQLite: a cached
    answer ~1 µs, a registry read ~0.9 ms (two indexed queries) — small next to sealing an OFD, but a batch or
    an import seals thousands of files a minute, so the 5-second cache stays."""

    def __init__(self, ttl: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self._clock = ttl, clock
        self._cache: dict[str, tuple[float, SealState | None]] = {}
        self._es_ids: dict[bytes, str] = {}
        self._lock = threading.Lock()
        self._synced = False

    def sync_once(self, app: Application) -> None:
        """:func:`sync_keystore_seals`, the first time it is asked in this process."""
        if not self._synced:
            sync_keystore_seals(app)
            self._synced = True

    def require_usable(self, app: Application, seal_der: bytes, seal_name: str) -> None:
        """:class:`SealWithdrawnError` when the seal ``seal_der`` is suspended or revoked now (a seal the registry
        does not know was never withdrawn)."""
        es_id = self._es_ids.get(seal_der)
        if es_id is None:
            es_id = self._es_ids[seal_der] = parse_seal(seal_der).es_id
        stamp = self._clock()
        with self._lock:
            cached = self._cache.get(es_id)
        if cached is None or stamp - cached[0] > self.ttl:
            self.sync_once(app)
            found = registered_seal_state(app.repo, es_id, app.now())
            cached = (stamp, None if found is None else found[1])
            with self._lock:
                self._cache[es_id] = cached
        state = cached[1]
        if state is not None and state.status is not SealStatus.VALID:
            raise SealWithdrawnError(
                f"seal {seal_name} ({es_id}) is {state.status.value} ({state.status.label}) since "
                f"{state.effective_at.isoformat()}: it may not seal"
            )


def check_entry_seal(app: Application, entry: CatalogueEntry) -> None:
    """A catalogue entry may name only a seal its issuer owns that is not revoked ("default": the issuer's own
    seal, which must exist): :class:`~certstore.catalogue.CatalogueError` (field ``seal``) otherwise. Checked at
    submission and at approval."""
    from certstore.services.issuance import ISSUER_SEAL, issuer_seal_name  # sealing: imported when needed

    code, name = entry.issuer.credit_code, entry.issuer.name
    try:
        seal_name = issuer_seal_name(app.keystore, code) if entry.seal == ISSUER_SEAL else entry.seal
        seal = parse_seal(app.keystore.seal(seal_name))
    except (KeyStoreError, SealFormatError) as exc:
        raise CatalogueError([("seal", str(exc))], source=f"catalogue entry {entry.code}") from None
    sync_keystore_seals(app)
    with app.repo.db.session(readonly=True) as session:
        row = session.get(SealRow, seal.es_id)
        events = _events(session, seal.es_id) if row is not None else []
    if row is None:
        owner = _owner(app.keystore, seal_name, seal.signer_certificates)
        owner_code = None if owner is None else owner.credit_code
        owner_text = "no organisation" if owner is None else owner.describe()
    else:
        owner_code, owner_text = row.owner_code, f"{row.owner_name} ({row.owner_code})"
    if owner_code is None or owner_code.upper() != code.upper():
        raise CatalogueError(
            [("seal", f"seal {seal_name!r} ({seal.es_id}) belongs to {owner_text}, not to the issuer {name} "
                      f"({code}): a catalogue type may name only its issuer's own seal")],
            source=f"catalogue entry {entry.code}",
        )  # fmt: skip
    if row is not None:
        state = state_at(row.valid_start, events, app.now())
        if state.status is SealStatus.REVOKED:
            raise CatalogueError(
                [
                    (
                        "seal",
                        f"seal {seal_name!r} ({seal.es_id}) is revoked since {state.effective_at.isoformat()}",
                    )
                ],
                source=f"catalogue entry {entry.code}",
            )


def entry_seal_check(app: Application) -> Callable[[CatalogueEntry], None]:
    """:func:`check_entry_seal` bound to ``app`` — the ``seal_check`` every entry point hands to
    :func:`certstore.services.catalogue.submit_entry` and ``review_entry``."""
    return lambda entry: check_entry_seal(app, entry)
