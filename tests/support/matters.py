"""Registered matters for tests: window look-ups are allowed only under a matter the using unit's case-handling
system registered for the holder (知悉范围, certstore.services.scope). Tests that look a holder up register the
matter first, through the real use case (:func:`certstore.services.matters.register`) as the unit's case system —
never by weakening the rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from certstore.access import Actor, Principal, Role
from certstore.app import Application
from certstore.keystore import KeyStore
from certstore.services import matters
from certstore.services.calls import Call, Origin, Via
from certstore.store.repository import Repository

__all__ = ["case_system_call", "register_matter", "register_matters"]


def case_system_call(organisation: str, name: str = "case-system") -> Call:
    """A call of ``organisation``'s case-handling system (一窗受理/审批系统), role case_system."""
    principal = Principal(9_000, name, Role.CASE_SYSTEM, organisation, f"{organisation} 受理系统")
    return Call(Actor.of(principal), Origin(Via.API, source="tests"))


def register_matter(
    target: Application | Repository,
    organisation: str,
    matter: str,
    holder_id_type: str,
    holder_id: str,
    *,
    purpose: str = "测试办件",
    days: int = 365,
    valid_from: datetime | None = None,
) -> matters.Matter:
    """Register ``matter`` of the using unit ``organisation`` for the holder ``holder_id_type``/``holder_id``,
    valid from ``valid_from`` (default: a year before the repository's clock, so tests that move the clock back
    stay inside it) for ``days`` days after now. Registering the same matter again returns the stored one."""
    app = target if isinstance(target, Application) else Application(target, KeyStore(Path("/nonexistent")))
    now = app.now()
    start = valid_from or now - timedelta(days=365)
    call = case_system_call(organisation)
    try:
        return matters.register(
            app,
            call,
            matter=matter,
            holder_id_type=holder_id_type,
            holder_id=holder_id,
            purpose=purpose,
            valid_from=start,
            valid_until=now + timedelta(days=days),
        )
    except matters.MatterConflictError:  # registered by this helper before (another validity): that matter
        return matters.get(app, call, matter)


def register_matters(
    target: Application | Repository,
    organisation: str,
    holder_id_type: str,
    holder_id: str,
    numbers: list[str],
) -> None:
    """Register each of ``numbers`` (see :func:`register_matter`) for one holder at one using unit."""
    app = target if isinstance(target, Application) else Application(target, KeyStore(Path("/nonexistent")))
    for number in numbers:
        register_matter(app, organisation, number, holder_id_type, holder_id)
