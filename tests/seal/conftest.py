"""Session-wide fixtures: one generated PKI (root CA → seal maker, root CA → signers), one seal, one
signature."""

from __future__ import annotations

from datetime import timedelta

import pytest

from certstore.seal import make_seal, sign_seal
from tests.seal.seal_builders import DATA, NOW, PROPERTY_INFO, Hierarchy, make_hierarchy, tiny_picture


@pytest.fixture(scope="session")
def pki() -> Hierarchy:
    return make_hierarchy()


@pytest.fixture(scope="session")
def seal_der(pki: Hierarchy) -> bytes:
    """A small v4 seal (1×1 picture) listing ``signer`` and ``expired_signer``, valid NOW-30d … NOW+300d."""
    return make_seal(
        maker=pki.maker.signer,
        maker_certificate=pki.maker.certificate,
        es_id="41010000000001",
        name="郑州市测试局电子证照专用章",
        seal_type=1,
        signer_certificates=[pki.signer.certificate, pki.expired_signer.certificate],
        picture=tiny_picture(),
        valid_start=NOW - timedelta(days=30),
        valid_end=NOW + timedelta(days=300),
        created=NOW - timedelta(days=30),
    )


@pytest.fixture(scope="session")
def signature_der(pki: Hierarchy, seal_der: bytes) -> bytes:
    return sign_seal(
        seal=seal_der,
        signer=pki.signer.signer,
        signer_certificate=pki.signer.certificate,
        data=DATA,
        property_info=PROPERTY_INFO,
        signing_time=NOW,
    )
