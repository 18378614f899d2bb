"""Trusted time (可信时间戳): RFC 3161 / GB/T 20520 time-stamp tokens for seal signatures.

:mod:`certstore.tsa.authority` is the time-stamp authority (时间戳服务, TSA): it answers a DER TimeStampReq with
a DER TimeStampResp whose token is a CMS SignedData over a TSTInfo, signed with SM2-with-SM3 by the key store's
``tsa`` key (certificate with the critical extended key usage id-kp-timeStamping). :mod:`certstore.tsa.stampers`
is the client side: the :class:`TimeStamper` protocol that sealing calls (``stamp(message)`` → token DER over
SM3(message)), served by :class:`LocalTimeStamper` (this repository's own TSA key, in process) or
:class:`HttpTimeStamper` (an external TSA, ``application/timestamp-query`` over HTTP). :func:`time_stamper`
picks one for a key store and an environment (``CERTSTORE_TSA_URL``).
"""

from __future__ import annotations

from .authority import TSA_POLICY, FailureInfo, TimeStampAuthority, TimeStampAuthorityError
from .keys import TSA_TIMEOUT_ENV, TSA_URL_ENV, local_authority, time_stamper
from .stampers import (
    HttpTimeStamper,
    LocalTimeStamper,
    TimeStamper,
    TimeStampError,
    TimeStampRejectedError,
    TimeStampReplyError,
    TimeStampTransportError,
    build_request,
    check_reply,
)
from .tokens import ACCEPTED_HASHES, TimeStampReply, TokenError, TokenInfo, parse_response, read_token

__all__ = [
    "ACCEPTED_HASHES",
    "TSA_POLICY",
    "TSA_TIMEOUT_ENV",
    "TSA_URL_ENV",
    "FailureInfo",
    "HttpTimeStamper",
    "LocalTimeStamper",
    "TimeStampAuthority",
    "TimeStampAuthorityError",
    "TimeStampError",
    "TimeStampRejectedError",
    "TimeStampReply",
    "TimeStampReplyError",
    "TimeStampTransportError",
    "TimeStamper",
    "TokenError",
    "TokenInfo",
    "build_request",
    "check_reply",
    "local_authority",
    "parse_response",
    "read_token",
    "time_stamper",
]
