"""A real ``certstore serve`` process (uvicorn, one or more workers) for tests and benchmarks.

``ApiServer(data_dir, env=..., workers=2).start()`` runs ``certstore --data-dir DIR serve --port P --workers N``
as a child process in its own process group, on a free loopback port, with stdout/stderr going to
``<data_dir>/../serve-<port>.log``, and waits until ``GET /api/v1/health`` answers ``ok``. ``stop()`` sends
SIGTERM to the uvicorn process (which stops its workers and drains their audit trails) and, after a grace
period, SIGKILL to the group it leads. Nothing here imports pytest, so ``bench/`` uses it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from devservers.ports import free_port

__all__ = ["ApiServer", "ApiServerStartError", "free_port"]

START_ATTEMPTS = 3  # a free port can be taken between probing and binding; try another one


class ApiServerStartError(RuntimeError):
    """``certstore serve`` did not answer its health check; the message ends with the tail of its log."""


class ApiServer:
    """One ``certstore serve`` process; use :meth:`start` / :meth:`stop` or ``with``."""

    host = "127.0.0.1"

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        port: int | None = None,
        startup_timeout: float = 90.0,
        stop_timeout: float = 30.0,
    ) -> None:
        """``port``: listen there (a caller that sealed files with this server's URL before starting it);
        default a free port, tried again on another one if it was taken meanwhile."""
        self.data_dir = Path(data_dir)
        self.env = dict(os.environ if env is None else env)
        self.workers = workers
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.fixed_port = port
        self.port = port or 0
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the API server is not running")
        return self._process.pid

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ApiServer:
        """Start the server and wait for a healthy answer; retried on a fresh port if the port was taken."""
        if self._process is not None:
            return self
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start_once()
                return self
            except ApiServerStartError as exc:
                self.stop()
                taken = "address already in use" in str(exc).lower()
                if attempt == START_ATTEMPTS or not taken or self.fixed_port is not None:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        self.port = self.fixed_port or free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"serve-{self.port}.log"
        argv = [
            sys.executable,
            "-c",
            "from certstore.cli import main; main()",
            *("--data-dir", str(self.data_dir), "serve"),
            *("--host", self.host, "--port", str(self.port), "--workers", str(self.workers)),
        ]
        env = {**self.env, "CERTSTORE_DATA_DIR": str(self.data_dir)}
        env.setdefault("CERTSTORE_PUBLIC_URL", self.base_url)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() can reach the workers too
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ApiServerStartError(
                    f"certstore serve exited with code {self._process.returncode}\n{self.log_tail()}"
                )
            try:
                answer = httpx.get(f"{self.base_url}/api/v1/health", timeout=2)
                if answer.status_code == 200 and answer.json().get("status") == "ok":
                    return
                last = f"HTTP {answer.status_code}: {answer.text[:200]}"
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.2)
        raise ApiServerStartError(
            f"certstore serve not healthy on {self.base_url} within {self.startup_timeout:.0f} s "
            f"(last: {last})\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM (uvicorn stops its workers and each drains its audit trail), SIGKILL to the group later.

        The group is signalled only before its leader is reaped, so its id cannot have been reused."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the server's output."""
        if self.log_path is None:
            return "(no log)"
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"(no log: {exc})"
        return "--- certstore serve log tail ---\n" + "\n".join(text[-lines:])
