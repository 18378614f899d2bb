"""The auditor page (审计日志): query the log with filters, page through it, export it.

The page calls the use cases the auditor API (``/api/v1/audit``) calls, :mod:`certstore.services.auditing`: the
same filters (:class:`~certstore.services.auditing.AuditFilters`), the same search (which first waits for the
events recorded so far) and the same export (JSON Lines or CSV with the covering signed checkpoint and range
proof, verifiable offline with ``certstore audit verify-export``). Holders appear only as keyed digests. Times
typed without an offset are China time here (the API reads them as UTC); empty form fields are no filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.downloads import attachment_headers
from api.pages.common import PageRoute, render, services_of, staff
from api.problems import ProblemError
from certstore import messages
from certstore.access import Role
from certstore.services import auditing, logins
from certstore.services.auditing import AuditFilters, NoCheckpointKeyError
from certstore.timezones import CHINA_STANDARD_TIME

__all__ = ["router"]

router = APIRouter(prefix="/audit", route_class=PageRoute, include_in_schema=False)

Auditor = Annotated[logins.WebSession, Depends(staff(Role.AUDITOR))]

CHINA = CHINA_STANDARD_TIME
PAGE_SIZE = 50
OUTCOMES = {key: messages.text(f"audit.outcome.{key}") for key in ("allow", "deny", "error")}
_FORM_FIELDS = ("from", "to", "actor", "action", "outcome", "matter")


def _time(value: str | None, field: str) -> datetime | None:
    """A ``datetime-local`` field: empty means no bound; without an offset it is China time."""
    if not value or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{field}: not a date and time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA)


def page_filters(
    start: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    outcome: Annotated[str | None, Query(pattern="^(allow|deny|error)?$")] = None,
    matter: Annotated[str | None, Query(max_length=100)] = None,
) -> AuditFilters:
    """The auditor's filters from the page's form, where every field is sent, empty or not."""
    return AuditFilters(
        start=_time(start, "from"),
        end=_time(end, "to"),
        principal=(actor or "").strip() or None,
        action=(action or "").strip() or None,
        outcome=outcome or None,
        matter=(matter or "").strip() or None,
    )


Filters = Annotated[AuditFilters, Depends(page_filters)]


def _role_label(value: str | None) -> str:
    if not value:
        return ""
    try:
        return Role(value).label
    except ValueError:
        return value


def action_label(action: str) -> str:
    """The Chinese name of an audited action (a use case such as ``certificate.issue``, a page route, an API
    route), from the catalogue's ``audit.action.*``; a generic one for a route without its own entry."""
    key = f"audit.action.{action}"
    if key in _ACTION_KEYS:
        return messages.text(key)
    return messages.translate_or(action, "页面访问" if action.startswith("page_") else "接口调用")


_ACTION_KEYS = frozenset(e.key for e in messages.entries() if e.key.startswith("audit.action."))


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    """An audit entry as the page shows it: actions, roles, outcomes and reasons in Chinese (the catalogue's
    ``audit.*``; a reason without an entry is told by its outcome and status code, the recorded text kept as
    the cell's tooltip), the time in Beijing time (the column heading names the zone)."""
    outcome = str(event.get("outcome") or "")
    reason = event.get("reason") or ""
    outcome_label = OUTCOMES.get(outcome, outcome)
    status_code = event.get("status_code")
    fallback = (
        messages.text("page.audit.fallback", outcome=outcome_label, status_code=status_code)
        if status_code
        else outcome_label
    )
    return {
        **event,
        "role_label": _role_label(event.get("role")),
        "action_label": action_label(str(event.get("action") or "")),
        "outcome_label": outcome_label,
        "reason_zh": messages.translate_or(reason, fallback) if reason else "",
    }


def _form(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "") for name in _FORM_FIELDS}


@router.get("", name="page_audit")
def audit_log(
    request: Request,
    session: Auditor,
    filters: Filters,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    page = auditing.search(services_of(request), filters, cursor=cursor, limit=PAGE_SIZE)
    context: dict[str, Any] = {
        "events": [event_view(entry.to_dict()) for entry in page.entries],
        "filters": _form(request),
        "next_cursor": page.next_cursor,
        "outcomes": OUTCOMES,
    }
    return render(request, "audit.html", context)


@router.get("/export", name="page_audit_export")
async def export(
    request: Request,
    session: Auditor,
    filters: Filters,
    format: Literal["jsonl", "csv"] = "csv",
) -> Response:
    """The verifiable export of the matching entries (the API's ``/api/v1/audit/export``)."""
    try:
        made = await run_in_threadpool(auditing.export, services_of(request), filters, format)
    except NoCheckpointKeyError as exc:
        raise ProblemError(409, "no-checkpoint-key", "Cannot sign a checkpoint", str(exc)) from None
    return StreamingResponse(
        (line.encode("utf-8") for line in made.lines),
        media_type=made.media_type,
        headers=attachment_headers(made.file_name),
    )
