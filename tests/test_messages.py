"""The message catalogue (certstore/messages): keyed reasons whose English is today's wire text, their Chinese by
key and by parsing the English back, Beijing time in translated details, the locale rule, the verification
page's and the audit page's Chinese, and ``certstore verify`` in a Chinese locale."""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from api.pages.auditor import event_view
from api.pages.report_view import present_report
from certstore import messages
from certstore.checks import Check, CheckResult, Indication
from certstore.cli import main
from certstore.crypto.sm3 import sm3
from certstore.lifecycle import Status
from certstore.messages import Message
from certstore.timezones import beijing_time
from certstore.verify import VerificationReport, verify_file
from tests.seal.seal_builders import Hierarchy, make_hierarchy
from tests.verify.builders import IDENTIFIER, OFD_FIXTURES, PAGE, content_files, sealed_ofd, with_entries

#: Three or more Latin words in a row, each with a lower-case letter: an English sentence (identifiers, paths and
#: codes are single tokens; abbreviations such as "DER BIT STRING" are upper case).
WORD = r"(?=[A-Za-z]*[a-z])[A-Za-z]{2,}\b"
ENGLISH = re.compile(rf"\b{WORD}(?:[ ,;:]+{WORD}){{2,}}")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass
class Repository:
    """A repository that knows one certificate, in the given status, holding ``stored`` as its file."""

    stored: bytes
    status_answer: tuple[str, str] = ("valid", "有效")

    def status(self, identifier: str, at: datetime | None = None) -> tuple[str, str] | None:
        return self.status_answer if identifier == IDENTIFIER else None

    def content_digest_matches(
        self, identifier: str, package: bytes, *, package_sm3: str | None = None, ofd: object = None
    ) -> bool | None:
        return sm3(package) == sm3(self.stored)


@pytest.fixture(scope="module")
def reports() -> dict[str, VerificationReport]:
    """Real reports: a valid file, the same file changed after sealing, and a revoked certificate."""
    h: Hierarchy = make_hierarchy()
    package = sealed_ofd(h).package
    page = content_files(page_text="伪造证照")[PAGE]  # the page changed after sealing
    tampered = with_entries(package, {PAGE: page})
    repository = Repository(package)
    return {
        "valid": verify_file(package, trust=h.trust, repository=repository),
        "tampered": verify_file(tampered, trust=h.trust, repository=repository),
        "revoked": verify_file(package, trust=h.trust, repository=Repository(package, ("revoked", "吊销"))),
    }


def _checks(report: VerificationReport) -> list[Check]:
    own = list(report.certificate.checks) if report.certificate is not None else []
    return own + [c for s in report.signatures for c in s.checks]


def test_every_entry_has_both_languages_with_the_same_placeholders() -> None:
    """Keys are unique (the table refuses duplicates); the Chinese uses only parameters the English has, says
    something in Chinese, and has no English sentence of its own."""
    for entry in messages.entries():
        zh_params = set(_PLACEHOLDER.findall(entry.zh))
        assert zh_params <= entry.params, entry.key
        if not entry.key.startswith(("verdict.VALID", "verdict.INVALID", "verdict.INDETERMINATE")):
            assert not ENGLISH.search(_PLACEHOLDER.sub("", entry.zh)), entry.key


#: A sample value per placeholder shape (by name, digits at the end ignored); any other name gets "X<n>".
SAMPLES = {
    **dict.fromkeys(("time", "start", "end", "since", "until"), "2026-12-07T08:05:09+00:00"),
    **dict.fromkeys(("count", "total", "size", "index", "version", "sequence"), "3"),
    **dict.fromkeys(("subject", "quoted", "value", "seal"), "'甲'"),
    "indication": "VALID",
    "age": "3h05m",
    "whose": "the issuer",
    "detail": "now",
    "digest": "0a1b2c",
    "serial": "3E5D",
}


def test_every_reason_template_parses_back_to_its_own_translation() -> None:
    """A reason read back from JSON (a plain string) translates exactly as the keyed message does."""
    for entry in messages.entries():
        if not entry.key.startswith("reason.") or not _PLACEHOLDER.sub("", entry.en).strip():
            continue
        params = {}
        for index, name in enumerate(sorted(entry.params)):
            base = name.rstrip("0123456789")
            params[name] = SAMPLES.get("time" if base.endswith("_time") else base, f"X{index}")
        message = Message(entry.key, **params)
        assert messages.translate(str(message)) == message.zh(), entry.key


def test_a_message_is_its_english_text_on_the_wire(reports: dict[str, VerificationReport]) -> None:
    """Keyed reasons are str: JSON of the report is byte-identical to JSON of the plain strings, and a sample of
    reasons is exactly today's English."""
    report = reports["tampered"]
    data = report.to_dict()
    assert json.dumps(data, ensure_ascii=False) == json.dumps(
        json.loads(json.dumps(data)), ensure_ascii=False
    )
    checks = {c.name: c for c in _checks(reports["valid"])}
    assert isinstance(checks["status"].reason, Message)
    assert checks["status"].reason == f"certificate {IDENTIFIER} is valid (有效) in the repository now"
    assert (
        checks["content_match"].reason == f"the file is the content the repository recorded for {IDENTIFIER}"
    )
    assert (
        checks["property_info"].reason
        == "propertyInfo '/Doc_0/Signs/Sign_0/Signature.xml' designates this Signature.xml"
    )
    assert checks["references"].reason.startswith(
        "all 7 reference(s) match (SM3): /OFD.xml, /Doc_0/Document.xml"
    )
    failed = {c.name: c for c in _checks(report)}
    assert failed["references"].reason == (
        "1 of 7 reference(s) fail: /Doc_0/Pages/Page_0/Content.xml: SM3 digest differs, the file was changed "
        "after signing"
    )
    assert failed["content_match"].reason == (
        f"the file differs from the content the repository recorded for {IDENTIFIER}"
    )
    revoked = {c.name: c for c in _checks(reports["revoked"])}
    assert revoked["status"].reason == f"certificate {IDENTIFIER} is revoked (吊销) in the repository now"
    copied = pickle.loads(pickle.dumps(checks["status"].reason))
    assert (
        isinstance(copied, Message) and copied.key == "reason.status.is" and copied == checks["status"].reason
    )


def test_every_reason_of_the_reports_is_chinese_by_key_and_by_text(
    reports: dict[str, VerificationReport],
) -> None:
    """Each check reason of a valid, a tampered and a revoked file has a Chinese text with no English sentence,
    from the live report (by key) and from its JSON (by parsing); times in it are Beijing time."""
    for name, report in reports.items():
        for check in _checks(report):
            by_key = messages.translate(check.reason)
            by_text = messages.translate(str(check.reason))
            assert by_key is not None and by_key == by_text, (name, check.name, check.reason)
            assert not ENGLISH.search(by_key), (name, check.name, by_key)
            assert "+00:00" not in by_key
    tampered = {c.name: c for c in _checks(reports["tampered"])}
    assert messages.translate(tampered["references"].reason) == (
        "7 个引用文件中有 1 个未通过：/Doc_0/Pages/Page_0/Content.xml：SM3 摘要不一致，文件在签章后被修改过"
    )
    assert messages.translate(
        "seal valid at 2026-12-07T08:05:09+00:00 (validStart 2026-12-07T08:05:09+00:00, "
        "validEnd 2029-12-07T08:05:09+00:00)"
    ) == (
        "印章于 2026-12-07 16:05:09 (北京时间) 在有效期内（起 2026-12-07 16:05:09 (北京时间)，止 "
        "2029-12-07 16:05:09 (北京时间)）"
    )
    assert messages.translate("an English text no entry knows") is None
    assert messages.translate("已是中文") == "已是中文"


def test_the_verification_page_shows_chinese_only(reports: dict[str, VerificationReport]) -> None:
    """The page's view of each report: verdict, check names, reasons, warnings and problems in Chinese."""
    for report in reports.values():
        view = present_report(report.to_dict())
        texts = [view["reason"], *(c["reason"] for c in view["certificate_checks"])]
        texts += [c[k] for s in view["signatures"] for c in s["checks"] for k in ("label", "reason")]
        texts += [w for s in view["signatures"] for c in s["checks"] for w in c["warnings"]]
        assert all(t and not ENGLISH.search(t) for t in texts), texts
    assert present_report(reports["tampered"].to_dict())["reason"] == "文件内容在盖章之后被修改过。"
    unknown = present_report(
        {
            "indication": "INDETERMINATE",
            "signatures": [
                {
                    "id": "s1",
                    "kind": "seal",
                    "indication": "INDETERMINATE",
                    "checks": [
                        {"name": "signer_chain", "result": "UNKNOWN", "reason": "something new happened here"}
                    ],
                }
            ],
        }
    )
    assert unknown["signatures"][0]["checks"][0]["reason"] == "签章人数字证书链：无法确认"  # no English shown


def test_audit_entries_are_shown_in_chinese() -> None:
    """Actions, roles, outcomes and reasons of audit entries in Chinese; a reason without an entry is told by
    its outcome and status."""
    denied = event_view(
        {
            "action": "GET (no route)",
            "role": "window",
            "outcome": "deny",
            "status_code": 401,
            "reason": "Authentication required: 请先登录 (login required)",
        }
    )
    assert (denied["action_label"], denied["role_label"], denied["outcome_label"]) == (
        "GET 请求：地址不存在",
        "用证单位（窗口）",
        "拒绝",
    )
    assert denied["reason_zh"] == "需要登录：请先登录"
    assert event_view({"action": "certificate.issue", "outcome": "allow"})["action_label"] == "签发证照"
    unknown = event_view(
        {"action": "get_thing", "outcome": "error", "status_code": 500, "reason": "boom went the db"}
    )
    assert (unknown["action_label"], unknown["reason_zh"]) == ("接口调用", "错误（HTTP 500）")


def test_status_words_are_the_lifecycle_labels() -> None:
    """The status words a reason may hold translate to the labels the rest of the system shows."""
    for status in Status:
        assert messages.text(f"reason.status_word.{status.value}") == status.label


def test_beijing_time_and_the_locale_rule() -> None:
    """Times are shown in UTC+8 with the zone; ``LC_ALL`` > ``LC_MESSAGES`` > ``LANG`` decide the language."""
    assert beijing_time(datetime(2026, 12, 7, 8, 5, 9, tzinfo=UTC)) == "2026-12-07 16:05:09 (北京时间)"
    assert beijing_time("2026-12-07T08:05:09") == "2026-12-07 16:05:09 (北京时间)"  # stored naive: UTC
    assert beijing_time("2026-12-07T23:30:00+00:00", seconds=False, zone=False) == "2026-12-08 07:30"
    assert messages.language({"LANG": "zh_CN.UTF-8"}) == "zh"
    assert messages.language({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}) == "en"
    assert messages.language({"LC_MESSAGES": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}) == "zh"
    assert messages.language({}) == "en"


def test_certstore_verify_speaks_chinese_in_a_chinese_locale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Human-readable output in Chinese under ``LANG=zh_CN.UTF-8``; ``--json`` is the same in both locales."""
    path: Path = OFD_FIXTURES / "ofdrw-sign__v4signed.ofd"

    def cli(*args: str | Path) -> SimpleNamespace:
        capsys.readouterr()
        try:
            main(["--data-dir", str(tmp_path / "data"), *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return SimpleNamespace(code=code, out=capsys.readouterr().out)

    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    english = cli("verify", path, "--offline")
    english_json = cli("verify", path, "--offline", "--json")
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    chinese = cli("verify", path, "--offline")
    assert english.code == chinese.code == 2
    assert english.out.startswith("INDETERMINATE  ofdrw-sign__v4signed.ofd (OFD, 1 signature(s)")
    first, second = chinese.out.splitlines()[:2]
    assert first.startswith(
        "INDETERMINATE 无法确认  ofdrw-sign__v4signed.ofd（OFD，1 个签章"
    ) and second.startswith("  理由：")
    assert "[通过] 签章数据摘要（data_hash）：" in chinese.out and "签章人证书：" in chinese.out
    assert cli("verify", path, "--offline", "--json").out == english_json.out
    assert json.loads(english_json.out)["indication"] == Indication.INDETERMINATE.value
    assert CheckResult.PASSED.value in english.out
