"""The window's declaration as the API reads it: the matter and the holder served, from the query string
(:data:`ServingQuery`). The rules themselves (知悉范围: an agency reads its own certificates, window staff the
holder they serve under a matter bound to that holder) are the service layer's:
:mod:`certstore.services.scope`, applied by the use cases of :mod:`certstore.services.sharing`.

:func:`authorize_certificate` remains for the two routes whose use cases do not take a call yet (filing a review,
listing a certificate's inspections); it applies the same service rule (:func:`certstore.services.scope.authorize`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from api.security import call_of, services_of
from certstore.access import Principal
from certstore.records import Certificate
from certstore.services.certificates import CertificateNotFoundError
from certstore.services.scope import MATTER_MAX, NotHeldError, Serving, authorize

__all__ = ["Serving", "ServingQuery", "authorize_certificate"]


def _serving(
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
        Query(
            description="Holder ID type (GB/T 36903 code) of the holder being served — window staff",
            examples=["111"],
        ),
    ] = None,
    holder_id: Annotated[
        str | None, Query(max_length=64, description="Holder ID number being served — window staff")
    ] = None,
) -> Serving:
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
