"""`certstore seal make|show|verify` as docs/cli.md specifies (exit codes included)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def seal_file(cli, tmp_path: Path) -> Path:
    assert cli("keys", "init").code == 0
    out = tmp_path / "seal.esl"
    made = cli("seal", "make", "--signer", "11410100990000025A", "--name", "郑州市城乡建设局电子证照专用章",
               "--picture", DATA / "seal.png", "--valid-days", "30", "--out", out)  # fmt: skip
    assert made.code == 0, made.err
    assert "郑州市城乡建设局电子证照专用章" in made.out
    return out


def test_make_show_verify(cli, seal_file: Path) -> None:
    shown = cli("seal", "show", seal_file, "--json")
    assert shown.code == 0
    info = shown.json()
    assert isinstance(info, dict)
    text = str(info)
    assert "郑州市城乡建设局电子证照专用章" in text and "PNG" in text
    verified = cli("seal", "verify", seal_file)
    assert verified.code == 0, verified.out + verified.err
    assert verified.out.startswith("VALID")
    report = cli("seal", "verify", seal_file, "--json").json()
    assert report["indication"] == "VALID"
    assert {c["name"] for c in report["checks"]} >= {"seal_signature", "seal_validity"}


def test_jpeg_picture_and_store_as(cli, tmp_path: Path, data_dir: Path) -> None:
    cli("keys", "init")
    made = cli("seal", "make", "--signer", "11410100990000025A", "--name", "测试章", "--picture", DATA / "seal.jpg",
               "--out", tmp_path / "j.esl", "--store-as", "jpeg-seal")  # fmt: skip
    assert made.code == 0, made.err
    assert (data_dir / "keys/seals/jpeg-seal.esl").read_bytes() == (tmp_path / "j.esl").read_bytes()
    assert "JPG" in cli("seal", "show", tmp_path / "j.esl").out


def test_expired_at_a_later_time_is_invalid(cli, seal_file: Path) -> None:
    result = cli("seal", "verify", seal_file, "--at", "2099-01-01T00:00:00+08:00")
    assert result.code == 1
    assert result.out.startswith("INVALID")
    assert "seal_validity" in result.out


def test_unknown_trust_is_indeterminate_then_trust_option(
    cli, seal_file: Path, tmp_path: Path, data_dir: Path
) -> None:
    elsewhere = tmp_path / "other-data"
    untrusted = cli("seal", "verify", seal_file, data=elsewhere)
    assert untrusted.code == 2, untrusted.out
    assert untrusted.out.startswith("INDETERMINATE")
    trusted = cli("seal", "verify", seal_file, "--trust", data_dir / "keys/trust/root-ca.pem", data=elsewhere)
    assert trusted.code == 0, trusted.out


def test_tampered_seal_is_invalid(cli, seal_file: Path, tmp_path: Path) -> None:
    data = bytearray(seal_file.read_bytes())
    position = data.index("郑州市城乡建设局电子证照专用章".encode())
    data[position + 3] ^= 0x01
    tampered = tmp_path / "tampered.esl"
    tampered.write_bytes(bytes(data))
    result = cli("seal", "verify", tampered, "--json")
    assert result.code == 1
    failed = [c for c in result.json()["checks"] if c["result"] == "FAILED"]
    assert failed and failed[0]["name"] == "seal_signature"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["seal", "verify", "{tmp}/missing.esl"], "missing.esl"),
        (["seal", "verify", "{garbage}"], ""),
        (["seal", "show", "{garbage}"], ""),
        (["seal", "verify", "{seal}", "--at", "yesterday"], "ISO 8601"),
        (["seal", "verify", "{seal}", "--no-such-option"], "No such option"),
        (
            [
                "seal",
                "make",
                "--signer",
                "11410100990000025A",
                "--name",
                "x",
                "--picture",
                "{garbage}",
                "--out",
                "{tmp}/x.esl",
            ],
            "not an image",
        ),
        (
            [
                "seal",
                "make",
                "--signer",
                "nobody",
                "--name",
                "x",
                "--picture",
                "{png}",
                "--out",
                "{tmp}/x.esl",
            ],
            "nobody",
        ),
    ],
    ids=[
        "missing",
        "garbage-verify",
        "garbage-show",
        "bad-time",
        "bad-option",
        "bad-picture",
        "unknown-signer",
    ],
)
def test_bad_input_exits_3(cli, seal_file: Path, tmp_path: Path, args: list[str], message: str) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x30\x82\xff\xff not a seal")
    values = {
        "tmp": str(tmp_path),
        "garbage": str(garbage),
        "seal": str(seal_file),
        "png": str(DATA / "seal.png"),
    }
    result = cli(*[a.format(**values) for a in args])
    assert result.code == 3, (result.out, result.err)
    assert message in result.err
