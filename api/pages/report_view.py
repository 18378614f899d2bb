"""The verification report (docs/verification.md) told for people: one verdict with the reason in
plain Chinese, then every check with its name translated (check names: ``docs/verification.md``).

Only presentation lives here; the verdict is the report's own ``indication``, never recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CHECK_NAMES", "RESULT_LABELS", "present_report"]

#: Check names of the report → Chinese.
CHECK_NAMES: dict[str, str] = {
    "package": "文件结构",
    "references": "文件内容完整性（引用文件摘要）",
    "data_hash": "签章数据摘要",
    "seal_signature": "电子印章本身的签名",
    "seal_validity": "电子印章有效期",
    "signer_in_seal": "签章人是否为印章授权人",
    "signer_chain": "签章人数字证书链",
    "signature": "签章签名值",
    "signing_time": "签章时间",
    "timestamp": "时间戳",
    "status": "证照在库状态",
    "content_match": "文件内容与库内记录一致",
    "property_info": "签章属性信息",
    "seal_copy": "印章文件与签章内印章一致",
    "embedded_original": "副本内嵌原件",
}

RESULT_LABELS = {"PASSED": "通过", "FAILED": "未通过", "UNKNOWN": "无法确认", "SKIPPED": "未检查"}
RESULT_CLASS = {"PASSED": "ok", "FAILED": "bad", "UNKNOWN": "warn", "SKIPPED": "muted"}

VERDICTS = {
    "VALID": ("有效", "VALID", "ok"),
    "INVALID": ("无效", "INVALID", "bad"),
    "INDETERMINATE": ("无法确认", "INDETERMINATE", "warn"),
}

#: What a failed check means, in words for the person at the counter.
_FAILED: dict[str, str] = {
    "package": "文件结构不符合规范或已被改动。",
    "references": "文件内容在盖章之后被修改过。",
    "data_hash": "签章所保护的数据与文件不一致。",
    "seal_signature": "电子印章本身的签名无效，印章可能是伪造的。",
    "seal_validity": "盖章时电子印章不在有效期内。",
    "signer_in_seal": "签章人不是该电子印章授权的签章人。",
    "signer_chain": "签章人的数字证书不可信或已失效。",
    "signature": "签章签名值校验失败，文件可能被篡改。",
    "signing_time": "签章时间不可信。",
    "timestamp": "时间戳无效。",
    "content_match": "文件内容与电子证照库中的记录不一致。",
    "property_info": "签章属性信息与文件不符。",
    "seal_copy": "文件中的印章与签章中的印章不一致。",
    "embedded_original": "副本中内嵌的原件未通过验证。",
}
_UNKNOWN: dict[str, str] = {
    "seal_validity": "无法确认电子印章是否有效（印章制作者的证书不在本库的信任列表中）。",
    "signer_chain": "无法确认签章人证书是否可信（签发机构不在本库的信任列表中）。",
    "status": "无法确认该证照在电子证照库中的状态。",
    "content_match": "无法与电子证照库中的记录核对内容。",
    "references": "部分文件内容的完整性无法确认。",
    "signature": "无法确认签章签名值（缺少签章人证书）。",
}


def _check_view(check: Mapping[str, Any]) -> dict[str, Any]:
    result = str(check.get("result", ""))
    return {
        "name": check.get("name", ""),
        "label": CHECK_NAMES.get(str(check.get("name")), str(check.get("name", ""))),
        "result": result,
        "result_label": RESULT_LABELS.get(result, result),
        "css": RESULT_CLASS.get(result, "muted"),
        "reason": check.get("reason") or "",
        "warnings": list(check.get("warnings") or ()),
    }


def _first(checks: list[dict[str, Any]], result: str) -> dict[str, Any] | None:
    return next((c for c in checks if c["result"] == result), None)


def _reason(
    report: Mapping[str, Any], certificate_checks: list[dict[str, Any]], signatures: list[Any]
) -> str:
    indication = report.get("indication")
    certificate = report.get("certificate") or None
    # a broken seal or signature explains more than what follows from it (content, status): it comes first
    every = [c for s in signatures for c in s["checks"]] + certificate_checks
    if indication == "VALID":
        if certificate is None:
            return "文件的电子印章和签名完整有效；该文件不是本库登记的电子证照，未核对证照状态。"
        return "文件完整，电子印章和签名有效，证照在电子证照库中的状态为有效。"
    if indication == "INVALID":
        if not signatures and not report.get("problems"):
            return "文件上没有任何电子印章或签名。"
        failed = _first(every, "FAILED")
        if failed is not None and failed["name"] == "status":
            label = (certificate or {}).get("label") or "非有效"
            return f"该证照在电子证照库中的状态为「{label}」，不是有效证照。"
        if failed is not None:
            return _FAILED.get(failed["name"], f"{failed['label']}未通过。")
        if not signatures:
            return "文件上没有任何电子印章或签名。"
        return "文件存在结构问题：" + "；".join(str(p) for p in report.get("problems") or [])
    unknown = _first(every, "UNKNOWN")
    if unknown is not None:
        return _UNKNOWN.get(unknown["name"], f"{unknown['label']}无法确认。")
    return "文件中有未受印章保护的内容，无法确认文件完整。"


def present_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The template's view of ``report`` (the dict of :meth:`VerificationReport.to_dict`)."""
    indication = str(report.get("indication"))
    word, english, css = VERDICTS.get(indication, ("无法确认", indication, "warn"))
    certificate = report.get("certificate") or None
    certificate_checks = [_check_view(c) for c in (certificate or {}).get("checks", [])]
    signatures = [
        {
            "id": s.get("id"),
            "kind": "电子印章（签章）" if s.get("kind") == "seal" else "数字签名",
            "indication": s.get("indication"),
            "verdict": VERDICTS.get(str(s.get("indication")), ("", "", "warn"))[0],
            "css": VERDICTS.get(str(s.get("indication")), ("", "", "warn"))[2],
            "signing_time": s.get("signing_time"),
            "signer": s.get("signer") or {},
            "seal": s.get("seal") or {},
            "checks": [_check_view(c) for c in s.get("checks", [])],
        }
        for s in report.get("signatures", [])
    ]
    return {
        "indication": indication,
        "word": word,
        "english": english,
        "css": css,
        "reason": _reason(report, certificate_checks, signatures),
        "certificate": certificate,
        "certificate_checks": certificate_checks,
        "signatures": signatures,
        "problems": list(report.get("problems") or []),
        "file": report.get("file") or {},
        "format": report.get("format"),
        "verified_at": report.get("verified_at"),
    }
