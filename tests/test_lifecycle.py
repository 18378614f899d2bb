"""The lifecycle state machine (第十五条), as a table: every (status, action) pair is either the one legal
outcome or refused with a clear error."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from certstore.lifecycle import Action, Status, TransitionError, allowed_actions, effective_status, transition

AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
STILL_VALID = date(2027, 1, 1)
ENDED = date(2026, 11, 25)

# (effective status, action) → stored status afterwards; anything not listed must be refused.
LEGAL = {
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


def _stored_and_validity(status: Status) -> tuple[Status, date | None]:
    """How to reach ``status`` as an effective status: EXPIRED is a VALID version past its end."""
    return (Status.VALID, ENDED) if status is Status.EXPIRED else (status, STILL_VALID)


ALL_PAIRS = list(itertools.product(list(Status), list(Action)))


@pytest.mark.parametrize(("status", "action"), ALL_PAIRS, ids=[f"{s.value}-{a.value}" for s, a in ALL_PAIRS])
def test_every_pair(status: Status, action: Action) -> None:
    stored, valid_until = _stored_and_validity(status)
    expected = LEGAL.get((status, action))
    if expected is None:
        with pytest.raises(TransitionError) as refused:
            transition(stored, action, valid_until=valid_until, reason="测试", actor="tester", at=AT)
        message = str(refused.value)
        assert action.value in message and status.value in message and "allowed" in message
    else:
        event = transition(
            stored, action, valid_until=valid_until, reason=" 测试原因 ", actor="tester", at=AT
        )
        assert event.to_status is expected
        assert event.from_status is stored
        assert (event.reason, event.actor, event.at) == ("测试原因", "tester", AT)


def test_terminal_statuses_allow_nothing() -> None:
    for status in (Status.REVOKED, Status.CANCELLED, Status.ANNULLED, Status.SUPERSEDED):
        assert status.terminal
        assert allowed_actions(status) == []
        with pytest.raises(TransitionError, match="final"):
            transition(status, Action.RESUME, valid_until=None, reason="x", actor="y", at=AT)


@pytest.mark.parametrize(
    ("reason", "actor"), [("", "tester"), ("   ", "tester"), ("理由", ""), ("理由", "  ")]
)
def test_reason_and_actor_are_required(reason: str, actor: str) -> None:
    with pytest.raises(ValueError, match="needs"):
        transition(Status.VALID, Action.SUSPEND, valid_until=None, reason=reason, actor=actor, at=AT)


def test_expiry_is_computed_not_stored() -> None:
    assert effective_status(Status.VALID, date(2026, 11, 26), AT) is Status.VALID  # last day still valid
    assert effective_status(Status.VALID, date(2026, 11, 25), AT) is Status.EXPIRED
    assert effective_status(Status.SUSPENDED, date(2026, 11, 25), AT) is Status.EXPIRED
    assert effective_status(Status.VALID, None, AT) is Status.VALID  # 长期
    assert (
        effective_status(Status.REVOKED, date(2020, 1, 1), AT) is Status.REVOKED
    )  # a sanction stays visible
    past = datetime(2026, 1, 1, tzinfo=UTC)
    assert (
        effective_status(Status.VALID, date(2026, 11, 25), past) is Status.VALID
    )  # questions about the past


def test_issue_is_not_a_transition() -> None:
    with pytest.raises(TransitionError):
        transition(Status.VALID, Action.ISSUE, valid_until=None, reason="x", actor="y", at=AT)


def test_labels_are_chinese() -> None:
    assert [s.label for s in Status] == ["有效", "挂起", "吊销", "注销", "废止", "已变更", "过期"]
    assert Action.CHANGE.label == "变更" and Action.RENEW.label == "延续" and Action.RESUME.label == "恢复"
