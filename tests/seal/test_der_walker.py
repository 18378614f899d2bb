"""The DER walker for the GB/T 38540 SES_Signature (:mod:`certstore.seal.der`) agrees with the full asn1crypto
parser: same result on every shipped and test vector, and on hundreds of mutations of them either the same
:class:`SealSignature` or the same refusal (the walker hands every input it does not accept to the full parser,
which names the error)."""

from __future__ import annotations

import posixpath
import random
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from datetime import timedelta

import pytest

from certstore.seal import SealFormatError, SealSignature, attach_timestamp, parse_seal_signature
from certstore.seal import model as seal_model
from certstore.seal.der import walk_signature_v4
from tests.seal.seal_builders import (
    DATA,
    FIXTURES,
    NOW,
    Hierarchy,
    build_v1_seal,
    build_v1_signature,
    make_timestamp_token,
)
from tests.support.der_mutations import mutations

OFD_NS = "{http://www.ofdspec.org/2016}"


def _outcome(parse: object, data: bytes) -> tuple[str, SealSignature | str]:
    try:
        return "parsed", parse(data)  # type: ignore[operator]
    except SealFormatError as exc:
        return "refused", str(exc)


def _third_party_signatures() -> Iterator[tuple[str, bytes]]:
    """Every SignedValue.dat of a Type="Seal" signature in the third-party OFD fixtures."""
    for path in sorted((FIXTURES / "ofd").glob("*.ofd")):
        with zipfile.ZipFile(path) as package:
            names = package.namelist()
            for name in names:
                if not name.endswith("Signature.xml") or name.endswith("Signatures.xml"):
                    continue
                root = ET.fromstring(package.read(name))
                value = root.find(f"{OFD_NS}SignedValue")
                if value is None or not value.text or root.attrib.get("Type", "Seal") != "Seal":
                    continue
                location = value.text.strip()
                target = (
                    location.lstrip("/")
                    if location.startswith("/")
                    else posixpath.normpath(posixpath.join(posixpath.dirname(name), location))
                )
                if target in names:
                    yield f"{path.name}:{target}", package.read(target)


@pytest.fixture(scope="module")
def vectors(pki: Hierarchy, seal_der: bytes, signature_der: bytes) -> dict[str, bytes]:
    """The test suite's signature (as built and with an RFC 3161 token), a GM/T 0031 one, and the third-party
    files' seal signatures."""
    value = parse_seal_signature(signature_der).signature_value
    token = make_timestamp_token(pki.tsa, value, NOW + timedelta(minutes=1))
    v1_seal = build_v1_seal(
        pki.maker, [pki.signer.certificate], created=NOW, valid_end=NOW + timedelta(days=9)
    )
    found = {
        "built": signature_der,
        "built+timestamp": attach_timestamp(signature_der, token),
        "gmt0031": build_v1_signature(v1_seal, pki.signer, DATA, _v1_time()),
    }
    found.update(_third_party_signatures())
    return found


def _v1_time() -> object:
    from asn1crypto import core

    from certstore.seal import asn1 as ses

    return ses.TimeInfoV1(name="generalized_time", value=core.GeneralizedTime(NOW))


def test_the_walker_reads_this_repositorys_signatures(vectors: dict[str, bytes]) -> None:
    """The signatures this repository makes (with and without a time-stamp token) take the fast path, and it
    gives exactly what the full parser gives."""
    for name in ("built", "built+timestamp"):
        assert walk_signature_v4(vectors[name]) is not None, name
        fast = parse_seal_signature(vectors[name])
        assert fast == seal_model._parse_signature_full(vectors[name])
        assert fast.signed_bytes == seal_model._parse_signature_full(vectors[name]).signed_bytes
    assert parse_seal_signature(vectors["built+timestamp"]).timestamp is not None


def test_every_vector_parses_the_same(vectors: dict[str, bytes]) -> None:
    """Built, GM/T 0031 and third-party signatures: the public parser and the full parser agree; the GM/T 0031
    layout is left to the full parser."""
    assert len(vectors) >= 5
    for name, data in vectors.items():
        assert _outcome(parse_seal_signature, data) == _outcome(seal_model._parse_signature_full, data), name
    assert walk_signature_v4(vectors["gmt0031"]) is None


def test_mutations_give_the_same_result_or_the_same_refusal(vectors: dict[str, bytes]) -> None:
    """A few hundred mutations per vector (tag, length and field bytes changed, inserted, deleted; truncation;
    trailing bytes): the public parser returns what the full parser returns, or both refuse with the same
    message."""
    rng = random.Random(20)
    compared = accepted_fast = 0
    for name, data in vectors.items():
        per_vector = 300 if name.startswith("built") else 60
        for mutated in mutations(data, rng, per_vector, max_depth=3):
            expected = _outcome(seal_model._parse_signature_full, mutated)
            assert _outcome(parse_seal_signature, mutated) == expected, (name, mutated[:64].hex())
            compared += 1
            if walk_signature_v4(mutated) is not None:  # the walker read it: the seal or certificate may
                accepted_fast += (
                    1  # still be refused, and then the full parser named the error (asserted above)
                )
    assert compared >= 900 and accepted_fast >= 100  # the walker read (and the test compared) many of them
