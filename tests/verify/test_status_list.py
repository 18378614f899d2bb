"""The signed status snapshot, format 2 (``certstore.verify.status_list``): versions not in force with their
effective times, ended suspensions, withdrawn seals; build, verify, look up (now and as it stood), refuse."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from certstore.crypto.trust import TrustStore
from certstore.keystore import KeyStore
from certstore.lifecycle import Status
from certstore.services.copies import repository_sealing_key
from certstore.services.issuance import SealingKey
from certstore.services.keys import init_dev_keys
from certstore.verify import status_list
from certstore.verify.status_list import (
    MAGIC,
    STATUS_CODES,
    SealState,
    StatusList,
    StatusListError,
    build_status_list,
    read_status_list,
)

THIS_UPDATE = datetime.now(UTC).replace(microsecond=0)  # the keys of the module are made valid from then
DAY = timedelta(days=1)
ISSUER = "11410100990000025A"


def identifier(n: int, issuer: str = ISSUER) -> str:
    return f"1.2.156.3005.2.{issuer}001.{issuer}.{n:032X}.001.X"


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store, now=THIS_UPDATE)  # valid from THIS_UPDATE, however late in a run the fixture is made
    return store


@pytest.fixture(scope="module")
def key(keystore: KeyStore) -> SealingKey:
    return repository_sealing_key(keystore)


def _build(key: SealingKey, entries: list[tuple[str, Status, datetime]], **changes: Any) -> bytes:
    options: dict[str, Any] = {
        "issuer": "郑州市电子证照库",
        "sequence": 42,
        "this_update": THIS_UPDATE,
        "next_update": THIS_UPDATE + timedelta(hours=24),
        "signer": key.signer,
        "certificate": key.certificate,
        "chain": [c for c in key.chain if c != key.certificate],
    } | changes
    return build_status_list(entries, **options)


def _read(data: bytes, keystore: KeyStore) -> StatusList:
    return read_status_list(data, trust=keystore.trust_store())


STATUSES = list(STATUS_CODES)


def test_round_trip_lists_only_versions_not_in_force(key: SealingKey, keystore: KeyStore) -> None:
    entries = [
        (identifier(i), STATUSES[i % len(STATUSES)], THIS_UPDATE - timedelta(seconds=1 + 7919 * i))
        for i in range(20_000)
    ]
    data = _build(key, entries, versions=400_000, scope=[ISSUER])
    # 6 fingerprint bytes + 1 status + 4 time bytes per listed version, plus the bucket counts and signature
    assert len(data) < 20_000 * 11 + 40_000, len(data)
    listed = read_status_list(data, trust=keystore.trust_store(), expected=[key.certificate])
    header = listed.header
    assert (header.count, header.sequence, header.issuer, header.versions, header.scope) == (
        20_000,
        42,
        "郑州市电子证照库",
        400_000,
        (ISSUER,),
    )
    assert listed.signer == key.certificate
    for name, status, since in entries[::397]:
        answer = listed.lookup(name)
        assert (answer.status, answer.since, answer.listed) == (status, since, True)
        assert not answer.in_force
    in_force = listed.lookup(identifier(10**9))
    assert (in_force.status, in_force.since, in_force.unknown) == (Status.VALID, None, None)
    assert in_force.in_force and not in_force.listed


def test_valid_and_expired_are_never_listed(key: SealingKey) -> None:
    for status in (Status.VALID, Status.EXPIRED):
        with pytest.raises(ValueError, match="not listed"):
            _build(key, [("a", status, THIS_UPDATE)])
    with pytest.raises(ValueError, match="listed twice"):
        _build(key, [("a", Status.REVOKED, THIS_UPDATE), ("a", Status.REVOKED, THIS_UPDATE)])
    with pytest.raises(ValueError, match="timezone-aware"):
        _build(key, [("a", Status.REVOKED, THIS_UPDATE.replace(tzinfo=None))])


def test_at_answers_the_status_as_it_stood(key: SealingKey, keystore: KeyStore) -> None:
    revoked_at = THIS_UPDATE - 10 * DAY
    suspended_at, resumed_at = THIS_UPDATE - 60 * DAY, THIS_UPDATE - 55 * DAY
    suspended_before_revocation = THIS_UPDATE - 20 * DAY
    data = _build(
        key,
        [(identifier(1), Status.REVOKED, revoked_at), (identifier(2), Status.REVOKED, revoked_at)],
        suspensions=[
            (identifier(2), suspended_before_revocation, revoked_at),  # suspended, then revoked
            (identifier(3), suspended_at, resumed_at),  # suspended, resumed: in force now, not listed
        ],
    )
    listed = _read(data, keystore)
    assert listed.header.suspensions == 2
    before = listed.lookup(identifier(1), at=revoked_at - timedelta(seconds=27))
    assert (before.status, before.since, before.later) == (Status.VALID, None, (Status.REVOKED, revoked_at))
    assert listed.lookup(identifier(1), at=revoked_at).status is Status.REVOKED
    assert listed.lookup(identifier(1)).status is Status.REVOKED  # as of thisUpdate
    assert listed.lookup(identifier(1), at=THIS_UPDATE + timedelta(hours=1)).status is Status.REVOKED
    during = listed.lookup(identifier(2), at=revoked_at - DAY)
    assert (during.status, during.since, during.until, during.later) == (
        Status.SUSPENDED,
        suspended_before_revocation,
        revoked_at,
        (Status.REVOKED, revoked_at),
    )
    assert listed.lookup(identifier(2), at=suspended_before_revocation - DAY).status is Status.VALID
    assert listed.lookup(identifier(3), at=suspended_at).status is Status.SUSPENDED
    assert listed.lookup(identifier(3), at=resumed_at).status is Status.VALID
    assert listed.lookup(identifier(3)).status is Status.VALID


def test_a_file_signed_after_this_update_is_status_unknown(key: SealingKey, keystore: KeyStore) -> None:
    listed = _read(_build(key, [(identifier(1), Status.REVOKED, THIS_UPDATE)]), keystore)
    signed_before = THIS_UPDATE - timedelta(days=3)
    assert listed.lookup(identifier(2), signed_at=signed_before).status is Status.VALID
    assert listed.lookup(identifier(2), signed_at=THIS_UPDATE + timedelta(microseconds=500)).in_force
    late = listed.lookup(identifier(2), signed_at=THIS_UPDATE + timedelta(seconds=1))
    assert late.status is None and late.unknown is not None
    stamp = THIS_UPDATE.isoformat().replace("+00:00", "Z")
    assert f"after the snapshot's thisUpdate {stamp}: the snapshot predates it" in late.unknown
    # also for a listed one: the snapshot cannot speak for a file it predates
    assert listed.lookup(identifier(1), signed_at=THIS_UPDATE + timedelta(seconds=1)).status is None
    earlier = listed.lookup(identifier(2), signed_at=signed_before, at=signed_before - timedelta(days=1))
    assert earlier.status is None and "before the file was signed" in (earlier.unknown or "")


def test_scope_names_the_issuers_covered(key: SealingKey, keystore: KeyStore) -> None:
    listed = _read(_build(key, [], scope=[ISSUER, "11410100990000017F"]), keystore)
    assert listed.header.scope == ("11410100990000017F", ISSUER)
    assert listed.lookup(identifier(5)).in_force
    foreign = listed.lookup(identifier(5, issuer="11370000004476222X"))
    assert foreign.status is None and "11370000004476222X is outside the snapshot's scope" in (
        foreign.unknown or ""
    )
    assert listed.lookup("not-an-identifier").status is None
    unscoped = _read(_build(key, []), keystore)  # no scope stated: every identifier is answered
    assert unscoped.lookup("not-an-identifier").in_force


class _CollidingSM3:
    """An SM3 stand-in under which "a" and "b" share a fingerprint (64-bit collisions cannot be found)."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def copy(self) -> _CollidingSM3:
        return _CollidingSM3(self.data)

    def update(self, data: bytes) -> None:
        self.data += data

    def digest(self) -> bytes:
        from certstore.crypto.sm3 import sm3

        return sm3(b"a" if self.data in (b"a", b"b") else self.data)


def test_colliding_fingerprints_are_not_decided(
    key: SealingKey, keystore: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(status_list, "_SM3", _CollidingSM3())
    entries = [("a", Status.REVOKED, THIS_UPDATE), ("b", Status.SUSPENDED, THIS_UPDATE)]
    listed = _read(_build(key, [*entries, ("c", Status.REVOKED, THIS_UPDATE)]), keystore)
    assert listed.header.count == 2  # one record for the colliding pair
    for name in ("a", "b"):
        answer = listed.lookup(name)
        assert answer.status is None and "fingerprint collision" in (answer.unknown or "")
    assert listed.lookup("c").status is Status.REVOKED
    # the residual risk (documented): an unlisted version sharing a listed one's fingerprint reads as that one
    assert _read(_build(key, entries[:1]), keystore).lookup("b").status is Status.REVOKED
    # a suspension of one and a listing of the other collide too
    data = _build(key, [("a", Status.REVOKED, THIS_UPDATE)], suspensions=[("b", THIS_UPDATE - 2 * DAY, THIS_UPDATE - DAY)])  # fmt: skip
    assert _read(data, keystore).lookup("a").status is None


def test_seal_states_round_trip(key: SealingKey, keystore: KeyStore) -> None:
    revoked_at = THIS_UPDATE - timedelta(days=1, seconds=13)
    seals = [
        ("41010010000001", "revoked", revoked_at),
        ("郑州市印章-0002", "suspended", THIS_UPDATE - timedelta(hours=1)),
    ]
    listed = _read(_build(key, [], seals=seals), keystore)
    assert listed.header.seals == 2
    assert listed.seal_state("41010010000001") == SealState("revoked", revoked_at)
    assert listed.seal_state("郑州市印章-0002") == SealState("suspended", THIS_UPDATE - timedelta(hours=1))
    assert listed.seal_state("41010010000099") is None
    assert _read(_build(key, []), keystore).seal_state("41010010000001") is None  # default: no seals
    with pytest.raises(ValueError, match="only suspended or revoked"):
        _build(key, [], seals=[("x", "valid", THIS_UPDATE)])
    with pytest.raises(ValueError, match="listed twice"):
        _build(key, [], seals=[("x", "revoked", THIS_UPDATE), ("x", "suspended", THIS_UPDATE)])


def test_tampered_snapshots_are_refused(key: SealingKey, keystore: KeyStore) -> None:
    trust = keystore.trust_store()
    data = _build(key, [("a", Status.SUSPENDED, THIS_UPDATE), ("b", Status.REVOKED, THIS_UPDATE)])
    header_len = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])[0]
    body_at = len(MAGIC) + 4 + header_len + 4
    for position in (len(MAGIC) + 10, body_at + 3):  # the header (e.g. nextUpdate), the body
        altered = bytearray(data)
        altered[position] ^= 0x01
        with pytest.raises(StatusListError, match="signature does not verify"):
            read_status_list(bytes(altered), trust=trust)
    with pytest.raises(StatusListError, match="bad magic"):
        read_status_list(b"GARBAGE" + data, trust=trust)
    with pytest.raises(StatusListError, match="truncated"):
        read_status_list(data[:-10], trust=trust)
    with pytest.raises(StatusListError, match="trailing bytes"):
        read_status_list(data + b"\0", trust=trust)
    format_1 = b"CSSL1\n" + data[len(MAGIC) :]
    with pytest.raises(StatusListError, match=r"format 1 snapshot .*: rebuild it with this version"):
        read_status_list(format_1, trust=trust)


def test_a_snapshot_signed_by_another_key_is_refused(
    key: SealingKey, keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = KeyStore(tmp_path_factory.mktemp("other") / "keys")
    init_dev_keys(other, now=THIS_UPDATE)
    forged = _build(repository_sealing_key(other), [])
    with pytest.raises(StatusListError, match="its signer is not trusted"):
        read_status_list(forged, trust=keystore.trust_store())
    with pytest.raises(StatusListError, match="not by the repository key"):
        read_status_list(forged, trust=other.trust_store(), expected=[key.certificate])
    with pytest.raises(StatusListError, match="not trusted"):
        read_status_list(_build(key, []), trust=TrustStore())
