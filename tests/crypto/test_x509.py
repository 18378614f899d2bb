"""SM2 X.509 issuing, parsing and chain validation, cross-checked with the OpenSSL 3 command line."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from certstore.checks import CheckResult
from certstore.crypto.encoding import dump_private_key
from certstore.crypto.sm2 import SM2PrivateKey, SoftwareSigner
from certstore.crypto.trust import ChainStatus, TrustStore, validate_chain
from certstore.crypto.x509 import Certificate, CertificateError, CertificateProfile, issue_certificate
from tests.pki import Party
from tests.seal.seal_builders import with_malformed_extension

NOW = datetime.now(UTC).replace(microsecond=0)
DISTID = "distid:1234567812345678"


def openssl(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, check=False)


def make(
    subject: str,
    profile: CertificateProfile,
    issuer: tuple[Certificate, SM2PrivateKey] | None = None,
    *,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
) -> tuple[Certificate, SM2PrivateKey]:
    key = SM2PrivateKey.generate()
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    cert = issue_certificate(
        {"country_name": "CN", "organization_name": "郑州市测试单位", "common_name": subject},
        key.public_key,
        issuer=issuer_cert,
        issuer_signer=SoftwareSigner(issuer_key),
        profile=profile,
        not_before=not_before,
        not_after=not_after,
    )
    return cert, key


@pytest.fixture(scope="module")
def root() -> tuple[Certificate, SM2PrivateKey]:
    return make("测试根CA", CertificateProfile.ROOT_CA)


@pytest.fixture(scope="module")
def signer(root: tuple[Certificate, SM2PrivateKey]) -> tuple[Certificate, SM2PrivateKey]:
    return make("签章人", CertificateProfile.SIGNER, root)


def test_profiles_and_fields(root, signer) -> None:
    root_cert, _ = root
    cert, key = signer
    assert root_cert.is_ca and root_cert.key_usage == {"digital_signature", "key_cert_sign", "crl_sign"}
    assert not cert.is_ca and cert.key_usage == {"digital_signature", "non_repudiation"}
    assert cert.subject == "CN=签章人,O=郑州市测试单位,C=CN"
    assert cert.issuer == root_cert.subject
    assert cert.authority_key_id == root_cert.subject_key_id is not None
    assert cert.public_key == key.public_key
    assert cert.signature_algorithm == "1.2.156.10197.1.501"
    assert Certificate.load(cert.pem) == cert == Certificate.load(cert.der)
    assert cert.is_signed_by(root_cert.public_key)
    assert not cert.is_signed_by(cert.public_key)


@pytest.mark.openssl
def test_openssl_verifies_our_chain(tmp_path: Path, root, signer) -> None:
    (tmp_path / "root.pem").write_bytes(root[0].pem)
    (tmp_path / "leaf.pem").write_bytes(signer[0].pem)
    result = openssl("verify", "-vfyopt", DISTID, "-CAfile", "root.pem", "leaf.pem", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "leaf.pem: OK" in result.stdout
    text = openssl("x509", "-in", "leaf.pem", "-noout", "-text", cwd=tmp_path).stdout
    assert "Signature Algorithm: SM2-with-SM3" in text
    assert "CA:FALSE" in text and "Digital Signature, Non Repudiation" in text
    root_text = openssl("x509", "-in", "root.pem", "-noout", "-text", cwd=tmp_path).stdout
    assert "CA:TRUE" in root_text and "Certificate Sign, CRL Sign" in root_text


@pytest.mark.openssl
@pytest.mark.parametrize("distid", [True, False], ids=["with-distid", "openssl-default-id"])
def test_openssl_made_chain_validates(tmp_path: Path, distid: bool) -> None:
    """Certificates from `openssl req -x509` / `openssl x509 -req` are accepted, whichever SM2 ID signed them."""
    sig = ["-sigopt", DISTID] if distid else []
    assert openssl("genpkey", "-algorithm", "SM2", "-out", "ca.key", cwd=tmp_path).returncode == 0
    assert openssl("genpkey", "-algorithm", "SM2", "-out", "leaf.key", cwd=tmp_path).returncode == 0
    ca = openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/C=CN/CN=OpenSSL Root", "-days", "30",
                 "-out", "ca.pem", *sig, cwd=tmp_path)  # fmt: skip
    assert ca.returncode == 0, ca.stderr
    csr = openssl("req", "-new", "-key", "leaf.key", "-subj", "/C=CN/CN=OpenSSL Leaf", "-out", "leaf.csr", *sig,
                  cwd=tmp_path)  # fmt: skip
    assert csr.returncode == 0, csr.stderr
    vfy = ["-vfyopt", DISTID] if distid else []
    leaf = openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                   "-days", "10", "-out", "leaf.pem", *sig, *vfy, cwd=tmp_path)  # fmt: skip
    assert leaf.returncode == 0, leaf.stderr
    ca_cert = Certificate.load((tmp_path / "ca.pem").read_bytes())
    leaf_cert = Certificate.load((tmp_path / "leaf.pem").read_bytes())
    result = validate_chain(leaf_cert, trust=TrustStore([ca_cert]), at=datetime.now(UTC))
    assert result.ok, result.reason
    assert [c.common_name for c in result.path] == ["OpenSSL Leaf", "OpenSSL Root"]


def test_valid_chain_reports_path(root, signer) -> None:
    result = validate_chain(
        signer[0], trust=TrustStore([root[0]]), at=NOW, key_usage=frozenset({"non_repudiation"})
    )
    assert result.status is ChainStatus.VALID
    assert result.path == (signer[0], root[0])
    assert result.to_check("signer_chain").result == "PASSED"


def test_unknown_anchor_is_unknown_not_failed(signer) -> None:
    other_root, _ = make("另一个根CA", CertificateProfile.ROOT_CA)
    result = validate_chain(signer[0], trust=TrustStore([other_root]), at=NOW)
    assert result.status is ChainStatus.NO_TRUST_ANCHOR
    assert "测试根CA" in result.reason
    assert result.to_check("signer_chain").result == "UNKNOWN"


def test_tampered_certificate_meets_its_anchor_and_fails(root, signer) -> None:
    der = bytearray(signer[0].der)
    position = der.index("签章人".encode())  # change the subject: the issuer's signature no longer covers it
    der[position] ^= 0x01
    tampered = Certificate.from_der(bytes(der))
    result = validate_chain(tampered, trust=TrustStore([root[0]]), at=NOW)
    assert result.status is ChainStatus.BAD_SIGNATURE
    assert result.to_check("signer_chain").result == "FAILED"


@pytest.mark.parametrize(
    ("at", "status"),
    [
        (NOW + timedelta(days=400), ChainStatus.EXPIRED),
        (NOW - timedelta(days=2), ChainStatus.NOT_YET_VALID),
    ],
)
def test_validity_window(root, signer, at: datetime, status: ChainStatus) -> None:
    result = validate_chain(signer[0], trust=TrustStore([root[0]]), at=at)
    assert result.status is status
    assert "签章人" in result.reason and at.isoformat() in result.reason


def test_expired_root_fails_the_chain() -> None:
    old_root = make("过期根CA", CertificateProfile.ROOT_CA, not_after=NOW - timedelta(hours=1),
                    not_before=NOW - timedelta(days=30))  # fmt: skip
    leaf = make("签章人", CertificateProfile.SIGNER, old_root, not_before=NOW - timedelta(days=29))
    result = validate_chain(leaf[0], trust=TrustStore([old_root[0]]), at=NOW)
    assert result.status is ChainStatus.EXPIRED and "过期根CA" in result.reason


def test_key_usage_required(root, signer) -> None:
    result = validate_chain(
        root[0], trust=TrustStore([root[0]]), at=NOW, key_usage=frozenset({"non_repudiation"})
    )
    assert result.status is ChainStatus.KEY_USAGE


@pytest.mark.openssl
def test_end_entity_cannot_issue(tmp_path: Path, root, signer) -> None:
    """A certificate signed by a non-CA end-entity key (made with OpenSSL, since we refuse to) is refused."""
    (tmp_path / "ee.pem").write_bytes(signer[0].pem)
    (tmp_path / "ee.key").write_bytes(dump_private_key(signer[1]))
    openssl("genpkey", "-algorithm", "SM2", "-out", "x.key", cwd=tmp_path)
    openssl(
        "req", "-new", "-key", "x.key", "-subj", "/CN=issued by end entity", "-out", "x.csr", cwd=tmp_path
    )
    made = openssl("x509", "-req", "-in", "x.csr", "-CA", "ee.pem", "-CAkey", "ee.key", "-CAcreateserial",
                   "-days", "5", "-out", "x.pem", "-sigopt", DISTID, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    cert = Certificate.load((tmp_path / "x.pem").read_bytes())
    result = validate_chain(
        cert, trust=TrustStore([root[0]]), intermediates=[signer[0]], at=datetime.now(UTC)
    )
    assert result.status is ChainStatus.NOT_CA
    assert "签章人" in result.reason


@pytest.mark.openssl
def test_unknown_critical_extension_refused(tmp_path: Path, root) -> None:
    (tmp_path / "ca.pem").write_bytes(root[0].pem)
    (tmp_path / "ca.key").write_bytes(dump_private_key(root[1]))
    (tmp_path / "ext.cnf").write_text("1.2.3.4.5=critical,ASN1:NULL\n")
    openssl("genpkey", "-algorithm", "SM2", "-out", "x.key", cwd=tmp_path)
    openssl("req", "-new", "-key", "x.key", "-subj", "/CN=odd", "-out", "x.csr", cwd=tmp_path)
    made = openssl("x509", "-req", "-in", "x.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                   "-days", "5", "-out", "x.pem", "-extfile", "ext.cnf", "-sigopt", DISTID, cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    cert = Certificate.load((tmp_path / "x.pem").read_bytes())
    result = validate_chain(cert, trust=TrustStore([root[0]]), at=datetime.now(UTC))
    assert result.status is ChainStatus.MALFORMED and "1.2.3.4.5" in result.reason


@pytest.mark.openssl
def test_non_sm2_certificate_refused(tmp_path: Path) -> None:
    made = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                   "-keyout", "k.pem", "-subj", "/CN=p256", "-days", "1", "-out", "c.pem", cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    with pytest.raises(CertificateError, match="not SM2"):
        Certificate.load((tmp_path / "c.pem").read_bytes())


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]
)
def test_garbage_is_a_certificate_error(data: bytes) -> None:
    with pytest.raises(CertificateError):
        Certificate.load(data)


def test_issue_refuses_inconsistent_requests(root, signer) -> None:
    key = SM2PrivateKey.generate()
    common = {"profile": CertificateProfile.SIGNER, "not_before": NOW, "not_after": NOW + timedelta(days=1)}
    with pytest.raises(ValueError, match="not a CA"):
        issue_certificate({"common_name": "x"}, key.public_key, issuer=signer[0],
                          issuer_signer=SoftwareSigner(signer[1]), **common)  # fmt: skip
    with pytest.raises(ValueError, match="issuer_signer"):
        issue_certificate({"common_name": "x"}, key.public_key, issuer=root[0],
                          issuer_signer=SoftwareSigner(key), **common)  # fmt: skip
    with pytest.raises(ValueError, match="later"):
        issue_certificate({"common_name": "x"}, key.public_key, issuer=root[0], issuer_signer=SoftwareSigner(root[1]),
                          profile=CertificateProfile.SIGNER, not_before=NOW, not_after=NOW)  # fmt: skip


# --- Extensions that do not decode (issue 15 item 5) ------------------------------------------------------------


def _party(pair: tuple[Certificate, SM2PrivateKey]) -> Party:
    return Party(SoftwareSigner(pair[1]), pair[0])


def test_extension_of_an_unknown_type_is_opaque(root, signer) -> None:
    """An extension asn1crypto has no type for is not decoded, so its bytes cannot be "malformed"."""
    odd = with_malformed_extension(_party(signer), _party(root), oid="1.2.3.4", value=b"\xff\xff\x01")
    assert odd.certificate.malformed_extensions == ()
    assert odd.certificate.extension_warnings == ()


def test_malformed_non_critical_extension_is_left_out_of_asn1(root, signer) -> None:
    lax = with_malformed_extension(_party(signer), _party(root)).certificate
    (malformed,) = lax.malformed_extensions
    assert (malformed.name, malformed.critical) == ("authority_key_identifier", False)
    assert "primitive" in malformed.error
    names = [e["extn_id"].native for e in lax.asn1["tbs_certificate"]["extensions"]]
    assert "authority_key_identifier" not in names and "key_usage" in names
    assert lax.authority_key_id is None
    assert lax.tbs_bytes != signer[0].tbs_bytes and lax.is_signed_by(root[0].public_key)
    assert lax.describe()["malformed_extensions"] == [malformed.describe()]
    chain = validate_chain(lax, trust=TrustStore([root[0]]), at=NOW)
    assert chain.ok and chain.warnings == ()  # the leaf's own warning belongs to the check that uses its key


def test_malformed_critical_key_usage_is_unreliable_not_permissive(root, signer) -> None:
    """A keyUsage that does not decode must not read as "no keyUsage" (anything allowed): UNRELIABLE → UNKNOWN."""
    strict = with_malformed_extension(
        _party(signer), _party(root), oid="2.5.29.15", value=b"\x03\x02\x01", critical=True
    ).certificate
    assert strict.key_usage is None
    chain = validate_chain(
        strict, trust=TrustStore([root[0]]), at=NOW, key_usage=frozenset({"key_cert_sign"})
    )
    assert chain.status is ChainStatus.UNRELIABLE
    assert "malformed critical extension key_usage" in chain.reason
    assert chain.to_check("signer_chain").result is CheckResult.UNKNOWN


def test_malformed_extension_of_an_intermediate_warns_on_the_chain(root) -> None:
    ca = make("中间 CA", CertificateProfile.ROOT_CA, root)
    lax_ca = with_malformed_extension(
        _party(ca), _party(root), oid="2.5.29.17", value=b"\x10\x03\x82\x01\x41"
    )
    leaf = make("签章者", CertificateProfile.SIGNER, (lax_ca.certificate, ca[1]))[0]
    chain = validate_chain(
        leaf, trust=TrustStore([root[0]]), at=NOW, intermediates=[lax_ca.certificate], key_usage=frozenset()
    )
    assert chain.ok, chain.reason
    assert chain.warnings == lax_ca.certificate.extension_warnings
    assert chain.to_check("signer_chain").warnings == chain.warnings
