"""Uploaded files, read within the configured limit: shared by the public verification route and page (adapters
translate; neither imports the other)."""

from __future__ import annotations

from typing import Any

from fastapi import UploadFile

__all__ = ["read_upload"]


def read_upload(services: Any, file: UploadFile) -> bytes | None:
    """The uploaded file, or None when it is over ``services.settings.max_upload_bytes`` (never read past it)."""
    limit: int = services.settings.max_upload_bytes
    data = file.file.read(limit + 1)
    return None if len(data) > limit else data
