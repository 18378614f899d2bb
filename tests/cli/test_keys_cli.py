"""`certstore keys …` as docs/cli.md specifies, checked with the OpenSSL command line."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

DISTID = "distid:1234567812345678"
AGENCY = "11410100990000025A"  # 郑州市城乡建设局: its signer and seal are named by its credit code


def openssl(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.openssl
def test_init_creates_an_openssl_readable_hierarchy(cli, data_dir: Path) -> None:
    result = cli("keys", "init")
    assert result.code == 0, result.err
    keys = data_dir / "keys"
    for path in ("signers/root-ca/cert.pem", "signers/seal-maker/cert.pem", "signers/tsa/cert.pem",
                 f"seals/{AGENCY}.esl", "trust/root-ca.pem"):  # fmt: skip
        assert str(keys / path) in result.out
    for signer in ("root-ca", "seal-maker", AGENCY, "tsa"):
        key = keys / "signers" / signer / "key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert openssl("pkey", "-in", key, "-noout").returncode == 0
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for leaf in ("seal-maker", AGENCY, "tsa"):
        verified = openssl("verify", "-vfyopt", DISTID, "-CAfile", keys / "trust/root-ca.pem",
                           keys / "signers" / leaf / "cert.pem")  # fmt: skip
        assert verified.returncode == 0, verified.stderr
    agency = openssl(
        "x509", "-in", keys / "signers" / AGENCY / "cert.pem", "-noout", "-text", "-nameopt", "utf8"
    )
    assert f"organizationIdentifier={AGENCY}" in agency.stdout.replace(" = ", "=")
    assert "郑州市城乡建设局" in agency.stdout
    tsa = openssl("x509", "-in", keys / "signers/tsa/cert.pem", "-noout", "-ext", "extendedKeyUsage")
    assert "critical" in tsa.stdout and "Time Stamping" in tsa.stdout, tsa.stdout
    assert (keys / f"seals/{AGENCY}.esl").is_file() and (keys / "seals/repository.esl").is_file()


def test_init_refuses_to_overwrite(cli, data_dir: Path) -> None:
    assert cli("keys", "init").code == 0
    before = (data_dir / f"keys/signers/{AGENCY}/cert.pem").read_bytes()
    again = cli("keys", "init")
    assert again.code == 3 and "--force" in again.err
    assert cli("keys", "init", "--if-missing").code == 0
    assert (data_dir / f"keys/signers/{AGENCY}/cert.pem").read_bytes() == before
    assert cli("keys", "init", "--force").code == 0
    assert (data_dir / f"keys/signers/{AGENCY}/cert.pem").read_bytes() != before


def test_init_if_missing_adds_the_seal_of_an_issuer_without_one(cli, data_dir: Path) -> None:
    """A key store of an earlier version lacks an issuer's own seal: --if-missing adds it, keeping the rest."""
    import shutil

    assert cli("keys", "init").code == 0
    repository = (data_dir / "keys/signers/repository/cert.pem").read_bytes()
    shutil.rmtree(data_dir / f"keys/signers/{AGENCY}")
    (data_dir / f"keys/seals/{AGENCY}.esl").unlink()
    shutil.rmtree(data_dir / "keys/signers/tsa")
    upgraded = cli("keys", "init", "--if-missing")
    assert upgraded.code == 0 and "added seal of 郑州市城乡建设局" in upgraded.out
    assert "added time-stamp authority" in upgraded.out
    assert (data_dir / f"keys/seals/{AGENCY}.esl").is_file() and (data_dir / "keys/signers/tsa").is_dir()
    assert cli("keys", "init", "--if-missing").out.count("added") == 0
    assert (data_dir / "keys/signers/repository/cert.pem").read_bytes() == repository


def test_list(cli) -> None:
    empty = cli("keys", "list")
    assert empty.code == 0 and "none" in empty.out
    cli("keys", "init")
    listing = cli("keys", "list", "--json").json()
    issuers = {"114101009900000335", "114101009900000410", "11410100990000017F", AGENCY}
    assert {s["name"]: s["role"] for s in listing["signers"]} == {
        **dict.fromkeys(issuers, "signer"),
        "repository": "signer",
        "root-ca": "ca",
        "seal-maker": "seal-maker",
        "tsa": "tsa",
    }
    assert {s["name"] for s in listing["seals"]} == {*issuers, "repository"}
    assert len(listing["trust_anchors"]) == 1
    text = cli("keys", "list").out
    assert "郑州市城乡建设局电子证照专用章" in text and "certstore 开发根CA" in text
    assert "示例发证机关" not in text  # no seal of a fictional agency above a real issuer's name


@pytest.fixture
def openssl_chain(tmp_path: Path) -> Path:
    """An SM2 root and an encrypted signer key + certificate made entirely with OpenSSL."""
    d = tmp_path / "ossl"
    d.mkdir()
    (d / "ext.cnf").write_text(
        "[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
        "[leaf]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n"
    )
    steps = [
        ("genpkey", "-algorithm", "SM2", "-out", "ca.key"),
        ("req", "-x509", "-new", "-key", "ca.key", "-subj", "/C=CN/O=Provincial CA/CN=豫 Test Root", "-days", "365",
         "-out", "ca.pem", "-sigopt", DISTID, "-extensions", "ca", "-config", "ext.cnf", "-utf8"),
        ("genpkey", "-algorithm", "SM2", "-out", "leaf.key"),
        ("pkcs8", "-topk8", "-in", "leaf.key", "-out", "leaf.enc.pem", "-passout", "pass:s3cret", "-v2", "aes-256-cbc"),
        ("req", "-new", "-key", "leaf.key", "-subj", "/C=CN/O=郑州市自然资源和规划局/CN=签章人", "-out", "leaf.csr",
         "-sigopt", DISTID, "-utf8"),
        ("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "200",
         "-out", "leaf.pem", "-sigopt", DISTID, "-vfyopt", DISTID, "-extfile", "ext.cnf", "-extensions", "leaf"),
    ]  # fmt: skip
    for step in steps:
        made = openssl(*step, cwd=d)
        assert made.returncode == 0, (step, made.stderr)
    return d


@pytest.mark.openssl
def test_import_openssl_keys_and_use_them(cli, data_dir: Path, openssl_chain: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    d = openssl_chain
    assert cli("keys", "init").code == 0  # brings the seal maker
    monkeypatch.setenv("ZZ_KEY_PASSWORD", "s3cret")
    imported = cli("keys", "import", "--name", "natres", "--key", d / "leaf.enc.pem", "--cert", d / "leaf.pem",
                   "--chain", d / "ca.pem", "--password-env", "ZZ_KEY_PASSWORD")  # fmt: skip
    assert imported.code == 0, imported.err
    stored_key = data_dir / "keys/signers/natres/key.pem"
    assert b"ENCRYPTED PRIVATE KEY" in stored_key.read_bytes()  # kept encrypted at rest
    listing = cli("keys", "list", "--json").json()
    assert any("豫 Test Root" in a["subject"] for a in listing["trust_anchors"])
    picture = Path(__file__).parent / "data" / "seal.png"
    made = cli("seal", "make", "--signer", "natres", "--name", "郑州市自然资源和规划局电子证照专用章",
               "--picture", picture, "--out", tmp_path / "natres.esl")  # fmt: skip
    assert made.code == 0, made.err
    assert cli("seal", "verify", tmp_path / "natres.esl").code == 0
    monkeypatch.delenv("ZZ_KEY_PASSWORD")
    exported = cli("keys", "export", "natres", "--what", "private-key", "--password-env", "ZZ_KEY_PASSWORD")
    assert exported.code == 3 and "ZZ_KEY_PASSWORD" in exported.err


@pytest.mark.openssl
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "--key",
                "leaf.enc.pem",
                "--cert",
                "leaf.pem",
                "--chain",
                "ca.pem",
                "--password-env",
                "WRONG_PW",
            ],
            "password",
        ),
        (["--key", "leaf.enc.pem", "--cert", "leaf.pem", "--chain", "ca.pem"], "password"),
        (["--key", "ca.key", "--cert", "leaf.pem", "--chain", "ca.pem"], "not for this private key"),
        (["--key", "leaf.key", "--cert", "leaf.pem"], "root"),
        (["--key", "leaf.key", "--cert", "ext.cnf", "--chain", "ca.pem"], "certificate"),
        (["--key", "missing.pem", "--cert", "leaf.pem"], "missing.pem"),
    ],
    ids=["wrong-password", "no-password", "key-mismatch", "no-root", "not-a-cert", "missing-file"],
)
def test_import_bad_input_exits_3(cli, data_dir: Path, openssl_chain: Path, monkeypatch: pytest.MonkeyPatch,
                                  args: list[str], message: str) -> None:  # fmt: skip
    monkeypatch.setenv("WRONG_PW", "nope")
    resolved = [str(openssl_chain / a) if a.endswith((".pem", ".key", ".cnf")) else a for a in args]
    result = cli("keys", "import", "--name", "x", *resolved)
    assert result.code == 3
    assert message in result.err
    assert not (data_dir / "keys/signers/x").exists()


@pytest.mark.openssl
def test_export(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("keys", "init")
    chain = cli("keys", "export", AGENCY, "--what", "chain")
    assert chain.code == 0 and chain.out.count("BEGIN CERTIFICATE") == 2
    (tmp_path / "chain.pem").write_text(chain.out)
    pub = cli("keys", "export", AGENCY, "--what", "public-key", "--out", tmp_path / "pub.pem")
    assert pub.code == 0
    assert openssl("pkey", "-pubin", "-in", tmp_path / "pub.pem", "-noout").returncode == 0
    assert cli("keys", "export", AGENCY, "--what", "private-key").code == 3  # never in clear
    monkeypatch.setenv("EXPORT_PW", "correct horse")
    out = tmp_path / "agency.key"
    assert cli("keys", "export", AGENCY, "--what", "private-key", "--password-env", "EXPORT_PW",
               "--out", out).code == 0  # fmt: skip
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in out.read_bytes()
    opened = openssl("pkey", "-in", out, "-passin", "pass:correct horse", "-pubout")
    assert opened.returncode == 0 and opened.stdout == (tmp_path / "pub.pem").read_text()
    assert cli("keys", "export", "nobody").code == 3


def test_maker_add_trusts_another_vendors_seal_maker(cli, tmp_path: Path) -> None:
    """The ofdrw maker asserts clientAuth, not the seal-maker purpose: its seal is INVALID until trusted."""
    from tests.seal.seal_builders import FIXTURES, OFDRW_ROOT_PEM, ofdrw_maker

    assert cli("keys", "init").code == 0
    seal = FIXTURES / "esl" / "ofdrw-gm__UserV4.esl"
    assert cli("keys", "trust", "add", "ofdrw", OFDRW_ROOT_PEM).code == 0
    at = ("--at", "2021-01-01T00:00:00+00:00")
    before = cli("seal", "verify", seal, *at)
    assert before.code == 1 and "not a seal-maker certificate" in before.out
    maker = tmp_path / "maker.pem"
    maker.write_bytes(ofdrw_maker().pem)
    assert cli("seal", "verify", seal, *at, "--maker", maker).code == 0  # trusted for one verification
    added = cli("keys", "maker", "add", "ofdrw-maker", maker)
    assert added.code == 0 and "trusted seal maker" in added.out
    assert cli("seal", "verify", seal, *at).code == 0
    assert cli("keys", "maker", "add", "root", OFDRW_ROOT_PEM).code == 3  # a CA is not a seal maker
