"""``python -m bench http``: verification uploads and status look-ups over HTTP, under load from ``wrk``, against
``certstore serve --workers 2``.

Set-up (not timed): a throwaway PostgreSQL server and a SeaweedFS S3 server (``tests/servers/``, the same code
the test suite starts them with), a data directory with dev keys and the shipped catalogue, a handful of sealed
construction permits (建筑工程施工许可证, 132 KiB OFD each) and an agency token. Then ``certstore serve`` runs
with **two uvicorn worker processes** sharing that database and bucket, and Debian's ``wrk`` — a separate
process, one thread, ``CONNECTIONS`` keep-alive connections — drives four closed-loop runs:

- ``verify``: ``POST /api/v1/public/verify`` (multipart upload of a sealed OFD, rotating over the issued files);
  the full pipeline plus the repository look-up and one audit event per call;
- ``public_status``: ``GET /api/v1/public/certificates/{id}/status`` (what the QR code opens; audited);
- ``status``: ``GET /api/v1/certificates/{id}/status`` with the agency's bearer token (token look-up, scope
  check, audited);
- ``health``: ``GET /api/v1/health`` (one ``SELECT 1``, not audited) — the reference for the look-ups.

Each run prints requests per second and p50/p99 latency as wrk measures them (closed loop: latency is that of
a client that waits for its answer, not an open-loop arrival rate). References measured in the same run:

- ``verify_inprocess_per_s``: ``verify_file`` with the same repository look-up, in this process on one core;
  ``http_verify_vs_inprocess_x2_ratio`` = HTTP verifications/s ÷ (2 × that), i.e. how much of two cores'
  worth of bare verification survives HTTP, multipart parsing, auditing — and sharing the two cores with wrk
  and the database;
- ``http_health_per_s``: the floor of the HTTP stack itself; ``http_status_vs_health_ratio`` and
  ``http_public_status_vs_health_ratio`` tell what a status look-up costs on top of it.

``CERTSTORE_BENCH_HTTP_STORE=sqlite`` runs on SQLite + files instead (also the fallback when PostgreSQL or
SeaweedFS cannot be started here); ``http_store_postgres`` says which store the numbers are for. Without
``wrk`` on ``PATH`` (``apt-get install wrk``; ``scripts/install-system-deps``) every figure is ``nan``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import httpx

from bench import BenchContext, Results, register, single_cpu
from bench._setup import bench_call, prepared_data_dir
from certstore.access import Role
from certstore.app import Application
from certstore.records import example_draft
from certstore.services import access, certificates
from certstore.services.catalogue import get_entry
from certstore.verify import verify_file

CATALOGUE = "11410100990000025A001"  # 建筑工程施工许可证: the densest face of the shipped types
WORKERS = 2
CONNECTIONS = 8
STORE_ENV = "CERTSTORE_BENCH_HTTP_STORE"
BOUNDARY = "certstore-bench-boundary-7d1f0c"
RESULT_PREFIX = "CERTSTORE-BENCH "

#: Lua for wrk: ``done`` prints one JSON line with the figures (latencies in µs).
_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,"socket_errors":%d,"status_errors":%d}\n',
    "__PREFIX__", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""

#: Lua for wrk: GET one of ``paths`` per request, in turn.
_ROTATING_GET_LUA = r"""
local paths = {__PATHS__}
local i = 0
__HEADERS__
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
"""

#: Lua for wrk: POST one of the multipart bodies read from ``files`` per request, in turn.
_ROTATING_POST_LUA = r"""
local bodies = {}
for _, path in ipairs({__FILES__}) do
  local f = assert(io.open(path, "rb"))
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
wrk.headers["Content-Type"] = "multipart/form-data; boundary=__BOUNDARY__"
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "__PATH__", nil, bodies[(i % #bodies) + 1])
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors + answers that were not 2xx/3xx

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class Prepared:
    """What the set-up made: the server's environment, identifiers, files and a token."""

    env: dict[str, str]
    identifiers: list[str]
    files: list[bytes]
    agency_token: str


def _lua_string(text: str) -> str:
    """A Lua string literal (the inputs here are paths and ASCII identifiers)."""
    return json.dumps(text)  # JSON string escapes are valid Lua escapes for this character range


def run_wrk(
    wrk: str, url: str, script: str, *, seconds: float, connections: int, work_dir: Path
) -> LoadResult:
    """Run ``wrk`` (one thread) for ``seconds`` with ``script`` (+ the reporting ``done``); parse its report."""
    path = work_dir / f"wrk-{secrets.token_hex(4)}.lua"
    path.write_text(script + _DONE_LUA.replace("__PREFIX__", RESULT_PREFIX), encoding="utf-8")
    duration = f"-d{max(1, round(seconds))}s"
    argv = [wrk, "-t1", f"-c{connections}", duration, "--timeout", "10s", "-s", str(path), url]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed (exit {completed.returncode}):\n{completed.stdout}{completed.stderr}")
    report = json.loads(lines[-1][len(RESULT_PREFIX) :])
    return LoadResult(
        requests=int(report["requests"]),
        seconds=report["duration_us"] / 1e6,
        p50_ms=report["p50_us"] / 1000,
        p99_ms=report["p99_us"] / 1000,
        errors=int(report["socket_errors"]) + int(report["status_errors"]),
    )


def _multipart(data: bytes, name: str) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/ofd\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


@contextlib.contextmanager
def _store(ctx: BenchContext, root: Path) -> Iterator[tuple[dict[str, str], bool]]:
    """The ``CERTSTORE_*`` variables of the store to use, and whether it is PostgreSQL + S3."""
    wanted = os.environ.get(STORE_ENV, "postgres").strip().lower()
    if wanted not in ("postgres", "sqlite"):
        raise ValueError(f"{STORE_ENV}: postgres or sqlite, not {wanted!r}")
    if wanted == "sqlite":
        yield {}, False
        return
    try:  # the servers' code lives with the tests that also start them (needs the test extras)
        from devservers.postgres import PostgresServer, PostgresUnavailableError
        from devservers.seaweedfs import SeaweedFS, SeaweedFSStartError, find_weed

        weed = find_weed()
        postgres = PostgresServer()
    except (ImportError, FileNotFoundError, PostgresUnavailableError) as exc:
        ctx.log(f"PostgreSQL + S3 unavailable ({exc}); falling back to SQLite + files")
        yield {}, False
        return
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(postgres)
            s3 = stack.enter_context(SeaweedFS(root / "seaweedfs", weed=weed))
        except (RuntimeError, SeaweedFSStartError) as exc:
            stack.close()
            ctx.log(f"PostgreSQL + S3 did not start ({exc}); falling back to SQLite + files")
            yield {}, False
            return
        env = {
            "CERTSTORE_DATABASE_URL": postgres.url(postgres.create_database("bench_http")),
            "CERTSTORE_BLOB_URL": f"s3://{s3.endpoint}/certstore-bench",
            "CERTSTORE_ALLOW_OWNER": "1",  # a throwaway database served as the superuser that migrated it
            **s3.env(),
        }
        yield env, True


def _prepare(ctx: BenchContext, data_dir: Path, store_env: dict[str, str], count: int) -> Prepared:
    """Migrate, make keys, load the catalogue, issue ``count`` certificates, create a token. The server reads
    the same data directory (keys, holder-index key) as this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    # the load is the point: the per-client limit of the public routes (api/ratelimit.py) is off for this server
    env.update(store_env, CERTSTORE_DATA_DIR=str(data_dir), CERTSTORE_PUBLIC_RATE="0")
    data_dir.mkdir(parents=True)
    app = prepared_data_dir(data_dir, env)
    try:
        entry = get_entry(app.repo, CATALOGUE)
        base = example_draft(entry, issue_date=date(2026, 11, 26))
        call = bench_call("http")
        identifiers: list[str] = []
        files: list[bytes] = []
        for n in range(count):
            draft = replace(base, certificate_number=f"41010020241126{n:04d}")
            issued = certificates.issue(app, call, draft).certificate
            assert issued.file_key is not None
            identifiers.append(issued.identifier)
            files.append(app.repo.blobs.get(issued.file_key))
        token = access.create_token(
            app.repo, role=Role.AGENCY, organisation_code=entry.issuer.credit_code,
            organisation_name=entry.issuer.name, name="bench-agency", days=1,
        ).token  # fmt: skip
    finally:
        app.close()
    return Prepared(env, identifiers, files, token)


def measure_inprocess_verify(ctx: BenchContext, data_dir: Path, prepared: Prepared) -> float:
    """``verify_file`` per second with the repository look-up the API does, in this process on one core —
    measured just before the HTTP verification run, under the same conditions (the server idles meanwhile)."""
    app = Application.open(data_dir, prepared.env)
    try:
        trust, check = app.trust, app.repository_check()
        files = prepared.files
        report = verify_file(files[0], trust=trust, repository=check)
        if report.indication.value != "VALID":
            raise RuntimeError(f"benchmark file does not verify: {report.to_dict()}")
        index = iter(range(10**9))

        def verify_one() -> None:
            verify_file(files[next(index) % len(files)], trust=trust, repository=check)

        with single_cpu():
            return ctx.rate(verify_one, seconds=ctx.pick(full=5.0, quick=1.0)).per_s
    finally:
        app.close()


def _nan_results() -> Results:
    keys = [
        "http_verify_per_s", "http_verify_p50_ms", "http_verify_p99_ms", "verify_inprocess_per_s",
        "http_verify_vs_inprocess_x2_ratio", "http_public_status_per_s", "http_public_status_p50_ms",
        "http_public_status_p99_ms", "http_status_per_s", "http_status_p50_ms", "http_status_p99_ms",
        "http_health_per_s", "http_health_p50_ms", "http_health_p99_ms", "http_status_vs_health_ratio",
        "http_public_status_vs_health_ratio", "http_errors",
    ]  # fmt: skip
    return dict.fromkeys(keys, float("nan"))


@register(
    "http",
    "HTTP verify uploads and status look-ups under wrk load, `certstore serve` with 2 workers (PostgreSQL + S3)",
)
def http(ctx: BenchContext) -> Results:
    wrk = shutil.which("wrk")
    if wrk is None:
        ctx.log("wrk not found: install Debian's wrk (apt-get install wrk; scripts/install-system-deps)")
        return _nan_results()
    try:  # with the other throwaway servers (devservers/); imports no pytest
        from devservers.api import ApiServer
    except ImportError as exc:
        ctx.log(f"devservers/api.py not importable ({exc}): run from a source checkout")
        return _nan_results()

    seconds = ctx.pick(full=15.0, quick=1.0)
    warm_up = ctx.pick(full=3.0, quick=0.0)  # --quick only checks that every figure comes out
    with tempfile.TemporaryDirectory(prefix="certstore-bench-http-") as tmp:
        root = Path(tmp)
        with _store(ctx, root) as (store_env, on_postgres):
            store_name = "PostgreSQL + SeaweedFS S3" if on_postgres else "SQLite + files"
            prepared = _prepare(ctx, root / "data", store_env, int(ctx.pick(full=24, quick=6)))
            ctx.log(f"store: {store_name}; {len(prepared.identifiers)} certificates issued")
            body_files = []
            for n, data in enumerate(prepared.files):
                path = root / f"body{n}.bin"
                path.write_bytes(_multipart(data, f"certificate-{n}.ofd"))
                body_files.append(str(path))
            status_paths = [f"/api/v1/certificates/{i}/status" for i in prepared.identifiers]
            public_paths = [f"/api/v1/public/certificates/{i}/status" for i in prepared.identifiers]
            auth_header = f'wrk.headers["Authorization"] = {_lua_string("Bearer " + prepared.agency_token)}'
            scripts = {
                "verify": _ROTATING_POST_LUA.replace("__FILES__", ", ".join(map(_lua_string, body_files)))
                .replace("__BOUNDARY__", BOUNDARY)
                .replace("__PATH__", "/api/v1/public/verify"),
                "public_status": _ROTATING_GET_LUA.replace(
                    "__PATHS__", ", ".join(map(_lua_string, public_paths))
                ).replace("__HEADERS__", ""),
                "status": _ROTATING_GET_LUA.replace(
                    "__PATHS__", ", ".join(map(_lua_string, status_paths))
                ).replace("__HEADERS__", auth_header),
                "health": _ROTATING_GET_LUA.replace("__PATHS__", _lua_string("/api/v1/health")).replace(
                    "__HEADERS__", ""
                ),
            }
            with ApiServer(root / "data", env=prepared.env, workers=WORKERS) as server:
                _check_answers(server.base_url, prepared)
                results: dict[str, LoadResult] = {}
                inprocess = measure_inprocess_verify(ctx, root / "data", prepared)
                ctx.log(f"reference: in-process verify_file (repository look-up, one core) {inprocess:.0f}/s")
                for name, script in scripts.items():
                    if warm_up:  # both workers warm (trust store, caches, pools)
                        run_wrk(wrk, server.base_url, script, seconds=warm_up, connections=CONNECTIONS,
                                work_dir=root)  # fmt: skip
                    result = run_wrk(
                        wrk, server.base_url, script, seconds=seconds, connections=CONNECTIONS, work_dir=root
                    )
                    results[name] = result
                    ctx.log(f"{name:>13}: {result.per_s:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
                            f"p99 {result.p99_ms:7.2f} ms  ({result.requests} requests, "
                            f"{result.errors} errors)")  # fmt: skip

    verify_ref = WORKERS * inprocess
    health = results["health"].per_s
    ratio = results["verify"].per_s / verify_ref
    ctx.log(f"verification over HTTP at {ratio:.2f} of 2 × in-process ({verify_ref:.0f}/s); "
            f"status look-ups at {results['status'].per_s / health:.2f} of the health route "
            f"({WORKERS} workers, {CONNECTIONS} connections, wrk on the same {os.cpu_count()} CPUs, "
            f"{store_name})")  # fmt: skip
    out: Results = {"http_store_postgres": int(on_postgres), "http_workers": WORKERS}
    for name in ("verify", "public_status", "status", "health"):
        out[f"http_{name}_per_s"] = results[name].per_s
        out[f"http_{name}_p50_ms"] = results[name].p50_ms
        out[f"http_{name}_p99_ms"] = results[name].p99_ms
    out["verify_inprocess_per_s"] = inprocess
    out["http_verify_vs_inprocess_x2_ratio"] = ratio
    out["http_status_vs_health_ratio"] = results["status"].per_s / health
    out["http_public_status_vs_health_ratio"] = results["public_status"].per_s / health
    out["http_errors"] = sum(r.errors for r in results.values())
    return out


def _check_answers(base_url: str, prepared: Prepared) -> None:
    """One request of each kind answers as expected before any load (a benchmark of errors is worthless)."""
    identifier = prepared.identifiers[0]
    report = httpx.post(
        f"{base_url}/api/v1/public/verify",
        files={"file": ("certificate.ofd", prepared.files[0], "application/ofd")},
        timeout=30,
    )
    if report.status_code != 200 or report.json().get("indication") != "VALID":
        raise RuntimeError(f"verification over HTTP: {report.status_code} {report.text[:500]}")
    headers = {"Authorization": f"Bearer {prepared.agency_token}"}
    for path, sent in (
        (f"/api/v1/public/certificates/{identifier}/status", {}),
        (f"/api/v1/certificates/{identifier}/status", headers),
    ):
        answer = httpx.get(f"{base_url}{path}", headers=sent, timeout=30)
        if answer.status_code != 200 or answer.json().get("identifier") != identifier:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:500]}")
