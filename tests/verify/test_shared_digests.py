"""The process-wide memo of large files' digests never lets a changed file pass as the one it resembles."""

from __future__ import annotations

import random

import pytest

from certstore.checks import CheckResult, Indication
from certstore.crypto.sm3 import sm3
from certstore.verify import verify_file
from certstore.verify.ofd import _CHECK_METHODS, _SHARED_DIGESTS, _CheckMethod, _SharedDigests
from tests.seal.seal_builders import Hierarchy, make_hierarchy
from tests.verify.builders import content_files, entries_of, sealed_ofd, zip_bytes

BASE = "Doc_0/Res/base.png"
SM3_METHOD = _CheckMethod("SM3", _CHECK_METHODS["sm3"][1], None, "SM3")


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


def _large_base() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + random.Random(3).randbytes(64 * 1024)


def _replace_entry(package: bytes, name: str, data: bytes) -> bytes:
    return zip_bytes([(entry, data if entry == name else content) for entry, content in entries_of(package)])


def test_a_changed_copy_of_a_memoised_file_fails_its_reference(h: Hierarchy) -> None:
    files = {**content_files(), BASE: _large_base()}
    package = sealed_ofd(h, files=files).package
    assert verify_file(package, trust=h.trust).indication is Indication.VALID
    assert verify_file(package, trust=h.trust).indication is Indication.VALID  # now served from the memo

    # Same size, same first and last bytes (the memo's look-up key), one byte changed in the middle.
    tampered = bytearray(files[BASE])
    tampered[len(tampered) // 2] ^= 0x01
    report = verify_file(_replace_entry(package, BASE, bytes(tampered)), trust=h.trust)
    assert report.indication is Indication.INVALID
    references = report.signatures[0].check("references")
    assert references.result is CheckResult.FAILED
    assert f"{BASE}: SM3 digest differs" in references.reason

    # and the original still verifies
    assert verify_file(package, trust=h.trust).indication is Indication.VALID


def test_the_memo_returns_the_digest_of_the_bytes_presented() -> None:
    memo = _SharedDigests()
    first = random.Random(1).randbytes(10_000)
    second = first[:5_000] + bytes([first[5_000] ^ 0xFF]) + first[5_001:]  # same key, other content
    for data in (first, second, first, second):
        assert memo.digest(SM3_METHOD, data) == sm3(data)


def test_the_memo_is_bounded_by_retained_bytes() -> None:
    memo = _SharedDigests()
    memo.max_bytes = 50_000
    rng = random.Random(2)
    blobs = [rng.randbytes(10_000) for _ in range(20)]
    for blob in blobs:
        assert memo.digest(SM3_METHOD, blob) == sm3(blob)
    assert memo._retained <= 50_000
    assert len(memo._entries) == 5
    small = b"x" * 100  # below min_size: computed, never retained
    assert memo.digest(SM3_METHOD, small) == sm3(small)
    assert len(memo._entries) == 5


def test_module_memo_can_be_cleared() -> None:
    _SHARED_DIGESTS.clear()
    assert _SHARED_DIGESTS._retained == 0
