"""OFD (GB/T 33190-2016) certificate files: building the package and sealing it.

* :func:`build_ofd` — the unsigned, self-describing OFD of one certificate face (:mod:`.writer`).
* :func:`add_seal` — apply an electronic seal (Type="Seal", SES_Signature per GB/T 38540) (:mod:`.signing`).
* :func:`add_sign` — add a plain SM2 digital signature (Type="Sign").
* :func:`add_watermark` — a ``Type="Watermark"`` annotation on every page of an unsigned package
  (:mod:`.annotations`; a copy, 副本, is watermarked before the repository seals it).
* :mod:`.edit` — edits and readings of an existing package that a new document made from it needs (CustomData
  appended, the seal pictures a page shows, a free place for one more stamp, files that differ from an original).

Package paths, element names and identifiers live in :mod:`.names`.
"""

from typing import TYPE_CHECKING

# Imported on first use (PEP 562), not with the package: the verifier imports only :mod:`.reader`, and a
# reader that pulled in the writer, the signing side and the fonts would slow every ``certstore verify``.
_EXPORTS = {
    "Attachment": ".writer",
    "OfdAnnotationError": ".annotations",
    "OfdBuildError": ".writer",
    "OfdSigningError": ".signing",
    "Protect": ".signing",
    "add_seal": ".signing",
    "add_sign": ".signing",
    "add_watermark": ".annotations",
    "build_ofd": ".writer",
    "build_ofd_files": ".writer",
}

__all__ = [
    "Attachment",
    "OfdAnnotationError",
    "OfdBuildError",
    "OfdSigningError",
    "Protect",
    "add_seal",
    "add_sign",
    "add_watermark",
    "build_ofd",
    "build_ofd_files",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .annotations import OfdAnnotationError, add_watermark
    from .signing import OfdSigningError, Protect, add_seal, add_sign
    from .writer import Attachment, OfdBuildError, build_ofd, build_ofd_files
