"""The fast write path encodes exactly what the documented canonical encoding says: every shortcut (the encoder
built once, the cached canonical tail, ``isoformat`` times, the per-line COPY check, the spool's format 2) is
compared byte for byte with the plain construction, on events chosen to hit every escape and edge."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from certstore.audit import AuditEvent, Outcome
from certstore.audit.chain import _copy_fields, _copy_text, prepare_entries
from certstore.audit.events import (
    canonical_details,
    canonical_entry,
    canonical_tail,
    compute_entry_hash,
    entry_prefix,
    event_to_payload,
    format_time,
)
from certstore.audit.spool import event_from_line, spool_line

AWKWARD = [
    "plain",
    "证照 非ASCII",
    'quote " and \\ backslash',
    "tab\tnew\nline\rcarriage",
    "nul\x00inside",
    "lone \ud800 surrogate",
    "\\N",
    "control \x01\x1f and \u2028",
    "x" * 5000,
    "",
]


def _reference_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _event_fields(event: AuditEvent, *, at: str, outcome: str, details: str) -> list[Any]:
    """The event's fields in the order docs/audit.md documents, which the COPY columns follow too."""
    return [
        at,
        event.event_id,
        event.request_id,
        event.principal,
        event.organisation_code,
        event.role,
        event.action,
        event.resource,
        event.matter,
        event.holder_digest,
        event.certificate_identifier,
        event.grant_id,
        outcome,
        event.status_code,
        event.reason,
        event.client,
        event.user_agent,
        details,
    ]


def _reference_canonical(
    seq: int, logged_at: datetime, prev: bytes, event: AuditEvent, details: str
) -> bytes:
    """docs/audit.md, spelled out with nothing but json."""
    outcome = event.outcome.value if isinstance(event.outcome, Outcome) else str(event.outcome)
    fields = _event_fields(event, at=_reference_time(event.at), outcome=outcome, details=details)
    return json.dumps(
        ["certstore.audit/1", seq, _reference_time(logged_at), prev.hex(), *fields],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()


def _events() -> list[AuditEvent]:
    rng = random.Random(7)
    events = []
    for i in range(300):

        def text(rng: random.Random = rng) -> str | None:
            return rng.choice([*AWKWARD, None, None])

        details: dict[str, Any] = {
            "ms": rng.choice([1.5, 0.1, 1e16, float("nan"), float("inf"), 3, True, None]),
            rng.choice(AWKWARD): [text(), {"nested": text(), "b": 2, "a": [1.25, None]}],
        }
        at = datetime(2026, 11, 26, 8, 0, tzinfo=UTC) + timedelta(microseconds=rng.randrange(10**12))
        if i % 7 == 0:
            at = at.replace(microsecond=0)
        if i % 11 == 0:
            at = at.astimezone(timezone(timedelta(hours=8)))
        events.append(
            AuditEvent(
                at=at,
                request_id=text() or f"r{i}",
                action=text() or "get_certificate",
                outcome=rng.choice(list(Outcome)),
                status_code=rng.choice([200, 403, 500]),
                principal=text(),
                organisation_code=text(),
                role=text(),
                resource=text(),
                matter=text(),
                holder_digest=text(),
                certificate_identifier=text(),
                grant_id=rng.choice([None, 0, 7, 2**63 - 1, 2**63, -1]),
                reason=text(),
                client=text(),
                user_agent=text(),
                details=details,
                event_id=rng.choice([f"{i:032x}", "short", "é" * 40]),
            )
        )
    return events


def test_canonical_entry_and_its_fast_form_equal_the_documented_encoding() -> None:
    logged = datetime(2026, 11, 26, 9, 30, 1, 5, tzinfo=UTC)
    prev = hashlib.new("sm3", b"prev").digest()
    for seq, raw in enumerate(_events()):
        event = raw.normalised()
        reference = _reference_canonical(seq, logged, prev, event, event.details_text)
        assert canonical_entry(seq, logged, prev, event, event.details_text) == reference
        fast = entry_prefix(seq, format_time(logged), prev.hex()) + canonical_tail(event) + b"]"
        assert fast == reference
        assert (
            compute_entry_hash(seq, logged, prev, event, event.details_text)
            == hashlib.new("sm3", fast).digest()
        )
        # another details text than the event's own (a row being re-checked) is not served from the cache
        other = canonical_entry(seq, logged, prev, event, '{"x":1}')
        assert other == _reference_canonical(seq, logged, prev, event, '{"x":1}')


def test_format_time_matches_strftime() -> None:
    rng = random.Random(3)
    values = [datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
    values += [
        datetime(1000, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randrange(9000 * 365 * 86400 * 10**6))
        for _ in range(2000)
    ]
    values += [v.replace(microsecond=0) for v in values[:50]]
    values += [v.astimezone(timezone(timedelta(hours=-5, minutes=-30))) for v in values[2:50]]
    for value in values:
        assert format_time(value) == _reference_time(value)


def test_canonical_details_is_json_dumps_with_sorted_keys() -> None:
    for event in _events():
        normalised = event.normalised()
        expected = json.dumps(normalised.details, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        assert canonical_details(normalised.details, safe=True) == expected == normalised.details_text


@pytest.mark.parametrize("value", [*AWKWARD, None, 0, 2**63 - 1])
def test_copy_fields_escape_exactly_like_field_by_field(value: Any) -> None:
    event = AuditEvent(
        at=datetime(2026, 11, 26, tzinfo=UTC),
        request_id="r",
        action="a",
        outcome=Outcome.ALLOW,
        status_code=200,
        principal=value if isinstance(value, str) or value is None else None,
        reason=value if isinstance(value, str) else None,
        grant_id=value if isinstance(value, int) else None,
        details={"v": value},
    ).normalised()
    values = _event_fields(event, at=event.at.isoformat(), outcome="allow", details=event.details_text)
    assert _copy_fields(event) == "\t".join(map(_copy_text, values)).encode()


def test_spool_lines_round_trip_to_the_same_entry() -> None:
    for raw in _events():
        event = raw.normalised()
        line = spool_line(raw)
        assert line == b"[2," + canonical_tail(event) + b"]\n"  # the bytes the entry hash covers, as stored
        back = event_from_line(line.rstrip(b"\n")).normalised()
        assert canonical_tail(back) == canonical_tail(event)
        assert back.event_id == event.event_id and back.at == event.at
        old = event_from_line(event_to_payload(event).encode())  # spool format 1, from an older version
        assert canonical_tail(old.normalised()) == canonical_tail(event)
    with pytest.raises(ValueError):
        event_from_line(b"[3,1,2]")


def test_prepared_entries_are_not_tracked_by_the_garbage_collector() -> None:
    import gc

    prepared = prepare_entries(_events()[:5], postgresql=True)
    gc.collect()
    assert not any(gc.is_tracked(entry) for entry in prepared)
