"""Seal registry (电子印章管理): list the seals and their owners; suspend, resume or revoke a seal.

Thin adapter over :mod:`certstore.services.seals`: the bureau (大数据管理局) manages every seal; an agency lists its
own seals and may suspend or revoke them (not resume); auditors list. Every operation is audited by the use case
(``seal.list``, ``seal.suspend``, ``seal.resume``, ``seal.revoke``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from api.deps import ServicesDep
from api.problems import PROBLEM_RESPONSES
from api.security import calling
from certstore.access import Role
from certstore.services import seals
from certstore.services.calls import Call
from certstore.services.seals import RegisteredSeal, SealAction

router = APIRouter(prefix="/api/v1/seals", tags=["seals"])

ListerCall = Annotated[Call, Depends(calling(Role.BUREAU, Role.AGENCY, Role.AUDITOR))]
ManagerCall = Annotated[Call, Depends(calling(Role.BUREAU, Role.AGENCY))]
EsIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The seal's ES ID (印章编码)")]


class SealOwnerOut(BaseModel):
    credit_code: str = Field(description="统一社会信用代码 of the organisation the seal belongs to")
    name: str


class SealOut(BaseModel):
    """A registered seal and its state now."""

    es_id: str
    name: str
    keystore_name: str | None = Field(
        description="The key-store name it is kept under (None: from elsewhere)"
    )
    owner: SealOwnerOut
    valid_start: datetime
    valid_end: datetime
    registered_at: datetime
    status: str = Field(description="valid | suspended | revoked")
    label: str
    since: datetime = Field(description="Since when the status holds")

    @classmethod
    def of(cls, seal: RegisteredSeal) -> SealOut:
        return cls(
            es_id=seal.es_id,
            name=seal.name,
            keystore_name=seal.keystore_name,
            owner=SealOwnerOut(credit_code=seal.owner_code, name=seal.owner_name),
            valid_start=seal.valid_start,
            valid_end=seal.valid_end,
            registered_at=seal.registered_at,
            status=seal.state.status.value,
            label=seal.state.status.label,
            since=seal.state.effective_at,
        )


class SealChange(BaseModel):
    """Why, and as of when (default: now; may lie in the past for a revocation — "as of when the key leaked" —
    never before the seal's validStart nor in the future)."""

    reason: str = Field(min_length=1, max_length=500)
    effective_at: datetime | None = Field(default=None, description="ISO 8601 with offset")


_ERRORS = {status: PROBLEM_RESPONSES[status] for status in (404, 409, 422)}


@router.get(
    "", response_model=list[SealOut], summary="The registered seals with owner and state (an agency: its own)"
)
def list_seals(services: ServicesDep, call: ListerCall) -> list[SealOut]:
    return [SealOut.of(seal) for seal in seals.list_seals(services, call)]


def _change(services: ServicesDep, call: Call, es_id: str, action: SealAction, body: SealChange) -> SealOut:
    changed = seals.change_seal(
        services, call, es_id, action, reason=body.reason, effective_at=body.effective_at
    )
    return SealOut.of(changed)


@router.post(
    "/{es_id}/revoke",
    response_model=SealOut,
    responses=_ERRORS,
    summary="Revoke a seal (吊销, final) as of a time (bureau; an agency its own)",
)
def revoke_seal(services: ServicesDep, call: ManagerCall, es_id: EsIdPath, body: SealChange) -> SealOut:
    return _change(services, call, es_id, SealAction.REVOKE, body)


@router.post(
    "/{es_id}/suspend",
    response_model=SealOut,
    responses=_ERRORS,
    summary="Suspend a seal (挂起) (bureau; an agency its own)",
)
def suspend_seal(services: ServicesDep, call: ManagerCall, es_id: EsIdPath, body: SealChange) -> SealOut:
    return _change(services, call, es_id, SealAction.SUSPEND, body)


@router.post(
    "/{es_id}/resume",
    response_model=SealOut,
    responses=_ERRORS,
    summary="Resume a suspended seal (恢复) (bureau)",
)
def resume_seal(
    services: ServicesDep,
    call: Annotated[Call, Depends(calling(Role.BUREAU))],
    es_id: EsIdPath,
    body: SealChange,
) -> SealOut:
    return _change(services, call, es_id, SealAction.RESUME, body)
