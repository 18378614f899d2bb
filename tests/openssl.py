"""The OpenSSL 3 command line as an independent SM2/SM3 implementation for the tests.

:class:`OpenSSL` runs ``openssl`` in a scratch directory; :func:`verifies` answers "does OpenSSL accept this
SM2 signature by this certificate's key over these exact bytes" (default signer ID 1234567812345678) — the
cross-check the seal, OFD and PDF tests all make.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from certstore.crypto.sm2 import DEFAULT_SM2_ID
from certstore.crypto.x509 import Certificate

OPENSSL_BINARY = shutil.which("openssl")


@dataclass(frozen=True)
class KeyText:
    """What ``openssl pkey -text`` prints about a key."""

    private: int | None
    public: bytes  # uncompressed 04 ‖ x ‖ y
    curve: str | None


def parse_key_text(text: str) -> KeyText:
    blocks: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if current is not None and line[:1] in (" ", "\t"):
            blocks[current] += line.strip()
            continue
        match = re.match(r"^(priv|pub):\s*$", line)
        current = match.group(1) if match else None
        if current is not None:
            blocks[current] = ""
    if "pub" not in blocks:
        raise AssertionError(f"no public key in openssl output:\n{text}")
    curve = re.search(r"^ASN1 OID: (\S+)", text, re.M)
    private = int(blocks["priv"].replace(":", ""), 16) if "priv" in blocks else None
    return KeyText(private, bytes.fromhex(blocks["pub"].replace(":", "")), curve.group(1) if curve else None)


def distid_option(distid: bytes) -> str:
    """``-pkeyopt`` value giving OpenSSL the SM2 signer ID: ``distid:`` for printable ASCII, else hex."""
    if distid and all(0x21 <= c < 0x7F for c in distid):
        return f"distid:{distid.decode()}"
    return f"hexdistid:{distid.hex()}"


class OpenSSL:
    """Runs the ``openssl`` command line in a scratch directory."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir

    def run(
        self, *args: str | Path, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        completed = subprocess.run(
            [self.binary, *map(str, args)],
            cwd=self.workdir,
            input=stdin,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"openssl {' '.join(map(str, args))} exited {completed.returncode}:\n"
                f"{completed.stderr.decode(errors='replace')}"
            )
        return completed

    def path(self, name: str) -> Path:
        return self.workdir / name

    def write(self, name: str, data: bytes) -> Path:
        path = self.workdir / name
        path.write_bytes(data)
        return path

    def read(self, name: str) -> bytes:
        return (self.workdir / name).read_bytes()

    def key_text(self, path: Path, *options: str) -> KeyText:
        """``openssl pkey -in PATH OPTIONS -noout -text``, parsed."""
        return parse_key_text(self.run("pkey", "-in", path, *options, "-noout", "-text").stdout.decode())

    def verify(self, public_pem: Path, message: Path, signature: Path, distid: bytes) -> bool:
        """``openssl pkeyutl -verify -rawin -digest sm3`` with the signer ID ``distid``."""
        completed = self.run(
            "pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", public_pem,
            "-in", message, "-sigfile", signature, "-pkeyopt", distid_option(distid),
            check=False,
        )  # fmt: skip
        if completed.returncode not in (0, 1):
            raise AssertionError(
                f"openssl pkeyutl -verify failed: {completed.stderr.decode(errors='replace')}"
            )
        return completed.returncode == 0 and b"Signature Verified Successfully" in completed.stdout

    def sign(self, private_pem: Path, message: Path, distid: bytes) -> bytes:
        """``openssl pkeyutl -sign -rawin -digest sm3`` with the signer ID ``distid``: a DER signature."""
        out = self.path(f"{message.name}.{distid.hex()[:16]}.sig")
        self.run(
            "pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", private_pem, "-in", message,
            "-out", out, "-pkeyopt", distid_option(distid),
        )  # fmt: skip
        return out.read_bytes()


def verifies(workdir: Path, certificate: Certificate, message: bytes, signature: bytes) -> bool:
    """``openssl pkeyutl -verify -rawin -digest sm3`` of ``signature`` over ``message`` with the public key of
    ``certificate`` (extracted by ``openssl x509 -pubkey``), default SM2 signer ID."""
    if OPENSSL_BINARY is None:
        raise AssertionError("no openssl binary on PATH")
    tool = OpenSSL(OPENSSL_BINARY, workdir)
    cert = tool.write("verify-cert.pem", certificate.pem)
    public = tool.path("verify-pub.pem")
    tool.run("x509", "-pubkey", "-noout", "-in", cert, "-out", public)
    return tool.verify(
        public, tool.write("verify-msg.bin", message), tool.write("verify-sig.der", signature), DEFAULT_SM2_ID
    )
