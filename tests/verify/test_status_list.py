"""The signed status snapshot format (``certstore.verify.status_list``): build, verify, look up, refuse."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from certstore.crypto.trust import TrustStore
from certstore.keystore import KeyStore
from certstore.lifecycle import Status
from certstore.services.copies import repository_sealing_key
from certstore.services.issuance import SealingKey
from certstore.services.keys import init_dev_keys
from certstore.verify.status_list import (
    MAGIC,
    STATUS_CODES,
    StatusListError,
    build_status_list,
    fingerprint,
    read_status_list,
)


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    store = KeyStore(tmp_path_factory.mktemp("keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture(scope="module")
def key(keystore: KeyStore) -> SealingKey:
    return repository_sealing_key(keystore)


def _build(key: SealingKey, entries: list[tuple[str, Status]], **changes: object) -> bytes:
    now = datetime.now(UTC)
    options: dict[str, object] = {
        "issuer": "郑州市电子证照库",
        "sequence": 42,
        "this_update": now,
        "next_update": now + timedelta(hours=24),
        "signer": key.signer,
        "certificate": key.certificate,
        "chain": [c for c in key.chain if c != key.certificate],
    } | changes
    return build_status_list(entries, **options)  # type: ignore[arg-type]


STATUSES = list(STATUS_CODES)


def test_round_trip_and_look_up(key: SealingKey, keystore: KeyStore) -> None:
    entries = [
        (f"1.2.156.3005.2.TYPE.ISSUER.{i:08X}.001.X", STATUSES[i % len(STATUSES)]) for i in range(20_000)
    ]
    data = _build(key, entries)
    assert len(data) < 20_000 * 9 + 4_000  # 8-byte fingerprint + 1 status byte per entry, header, signature
    listed = read_status_list(data, trust=keystore.trust_store(), expected=[key.certificate])
    assert (listed.header.count, listed.header.sequence, listed.header.issuer) == (
        20_000,
        42,
        "郑州市电子证照库",
    )
    assert listed.signer == key.certificate
    for identifier, status in entries[::997]:
        assert listed.lookup(identifier) is status
    assert listed.lookup("1.2.156.3005.2.TYPE.ISSUER.NOT-LISTED.001.X") is None


def test_colliding_fingerprints_of_different_status_are_not_decided(
    key: SealingKey, keystore: KeyStore
) -> None:
    data = _build(key, [("a", Status.VALID), ("b", Status.REVOKED)])
    listed = read_status_list(data, trust=keystore.trust_store())
    # two entries with a's fingerprint but different statuses: the look-up does not guess
    prints = fingerprint("a") * 2
    collided = type(listed)(listed.header, listed.signer, prints, b"\x01\x03")
    assert collided.lookup("a") is None
    agreeing = type(listed)(listed.header, listed.signer, prints, b"\x03\x03")
    assert agreeing.lookup("a") is Status.REVOKED


def test_expired_is_never_listed(key: SealingKey) -> None:
    with pytest.raises(ValueError, match="not listed"):
        _build(key, [("a", Status.EXPIRED)])


def test_tampered_snapshots_are_refused(key: SealingKey, keystore: KeyStore) -> None:
    trust = keystore.trust_store()
    data = _build(key, [("a", Status.VALID), ("b", Status.REVOKED)])
    header_len = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])[0]
    body_at = len(MAGIC) + 4 + header_len + 4
    for position in (len(MAGIC) + 10, body_at + 3):  # the header (e.g. nextUpdate), the body (a status)
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


def test_a_snapshot_signed_by_another_key_is_refused(
    key: SealingKey, keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = KeyStore(tmp_path_factory.mktemp("other") / "keys")
    init_dev_keys(other)
    forged = _build(repository_sealing_key(other), [("a", Status.VALID)])
    with pytest.raises(StatusListError, match="its signer is not trusted"):
        read_status_list(forged, trust=keystore.trust_store())
    with pytest.raises(StatusListError, match="not by the repository key"):
        read_status_list(forged, trust=other.trust_store(), expected=[key.certificate])
    with pytest.raises(StatusListError, match="not trusted"):
        read_status_list(_build(key, [("a", Status.VALID)]), trust=TrustStore())
