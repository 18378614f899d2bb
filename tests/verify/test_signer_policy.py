"""One signer policy (issue 14): the same signer — expired at its signing time, signing in the future, or chained
to an unknown root — gets the same ``signer_chain`` and ``signing_time`` verdicts, and the same indication, as a
seal signature (GB/T 38540), as an OFD ``Type="Sign"`` value (GB/T 35275 SignedData) and as a PDF CMS signature.

The PKI is built around the wall clock (the "future" case needs it); everything else about the three signatures
is intact, so the signer checks alone decide."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from certstore.checks import Check, CheckResult, Indication, indication_of
from certstore.crypto.sm3 import sm3
from certstore.crypto.trust import TrustStore
from certstore.crypto.x509 import CertificateProfile
from certstore.packaging.layout import FaceLayout
from certstore.packaging.pdf import build_pdf
from certstore.seal import make_seal, verify_seal_signature
from certstore.seal.build import _assemble_signature
from certstore.verify import verify_file
from certstore.verify.pdf import verify_pdf
from tests.pki import Party, make_party
from tests.seal.seal_builders import DATA, PROPERTY_INFO, tiny_picture
from tests.verify.builders import (
    SIGNATURE_XML,
    SIGNATURES_XML,
    SIGNED_VALUE,
    content_files,
    signature_xml,
    signatures_xml,
    signed_data,
    zip_bytes,
)

P, F, U = CheckResult.PASSED, CheckResult.FAILED, CheckResult.UNKNOWN
NOW = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Pki:
    root: Party
    maker: Party
    signer: Party  # valid NOW-200d … NOW+365d
    expired: Party  # valid NOW-300d … NOW-30d
    stranger: Party  # valid, issued by a root nobody trusts
    seal: bytes  # lists all three signers, valid NOW-100d … NOW+300d
    trust: TrustStore


@pytest.fixture(scope="module")
def pki() -> Pki:
    def days(n: int) -> datetime:
        return NOW + timedelta(days=n)

    root = make_party("策略测试根 CA", CertificateProfile.ROOT_CA, None, days(-400), days(3650))
    other_root = make_party("未受信任根 CA", CertificateProfile.ROOT_CA, None, days(-400), days(3650))
    maker = make_party("制章者", CertificateProfile.SEAL_MAKER, root, days(-200), days(365))
    signer = make_party("签章者", CertificateProfile.SIGNER, root, days(-200), days(365))
    expired = make_party("过期签章者", CertificateProfile.SIGNER, root, days(-300), days(-30))
    stranger = make_party("外部签章者", CertificateProfile.SIGNER, other_root, days(-200), days(365))
    seal = make_seal(
        maker=maker.signer,
        maker_certificate=maker.certificate,
        es_id="41010000000009",
        name="签名策略测试专用章",
        seal_type=1,
        signer_certificates=[p.certificate for p in (signer, expired, stranger)],
        picture=tiny_picture(),
        valid_start=days(-100),
        valid_end=days(300),
        created=days(-100),
    )
    return Pki(root, maker, signer, expired, stranger, seal, TrustStore([root.certificate]))


def _seal_path(pki: Pki, party: Party, when: datetime) -> tuple[Check, ...]:
    """A GB/T 38540 seal signature (assembled without sign_seal's refusals, as a careless signer could)."""
    der = _assemble_signature(
        seal=pki.seal,
        signer=party.signer,
        signer_certificate=party.certificate,
        data_hash=sm3(DATA),
        property_info=PROPERTY_INFO,
        signing_time=when,
    )
    return verify_seal_signature(der, data=DATA, trust=pki.trust).checks


def _ofd_sign_path(pki: Pki, party: Party, when: datetime) -> tuple[Check, ...]:
    """An OFD with one Type="Sign" SignedData (signed signingTime attribute), through the whole pipeline."""
    content = content_files()
    xml = signature_xml(content)
    files = {
        **content,
        SIGNATURES_XML: signatures_xml([("s1", "Sign", f"/{SIGNATURE_XML}")]),
        SIGNATURE_XML: xml,
        SIGNED_VALUE: signed_data(party, xml, form="attributes", signing_time=when),
    }
    report = verify_file(zip_bytes(files.items()), trust=pki.trust)
    (signature,) = report.signatures
    return signature.checks


def _pdf_path(pki: Pki, party: Party, when: datetime) -> tuple[Check, ...]:
    """A one-page PDF with an invisible CMS signature (signingTime attribute and /M = ``when``)."""
    pdf = build_pdf(
        FaceLayout(210.0, 297.0, ()),
        metadata={"ZZMC": "签名策略测试"},
        seal_picture=None,
        signer=party.signer,
        signer_certificate=party.certificate,
        chain=(pki.root.certificate,),
        signing_time=when,
    )
    (signature,) = verify_pdf(pdf, trust=pki.trust).signatures
    return signature.checks


PATHS = {"seal": _seal_path, "ofd-sign": _ofd_sign_path, "pdf": _pdf_path}

# case → (party, signing time relative to now, signer_chain, signing_time, indication)
CASES = {
    "intact": ("signer", timedelta(days=-1), P, P, Indication.VALID),
    "expired at signing time": ("expired", timedelta(days=-1), F, F, Indication.INVALID),
    "signing time in the future": ("signer", timedelta(days=1), P, F, Indication.INVALID),
    "untrusted chain": ("stranger", timedelta(days=-1), U, P, Indication.INDETERMINATE),
}


def _verdict(checks: tuple[Check, ...]) -> tuple[CheckResult, CheckResult, Indication]:
    by_name = {check.name: check for check in checks}
    return by_name["signer_chain"].result, by_name["signing_time"].result, indication_of(checks)


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_signer_gets_the_same_verdict_on_every_path(pki: Pki, case: str) -> None:
    party_name, offset, chain, signing_time, indication = CASES[case]
    party: Party = getattr(pki, party_name)
    verdicts = {path: _verdict(verify(pki, party, NOW + offset)) for path, verify in PATHS.items()}
    assert verdicts == dict.fromkeys(PATHS, (chain, signing_time, indication)), verdicts


def test_reasons_are_the_same_policy_in_the_same_words(pki: Pki) -> None:
    """The future case says so on every path, and names the clock it was compared with."""
    for verify in PATHS.values():
        checks = {c.name: c for c in verify(pki, pki.signer, NOW + timedelta(days=1))}
        assert "in the future (the verifier's clock reads" in checks["signing_time"].reason
    for verify in PATHS.values():
        checks = {c.name: c for c in verify(pki, pki.expired, NOW - timedelta(days=1))}
        assert "after the signer certificate's notAfter" in checks["signing_time"].reason
        assert checks["signer_chain"].reason.startswith("signer certificate: ")


def test_a_signing_time_within_the_clock_skew_is_not_the_future(pki: Pki) -> None:
    for verify in PATHS.values():
        checks = {c.name: c for c in verify(pki, pki.signer, NOW + timedelta(minutes=2))}
        assert checks["signing_time"].result is P, checks["signing_time"].reason
