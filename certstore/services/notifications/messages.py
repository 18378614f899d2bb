"""The words of a notification: subject and body in Chinese, made from the outbox row's kind and payload at
delivery time (so a public URL configured later still reaches the message). Never an ID number: the payload holds
the certificate's name, number, identifier, the change and dates only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certstore.packaging.face import verification_url

__all__ = ["Message", "compose"]

_OUTCOMES = {"confirmed": "维持", "corrected": "更正", "rejected": "驳回"}


@dataclass(frozen=True)
class Message:
    """What a channel sends: a subject, a plain-text body and the structured data (for webhooks)."""

    subject: str
    body: str
    data: dict[str, Any]


def status_url(identifier: str | None, public_url: str | None) -> str | None:
    """The public status page of the certificate (``…/v/<short code>``), None without a public URL."""
    if not identifier or not public_url:
        return None
    return verification_url(identifier, public_url)


def compose(kind: str, payload: Mapping[str, Any], *, public_url: str | None) -> Message:
    """The message of one outbox row."""
    data = dict(payload)
    url = status_url(data.get("identifier"), public_url)
    if url is not None:
        data["status_url"] = url
    name = data.get("name") or "电子证照"
    number = data.get("number") or ""
    lines: list[str]
    if kind == "issued":
        change = data.get("change") or "签发"
        subject = f"【电子证照】您的{name}已{change}"
        lines = [f"您的{name}（编号 {number}）已{change}，版本 {data.get('version', 1)}。"]
        if data.get("valid_until"):
            lines.append(f"有效期至 {data['valid_until']}。")
    elif kind == "status_changed":
        change = data.get("change") or "状态变更"
        subject = f"【电子证照】您的{name}已{change}"
        lines = [
            f"您的{name}（编号 {number}）已{change}，当前状态：{data.get('status_label', data.get('status', ''))}。"
        ]
        if data.get("reason"):
            lines.append(f"原因：{data['reason']}")
    elif kind == "expiry_reminder":
        subject = f"【电子证照】您的{name}将于 {data.get('valid_until')} 到期"
        lines = [
            f"您的{name}（编号 {number}）将于 {data.get('valid_until')} 到期（还有 {data.get('days_left')} 天）。",
            "如需继续使用，请及时向发证机关申请延续。",
        ]
    elif kind == "review_answered":
        outcome = _OUTCOMES.get(str(data.get("outcome")), str(data.get("outcome", "")))
        subject = f"【电子证照】您对{name}的复核申请已答复"
        lines = [f"关于{name}（编号 {number}）的复核申请（第 {data.get('review_id')} 号）已答复：{outcome}。"]
        if data.get("answer"):
            lines.append(f"答复意见：{data['answer']}")
    elif kind == "inspection_due":
        subject = f"【电子证照】{data.get('year')} 年度年检待办：{name} {number}"
        lines = [f"{name}（编号 {number}）尚无 {data.get('year')} 年度年检结果，请及时办理并录入。"]
    else:
        subject = f"【电子证照】{name}"
        lines = [f"{name}（编号 {number}）有新的通知。"]
    if url is not None:
        lines.append(f"查询证照状态：{url}")
    lines.append("")
    lines.append("本邮件由电子证照库自动发送，请勿回复。")
    return Message(subject=subject, body="\n".join(lines) + "\n", data=data)
