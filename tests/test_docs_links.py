"""The documentation stays inside the repository (issue 21, item 6): every link and every file a page names in
README.md and docs/*.md resolves to a file of this repository — never to a path outside it (``../shared/…``,
``CLI.md``) — and anchors name a heading that exists. Web links go only to standards bodies; the example hosts
the pages use (``127.0.0.1``, ``HOST:PORT``, ``…``) are inside code, where they are examples, not links."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])

#: Where a web link may point: the bodies whose standards the project implements or cites.
STANDARDS_HOSTS = frozenset(
    {
        "www.rfc-editor.org", "datatracker.ietf.org", "www.ietf.org", "www.w3.org", "www.etsi.org",
        "www.iso.org", "openstd.samr.gov.cn", "std.samr.gov.cn", "www.gmbz.org.cn", "spdx.org",
    }
)  # fmt: skip

#: The top-level directories of the repository: a code span starting with one of them names a repository path.
#: (Not ``keys/``: the pages use it for the key store's layout inside a data directory, ``keys/makers/``.)
TOP_LEVEL = ("docs/", "schemas/", "tests/", "certstore/", "api/", "bench/", "scripts/", "devservers/")  # fmt: skip

#: Paths a page names on purpose although they do not exist: a location proposed for the future.
NOT_YET = frozenset({"certstore/schemas/"})

#: Hosts of the examples a page shows in prose (a command's help text): placeholders, loopback, example domains.
EXAMPLE_HOSTS = frozenset({"host", "localhost", "127.0.0.1", "::1"})

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_BARE_URL = re.compile(r"https?://[^\s)>\]`\"']+")


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (examples, not links)."""
    return _CODE.sub(" ", _FENCE.sub(" ", text))


def _code_spans(text: str) -> list[str]:
    return [match.group(2).strip() for match in _CODE.finditer(_FENCE.sub(" ", text))]


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped (letters of any script, digits, ``_`` and
    ``-`` kept), spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def _anchors(page: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for match in re.finditer(
        r"^#{1,6}\s+(.+?)\s*#*$", _FENCE.sub(" ", page.read_text(encoding="utf-8")), re.M
    ):
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(anchors)


def _inside(path: Path) -> bool:
    return path.resolve().is_relative_to(ROOT)


def _check_target(page: Path, target: str) -> str | None:
    """What is wrong with a link from ``page`` to ``target``, or None."""
    parts = urlsplit(target)
    if parts.scheme in ("http", "https"):
        if parts.hostname not in STANDARDS_HOSTS:
            return f"web link outside the repository (only standards bodies: {sorted(STANDARDS_HOSTS)})"
        return None
    if parts.scheme or parts.netloc:
        return f"link scheme {parts.scheme!r} leaves the repository"
    path = unquote(parts.path)
    resolved = page if not path else (page.parent / path)
    if not _inside(resolved):
        return "leaves the repository"
    if not resolved.exists():
        return "no such file in the repository"
    if (
        parts.fragment
        and resolved.suffix == ".md"
        and unquote(parts.fragment) not in _anchors(resolved.resolve())
    ):
        return f"no heading with anchor #{parts.fragment} in {resolved.resolve().relative_to(ROOT)}"
    return None


def _example(url: str) -> bool:
    """A bare address that shows the form of one (``https://HOST[/PATH]``, ``http://127.0.0.1:8000``), not a
    page to visit."""
    try:
        host = urlsplit(url).hostname
    except ValueError:  # a template such as https://HOST[/PATH]
        return True
    return not host or host in EXAMPLE_HOSTS or host.endswith(".example") or ".example." in host


def _links(text: str) -> list[str]:
    prose = _prose(text)
    targets = _LINK.findall(prose) + _AUTOLINK.findall(prose)
    bare = [u.rstrip(".,;:") for u in _BARE_URL.findall(_LINK.sub(" ", _AUTOLINK.sub(" ", prose)))]
    return targets + [url for url in bare if not _example(url)]


def _named_files(text: str) -> list[str]:
    """Files a page names in code spans: a Markdown file (``x.md``), or a path under a top-level directory."""
    names = []
    for span in _code_spans(text):
        if " " in span or "*" in span or "…" in span or "<" in span or "{" in span:
            continue  # a command line, a glob or a placeholder, not one file
        if re.fullmatch(r"[\w./-]+\.md(#[\w-]*)?", span) or span.startswith(("../", *TOP_LEVEL)):
            names.append(span.split("#", 1)[0].split("::", 1)[0])  # no anchor, no pytest node
    return names


def _resolves(page: Path, name: str) -> bool:
    """A named file exists inside the repository, relative to the repository root or to the page; a module's
    attribute (``api/oidc.RelyingParty``) names the module's file."""
    if name in NOT_YET:
        return True
    candidates = [name, re.sub(r"\.\w+$", ".py", name)] if not name.endswith("/") else [name]
    return any(
        _inside(base / candidate) and (base / candidate).exists()
        for base in (ROOT, page.parent)
        for candidate in candidates
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    """Each Markdown link, autolink and bare web address in the page's prose: a file of the repository (with
    an existing heading when it names an anchor), an anchor of the page itself, or a standards body's page."""
    problems = [
        f"{target}: {problem}"
        for target in _links(page.read_text(encoding="utf-8"))
        if (problem := _check_target(page, target)) is not None
    ]
    assert problems == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_page_names_is_in_the_repository(page: Path) -> None:
    """A file named in a code span (``docs/storage.md``, ``tests/fixtures/third-party/``, ``keys/README.md``)
    exists in the repository — the README once cited ``CLI.md`` and docs/api.md ``verification-report.md``,
    which were not in it."""
    missing = [name for name in _named_files(page.read_text(encoding="utf-8")) if not _resolves(page, name)]
    assert missing == []


def test_the_checks_catch_what_the_issue_found() -> None:
    """The checks themselves: a file outside the repository, a missing file, an unknown anchor, a web page of no
    standards body and a named ``CLI.md`` are each reported; the repository's own pages and anchors are not."""
    page = ROOT / "docs" / "api.md"
    assert _check_target(page, "../../shared/verification-report.md") == "leaves the repository"
    assert _check_target(page, "CLI.md") == "no such file in the repository"
    assert _check_target(page, "verification.md#no-such-heading") is not None
    assert _check_target(page, "https://cdn.example.com/x.js") is not None
    assert _check_target(page, "https://www.rfc-editor.org/rfc/rfc9457") is None
    assert _check_target(page, "verification.md#the-report-json") is None
    assert (
        _check_target(ROOT / "README.md", "docs/holders.md#logging-in-by-one-id-一号-openid-connect") is None
    )
    assert _named_files("the contract (`CLI.md`), `docs/api.md`, `certstore verify FILE`") == [
        "CLI.md",
        "docs/api.md",
    ]
    assert not _resolves(page, "CLI.md")
    assert _links("see [x](a.md), <https://h.org/> and https://b.org/y, not `https://c.org`") == [
        "a.md",
        "https://h.org/",
        "https://b.org/y",
    ]
    assert _links("an example: https://HOST[/PATH] or http://127.0.0.1:8000/x") == []
