"""certstore — city e-certificate repository (电子证照库): the domain core."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution on first use (PEP 562): importing
    :mod:`importlib.metadata` costs every command's start-up (``python -m bench cli``), and only ``--version``, the
    API's OpenAPI document and its health answer ask."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("certstore")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
