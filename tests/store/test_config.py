"""The data directory's configuration (``certstore/store/config.py``): the public URL sealed files print — its
validation, the atomic file, and where it comes from (argument > ``CERTSTORE_PUBLIC_URL`` > ``config.json``), as
:meth:`certstore.app.Application.open` resolves it and :meth:`~certstore.app.Application.sealing_base_url`
enforces it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certstore.app import Application
from certstore.keystore import KeyStore
from certstore.store.config import (
    CONFIG_FILE,
    PUBLIC_URL_ENV,
    ConfigError,
    PublicUrlNotConfiguredError,
    configured_public_url,
    normalise_public_url,
    read_config,
    resolve_public_url,
    save_public_url,
    write_config,
)
from certstore.store.db import Database, database_url
from tests.support.repository import make_repo

URL = "https://zwfw.zhengzhou.gov.cn/certstore"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://zwfw.zhengzhou.gov.cn/certstore/", URL),
        (" https://zwfw.zhengzhou.gov.cn/certstore ", URL),
        ("http://10.0.0.5:8080", "http://10.0.0.5:8080"),
        ("HTTPS://ZZ.example.gov.cn//", "HTTPS://ZZ.example.gov.cn"),
        ("http://[2001:db8::1]:8000/a/b/", "http://[2001:db8::1]:8000/a/b"),
    ],
)
def test_a_public_url_is_normalised(given: str, expected: str) -> None:
    assert normalise_public_url(given) == expected


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("zwfw.zhengzhou.gov.cn/certstore", "absolute http:// or https://"),
        ("/certstore", "absolute http:// or https://"),
        ("ftp://zwfw.zhengzhou.gov.cn", "absolute http:// or https://"),
        ("https://", "absolute http:// or https://"),
        ("https://zz.example.gov.cn/?a=1", "no query"),
        ("https://zz.example.gov.cn/?", "no query"),
        ("https://zz.example.gov.cn/#top", "fragment"),
        ("https://user:secret@zz.example.gov.cn", "user name or password"),
        ("https://zz.example.gov.cn:99999", "not a valid URL"),
        ("https://zz.example.gov.cn/a b", "spaces"),
        ("", "absolute http:// or https://"),
    ],
)
def test_an_invalid_public_url_is_refused_in_one_line(given: str, why: str) -> None:
    with pytest.raises(ConfigError) as raised:
        normalise_public_url(given, source="--public-url")
    message = str(raised.value)
    assert why in message and message.startswith("--public-url ") and "\n" not in message


def test_the_file_is_written_atomically_and_keeps_other_settings(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert read_config(data_dir) == {} and configured_public_url(data_dir) is None
    write_config(data_dir, {"something_else": 1})
    assert save_public_url(data_dir, URL + "/") == URL
    path = data_dir / CONFIG_FILE
    assert json.loads(path.read_text(encoding="utf-8")) == {"public_url": URL, "something_else": 1}
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in data_dir.iterdir()] == [CONFIG_FILE]  # no temporary file left behind
    assert configured_public_url(data_dir) == URL
    assert save_public_url(data_dir, None) is None
    assert read_config(data_dir) == {"something_else": 1} and configured_public_url(data_dir) is None


def test_an_invalid_value_changes_nothing(tmp_path: Path) -> None:
    save_public_url(tmp_path, URL)
    with pytest.raises(ConfigError):
        save_public_url(tmp_path, "not a url")
    assert configured_public_url(tmp_path) == URL


@pytest.mark.parametrize(
    ("content", "why"),
    [("{not json", "not JSON"), ("[1]", "JSON object"), ('{"public_url": 5}', "must be a string"),
     ('{"public_url": "ftp://x"}', "public_url 'ftp://x'")],
)  # fmt: skip
def test_a_broken_file_is_reported_with_its_path(tmp_path: Path, content: str, why: str) -> None:
    (tmp_path / CONFIG_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=why) as raised:
        configured_public_url(tmp_path)
    assert str(tmp_path / CONFIG_FILE) in str(raised.value)


def test_argument_then_environment_then_file(tmp_path: Path) -> None:
    assert resolve_public_url(tmp_path, {}) == (None, "none")
    assert resolve_public_url(None, {}) == (None, "none")
    save_public_url(tmp_path, URL)
    assert resolve_public_url(tmp_path, {}) == (URL, "config")
    assert resolve_public_url(tmp_path, {PUBLIC_URL_ENV: ""}) == (URL, "config")  # empty counts as unset
    env = {PUBLIC_URL_ENV: "https://lb.example.gov.cn/"}
    assert resolve_public_url(tmp_path, env) == ("https://lb.example.gov.cn", "environment")
    assert resolve_public_url(tmp_path, env, "http://127.0.0.1:9000") == ("http://127.0.0.1:9000", "argument")
    with pytest.raises(ConfigError, match=PUBLIC_URL_ENV):
        resolve_public_url(tmp_path, {PUBLIC_URL_ENV: "zz.example.gov.cn"})


def _data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with Database(database_url(data_dir, {})) as database:
        database.upgrade()
    return data_dir


def test_the_application_seals_only_with_a_configured_url(tmp_path: Path) -> None:
    data_dir = _data_dir(tmp_path)
    bare = Application.open(data_dir, {})
    try:
        assert bare.public_url is None
        with pytest.raises(PublicUrlNotConfiguredError, match="certstore config set public-url"):
            bare.sealing_base_url()
        with pytest.raises(PublicUrlNotConfiguredError):
            bare.file_maker()
    finally:
        bare.close()
    save_public_url(data_dir, URL)
    for env, explicit, expected in [
        ({}, None, URL),
        ({PUBLIC_URL_ENV: "https://lb.example.gov.cn"}, None, "https://lb.example.gov.cn"),
        ({PUBLIC_URL_ENV: "https://lb.example.gov.cn"}, "http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
    ]:
        app = Application.open(data_dir, env, public_url=explicit)
        try:
            assert app.public_url == expected and app.sealing_base_url() == expected
        finally:
            app.close()


def test_an_application_built_by_hand_has_no_url_unless_given(tmp_path: Path) -> None:
    data_dir = _data_dir(tmp_path)
    database = Database(database_url(data_dir, {}))
    try:
        repo = make_repo(database, tmp_path)
        with pytest.raises(PublicUrlNotConfiguredError):
            Application(repo, KeyStore(tmp_path / "keys")).sealing_base_url()
        assert Application(repo, KeyStore(tmp_path / "keys"), public_url=URL).sealing_base_url() == URL
    finally:
        database.dispose()
