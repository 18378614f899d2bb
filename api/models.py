"""Request and response bodies (pydantic), with the examples the OpenAPI document shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from certstore.lifecycle import Action, Status
from certstore.records import Certificate, CertificateDraft, CertificateEvent, draft_from_json
from certstore.services.calls import Call
from certstore.services.deadlines import Channel

#: Largest database id (64-bit signed): ids and cursors beyond it are refused as invalid input (422).
MAX_ID = 2**63 - 1

EXAMPLE_IDENTIFIER = "1.2.156.3005.2.11410100990000025A001.11410100990000025A.410100202406100001.001.D"
EXAMPLE_HOLDER = {"name": "郑州示例置业有限公司", "id_type": "001", "id_number": "91410100MA44A1B2XW"}


class RecordOut(BaseModel):
    """A response body whose every field is the attribute of the same name on a domain record (a frozen
    dataclass of :mod:`certstore`): ``XOut.of(record)``, without copying the fields one by one."""

    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, record: Any) -> Self:
        return cls.model_validate(record)


class HolderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="持证主体名称")
    id_type: str = Field(description="持证主体代码类型 (GB/T 36903 code, e.g. 111 resident ID, 001 USCC)")
    id_number: str = Field(min_length=1, max_length=64, description="持证主体代码")


class CertificateData(BaseModel):
    """The data of one certificate version (the DATA.json of `certstore issue`; `certstore catalogue example`
    prints one for each type)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "catalogue": "11410100990000025A001",
                    "certificate_number": "410100202406100001",
                    "holder": EXAMPLE_HOLDER,
                    "issue_date": "2026-11-26",
                    "face": {
                        "builder": "郑州示例置业有限公司",
                        "project_name": "示例·锦华园住宅小区项目（一期）1#—3#楼及地下车库",
                        "project_code": "2024-410105-70-03-000123",
                        "address": "金水区示例路以东、规划纬三路以北",
                        "building_scale": "总建筑面积62345.6平方米；住宅3栋，地上26—33层，地下2层",
                        "contract_price": 18650.42,
                        "survey_unit": "河南示例岩土工程勘察有限公司",
                        "design_unit": "郑州示例建筑设计研究院有限公司",
                        "contractor": "河南示例建设集团有限公司",
                        "supervisor": "郑州示例工程监理有限公司",
                        "survey_manager": "李明",
                        "design_manager": "王芳",
                        "contractor_manager": "赵磊",
                        "chief_supervising_engineer": "陈静",
                        "contract_duration": 912,
                    },
                }
            ]
        },
    )

    catalogue: str = Field(min_length=1, max_length=32, description="Catalogue type code (证照类型代码)")
    certificate_number: str = Field(min_length=1, max_length=128, description="证照编号")
    holder: HolderIn
    issue_date: date
    valid_from: date | None = None
    valid_until: date | None = None
    face: dict[str, Any] = Field(
        description="Face fields (照面), as the catalogue type's form schema defines"
    )
    metadata: dict[str, Any] = Field(default_factory=dict, description="Extra metadata (KZ_ fields)")
    # Not certificate content: when and how the matter was completed, for the arrival deadline (第十一条).
    completed_at: AwareDatetime | None = Field(
        default=None,
        description="业务办结时间, with its UTC offset; default: the time of the push. At most 5 minutes "
        "in the future. Only recorded when the certificate version is new.",
    )
    channel: Channel = Field(
        default=Channel.ONLINE,
        description="办理渠道: online 在线办理 (due in real time, 10 minutes), offline 线下办理 (1 working day), "
        "bulk 批量/存量 (3 working days)",
    )

    def draft(self) -> CertificateDraft:
        """The certificate content of this push (without the arrival fields)."""
        return draft_from_json(self.model_dump(mode="json", exclude_none=True, exclude=set(ARRIVAL_FIELDS)))

    def stated_by(self, call: Call) -> Call:
        """``call`` with the completion time and channel this push states in its origin (the use case records
        the arrival from them)."""
        call.origin = replace(call.origin, completed_at=self.completed_at, channel=self.channel.value)
        return call


#: The fields of :class:`CertificateData` that are about the arrival, not the certificate (not in the draft).
ARRIVAL_FIELDS = frozenset({"completed_at", "channel"})


class HolderOut(BaseModel):
    name: str
    id_type: str
    id_number: str


class Links(BaseModel):
    self: str
    file: str | None = None
    pdf: str | None = None
    preview: str | None = None
    history: str
    public_status: str


class ChangeRecordOut(BaseModel):
    """One entry of a version's change record (证照变更记录, 规范§二(二)): what happened, why, who, when."""

    action: str = Field(
        description="issue 签发, change 变更, renew 延续, suspend 挂起, resume 恢复, revoke 吊销, …"
    )
    action_label: str = Field(examples=["变更"])
    from_status: str | None = Field(
        description="the version's status before; null for the event that made it"
    )
    to_status: str
    reason: str = Field(description="变更原因", examples=["持证主体名称变更"])
    actor: str = Field(description="who: ORGCODE/name of the agency's staff or system, operator:user@host")
    organisation_code: str | None = Field(
        description="the acting organisation (机构), when the actor has one"
    )
    at: datetime = Field(description="变更时间")

    @classmethod
    def of(cls, event: CertificateEvent) -> ChangeRecordOut:
        try:
            label = Action(event.action).label
        except ValueError:
            label = event.action
        return cls(
            action=event.action,
            action_label=label,
            from_status=event.from_status,
            to_status=event.to_status,
            reason=event.reason,
            actor=event.actor,
            organisation_code=event.organisation_code,
            at=event.at,
        )


class CertificateOut(BaseModel):
    identifier: str = Field(examples=[EXAMPLE_IDENTIFIER], description="证照标识")
    version: int
    serial: str
    certificate_number: str
    name: str
    catalogue_code: str
    catalogue_version: int
    issuer_code: str
    issuer_name: str
    holder: HolderOut
    issue_date: date
    valid_from: date
    valid_until: date | None
    status: Status
    status_label: str
    status_changed_at: datetime
    superseded_by: str | None
    face: dict[str, Any]
    metadata: dict[str, Any]
    changes: list[ChangeRecordOut] = Field(
        default_factory=list,
        description="this version's change record (证照变更记录), oldest first: the event that made it (签发, 变更 "
        "or 延续) and every status change since",
    )
    links: Links

    @classmethod
    def of(cls, certificate: Certificate, at: datetime) -> CertificateOut:
        status = certificate.status_at(at)
        base = f"/api/v1/certificates/{certificate.identifier}"
        has_file = certificate.file_key is not None
        return cls(
            identifier=certificate.identifier,
            version=certificate.version,
            serial=certificate.serial,
            certificate_number=certificate.certificate_number,
            name=certificate.name,
            catalogue_code=certificate.catalogue_code,
            catalogue_version=certificate.catalogue_version,
            issuer_code=certificate.issuer_code,
            issuer_name=certificate.issuer_name,
            holder=HolderOut(
                name=certificate.holder.name,
                id_type=certificate.holder.id_type.value,
                id_number=certificate.holder.id_number,
            ),
            issue_date=certificate.issue_date,
            valid_from=certificate.valid_from,
            valid_until=certificate.valid_until,
            status=status,
            status_label=status.label,
            status_changed_at=certificate.status_changed_at,
            superseded_by=certificate.superseded_by,
            face=dict(certificate.face),
            metadata=dict(certificate.metadata),
            changes=[ChangeRecordOut.of(event) for event in certificate.events],
            links=Links(
                self=base,
                file=f"{base}/file" if has_file else None,
                pdf=f"{base}/file?format=pdf",
                preview=f"{base}/preview.png",
                history=f"{base}/history",
                public_status=f"/api/v1/public/certificates/{certificate.identifier}/status",
            ),
        )


class PublicStatus(BaseModel):
    """What anyone scanning the QR code learns: no personal data."""

    identifier: str = Field(examples=[EXAMPLE_IDENTIFIER])
    name: str = Field(description="Certificate type name", examples=["建筑工程施工许可证"])
    issuer_name: str
    issue_date: date
    valid_until: date | None
    status: Status
    status_label: str = Field(examples=["有效"])
    is_current_version: bool
    checked_at: datetime


class StatusOut(BaseModel):
    identifier: str
    status: Status
    status_label: str
    valid_until: date | None
    superseded_by: str | None
    checked_at: datetime


class ChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="Why (变更原因)")
    data: CertificateData


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    valid_until: date | None = Field(description="New end of validity; null for long-term (长期)")


class ActionRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"action": "suspend", "reason": "涉嫌违规，暂停使用"}]},
    )

    action: Literal["suspend", "resume", "revoke", "cancel", "annul"] = Field(
        description="挂起 suspend / 恢复 resume / 吊销 revoke / 注销 cancel / 废止 annul"
    )
    reason: str = Field(min_length=1, max_length=2000)


class CopyRequestIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "matter": "ZZ2026112600123",
                    "purpose": "办理不动产登记",
                    "holder_id_type": "001",
                    "holder_id": "91410100MA44A1B2XW",
                }
            ]
        },
    )

    matter: str = Field(min_length=1, max_length=100, description="事项/办件编号")
    purpose: str = Field(min_length=1, max_length=100, description="用途")
    holder_id_type: str
    holder_id: str = Field(min_length=1, max_length=64)


class Page(BaseModel):
    items: list[Any]
    next_after: int | None = Field(default=None, description="Pass as `after` for the next page")
