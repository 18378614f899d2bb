"""Rule 3 of the canonical-package rule, coverage (``certstore.verify.coverage``): every file of a package is a
signature file or protected by a signature's References; an unprotected file is listed (INDETERMINATE), one that
passes for a protected or signature file under a reader's resolution rule is a shadow (INVALID); ``OFD.xml`` may
stay unprotected only with a warning, when the report takes nothing from it.

The packages are signed by the test builders (:mod:`tests.verify.builders`), which let a test choose the
References; each test reads the findings of :func:`coverage_findings` and the indication of the whole
verification (integrity only: no repository, no status)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from certstore.checks import Indication
from certstore.packaging.ofd.reader import NonCanonicalPackageError, OfdPackage, OfdReader
from certstore.verify import verify_file
from certstore.verify.coverage import MAX_LISTED, coverage_findings
from tests.seal.seal_builders import Hierarchy, make_hierarchy
from tests.support.zipwriter import Member, members_of, write_zip
from tests.verify.builders import (
    PAGE,
    SEAL_ESL,
    SIGNATURE_XML,
    SIGNATURES_XML,
    SIGNED_VALUE,
    Built,
    content_files,
    ofd_xml,
    sealed_ofd,
    signed_ofd,
    zip_bytes,
)

FORGED_PAGE = content_files(page_text="伪造的证照")[PAGE]
OFD_XML_WARNING = (
    "warning: /OFD.xml is not protected by any signature (signing rewrites it); every document root it names is "
    "protected and the report takes nothing from it"
)


@pytest.fixture(scope="module")
def h() -> Hierarchy:
    return make_hierarchy()


def _content_except(*names: str, identifier: str | None = "default") -> list[str]:
    files = content_files() if identifier == "default" else content_files(identifier=identifier)
    return [name for name in files if name not in names]


def _findings(built: Built | bytes) -> tuple[list[str], list[Indication]]:
    data = built.package if isinstance(built, Built) else built
    return coverage_findings(OfdReader.open(data))


def _indication(h: Hierarchy, built: Built | bytes) -> Indication:
    data = built.package if isinstance(built, Built) else built
    return verify_file(data, trust=h.trust).indication


def _shadow(name: str, how: str) -> str:
    return f"rule 3 (shadow): /{name} is not protected by any signature and {how}"


# --- nothing uncovered ---------------------------------------------------------------------------------------


def test_every_file_covered_is_no_finding(h: Hierarchy) -> None:
    """A seal over every content file and the seal file: no finding, VALID, and the report has no problem."""
    built = sealed_ofd(h)
    assert _findings(built) == ([], [])
    report = verify_file(built.package, trust=h.trust)
    assert report.indication is Indication.VALID and report.problems == ()


def test_the_signature_files_are_exempt(h: Hierarchy) -> None:
    """Signatures.xml, the signature's Signature.xml and SignedValue.dat, and the seal file its SignedInfo names
    are never listed although no Reference names them (the signature checks cover them)."""
    built = sealed_ofd(h, protect=list(content_files()))  # the seal file is not among the References
    assert {SIGNATURES_XML, SIGNATURE_XML, SIGNED_VALUE, SEAL_ESL} <= set(built.files)
    assert (
        b"Seal.esl"
        not in built.files[SIGNATURE_XML].split(b"<ofd:References")[1].split(b"</ofd:References>")[0]
    )
    assert _findings(built) == ([], [])
    assert _indication(h, built) is Indication.VALID


def test_a_type_sign_signature_covers_like_a_seal(h: Hierarchy) -> None:
    """Coverage reads the References whatever the kind of signature: a ``Type="Sign"`` signature over every
    content file leaves nothing uncovered."""
    assert _findings(signed_ofd(h.signer, form="raw")) == ([], [])


def test_a_package_without_signature_is_one_finding() -> None:
    """Without any signature there is nothing to cover with: one finding, no effect of its own (the verdict on
    an unsigned file is the caller's)."""
    files = content_files() | {"OFD.xml": ofd_xml(signatures=False)}
    package = zip_bytes(files.items())
    assert _findings(package) == (["no signature: nothing protects the 6 file(s) of the package"], [])


# --- uncovered files -------------------------------------------------------------------------------------------


def test_an_uncovered_unrelated_file_is_indeterminate_and_listed(h: Hierarchy) -> None:
    """A file nobody signed and no location names: INDETERMINATE, listed by name."""
    built = sealed_ofd(h, extra={"notes/readme.txt": b"unsigned"})
    assert _findings(built) == (
        ["rule 3 (coverage): not protected by any signature: /notes/readme.txt"],
        [Indication.INDETERMINATE],
    )
    report = verify_file(built.package, trust=h.trust)
    assert report.indication is Indication.INDETERMINATE
    assert report.problems == ("rule 3 (coverage): not protected by any signature: /notes/readme.txt",)


def test_an_uncovered_content_file_is_listed_with_its_role(h: Hierarchy) -> None:
    """A resource the page draws but the seal does not protect: INDETERMINATE, named with its role."""
    built = sealed_ofd(h, protect=[*_content_except("Doc_0/Res/base.png"), SEAL_ESL])
    assert _findings(built) == (
        ["rule 3 (coverage): not protected by any signature: /Doc_0/Res/base.png (image or media resource)"],
        [Indication.INDETERMINATE],
    )
    assert _indication(h, built) is Indication.INDETERMINATE


def test_the_files_of_an_unlisted_signature_are_not_exempt(h: Hierarchy) -> None:
    """A second Signature.xml / SignedValue.dat that Signatures.xml does not list are no signature's files:
    uncovered like any other."""
    built = sealed_ofd(
        h,
        extra={
            "Doc_0/Signs/Sign_1/Signature.xml": b"<x/>",
            "Doc_0/Signs/Sign_1/SignedValue.dat": b"\x30\x00",
        },
    )
    problems, effects = _findings(built)
    assert problems == [
        "rule 3 (coverage): not protected by any signature: /Doc_0/Signs/Sign_1/Signature.xml",
        "rule 3 (coverage): not protected by any signature: /Doc_0/Signs/Sign_1/SignedValue.dat",
    ]
    assert effects == [Indication.INDETERMINATE]


def test_more_than_twenty_uncovered_files_are_counted(h: Hierarchy) -> None:
    """25 uncovered files: the first 20 are listed, the other 5 counted in one line; a shadow among them is
    listed in full, first."""
    extra = {f"notes/n_{number:02d}.txt": b"x" for number in range(25)}
    extra["x/Pages/Page_0/Content.xml"] = FORGED_PAGE
    problems, effects = _findings(sealed_ofd(h, extra=extra))
    assert MAX_LISTED == 20
    assert len(problems) == 1 + MAX_LISTED + 1
    assert problems[0].startswith("rule 3 (shadow): /x/Pages/Page_0/Content.xml ")
    assert problems[1 : 1 + MAX_LISTED] == [
        f"rule 3 (coverage): not protected by any signature: /notes/n_{number:02d}.txt"
        for number in range(20)
    ]
    assert problems[-1] == "rule 3 (coverage): 5 further unprotected file(s)"
    assert effects == [Indication.INVALID]


def test_exactly_twenty_uncovered_files_are_all_listed(h: Hierarchy) -> None:
    """At the limit nothing is counted: 20 uncovered files, 20 lines."""
    extra = {f"notes/n_{number:02d}.txt": b"x" for number in range(MAX_LISTED)}
    problems, _ = _findings(sealed_ofd(h, extra=extra))
    assert len(problems) == MAX_LISTED and not any("further" in problem for problem in problems)


# --- shadows ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "how"),
    [
        (
            "Pages/Page_0/Content.xml",
            "the location 'Pages/Page_0/Content.xml' of /Doc_0/Pages/Page_0/Content.xml names it when read from "
            "the package root",
        ),
        (
            "base.png",
            "the location 'base.png' of /Doc_0/Res/base.png names it when read from the package root",
        ),
    ],
    ids=["page", "image"],
)
def test_a_shadow_from_the_root_is_invalid(h: Hierarchy, name: str, how: str) -> None:
    """An unprotected file at the place a relative location names when read from the package root instead of
    from its document (a reader that resolves it so shows this file): INVALID, saying which location."""
    built = sealed_ofd(h, extra={name: FORGED_PAGE})
    assert _findings(built) == ([_shadow(name, how)], [Indication.INVALID])
    assert _indication(h, built) is Indication.INVALID


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("Doc_0/Pages/Page_0/Content.xml.orig", PAGE),
        ("x/Doc_0/Pages/Page_0/Content.xml", PAGE),
        ("Pages-Page_0-Content.xml", PAGE),  # easyofd reads '/' as '-'
        ("backup/Doc_0/Res/base.png", "Doc_0/Res/base.png"),
        ("old/Doc_0/Signs/Sign_0/SignedValue.dat", SIGNED_VALUE),  # a signature file (exempt) has shadows too
        ("x/OFD.xml", "OFD.xml"),
    ],
)
def test_a_name_containing_a_location_is_a_shadow(h: Hierarchy, name: str, target: str) -> None:
    """An unprotected file whose name contains the location of a protected or signature file (easyofd matches
    names by substring): INVALID, naming the location and the file it stands for."""
    built = sealed_ofd(h, extra={name: FORGED_PAGE})
    package = OfdReader.open(built.package)
    problems, effects = coverage_findings(package)
    assert effects == [Indication.INVALID] and len(problems) == 1
    found = re.fullmatch(
        rf"rule 3 \(shadow\): /{re.escape(name)} is not protected by any signature and its name contains the "
        rf"location '(.+)' of /{re.escape(target)} \(readers that match names by substring\)",
        problems[0],
    )
    assert found is not None, problems
    assert found[1] in package.locations[target] | {target}
    assert _indication(h, built) is Indication.INVALID


def test_the_shadow_finding_is_the_same_in_every_process(h: Hierarchy, tmp_path: Path) -> None:
    """The same file gives the same report text in every process, whatever the string-hash seed: a shadow
    whose name contains several locations of its target names the same one each time."""
    path = tmp_path / "shadows.ofd"
    path.write_bytes(sealed_ofd(h, extra={"x/OFD.xml": b"x", f"{PAGE}.orig": b"y"}).package)
    script = (
        "import sys\n"
        "from certstore.packaging.ofd.reader import OfdReader\n"
        "from certstore.verify.coverage import coverage_findings\n"
        "print(coverage_findings(OfdReader.open(open(sys.argv[1], 'rb').read()))[0])\n"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        run = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).parents[2],
        )
        assert run.returncode == 0, run.stderr[-2000:]
        outputs.add(run.stdout)
    assert len(outputs) == 1, outputs


def test_a_folded_name_is_a_shadow_even_past_the_reader(h: Hierarchy) -> None:
    """The reader refuses names that fold together (rule 2); coverage does not rely on it: a package holding a
    case-folded copy of the page (as a reader that let it through would give) has that copy as a shadow."""
    built = sealed_ofd(h)
    hostile = write_zip([*members_of(built.package), Member.of(PAGE.lower(), FORGED_PAGE)])
    with pytest.raises(NonCanonicalPackageError, match=r"canonical package rule 2 \(names\)"):
        OfdReader.open(hostile)
    package = OfdReader.open(built.package)
    folded: OfdPackage = replace(package, files={**package.files, PAGE.lower(): FORGED_PAGE})
    assert coverage_findings(folded) == (
        [
            _shadow(
                f"{PAGE.lower()} (page content)",
                "its name folds to that of /Doc_0/Pages/Page_0/Content.xml (case, trailing dots or spaces, ':' "
                "streams)",
            )
        ],
        [Indication.INVALID],
    )


# --- OFD.xml ---------------------------------------------------------------------------------------------------


def test_ofd_xml_may_stay_unprotected_with_a_warning(h: Hierarchy) -> None:
    """OFD.xml unprotected, its document root protected, no CustomData: only a warning, the file stays VALID."""
    files = content_files(identifier=None)
    built = sealed_ofd(h, files=files, protect=[*_content_except("OFD.xml", identifier=None), SEAL_ESL])
    assert _findings(built) == ([OFD_XML_WARNING], [Indication.VALID])
    report = verify_file(built.package, trust=h.trust)
    assert report.indication is Indication.VALID
    assert report.problems == (OFD_XML_WARNING,)


def test_ofd_xml_unprotected_with_custom_data_is_indeterminate(h: Hierarchy) -> None:
    """OFD.xml unprotected while the report would take the certificate identifier (ZZBS) and the issuer from its
    CustomData: INDETERMINATE, naming them."""
    built = sealed_ofd(h, protect=[*_content_except("OFD.xml"), SEAL_ESL])
    assert _findings(built) == (
        [
            "rule 3 (coverage): /OFD.xml is not protected by any signature, and the report would take facts from "
            "it (CustomData ZZBFJG, ZZBS)"
        ],
        [Indication.INDETERMINATE],
    )
    assert _indication(h, built) is Indication.INDETERMINATE


def test_ofd_xml_unprotected_with_its_document_root_unprotected_is_indeterminate(h: Hierarchy) -> None:
    """OFD.xml and the document root it names both unprotected: INDETERMINATE, saying so, and the root listed."""
    files = content_files(identifier=None)
    protect = [*_content_except("OFD.xml", "Doc_0/Document.xml", identifier=None), SEAL_ESL]
    built = sealed_ofd(h, files=files, protect=protect)
    assert _findings(built) == (
        [
            "rule 3 (coverage): /OFD.xml is not protected by any signature, nor is the document root it names "
            "(/Doc_0/Document.xml)",
            "rule 3 (coverage): not protected by any signature: /Doc_0/Document.xml (document root)",
        ],
        [Indication.INDETERMINATE],
    )
    assert _indication(h, built) is Indication.INDETERMINATE
