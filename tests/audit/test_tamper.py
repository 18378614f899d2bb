"""``certstore audit verify`` finds tampering and names its position: a changed field, a deleted row, a reordered
pair, a forged checkpoint (and: rows cut from the end, an entry rewritten with a recomputed hash). The tampering is
done as an attacker holding the database owner's rights would (triggers out of the way)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from certstore.audit import verify_log
from certstore.audit.checkpoints import CheckpointKey, checkpoint_body, sign_checkpoint
from certstore.audit.events import compute_entry_hash, entry_from_row
from certstore.audit.verify import VerificationResult
from certstore.cli import main
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import Certificate
from certstore.keystore import KeyStore
from certstore.services.issuance import SealingKey
from certstore.store.db import Database
from certstore.store.models import AuditChainRow, AuditEventRow
from tests.audit.conftest import fill, tampering

ENTRIES = 600


@pytest.fixture
def log(database: Database, key: CheckpointKey) -> Database:
    """600 entries, a checkpoint after every 200."""
    fill(database, ENTRIES, key=key, every=200)
    return database


@dataclass
class Verify:
    trust: TrustStore
    pinned: list[Certificate]

    def __call__(self, db: Database) -> VerificationResult:
        return verify_log(db, trust=self.trust, pinned=self.pinned)


@pytest.fixture
def verify(trust: TrustStore, pinned: list[Certificate]) -> Verify:
    return Verify(trust, pinned)


def _kinds(result: VerificationResult) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in result.findings]


def test_an_untouched_log_is_intact(log: Database, verify: Verify) -> None:
    result = verify(log)
    assert result.intact, result.findings
    assert (result.entries, result.checkpoints) == (ENTRIES, 3)


def test_a_changed_field_is_found_at_its_position(log: Database, verify: Verify) -> None:
    with tampering(log) as conn:
        conn.execute(sa.text("UPDATE audit_events SET principal = 'ORG/someone-else' WHERE seq = 123"))
    result = verify(log)
    assert ("changed", 123) in _kinds(result)
    assert not any(f.kind in ("missing", "reordered", "chain") for f in result.findings)
    # every checkpoint covering it no longer matches the entries: reported too
    assert {f.checkpoint_id for f in result.findings if f.kind == "checkpoint"} == {1, 2, 3}


def test_a_deleted_row_is_found_at_its_position(log: Database, verify: Verify) -> None:
    with tampering(log) as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 321"))
    result = verify(log)
    assert ("missing", 321) in _kinds(result)
    assert not any(f.kind in ("changed", "chain") for f in result.findings)


def test_a_reordered_pair_is_found_with_both_positions(log: Database, verify: Verify) -> None:
    with tampering(log) as conn:
        for statement in (
            "UPDATE audit_events SET seq = -1 WHERE seq = 410",
            "UPDATE audit_events SET seq = 410 WHERE seq = 411",
            "UPDATE audit_events SET seq = 411 WHERE seq = -1",
        ):
            conn.execute(sa.text(statement))
    result = verify(log)
    reordered = [f for f in result.findings if f.kind == "reordered"]
    assert [(f.seq, f.other_seq) for f in reordered] == [(410, 411)]
    assert not any(f.kind in ("changed", "chain", "missing") for f in result.findings)


def test_a_forged_checkpoint_is_found(log: Database, verify: Verify, keystore: KeyStore) -> None:
    # 1. an existing checkpoint made to sign another root (its text rewritten to match): the signature fails
    with log.session() as session:
        row = session.execute(
            sa.text("SELECT tree_size, head_hash, at FROM audit_checkpoints WHERE id = 2")
        ).one()
    forged_root = bytes([0xAB]) * 32
    with tampering(log) as conn:
        conn.execute(
            sa.text("UPDATE audit_checkpoints SET root_hash = :root, body = :body WHERE id = 2"),
            {
                "root": forged_root,
                "body": checkpoint_body(row.tree_size, forged_root, bytes(row.head_hash), _utc(row.at)),
            },
        )
    result = verify(log)
    problems = [f.message for f in result.findings if f.kind == "checkpoint" and f.checkpoint_id == 2]
    assert any("signature does not verify" in p for p in problems)
    assert any("signs root" in p for p in problems)

    # 2. a checkpoint of the true root, validly signed — by a key that is not the repository's
    agency = next(
        e.name
        for e in keystore.signer_entries()
        if e.certificate.organization_identifier and e.name != "repository"
    )
    other = keystore.signer_entry(agency)
    impostor = SealingKey(keystore.signer(agency), other.certificate, other.chain, b"")
    with log.session() as session:
        head = session.get(AuditChainRow, 1)
        assert head is not None
        true_root = verify_log(log).root_hash
        assert true_root is not None
        forged = sign_checkpoint(impostor, head.size, true_root, bytes(head.head_hash), _utc(head.last_at))
    with tampering(log) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO audit_checkpoints (tree_size, root_hash, head_hash, at, body, signature, certificate, "
                "chain) VALUES (:s, :r, :h, :at, :b, :sig, :c, :ch)"
            ),
            {
                "s": forged.tree_size,
                "r": forged.root_hash,
                "h": forged.head_hash,
                "at": forged.at if log.backend == "postgresql" else forged.at.replace(tzinfo=None),
                "b": forged.body,
                "sig": forged.signature,
                "c": forged.certificate,
                "ch": forged.chain,
            },
        )
    result = verify(log)
    assert any(
        f.kind == "checkpoint" and f.checkpoint_id == 4 and "not the repository's certificate" in f.message
        for f in result.findings
    )


def test_rows_cut_from_the_end_are_found(log: Database, verify: Verify) -> None:
    with tampering(log) as conn:
        conn.execute(sa.text("DELETE FROM audit_events WHERE seq >= 590"))
        conn.execute(sa.text("UPDATE audit_chain SET size = 590 WHERE id = 1"))  # the head made to agree
    result = verify(log)
    assert ("missing", 590) in _kinds(result)  # the last checkpoint covers 600 entries


def test_an_entry_rewritten_with_a_recomputed_hash_breaks_the_chain(log: Database, verify: Verify) -> None:
    with log.session(readonly=True) as session:
        entry = entry_from_row(
            session.scalars(sa.select(AuditEventRow).where(AuditEventRow.seq == 252)).one()
        )
    changed = entry.event.__class__(**{**entry.event.__dict__, "outcome": "allow", "status_code": 200})
    digest = compute_entry_hash(252, entry.logged_at, entry.prev_hash, changed, entry.details_text)
    with tampering(log) as conn:
        conn.execute(
            sa.text(
                "UPDATE audit_events SET outcome = 'allow', status_code = 200, entry_hash = :h WHERE seq = 252"
            ),
            {"h": digest},
        )
    result = verify(log)
    assert ("chain", 253) in _kinds(result)
    assert any(f.kind == "checkpoint" and f.checkpoint_id == 2 for f in result.findings)


def test_cli_exit_codes_and_json(
    log: Database, keystore: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    data = tmp_path / "data"
    shutil.copytree(keystore.root, data / "keys")
    monkeypatch.setenv("CERTSTORE_DATABASE_URL", log.url)

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as stopped:
            main(["--data-dir", str(data), "audit", *args])
        return int(stopped.value.code or 0), capsys.readouterr().out

    code, out = run("verify")
    assert code == 0 and out.strip().endswith("INTACT")
    with tampering(log) as conn:
        conn.execute(sa.text("UPDATE audit_events SET matter = 'ZZ-other' WHERE seq = 7"))
    code, out = run("verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["intact"] is False
    assert {"kind": "changed", "seq": 7} in [{k: f[k] for k in ("kind", "seq")} for f in report["findings"]]


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
