"""The data directory's own configuration: ``<data-dir>/config.json``, for what is set once per repository and
must survive restarts — today the public base URL (对外访问地址) printed in the QR code and links of every
sealed file.

The file is plain JSON (``{"public_url": "https://zwfw.zhengzhou.gov.cn/certstore"}``), not secret (it sits
beside ``keys/``, not in it), written atomically (a temporary file in the same directory, flushed, then renamed
over the old one), so a crash leaves the old configuration or the new one, never half of one. It is written by
``certstore keys init --public-url URL`` and ``certstore config set public-url URL``.

Where the public URL comes from, first match wins (:func:`resolve_public_url`): the caller's explicit value
(``api.settings``, tests), the environment (``CERTSTORE_PUBLIC_URL``), this file; otherwise there is none, and
:meth:`certstore.app.Application.sealing_base_url` refuses to seal (:class:`PublicUrlNotConfiguredError`): a file
sealed with a loopback address in its QR code would carry it forever. Verification, reads and previews do not
need it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from certstore.store.private import make_private_dirs

__all__ = [
    "CONFIG_FILE",
    "PUBLIC_URL_ENV",
    "ConfigError",
    "PublicUrlNotConfiguredError",
    "configured_public_url",
    "normalise_public_url",
    "read_config",
    "resolve_public_url",
    "save_public_url",
    "write_config",
]

#: The configuration file's name inside the data directory.
CONFIG_FILE = "config.json"
#: The environment variable that overrides the configured public URL.
PUBLIC_URL_ENV = "CERTSTORE_PUBLIC_URL"
_PUBLIC_URL_KEY = "public_url"

HOW_TO_SET = (
    "set it once with 'certstore config set public-url https://HOST/PATH' "
    f"(or 'certstore keys init --public-url …'), or in the environment as {PUBLIC_URL_ENV}"
)


class ConfigError(ValueError):
    """An invalid setting (the message is one line, naming the setting) or an unreadable configuration file."""


class PublicUrlNotConfiguredError(RuntimeError):
    """Sealing was asked for, but no public base URL is configured for the QR code and links of the file."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message or f"no public URL configured: sealed files print it in their QR code; {HOW_TO_SET}"
        )


def normalise_public_url(value: str, *, source: str = "public URL") -> str:
    """``value`` as the public base URL: an absolute ``http``/``https`` URL with a host, no query, no fragment,
    no credentials; the trailing slash stripped. Raises :class:`ConfigError` naming ``source`` otherwise."""
    text = value.strip()
    problem = None
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # an invalid port or IPv6 literal
        parts, port_ok = None, False
    if parts is None or not port_ok:
        problem = "not a valid URL"
    elif parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        problem = "must be an absolute http:// or https:// URL with a host"
    elif parts.query or parts.fragment or text.endswith(("?", "#")):
        problem = "must have no query (?…) or fragment (#…)"
    elif parts.username is not None or parts.password is not None:
        problem = "must not carry a user name or password"
    elif any(c.isspace() for c in text):
        problem = "must not contain spaces"
    if problem is not None:
        raise ConfigError(f"{source} {value!r} {problem}, e.g. https://zwfw.zhengzhou.gov.cn/certstore")
    return text.rstrip("/")


def read_config(data_dir: Path) -> dict[str, Any]:
    """The configuration of ``data_dir`` (empty when the file does not exist)."""
    path = data_dir / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return config


def write_config(data_dir: Path, config: Mapping[str, Any]) -> Path:
    """Replace the configuration of ``data_dir`` with ``config``, atomically (module docstring)."""
    make_private_dirs(data_dir)  # a data directory created here is owner-only (0700), like everywhere else
    path = data_dir / CONFIG_FILE
    descriptor, name = tempfile.mkstemp(prefix=f".{CONFIG_FILE}.", dir=data_dir)
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(json.dumps(dict(config), ensure_ascii=False, indent=2, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        temporary.chmod(0o644)
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:  # the rename itself durable
        directory = os.open(data_dir, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)
    return path


def configured_public_url(data_dir: Path) -> str | None:
    """The public URL stored in ``data_dir``'s configuration, validated; None when there is none."""
    value = read_config(data_dir).get(_PUBLIC_URL_KEY)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{data_dir / CONFIG_FILE}: {_PUBLIC_URL_KEY} must be a string")
    return normalise_public_url(value, source=f"{data_dir / CONFIG_FILE}: {_PUBLIC_URL_KEY}")


def save_public_url(data_dir: Path, value: str | None) -> str | None:
    """Store ``value`` (validated and normalised; None removes it) as ``data_dir``'s public URL; returns what
    was stored."""
    config = read_config(data_dir)
    if value is None:
        config.pop(_PUBLIC_URL_KEY, None)
        url = None
    else:
        url = config[_PUBLIC_URL_KEY] = normalise_public_url(value)
    write_config(data_dir, config)
    return url


def resolve_public_url(
    data_dir: Path | None, env: Mapping[str, str], explicit: str | None = None
) -> tuple[str | None, str]:
    """The public URL and where it came from — ``"argument"``, ``"environment"``, ``"config"`` or ``"none"``
    (module docstring): ``explicit`` > ``env[CERTSTORE_PUBLIC_URL]`` > ``data_dir``'s configuration. Each is
    validated (:class:`ConfigError`); an empty value counts as unset."""
    if explicit:
        return normalise_public_url(explicit), "argument"
    from_env = env.get(PUBLIC_URL_ENV, "").strip()
    if from_env:
        return normalise_public_url(from_env, source=PUBLIC_URL_ENV), "environment"
    if data_dir is not None:
        stored = configured_public_url(data_dir)
        if stored is not None:
            return stored, "config"
    return None, "none"
