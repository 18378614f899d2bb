"""Caller hooks inside a service's write transaction (``within=``).

Every service function that changes stored state accepts ``within: Within | None = None``: a callable the
function runs with its session after the change is flushed and before the commit, and only when it changed
something (an idempotent repeat, a revocation of something already revoked, does not call it). Whatever the hook
writes commits together with the change or not at all: the exchange writes its exactly-once ledger and cursor this
way, and the API routes whose services do not take a :class:`~certstore.services.calls.Call` yet (catalogue,
reviews, inspections, grants, calendar) their request's audit entry. The certificate use cases record their own
arrival and audit entry (:mod:`certstore.services.calls`); the hook runs before them. Whatever the hook raises
rolls the change back and propagates.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

__all__ = ["Within", "compose", "run_within"]

#: Called with the session inside the transaction that writes a change, after the change is flushed and before
#: the commit (see the module docstring).
Within = Callable[[Session], None]


def compose(*hooks: Within | None) -> Within | None:
    """One hook running ``hooks`` in order in the same transaction (``None`` entries skipped); ``None`` when
    there is none."""
    present = [hook for hook in hooks if hook is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def composed(session: Session) -> None:
        for hook in present:
            hook(session)

    return composed


def run_within(session: Session, within: Within | None) -> None:
    """Flush the change written so far and run ``within`` (if any) in the same transaction."""
    if within is None:
        return
    session.flush()
    within(session)
