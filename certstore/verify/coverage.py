"""Coverage: every file of an OFD package is either a signature file or protected by a signature's References.

Rule 3 of the canonical-package rule (``docs/verification.md``, "One file, one reading"); rules 1 and 2 (one
archive, canonical names) are the reader's (:mod:`certstore.packaging.ofd.container`). What a person sees must
be what was signed, so a file no signature protects is a finding, whatever it is called:

* **exempt** — each document's ``Signatures.xml`` (a document that accepts further signatures cannot protect it,
  GB/T 33190 §18), and each signature's own ``Signature.xml``, ``SignedValue.dat`` and seal file: the signature
  checks themselves cover them (``data_hash``, ``seal_copy``);
* **shadow** (INVALID) — an unprotected file that a reader would take for a protected or signature file under one
  of the resolution rules readers use: a relative location read from the package root (``Pages/Page_0/
  Content.xml`` for ``Doc_0/Pages/Page_0/Content.xml``), a name that merely contains the location (easyofd
  compares names by substring, ``/`` and ``\\`` read as ``-``), or a name that folds to the same (case, trailing
  dots and spaces, ``:`` streams — the reader refuses those already, rule 2);
* **uncovered** (INDETERMINATE) — any other unprotected file, listed by name: the signer did not say that it
  belongs to the document;
* ``OFD.xml`` — vendors often leave it unprotected because every signature rewrites it. It may stay unprotected,
  with a warning, only when each document root it names is protected and the report takes no fact from it (no
  CustomData such as the certificate identifier ``ZZBS``); otherwise INDETERMINATE.
"""

from __future__ import annotations

import re

from certstore.checks import Indication, worst
from certstore.packaging.ofd.container import fold_name
from certstore.packaging.ofd.reader import OfdFormatError, OfdPackage, resolve_location

__all__ = ["coverage_findings"]

OFD_XML = "OFD.xml"
#: Uncovered files listed one by one; beyond this the rest are counted (a hostile file can hold thousands).
MAX_LISTED = 20

_SEPARATORS = re.compile(r"\\\\|//|\\|/")


def _substring_form(text: str) -> str:
    """A name or location as easyofd compares them: leading ``.`` and ``/`` dropped, separators read as ``-``."""
    return _SEPARATORS.sub("-", text.lstrip("./"))


def _shadowed(path: str, targets: dict[str, frozenset[str]]) -> str | None:
    """How the unprotected ``path`` passes for a protected or signature file, or None."""
    folded = fold_name(path)
    as_substring = _substring_form(path)
    for target, texts in targets.items():
        if fold_name(target) == folded:
            return f"its name folds to that of /{target} (case, trailing dots or spaces, ':' streams)"
        for text in sorted(texts):
            if not text.startswith("/"):
                try:
                    from_root = resolve_location(text, "")
                except OfdFormatError:
                    from_root = None
                if from_root == path:
                    return f"the location {text!r} of /{target} names it when read from the package root"
            needle = _substring_form(text)
            if needle and needle in as_substring:
                return f"its name contains the location {text!r} of /{target} (readers that match names by substring)"
    return None


def coverage_findings(package: OfdPackage) -> tuple[list[str], list[Indication]]:
    """(problems, their effect on the file's indication) for the coverage of ``package``'s files by its
    signatures. A package without signatures is one finding ("no signature"), left to the caller's verdict."""
    signatures = package.signatures
    if not signatures:
        return [f"no signature: nothing protects the {len(package.files)} file(s) of the package"], []
    covered = {
        reference.path
        for signature in signatures
        if signature.signed_info is not None
        for reference in signature.signed_info.references
        if reference.path is not None
    }
    exempt = {document.signatures_path for document in package.documents if document.signatures_path}
    for signature in signatures:
        if signature.signed_info is None:  # not a readable Signature.xml: its files are not signature files
            continue
        exempt |= {
            p for p in (signature.path, signature.signed_value_path, signature.signed_info.seal_path) if p
        }
    unprotected = [path for path in package.files if path not in covered and path not in exempt]
    if not unprotected:
        return [], []
    targets = {
        path: package.locations.get(path, frozenset()) | {path}
        for path in package.files
        if path in covered or path in exempt
    }
    content_by_case = {path.lower(): role for path, role in package.content_files.items()}
    shadows: list[str] = []
    others: list[str] = []
    effects: list[Indication] = []
    for path in unprotected:
        if path == OFD_XML:
            problem, effect = _ofd_xml_finding(package, covered)
        else:
            how = _shadowed(path, targets)
            role = package.content_files.get(path) or content_by_case.get(path.lower())
            described = f"/{path} ({role})" if role else f"/{path}"
            if how is not None:
                problem = f"rule 3 (shadow): {described} is not protected by any signature and {how}"
                effect = Indication.INVALID
            else:
                problem = f"rule 3 (coverage): not protected by any signature: {described}"
                effect = Indication.INDETERMINATE
        (shadows if effect is Indication.INVALID else others).append(problem)
        effects.append(effect)
    if len(others) > MAX_LISTED:
        others[MAX_LISTED:] = [f"rule 3 (coverage): {len(others) - MAX_LISTED} further unprotected file(s)"]
    return shadows + others, [worst(effects)]


def _ofd_xml_finding(package: OfdPackage, covered: set[str]) -> tuple[str, Indication]:
    roots = [document.root_path for document in package.documents]
    unprotected_roots = [root for root in roots if root not in covered]
    if unprotected_roots:
        return (
            "rule 3 (coverage): /OFD.xml is not protected by any signature, nor is the document root it names "
            f"({', '.join('/' + r for r in unprotected_roots)})",
            Indication.INDETERMINATE,
        )
    custom = sorted({name for document in package.documents for name in document.doc_info.custom_datas})
    if custom:
        return (
            "rule 3 (coverage): /OFD.xml is not protected by any signature, and the report would take facts from "
            f"it (CustomData {', '.join(custom)})",
            Indication.INDETERMINATE,
        )
    return (
        "warning: /OFD.xml is not protected by any signature (signing rewrites it); every document root it names is "
        "protected and the report takes nothing from it",
        Indication.VALID,
    )
