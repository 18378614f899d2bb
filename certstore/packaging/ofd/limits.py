"""What the OFD reader refuses with, and the caps it reads under (shared by :mod:`.container` and :mod:`.reader`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits", "MiB", "NonCanonicalPackageError", "NotOfdError", "OfdFormatError"]

MiB = 1024 * 1024


class OfdFormatError(ValueError):
    """The bytes are not an acceptable OFD package. The message names the entry, element or limit."""


class NotOfdError(OfdFormatError):
    """The bytes are not an OFD package at all: not a ZIP archive, or a ZIP without ``OFD.xml``."""


class NonCanonicalPackageError(OfdFormatError):
    """The ZIP archive breaks the canonical-package rule (``docs/verification.md``): another reader could show
    something other than what the verifier read. The message starts with the rule's name."""


@dataclass(frozen=True)
class Limits:
    """Caps applied to a presented file (defaults sized for e-certificates: a few pages, a few images)."""

    max_file_size: int = 50 * MiB
    max_entries: int = 2_000
    #: Central-directory bytes allowed per entry (bounds the work of listing the archive).
    max_directory_bytes_per_entry: int = 1_024
    max_total_size: int = 200 * MiB
    max_entry_size: int = 64 * MiB
    max_ratio: int = 200
    #: Entries inflating to no more than this are not ratio-checked (tiny XML files compress very well).
    ratio_grace: int = 64 * 1024
    max_xml_size: int = 16 * MiB
    max_xml_depth: int = 128
    max_signatures: int = 100
    max_references: int = 2_000
    #: Warnings kept (a hostile file can produce one per element); the rest are only counted.
    max_warnings: int = 100


DEFAULT_LIMITS = Limits()
