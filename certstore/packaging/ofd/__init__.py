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

from .annotations import OfdAnnotationError, add_watermark
from .signing import OfdSigningError, Protect, add_seal, add_sign
from .writer import Attachment, OfdBuildError, build_ofd, build_ofd_files

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
