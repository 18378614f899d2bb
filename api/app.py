"""The FastAPI application: ``create_app`` builds the process's :class:`Services` — the one application object
(:class:`certstore.app.Application`) with the API's settings, its audit trail and batch worker — and hands it to
the routers and pages, which build each request's :class:`~certstore.services.calls.Call` and call the services
with it."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from api.docs_pages import install_docs
from api.headers import SecurityHeadersMiddleware
from api.limits import RequestLimitsMiddleware
from api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, install_problem_handlers
from api.proxies import TrustedProxiesMiddleware
from api.ratelimit import document_rate_limit
from api.security import audit_requests
from api.settings import Settings
from certstore import __version__
from certstore.app import Application
from certstore.audit import AuditTrail, CheckpointPolicy
from certstore.keystore import KeyStore
from certstore.services.batches import BatchRunner
from certstore.services.notifications.worker import NotificationThread
from certstore.store.config import resolve_public_url
from certstore.store.repository import Repository

__all__ = ["Services", "create_app"]

log = logging.getLogger("certstore.api")

TAGS = [
    {
        "name": "generation",
        "description": "生成服务 — form schema, submit, online seal, result (issuing agencies)",
    },
    {
        "name": "management",
        "description": "管理服务 — 变更/延续/挂起/恢复/吊销/注销/废止, effective immediately",
    },
    {
        "name": "sharing",
        "description": "共享服务 — a holder's certificates (一号查询), preview, status, sealed copy",
    },
    {
        "name": "verification",
        "description": "验证服务 — verify a presented file; status by identifier (public)",
    },
    {"name": "catalogue", "description": "目录管理 — agencies register their types, the bureau approves"},
    {"name": "review", "description": "复核 — disputes answered by the issuer within 5 working days"},
    {"name": "inspection", "description": "年检 — annual inspection results"},
    {"name": "seals", "description": "电子印章管理 — seals, their owners, suspension and revocation"},
    {"name": "administration", "description": "Grants for bulk access, the working-day calendar"},
    {"name": "audit", "description": "访问日志 — for auditors"},
    {
        "name": "matters",
        "description": "办件 — matters the case-handling systems register for window look-ups",
    },
    {"name": "holder", "description": "证照持有人 — my certificates, who read them, 授权, 复核"},
    {"name": "upstream", "description": "省级汇聚 — the change feed the province aggregates"},
    {"name": "exchange", "description": "第十一条 — late arrivals against the deadlines, offending agencies"},
    {"name": "system", "description": "Health"},
]


@dataclass
class Services(Application):
    """The API process's :class:`~certstore.app.Application`, with the API's settings and its batch worker."""

    settings: Settings = field(default_factory=lambda: Settings(Path(".certstore")))
    batch_runner: Any = None


def create_app(
    settings: Settings | None = None, *, repo: Repository | None = None, keystore: KeyStore | None = None
) -> FastAPI:
    """The application for ``settings`` (default: from the environment); ``repo``/``keystore`` override what the
    data directory would give (tests)."""
    settings = settings or Settings.from_env()
    if repo is None:
        services = Services.open(settings.data_dir, public_url=settings.public_url)
        if keystore is not None:
            services.keystore = keystore
    else:
        keys = keystore or KeyStore(settings.data_dir / "keys")
        public_url, _source = resolve_public_url(settings.data_dir, os.environ, settings.public_url)
        services = Services(repo, keys, public_url=public_url)
    services.settings = settings
    services.audit = AuditTrail(
        services.repo.db,
        spool_dir=settings.data_dir / "audit-spool",
        key_provider=services.repository_sealing_key,
        policy=CheckpointPolicy.from_env(),
    )
    if settings.batch_worker:
        services.batch_runner = BatchRunner(services, worker=f"api-{os.getpid()}")
    notifier = NotificationThread.from_env(services)  # CERTSTORE_NOTIFY_WORKER=1: deliver the outbox here too

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runner = services.batch_runner
        owner = runner is not None and not runner.running  # a nested lifespan (test clients) leaves it alone
        trail = services.audit
        audit_owner = trail is not None and not trail.running
        if audit_owner:
            trail.start()  # replays the spools of crashed processes first
        _register_keystore_seals(services)
        if owner:
            runner.start()
        notify_owner = notifier is not None and not notifier.running
        if notify_owner:
            notifier.start()
        try:
            yield
        finally:
            if notify_owner:
                notifier.stop(timeout=10)
            if owner:
                runner.stop(timeout=10)
            if audit_owner:
                trail.close()  # everything acknowledged goes to the database before the process ends

    app = FastAPI(
        title="certstore — 电子证照库 API",
        version=__version__,
        description=(
            "The city e-certificate repository's service interfaces (规范§五, §六): generation, management, "
            "sharing and verification, with catalogue management, review requests (复核), annual inspection "
            "(年检), bulk-access grants, the audit log and the upward change feed.\n\n"
            "Every call needs `Authorization: Bearer <token>` (tokens: `certstore token create`) except the "
            "public ones: health, the QR status of a certificate, and verification of a presented file. "
            "Errors are RFC 9457 problem details (`application/problem+json`)."
        ),
        openapi_tags=TAGS,
        responses={k: v for k, v in PROBLEM_RESPONSES.items() if k in (401, 403)},
        lifespan=lifespan,
        docs_url=None,  # Swagger UI and ReDoc from the package, not a CDN (api/docs_pages.py)
        redoc_url=None,
    )
    install_docs(app)
    app.state.services = services
    _problem_media_type_in_openapi(app)
    install_problem_handlers(app)
    app.add_middleware(RequestLimitsMiddleware)  # inside the audit: its refusals are audited too
    app.middleware("http")(audit_requests)
    _install_public_paths(app, services)
    _install_edges(app, settings)
    _include_routers(app, services)
    _install_pages(app)
    return app


def _problem_media_type_in_openapi(app: FastAPI) -> None:
    """Error responses are documented as ``application/problem+json`` (what is sent), not FastAPI's default
    ``application/json``; FastAPI's own HTTPValidationError never reaches a caller (422s are problems too)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        document_rate_limit(document)  # answered by the middleware, not by the route
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if status.startswith(("4", "5")) or status == "default":
                        schema = {"$ref": "#/components/schemas/Problem"}
                        response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": schema}}
                    elif PROBLEM_MEDIA_TYPE in content:
                        content.pop(PROBLEM_MEDIA_TYPE)
                if "422" not in operation.get("responses", {}) and (
                    operation.get("parameters") or operation.get("requestBody")
                ):
                    operation.setdefault("responses", {})["422"] = {
                        "description": "Invalid input; `errors` names each field",
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    }
        schemas = document.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _install_public_paths(app: FastAPI, services: Services) -> None:
    """Outside the audit middleware: the QR code's short path is rewritten to the identifier path (so the request
    is audited and routed as that), and before it the per-client rate limit of the anonymous status look-ups
    refuses floods without touching the database or the audit log (api/ratelimit.py)."""
    from api.ratelimit import RateLimitMiddleware
    from api.short_paths import ShortPathMiddleware
    from certstore.services.short_paths import resolve_short_code

    app.add_middleware(ShortPathMiddleware, resolve=lambda code: resolve_short_code(services.repo, code))
    app.add_middleware(RateLimitMiddleware)


def _install_edges(app: FastAPI, settings: Settings) -> None:
    """Outermost: the client address from configured proxies only (api/proxies.py), before the rate limits and
    the audit see it; and around everything, the security headers of every answer (api/headers.py). Inside
    those, gzip for answers of 1 KiB or more (pages, JSON; not the OFD/PDF/image files, compressed already):
    it keeps a streamed answer streamed and the static files' ETags (docs/pages.md, "Weight")."""
    from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware

    compressed = (
        *DEFAULT_EXCLUDED_CONTENT_TYPES,
        "application/ofd",
        "application/pdf",
        "image/vnd.microsoft.icon",
    )
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6, exclude_content_types=compressed)
    app.add_middleware(TrustedProxiesMiddleware, trusted=settings.trusted_proxies)
    app.add_middleware(SecurityHeadersMiddleware)


def _register_keystore_seals(services: Services) -> None:
    """The seal registry learns the key store's seals at start-up (also on first use; never fatal here)."""
    from certstore.services.seals import sync_keystore_seals

    try:
        sync_keystore_seals(services)
    except Exception as exc:  # no schema yet, key store unreadable …: the first use tries again
        logging.getLogger(__name__).warning("seal registry not synchronised at start-up: %s", exc)


def _include_routers(app: FastAPI, services: Services) -> None:
    from api.routes import ROUTERS

    for router in ROUTERS:
        app.include_router(router)
    from api.routes import holder  # the holder's API (一号登录, docs/holders.md)

    app.include_router(holder.router)


def _install_pages(app: FastAPI) -> None:
    """The web pages (api/pages, docs/pages.md): static files under /static, page routes outside /api/v1."""
    from api.pages import holder, install_pages

    app.include_router(holder.router)  # the holder's pages (/holder, docs/holders.md)
    install_pages(app)
