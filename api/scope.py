"""The window's declaration as the API reads it: the matter (query string) and the holder served (the headers
``X-Holder-Id-Type`` / ``X-Holder-Id`` — a holder ID never travels in a URL; a query still carrying
``holder_id``/``holder_id_type`` is answered 410 Gone) (:data:`ServingQuery`). The rules themselves (知悉范围:
an agency reads its own certificates, window staff the holder they serve under a matter registered for that holder
or under the holder's authorisation, a holder their own)
are the service layer's:
:mod:`certstore.services.scope`, applied by the use cases of :mod:`certstore.services.sharing`.

:func:`authorize_certificate` remains for the two routes whose use cases do not take a call yet (filing a review,
listing a certificate's inspections); it applies the same service rule (:func:`certstore.services.scope.authorize`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request

from api.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemError
from api.security import call_of, services_of
from certstore.access import Principal
from certstore.records import Certificate
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.scope import MATTER_MAX, NotHeldError, Serving, authorize

__all__ = [
    "HOLDER_ID_HEADER",
    "HOLDER_ID_TYPE_HEADER",
    "Serving",
    "ServingQuery",
    "authorize_certificate",
    "holder_id_gone",
    "refuse_holder_query",
]


#: The headers that carry the holder a window is serving (and an auditor's holder search): never the URL, which
#: ends up in access logs, proxies and browser histories (issue 17).
HOLDER_ID_TYPE_HEADER = "X-Holder-Id-Type"
HOLDER_ID_HEADER = "X-Holder-Id"
#: Query parameters that once carried a holder ID: a request still sending them is answered 410 Gone.
HOLDER_QUERY_PARAMETERS = ("holder_id", "holder_id_type")
GONE_RESPONSE: dict[int | str, dict[str, Any]] = {
    410: {
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {}},
        "description": "A holder ID in the URL is no longer accepted; the detail states the new form",
    }
}


def holder_id_gone(detail: str) -> ProblemError:
    """The 410 Gone problem for a holder ID sent in a URL; ``detail`` states the new form."""
    return ProblemError(410, "holder-id-in-url", "Holder ID numbers are not accepted in URLs", detail)


def refuse_holder_query(request: Request) -> None:
    """Answer 410 when the query string still carries ``holder_id`` / ``holder_id_type``."""
    if any(name in request.query_params for name in HOLDER_QUERY_PARAMETERS):
        raise holder_id_gone(
            f"send the holder in the headers {HOLDER_ID_TYPE_HEADER} and {HOLDER_ID_HEADER} "
            "(the matter stays in the query: matter=...), never as holder_id_type=/holder_id= in the URL"
        )


def _serving(
    request: Request,
    matter: Annotated[
        str | None,
        Query(
            max_length=MATTER_MAX,
            description="事项/办件编号 — required for window staff",
            examples=["ZZ2026112600123"],
        ),
    ] = None,
    holder_id_type: Annotated[
        str | None,
        Header(
            alias=HOLDER_ID_TYPE_HEADER,
            max_length=8,
            description="Holder ID type (GB/T 36903 code) of the holder being served — window staff",
            examples=["001"],
        ),
    ] = None,
    holder_id: Annotated[
        str | None,
        Header(
            alias=HOLDER_ID_HEADER,
            max_length=64,
            description="Holder ID number being served — window staff (a header: never in the URL)",
            examples=["91410100MA44A1B2XW"],
        ),
    ] = None,
) -> Serving:
    refuse_holder_query(request)
    return Serving(matter, holder_id_type, holder_id)


ServingQuery = Annotated[Serving, Depends(_serving)]


def authorize_certificate(
    request: Request, principal: Principal, certificate: Certificate, serving: Serving
) -> None:
    """May ``principal`` read ``certificate``? (:func:`certstore.services.scope.authorize`.) A certificate of
    another holder than the one served answers as one that does not exist. The matter and holder digest go on
    the request for the middleware's audit entry."""
    try:
        served = authorize(services_of(request), call_of(request, principal), certificate, serving)
    except NotHeldError as exc:
        raise CertificateNotFoundError(str(exc)) from None
    if served is not None:
        request.state.matter = served.matter
        request.state.holder_digest = served.holder_ref
    else:
        request.state.holder_digest = certificate.holder_ref
