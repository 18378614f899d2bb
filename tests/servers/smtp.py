"""A real SMTP server (aiosmtpd) in its own process on a free loopback port, writing every message it accepts to a
directory the test reads — never an in-process fake of the protocol.

Run as a script (``python tests/servers/smtp.py --port P --dir D``) by :class:`SmtpServer`. Knobs, through files in
the directory: while ``hold`` exists, a message is stored but its acknowledgement (250) held back (the server
writes ``holding`` meanwhile) — a test kills the sender then, "mid-delivery": the mail arrived, the sender never
learnt it; recipients at ``@bounce.test`` are refused with 550 (a permanently failing address). With
``starttls=True`` the server offers STARTTLS with a certificate for 127.0.0.1 from a throwaway CA (:attr:`SmtpServer.ca_file`)
and refuses to take mail before the upgrade.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import signal
import socket
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

__all__ = ["SmtpServer"]


class SmtpServer:
    """Starts the server process; :meth:`messages` parses what it stored, oldest first."""

    def __init__(self, root: Path, *, starttls: bool = False) -> None:
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starttls = starttls
        self.ca_file = self.dir / "ca.pem"

    def start(self) -> SmtpServer:
        from devservers.ports import free_port

        tls: list[str] = []
        if self.starttls:
            _make_tls_files(self.dir)
            tls = ["--tls"]
        for _ in range(5):
            self.port = free_port()
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--port", str(self.port), "--dir", str(self.dir), *tls],
                stdout=subprocess.DEVNULL, stderr=(self.dir / "server.log").open("wb"),
            )  # fmt: skip
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                        if sock.recv(3) == b"220":
                            return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"the SMTP server did not start: {(self.dir / 'server.log').read_text()}")

    def stop(self) -> None:
        from devservers.processes import (
            stop_process,  # the module also runs as the server: imports stay light
        )

        stop_process(self.process)

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The ``CERTSTORE_SMTP_*`` settings that send here."""
        return {"CERTSTORE_SMTP_HOST": "127.0.0.1", "CERTSTORE_SMTP_PORT": str(self.port),
                "CERTSTORE_SMTP_FROM": "certstore@zz.gov.example"}  # fmt: skip

    def messages(self) -> list[EmailMessage]:
        found = []
        for path in sorted(self.dir.glob("*.eml")):
            found.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
        return found  # type: ignore[return-value]

    def wait_for(self, count: int, timeout: float = 15) -> list[EmailMessage]:
        """The messages once there are at least ``count`` (AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) >= count, f"{len(found)} of {count} messages arrived"
                return found
            time.sleep(0.05)

    def hold(self) -> None:
        (self.dir / "hold").touch()

    def release(self) -> None:
        (self.dir / "hold").unlink(missing_ok=True)

    def wait_holding(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while not (self.dir / "holding").exists():
            assert time.monotonic() < deadline, "no message reached the held state"
            time.sleep(0.02)


# --- the server process ------------------------------------------------------------------------------------


class _Handler:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.endswith("@bounce.test"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.count += 1
        name = f"{time.time_ns()}-{os.getpid()}-{self.count:05d}"
        tmp = self.root / f"{name}.tmp"
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(self.root / f"{name}.eml")
        while (self.root / "hold").exists():  # stored, not yet acknowledged
            (self.root / "holding").touch()
            await asyncio.sleep(0.02)
        return "250 Message accepted for delivery"


def _make_tls_files(root: Path) -> None:
    """A throwaway CA (``ca.pem``) and a server certificate for 127.0.0.1 (``server.pem``, ``server.key``)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certstore test mail CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (root / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (root / "server.key").write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))  # fmt: skip


def _serve(port: int, root: Path, tls: bool) -> None:
    import ssl

    from aiosmtpd.controller import Controller

    options: dict[str, object] = {}
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(root / "server.pem", root / "server.key")
        options = {"tls_context": context, "require_starttls": True}
    controller = Controller(_Handler(root), hostname="127.0.0.1", port=port, decode_data=False, **options)
    controller.start()
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopped:
            time.sleep(0.1)
    finally:
        controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--tls", action="store_true")
    options = parser.parse_args()
    _serve(options.port, options.dir, options.tls)
