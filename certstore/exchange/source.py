"""An exchange source: one agency's front-end database (数据库前置机) and the agency system that writes it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from certstore.access import Actor
from certstore.identifiers import validate_credit_code

__all__ = ["ExchangeSource"]

_SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class ExchangeSource:
    """One agency's front-end database: ``name`` (letters, digits, ``._-``; names its cursors and ledger),
    the SQLAlchemy ``url``, and the ``issuer_code`` (颁发机构代码) of the agency that writes it — it may deliver
    only its own certificates and catalogue types."""

    name: str
    url: str
    issuer_code: str

    def __post_init__(self) -> None:
        if not _SOURCE_NAME.fullmatch(self.name):
            raise ValueError(f"source name {self.name!r}: 1-100 letters, digits, '.', '_' or '-'")
        validate_credit_code(self.issuer_code)
        if not self.url.strip():
            raise ValueError(f"source {self.name}: empty database URL")

    @property
    def actor(self) -> Actor:
        """Who applies this source's rows: the agency's own system (``ISSUERCODE/exchange:NAME``, role agency),
        under the same rules as the agency's API calls."""
        return Actor.agency_system(self.issuer_code, f"exchange:{self.name}")
