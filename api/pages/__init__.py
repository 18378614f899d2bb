"""Server-rendered web pages in Chinese (网页) for window staff, citizens, agencies and auditors — ``docs/pages.md``.

The pages are another face of the API, not a second implementation: they authenticate people with a password
and a server-side session (:mod:`certstore.services.logins`) instead of a bearer token, check the same roles
(:func:`certstore.access.require_role`), build the request's :class:`~certstore.services.calls.Call` (entry point
``page``) and call the same use cases as the API routes — never a route function — which apply the same rules
(knowledge scope, issuer checks) and record the audit entry. The audit middleware records every page request the
use cases did not record (denials, validation errors) like an API call.

Modules: :mod:`~api.pages.auth` (login, logout, home), :mod:`~api.pages.window` (窗口办件),
:mod:`~api.pages.public` (文件验证, 扫码核验), :mod:`~api.pages.agency` (证照填报, 批量导入, 目录编辑),
:mod:`~api.pages.auditor` (审计日志); shared machinery in :mod:`~api.pages.common`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from api.pages import agency, auditor, auth, public, window
from api.pages.assets import STATIC_DIR, CachedStaticFiles, icon_router, static_url
from api.pages.common import templates

__all__ = ["STATIC_DIR", "install_pages", "router"]

router = APIRouter(include_in_schema=False)
for _module in (auth, public, window, agency, auditor):
    router.include_router(_module.router)
router.include_router(icon_router)
templates.env.globals["static_url"] = static_url


def install_pages(app: FastAPI) -> None:
    """Mount the stylesheet and scripts under ``/static`` (cached: :mod:`api.pages.assets`) and add the page
    routes to ``app``."""
    app.mount("/static", CachedStaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
