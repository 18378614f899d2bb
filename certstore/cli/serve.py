"""``certstore serve``: the API and web pages under uvicorn.

The public URL (what sealed files print in their QR code): ``CERTSTORE_PUBLIC_URL`` or the data directory's
configuration (``certstore config set public-url``). Without one the API serves, verifies and reads, but
refuses to seal (503 ``public-url-not-configured``) — except with ``--demo``, which seals with
``http://HOST:PORT`` when nothing else is configured (a demo's files are not meant to outlive it).
"""

from __future__ import annotations

import inspect
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click

from certstore.access import Role
from certstore.audit.partitions import check_role
from certstore.cli.common import Context, Failure, handle_errors, pass_context
from certstore.services import access, logins
from certstore.services.catalogue import list_entries, load_shipped
from certstore.services.keys import init_dev_keys
from certstore.store.config import HOW_TO_SET, PUBLIC_URL_ENV

#: Demo principals: one per role. The agency is the issuer of the shipped construction permit type.
DEMO_PRINCIPALS = [
    (Role.AGENCY, "11410100990000025A", "郑州市城乡建设局（示例）", "demo-agency"),
    (Role.WINDOW, "12410100MB0000001X", "郑州市政务服务中心（示例）", "demo-window"),
    (Role.BUREAU, "11410100MB1700000X", "郑州市大数据管理局（示例）", "demo-bureau"),
    (Role.AUDITOR, "11410100MB1700000X", "郑州市大数据管理局（示例）", "demo-auditor"),
    (Role.UPSTREAM, "11410000MB0000000X", "河南省电子证照库（示例）", "demo-province"),
]


def _prepare_demo(ctx: Context) -> None:
    store = ctx.keystore
    if not store.exists():
        init_dev_keys(store)
        click.echo(f"demo: dev keys created under {store.root}", err=True)
    repo = ctx.application().repo
    if not list_entries(repo):
        load_shipped(repo)
    tokens_file = ctx.data_dir / "demo-tokens.json"
    tokens: dict[str, str] = {}
    for role, org, org_name, name in DEMO_PRINCIPALS:
        issued = access.create_token(
            repo, role=role, organisation_code=org, organisation_name=org_name, name=name, days=7
        )
        tokens[role.value] = issued.token
    descriptor = os.open(tokens_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(json.dumps(tokens, indent=2) + "\n")
    click.echo(f"demo: a 7-day token per role written to {tokens_file}", err=True)
    # the web pages' logins (docs/pages.md): a fresh random password per demo principal
    pages: dict[str, dict[str, str]] = {}
    for role, org, _org_name, name in DEMO_PRINCIPALS:
        password = secrets.token_urlsafe(12)
        logins.set_password(repo, organisation_code=org, name=name, password=password)
        pages[role.value] = {"organisation_code": org, "name": name, "password": password}
    logins_file = ctx.data_dir / "demo-logins.json"
    descriptor = os.open(logins_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(json.dumps(pages, ensure_ascii=False, indent=2) + "\n")
    click.echo(
        f"demo: web-page logins (organisation code, name, password) written to {logins_file}", err=True
    )


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="uvicorn worker processes"
)
@click.option(
    "--demo",
    is_flag=True,
    help="First create dev keys, the sample catalogue and a token per role; without a configured public URL, "
    "seal with http://HOST:PORT.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDR",
    help="A reverse proxy (address or network; repeatable) whose X-Forwarded-For/-Proto are believed "
    "[default: CERTSTORE_TRUSTED_PROXIES, else none]",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0),
    help="Seconds a request's headers may take before the connection is closed "
    "[default: CERTSTORE_HEADER_TIMEOUT, else 10; 0: none]",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0),
    help="Seconds a request body may stall before it is answered 408 "
    "[default: CERTSTORE_BODY_TIMEOUT, else 30; 0: none]",
)
@click.option(
    "--keep-alive-timeout", default=5, show_default=True, type=click.IntRange(1, 3600),
    help="Seconds an idle keep-alive connection is kept open",
)  # fmt: skip
@click.option(
    "--allow-owner",
    is_flag=True,
    envvar="CERTSTORE_ALLOW_OWNER",
    help="Serve even when the database role owns the audit tables or is a superuser (PostgreSQL; warns "
    "loudly): the API should run as the application role `certstore audit grants` sets up.",
)
@pass_context
@handle_errors
def serve(
    ctx: Context,
    host: str,
    port: int,
    workers: int,
    demo: bool,
    trusted_proxies: tuple[str, ...],
    header_timeout: float | None,
    body_timeout: float | None,
    keep_alive_timeout: int,
    allow_owner: bool,
) -> None:
    """Run the API (and web pages) on HOST:PORT, in WORKERS processes sharing the database and blob store."""
    from api.serving import apply_edge_options  # request edges: docs/api.md "Limits, timeouts and proxies"

    try:
        apply_edge_options(trusted_proxies, header_timeout, body_timeout)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if demo:
        _prepare_demo(ctx)
    # opening migrates the embedded database / checks the schema before serving, and reads the public URL
    public_url = ctx.application().public_url
    _check_database_role(ctx, allow_owner)
    ctx.close()  # the workers open their own application (api.create_app)
    os.environ["CERTSTORE_DATA_DIR"] = str(ctx.data_dir)
    if public_url is None and demo:  # the demo is allowed to seal with its own address
        public_url = os.environ[PUBLIC_URL_ENV] = f"http://{host}:{port}"
    if public_url is None:
        click.echo(
            f"warning: no public URL configured: sealing is refused until there is; {HOW_TO_SET}", err=True
        )
    else:
        click.echo(f"sealed files print {public_url} in their QR code", err=True)
    click.echo(f"certstore API on http://{host}:{port} — OpenAPI at /docs", err=True)
    provider = _demo_identity_provider(host, port) if demo else None
    try:
        run_uvicorn(host, port, workers, keep_alive_timeout=keep_alive_timeout)
    finally:
        if provider is not None:
            provider.terminate()
            try:
                provider.wait(timeout=5)
            except subprocess.TimeoutExpired:
                provider.kill()
                provider.wait(timeout=5)


#: The demo holders the demo's OpenID provider knows (一号登录, docs/holders.md): the company the demo's example
#: construction permit is issued to, acting through its agent, and a real-name verified resident.
DEMO_HOLDERS = [
    {"sub": "demo-company", "org_name": "郑州示例置业有限公司", "uscc": "91410100MA44A1B2XW", "agent_name": "李经办",
     "acr": "L3"},
    {"sub": "demo-resident", "name": "张三", "id_type": "111", "id_number": "11010519491231002X", "acr": "L2"},
]  # fmt: skip


def _end_with_parent() -> None:
    """In the demo provider's process (Linux): end when the server ends, however it ends (PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _demo_identity_provider(host: str, port: int) -> subprocess.Popen[bytes] | None:
    """With ``--demo`` and no ``CERTSTORE_OIDC_ISSUER``: start ``oidc-provider-mock`` (the test extra) on
    PORT+1 with :data:`DEMO_HOLDERS`, and configure the holder login for it; without it, say how to."""
    if os.environ.get("CERTSTORE_OIDC_ISSUER"):
        return None
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    command = shutil.which("oidc-provider-mock", path=search)
    if command is None:
        click.echo(
            "demo: no holder login (一号登录): install the test extra (pip install -e '.[test]') for "
            "oidc-provider-mock, or set CERTSTORE_OIDC_ISSUER/_CLIENT_ID/_CLIENT_SECRET (docs/holders.md)",
            err=True,
        )
        return None
    provider_port = port + 1
    arguments = [command, "--host", host, "--port", str(provider_port), "--require-nonce", "true"]
    for holder in DEMO_HOLDERS:
        arguments += ["--user-claims", json.dumps(holder, ensure_ascii=False)]
    process = subprocess.Popen(
        arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_end_with_parent
    )
    issuer = f"http://{host}:{provider_port}"
    os.environ.update(
        {"CERTSTORE_OIDC_ISSUER": issuer, "CERTSTORE_OIDC_CLIENT_ID": "certstore-demo",
         "CERTSTORE_OIDC_CLIENT_SECRET": secrets.token_urlsafe(16)}
    )  # fmt: skip
    click.echo(
        f"demo: holder login (一号登录) at http://{host}:{port}/holder through the OpenID provider {issuer} "
        f"(oidc-provider-mock; log in as {' or '.join(h['sub'] for h in DEMO_HOLDERS)})",
        err=True,
    )
    return process


def _check_database_role(ctx: Context, allow_owner: bool) -> None:
    """PostgreSQL: refuse to serve as a role that owns the audit tables (or a superuser) — it could alter,
    truncate or drop them — unless ``--allow-owner``, which warns loudly (docs/audit.md)."""
    role = check_role(ctx.application().repo.db)
    if role is None:
        return
    if not role.event_triggers:
        click.echo(
            "warning: the audit event triggers (audit_ddl_guard, audit_drop_guard) are not installed: the owner "
            "role can detach or drop audit partitions; a superuser runs what `certstore audit grants` prints",
            err=True,
        )
    if not role.owns_audit_tables:
        return
    what = "a superuser" if role.superuser else f"the owner of the audit tables ({role.owner})"
    if not allow_owner:
        raise Failure(
            f"the database role {role.role} is {what}: serve the API as the application role that "
            "`certstore audit grants --role certstore_app` sets up (see README.md), or pass --allow-owner"
        )
    banner = "!" * 100
    click.echo(
        f"{banner}\nWARNING: serving as {role.role}, {what} (--allow-owner): the audit trail is NOT protected "
        f"from this process — it may alter, truncate or drop the audit tables.\n{banner}",
        err=True,
    )


APP = "api:create_app"  # an import string: worker processes import the factory themselves


def _log_config() -> dict[str, object]:
    """uvicorn's logging configuration with the filter masking holder ID numbers in the access log
    (``api.logscrub``, issue 17); the filter is named by an import string, so each worker installs it itself."""
    from api.logscrub import logging_config

    return logging_config()


def run_uvicorn(host: str, port: int, workers: int, *, keep_alive_timeout: int = 5) -> None:
    """Serve :data:`APP` with uvicorn: in this process for one worker, else under uvicorn's supervisor.

    With several workers uvicorn binds the listening socket itself with ``proto`` 0; the connections accepted
    from it inherit that, and asyncio then skips ``TCP_NODELAY`` (Kludex/uvicorn#3149), so on Linux every
    answer on a keep-alive connection after the first waits ~40 ms for the client's delayed ACK. The
    listener is therefore re-wrapped as ``IPPROTO_TCP`` before the workers inherit it.
    """
    import uvicorn  # the server is only needed here
    from uvicorn.supervisors import Multiprocess

    from api.serving import uvicorn_options

    edges = uvicorn_options(keep_alive_timeout)  # header timeout and size, no proxy headers of uvicorn's own
    if workers == 1:
        uvicorn.run(
            APP, factory=True, host=host, port=port, log_level="info", log_config=_log_config(), **edges
        )
        return
    config = uvicorn.Config(
        APP, factory=True, host=host, port=port, workers=workers, log_level="info", log_config=_log_config(),
        **edges,
    )  # fmt: skip
    bound = config.bind_socket()
    listener = socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())
    listener.set_inheritable(True)
    supervisor_options: dict[str, object] = {"sockets": [listener]}
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.36 passes the target
        supervisor_options["target"] = uvicorn.Server(config).run
    try:
        Multiprocess(config, **supervisor_options).run()  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
