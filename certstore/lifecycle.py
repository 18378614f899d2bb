"""Certificate lifecycle (第十五条): statuses, actions and the one table of legal transitions.

A certificate version is in exactly one *stored* status. "Expired" (过期) is never stored: it is computed from
the validity end and the time of the question (:func:`effective_status`), so no cron job has to flip rows and
an answer about the past is as right as one about today.

Actions:

- 变更 CHANGE and 延续 RENEW create a new version of the certificate; the old version becomes SUPERSEDED
  (已变更/已延续 — kept, never deleted) and the new one starts VALID.
- 挂起 SUSPEND / 恢复 RESUME toggle VALID ⇄ SUSPENDED.
- 吊销 REVOKE (a sanction), 注销 CANCEL (the holder or the law ends it), 废止 ANNUL (the issuing decision is
  void) are terminal.

Every transition carries a reason, an actor and a time; :func:`transition` refuses anything not in the table
with a :class:`TransitionError` that says what is allowed instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from certstore.workdays import local_date

__all__ = [
    "Action",
    "Status",
    "Transition",
    "TransitionError",
    "allowed_actions",
    "effective_status",
    "transition",
]


class Status(StrEnum):
    VALID = "valid"  # 有效
    SUSPENDED = "suspended"  # 挂起
    REVOKED = "revoked"  # 吊销
    CANCELLED = "cancelled"  # 注销
    ANNULLED = "annulled"  # 废止
    SUPERSEDED = "superseded"  # 已变更 / 已延续: a newer version replaced this one
    EXPIRED = "expired"  # 过期 — computed only, never stored

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @property
    def terminal(self) -> bool:
        return self in (Status.REVOKED, Status.CANCELLED, Status.ANNULLED, Status.SUPERSEDED)


_STATUS_LABELS = {
    Status.VALID: "有效",
    Status.SUSPENDED: "挂起",
    Status.REVOKED: "吊销",
    Status.CANCELLED: "注销",
    Status.ANNULLED: "废止",
    Status.SUPERSEDED: "已变更",
    Status.EXPIRED: "过期",
}


class Action(StrEnum):
    ISSUE = "issue"  # 签发 (creates version 1)
    CHANGE = "change"  # 变更
    RENEW = "renew"  # 延续
    SUSPEND = "suspend"  # 挂起
    RESUME = "resume"  # 恢复
    REVOKE = "revoke"  # 吊销
    CANCEL = "cancel"  # 注销
    ANNUL = "annul"  # 废止

    @property
    def label(self) -> str:
        return _ACTION_LABELS[self]

    @property
    def creates_version(self) -> bool:
        return self in (Action.CHANGE, Action.RENEW)


_ACTION_LABELS = {
    Action.ISSUE: "签发",
    Action.CHANGE: "变更",
    Action.RENEW: "延续",
    Action.SUSPEND: "挂起",
    Action.RESUME: "恢复",
    Action.REVOKE: "吊销",
    Action.CANCEL: "注销",
    Action.ANNUL: "废止",
}

#: (stored status of the version acted on, action) → stored status of that version afterwards.
#: Evaluated against the *effective* status: an expired certificate can be renewed, cancelled or annulled,
#: but not changed, suspended or revoked. ISSUE has no "before" and is handled by the records layer.
_TABLE: dict[tuple[Status, Action], Status] = {
    (Status.VALID, Action.CHANGE): Status.SUPERSEDED,
    (Status.VALID, Action.RENEW): Status.SUPERSEDED,
    (Status.VALID, Action.SUSPEND): Status.SUSPENDED,
    (Status.VALID, Action.REVOKE): Status.REVOKED,
    (Status.VALID, Action.CANCEL): Status.CANCELLED,
    (Status.VALID, Action.ANNUL): Status.ANNULLED,
    (Status.SUSPENDED, Action.RESUME): Status.VALID,
    (Status.SUSPENDED, Action.REVOKE): Status.REVOKED,
    (Status.SUSPENDED, Action.CANCEL): Status.CANCELLED,
    (Status.SUSPENDED, Action.ANNUL): Status.ANNULLED,
    (Status.EXPIRED, Action.RENEW): Status.SUPERSEDED,
    (Status.EXPIRED, Action.CANCEL): Status.CANCELLED,
    (Status.EXPIRED, Action.ANNUL): Status.ANNULLED,
}


class TransitionError(ValueError):
    """An action that the lifecycle does not allow from the certificate's current status."""

    def __init__(self, status: Status, action: Action) -> None:
        allowed = allowed_actions(status)
        options = (
            "、".join(f"{a.label}({a.value})" for a in allowed) if allowed else "none: the status is final"
        )
        super().__init__(
            f"cannot {action.value} ({action.label}) a certificate that is {status.value} ({status.label}); "
            f"allowed: {options}"
        )
        self.status = status
        self.action = action


@dataclass(frozen=True)
class Transition:
    """One lifecycle event: what happened to a certificate version, by whom, when and why."""

    action: Action
    from_status: Status | None
    to_status: Status
    reason: str
    actor: str
    at: datetime


def effective_status(stored: Status, valid_until: date | None, at: datetime) -> Status:
    """The status as a reader sees it at ``at``: a VALID or SUSPENDED version past its validity is EXPIRED.

    ``valid_until`` is the last day of validity, inclusive, in China Standard Time (the measures are local: a
    certificate valid until 12-31 is valid until midnight in Zhengzhou, 16:00 UTC); None means long-term (长期).
    A naive ``at`` is read as UTC."""
    if stored in (Status.VALID, Status.SUSPENDED) and valid_until is not None and _local(at) > valid_until:
        return Status.EXPIRED
    return stored


def _local(at: datetime) -> date:
    return local_date(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def allowed_actions(status: Status) -> list[Action]:
    return [action for (before, action) in _TABLE if before is status]


def transition(
    stored: Status,
    action: Action,
    *,
    valid_until: date | None,
    reason: str,
    actor: str,
    at: datetime,
) -> Transition:
    """Apply ``action`` to a version whose stored status is ``stored``; returns the event to record.

    Raises :class:`TransitionError` when the table does not allow it, and ``ValueError`` when the reason or
    actor is missing (every transition must be explained and attributed)."""
    current = effective_status(stored, valid_until, at)
    if action is Action.ISSUE:
        raise TransitionError(current, action)
    if not reason.strip():
        raise ValueError(f"{action.value} ({action.label}) needs a reason")
    if not actor.strip():
        raise ValueError(f"{action.value} ({action.label}) needs an actor")
    after = _TABLE.get((current, action))
    if after is None:
        raise TransitionError(current, action)
    return Transition(action, stored, after, reason.strip(), actor.strip(), at)
