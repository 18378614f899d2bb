"""电子证照目录 — the catalogue of certificate types: entry model, face schemas, shipped definitions.

:class:`CatalogueEntry` (``model.py``) is one certificate type in one version; the shipped definitions
(``schemas/catalogue/*.json``) are loaded by :func:`shipped_entries` (``definitions.py``). See
``docs/catalogue.md``.
"""

from __future__ import annotations

from .definitions import base_image_path, example_face, shipped_entries, shipped_entry
from .model import (
    PERMANENT,
    CatalogueEntry,
    CatalogueError,
    Category,
    CertificateNumberError,
    FaceDataError,
    FaceField,
    HolderType,
    InspectionFailure,
    Issuer,
    Level,
    NumberFormat,
    ValidityKind,
    ValidityRule,
    schemas_dir,
)

__all__ = [
    "PERMANENT",
    "CatalogueEntry",
    "CatalogueError",
    "Category",
    "CertificateNumberError",
    "FaceDataError",
    "FaceField",
    "HolderType",
    "InspectionFailure",
    "Issuer",
    "Level",
    "NumberFormat",
    "ValidityKind",
    "ValidityRule",
    "base_image_path",
    "example_face",
    "schemas_dir",
    "shipped_entries",
    "shipped_entry",
]
