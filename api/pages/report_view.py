"""The verification report (docs/verification.md) told for people: one verdict with the reason in
plain Chinese, then every check with its name translated (check names: ``docs/verification.md``).

Only presentation lives here; the verdict is the report's own ``indication``, never recomputed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from certstore import messages
from certstore.packaging.preview import WEBP_QUALITY  # the pages' WebP, as the stored faces are encoded

__all__ = ["CHECK_NAMES", "RESULT_LABELS", "face_text", "metadata_text", "present_report", "webp"]

#: Key fields of a face named in the preview's text alternative, from a file's metadata (OFD CustomData).
_KEY_FIELDS = (("ZZBH", "证照编号"), ("CZZT", "持证主体"), ("ZZBFJG", "颁发机构"), ("ZZYXQJZRQ", "有效期至"))


def webp(png: bytes, *, max_px: int | None = None, quality: int = WEBP_QUALITY) -> tuple[bytes, int, int]:
    """A face preview (PNG) as a WebP for pages — a tenth of the PNG's weight — no longer than ``max_px`` on its
    longer side; with its width and height (for the ``img`` element's size, so the page does not shift)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        picture = image.convert("RGB")
    if max_px is not None:
        picture.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "WEBP", quality=quality, method=4)
    return out.getvalue(), picture.width, picture.height


def face_text(name: str, fields: Mapping[str, Any]) -> str:
    """The text alternative of a face preview: the certificate's name and its key fields as text
    (``建筑工程施工许可证照面：证照编号 410100…；持证主体 …``), never just "照面预览"."""
    parts = [f"{label} {value}" for label, value in fields.items() if value not in (None, "")]
    return f"{name}照面" + ("：" + "；".join(parts) if parts else "")


def metadata_text(metadata: Mapping[str, str]) -> str:
    """:func:`face_text` of a file's own metadata (``ZZMC``, ``ZZBH``, ``CZZT`` …)."""
    fields = {label: metadata.get(key) for key, label in _KEY_FIELDS}
    if not any(fields.values()):
        return f"{metadata.get('ZZMC') or '所提交文件的'}照面（文件未标注证照编号等信息，请查看文件本身）"
    return face_text(metadata.get("ZZMC") or "证照", fields)


def _catalogue(prefix: str) -> dict[str, str]:
    return {e.key.removeprefix(prefix): e.zh for e in messages.entries() if e.key.startswith(prefix)}


#: Check names of the report → Chinese (the message catalogue's ``check.*``).
CHECK_NAMES: dict[str, str] = _catalogue("check.")

RESULT_LABELS: dict[str, str] = _catalogue("result.")
RESULT_CLASS = {"PASSED": "ok", "FAILED": "bad", "UNKNOWN": "warn", "SKIPPED": "muted"}

VERDICTS = {
    indication: (messages.text(f"verdict.{indication}"), indication, css)
    for indication, css in (("VALID", "ok"), ("INVALID", "bad"), ("INDETERMINATE", "warn"))
}

#: What a failed or unestablished check means, in words for the person at the counter (``verdict.failed.*``,
#: ``verdict.unknown.*``).
_FAILED: dict[str, str] = _catalogue("verdict.failed.")
_UNKNOWN: dict[str, str] = _catalogue("verdict.unknown.")


def _zh(text: Any, fallback: str) -> str:
    """A reason, warning or problem in Chinese by the catalogue; ``fallback`` when it has no entry (the English
    original stays in the JSON report, never on the page)."""
    return messages.translate_or(text, fallback) if text else ""


def _check_view(check: Mapping[str, Any]) -> dict[str, Any]:
    result = str(check.get("result", ""))
    name = str(check.get("name", ""))
    label = CHECK_NAMES.get(name, name)
    result_label = RESULT_LABELS.get(result, result)
    fallback = messages.text("page.reason.fallback", label=label, result=result_label)
    return {
        "name": name,
        "label": label,
        "result": result,
        "result_label": result_label,
        "css": RESULT_CLASS.get(result, "muted"),
        "reason": _zh(check.get("reason"), fallback),
        "warnings": [_zh(w, f"{label}：另有一项提示") for w in check.get("warnings") or ()],
    }


def _first(checks: list[dict[str, Any]], result: str) -> dict[str, Any] | None:
    return next((c for c in checks if c["result"] == result), None)


def _problems(report: Mapping[str, Any]) -> list[str]:
    return [_zh(p, "文件中有一处不符合规范的内容") for p in report.get("problems") or []]


def _reason(
    report: Mapping[str, Any], certificate_checks: list[dict[str, Any]], signatures: list[Any]
) -> str:
    indication = report.get("indication")
    certificate = report.get("certificate") or None
    # a broken seal or signature explains more than what follows from it (content, status): it comes first
    every = [c for s in signatures for c in s["checks"]] + certificate_checks
    if indication == "VALID":
        return messages.text("verdict.valid" if certificate is not None else "verdict.valid.unregistered")
    if indication == "INVALID":
        if not signatures and not report.get("problems"):
            return messages.text("verdict.no_signature")
        failed = _first(every, "FAILED")
        if failed is not None and failed["name"] == "status":
            return messages.text("verdict.status", label=(certificate or {}).get("label") or "非有效")
        if failed is not None:
            return _FAILED.get(failed["name"]) or messages.text("verdict.failed.other", label=failed["label"])
        if not signatures:
            return messages.text("verdict.no_signature")
        return messages.text("verdict.problems", problems="；".join(_problems(report)))
    unknown = _first(every, "UNKNOWN")
    if unknown is not None:
        return _UNKNOWN.get(unknown["name"]) or messages.text("verdict.unknown.other", label=unknown["label"])
    return messages.text("verdict.uncovered")


def present_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """The template's view of ``report`` (the dict of :meth:`VerificationReport.to_dict`)."""
    indication = str(report.get("indication"))
    word, english, css = VERDICTS.get(indication, ("无法确认", indication, "warn"))
    certificate = report.get("certificate") or None
    certificate_checks = [_check_view(c) for c in (certificate or {}).get("checks", [])]
    signatures = [
        {
            "id": s.get("id"),
            "kind": messages.text(
                "page.signature.seal" if s.get("kind") == "seal" else "page.signature.sign"
            ),
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
        "problems": _problems(report),
        "file": report.get("file") or {},
        "format": report.get("format"),
        "verified_at": report.get("verified_at"),
    }
