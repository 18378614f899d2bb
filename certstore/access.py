"""Who is calling and what they may do: roles, principals and the access rules of 第十八条 / 规范§七(二).

This module holds the vocabulary (pure, no database): :class:`Role`, :class:`Principal`, :class:`AccessDeniedError`
and the rules that do not need a database look-up. Tokens, organisations and grants are stored and checked by
:mod:`certstore.services.access`; the API maps :class:`AccessDeniedError` to 403 with its reason.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AccessDeniedError", "Actor", "AuthenticationError", "Principal", "Role", "require_role"]


class Role(StrEnum):
    """The roles of the repository's callers."""

    AGENCY = "agency"  # 发证机构: issues and manages its own catalogue types
    WINDOW = "window"  # 用证单位 / 窗口人员: looks up the holder it is serving, for a stated matter
    BUREAU = "bureau"  # 大数据管理局 administrator: approves catalogue entries, grants bulk access
    AUDITOR = "auditor"  # 审计: reads the access logs, never certificate content
    UPSTREAM = "upstream"  # 省级平台: aggregates the repository upward
    OPERATOR = "operator"  # 运维人员: runs the command line on the repository's host (no token, OS account)
    HOLDER = "holder"  # 证照持有人: a citizen or company logged in by one ID (一号, OpenID Connect); no principal row
    CASE_SYSTEM = (
        "case_system"  # 一窗受理/审批系统: a using unit's case-handling system; registers matters (办件)
    )

    @property
    def label(self) -> str:
        return _ROLE_LABELS[self]


_ROLE_LABELS = {
    Role.AGENCY: "发证机构",
    Role.WINDOW: "用证单位（窗口）",
    Role.BUREAU: "大数据管理局",
    Role.AUDITOR: "审计人员",
    Role.UPSTREAM: "省级平台",
    Role.OPERATOR: "运维人员（命令行）",
    Role.HOLDER: "证照持有人",
    Role.CASE_SYSTEM: "一窗受理/审批系统",
}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a named account of one organisation, with one role."""

    id: int
    name: str
    role: Role
    organisation_code: str
    organisation_name: str

    @property
    def ref(self) -> str:
        """How logs and records name the caller: ``ORGCODE/name``."""
        return f"{self.organisation_code}/{self.name}"


@dataclass(frozen=True)
class Actor:
    """Who performs a use case (行为人), as every service function receives it and every audit entry names it:
    an authenticated principal (API, pages, batches), an agency's system feeding the exchange, a city sending to
    the province, an operator at the command line (the OS account and host; role ``operator``), or a holder
    logged in by one ID (role ``holder``: ``holder_ref`` is the holder's keyed digest reference,
    :func:`certstore.identifiers.holder_ref`, never the ID number; no organisation, no principal)."""

    name: str
    role: Role
    organisation_code: str | None = None
    principal: Principal | None = None
    holder_ref: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The actor of an authenticated principal."""
        return cls(principal.name, principal.role, principal.organisation_code, principal)

    @classmethod
    def operator(cls, user: str | None = None, host: str | None = None) -> Actor:
        """The person running the command line: ``user@host`` (default: this process's OS user and host)."""
        if user is None:
            try:
                user = getpass.getuser()
            except (KeyError, OSError):
                user = "unknown"
        return cls(f"{user}@{host or socket.gethostname()}", Role.OPERATOR)

    @classmethod
    def agency_system(cls, organisation_code: str, name: str) -> Actor:
        """An agency's own system acting for it (its exchange source, 前置库): role agency, bound to its code."""
        return cls(name, Role.AGENCY, organisation_code)

    @classmethod
    def holder(cls, holder_ref: str, name: str) -> Actor:
        """A holder (证照持有人) logged in by one ID: ``holder_ref`` the keyed digest reference of their ID."""
        if not holder_ref:
            raise ValueError("a holder actor needs the holder's reference")
        return cls(name, Role.HOLDER, None, None, holder_ref)

    @property
    def ref(self) -> str:
        """How records and logs name the actor: ``ORGCODE/name``, ``operator:user@host``, or
        ``holder:<holder_ref>`` (never a holder's name or ID number)."""
        if self.principal is not None:
            return self.principal.ref
        if self.role is Role.HOLDER:
            return f"holder:{self.holder_ref}"
        if self.organisation_code is None:
            return f"{self.role.value}:{self.name}"
        return f"{self.organisation_code}/{self.name}"


class AuthenticationError(Exception):
    """No valid credential: missing, unknown, expired or revoked (HTTP 401). The message says which."""


class AccessDeniedError(PermissionError):
    """The caller is authenticated but the rules forbid this operation (HTTP 403); the message says why."""


def require_role(principal: Principal, *roles: Role) -> None:
    """:class:`AccessDeniedError` unless ``principal`` has one of ``roles``."""
    if principal.role not in roles:
        allowed = "、".join(f"{role.value} ({role.label})" for role in roles)
        raise AccessDeniedError(f"role {principal.role.value} may not do this; allowed: {allowed}")
