"""A webhook receiver in its own process on a free loopback port: it checks each POST's SM3-HMAC signature with the
subscriber's secret — by its own code (``hmac`` + OpenSSL's SM3), not certstore's — and the timestamp's freshness,
answers 401 to a wrong one, and writes each accepted delivery (headers and body) to a directory the test reads.

Run as a script (``python tests/servers/webhook.py --port P --dir D [--fail-first N]``) by
:class:`WebhookReceiver`. The secret is read from ``<dir>/secret`` (hex) at each request, so a test starts the
receiver, subscribes its URL and then hands it the secret the subscription got (:meth:`WebhookReceiver.set_secret`).
``--fail-first N`` answers 503 to the first N correctly signed requests (a receiver that
is down for a while).
"""

from __future__ import annotations

import argparse
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    """Starts the receiver process; :meth:`deliveries` lists what it accepted, :meth:`rejected` what it refused."""

    def __init__(self, root: Path, *, fail_first: int = 0) -> None:
        self.dir = root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fail_first = fail_first
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/certstore"

    def start(self) -> WebhookReceiver:
        from devservers.ports import free_port

        for _ in range(5):
            self.port = free_port()
            self.process = subprocess.Popen(
                [sys.executable, __file__, "--port", str(self.port), "--dir", str(self.dir),
                 "--fail-first", str(self.fail_first)],
                stdout=subprocess.DEVNULL, stderr=(self.dir / "receiver.log").open("wb"),
            )  # fmt: skip
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"the webhook receiver did not start: {(self.dir / 'receiver.log').read_text()}")

    def stop(self) -> None:
        from devservers.processes import (
            stop_process,  # the module also runs as the server: imports stay light
        )

        stop_process(self.process)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def set_secret(self, secret_hex: str) -> None:
        """The subscriber's secret the receiver checks signatures with."""
        (self.dir / "secret.tmp").write_text(secret_hex)
        (self.dir / "secret.tmp").rename(self.dir / "secret")

    def _read(self, pattern: str) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.dir.glob(pattern))]

    def deliveries(self) -> list[dict[str, Any]]:
        """Accepted deliveries: ``{"headers": {...}, "body": {...}}``, oldest first."""
        return self._read("accepted-*.json")

    def rejected(self) -> list[dict[str, Any]]:
        return self._read("rejected-*.json")


# --- the receiver process ----------------------------------------------------------------------------------


def _signature_ok(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    try:
        stamp = int(timestamp)
    except ValueError:
        return False
    if abs(time.time() - stamp) > 300:
        return False
    expected = "sm3=" + hmac.new(secret, timestamp.encode() + b"." + body, "sm3").hexdigest()
    return hmac.compare_digest(expected, signature)


def _serve(port: int, root: Path, fail_first: int) -> None:
    lock = threading.Lock()
    state = {"count": 0, "failed": 0}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            secret_file = root / "secret"
            secret = bytes.fromhex(secret_file.read_text()) if secret_file.exists() else b""
            ok = bool(secret) and _signature_ok(
                secret,
                headers.get("x-certstore-timestamp", ""),
                body,
                headers.get("x-certstore-signature", ""),
            )
            with lock:
                state["count"] += 1
                n = state["count"]
                fail = ok and state["failed"] < fail_first
                if fail:
                    state["failed"] += 1
            if not ok:
                kind, code = "rejected", 401
            elif fail:
                kind, code = "unavailable", 503
            else:
                kind, code = "accepted", 200
            record = {"headers": headers, "body": json.loads(body) if ok else body.decode("utf-8", "replace")}
            (root / f"{kind}-{n:05d}.json").write_text(json.dumps(record, ensure_ascii=False))
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    options = parser.parse_args()
    _serve(options.port, options.dir, options.fail_first)
