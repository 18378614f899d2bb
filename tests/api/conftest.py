"""An API app on each database backend (SQLite, PostgreSQL), a dev key store, and a client per role.

``clients`` holds a :class:`fastapi.testclient.TestClient` per principal, each sending its own bearer token:
``agency`` (issuer of the shipped 建筑工程施工许可证 type), ``other_agency`` (the planning bureau,
issuer of the three planning types), ``window`` and ``other_window`` (two using units), ``bureau``, ``auditor``,
``upstream``, ``case_system`` (the case-handling system of ``window``'s unit), and ``anonymous`` (no token).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import create_app
from api.settings import Settings
from certstore.access import Role
from certstore.keystore import KeyStore
from certstore.records import draft_to_json, example_draft
from certstore.services import access
from certstore.services.catalogue import get_entry
from certstore.services.keys import init_dev_keys
from certstore.store.db import Database
from certstore.store.repository import Repository
from tests.support.clock import Clock
from tests.support.matters import register_matters
from tests.support.repository import make_repo

CONSTRUCTION = "11410100990000025A001"  # 建筑工程施工许可证, issuer 11410100990000025A
AGENCY_ORG = "11410100990000025A"
PLANNING_ORG = "11410100990000017F"
PLANNING_TYPE = "11410100990000017F001"

PRINCIPALS: dict[str, tuple[Role, str, str]] = {
    "agency": (Role.AGENCY, AGENCY_ORG, "郑州市城乡建设局"),
    "other_agency": (Role.AGENCY, PLANNING_ORG, "郑州市自然资源和规划局"),
    "window": (Role.WINDOW, "12410100MB0000001X", "郑州市政务服务中心"),
    "other_window": (Role.WINDOW, "12410100MB0000002X", "金水区政务服务中心"),
    "bureau": (Role.BUREAU, "11410100MB1700000X", "郑州市大数据管理局"),
    "auditor": (Role.AUDITOR, "11410100MB1700001X", "郑州市审计局"),
    "upstream": (Role.UPSTREAM, "11410000MB0000000X", "河南省电子证照库"),
    # the case-handling system (一窗受理) of the window's unit
    "case_system": (Role.CASE_SYSTEM, "12410100MB0000001X", "郑州市政务服务中心"),
}

#: The matters the using unit "window"'s case system has registered for the holder of :func:`construction_data`
#: (window look-ups are allowed only under a registered matter, certstore.services.scope; tests/support/matters.py).
WINDOW_MATTERS = [
    "ZZ2026112600001", "ZZ-A", "ZZ-ONE", "ZZ-PARALLEL-1", "ZZ-COPY-1", "ZZ-COPY-2", "ZZ-GONE-1", "ZZ-LEAK-1",
    "ZZ-ONCE-1", "ZZ-M-1", "ZZ-MATRIX-1", "ZZ-REVIEW-1",
]  # fmt: skip


@pytest.fixture(scope="session")
def api_keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """One dev key store for the session (the API only reads it)."""
    store = KeyStore(tmp_path_factory.mktemp("api-keys") / "keys")
    init_dev_keys(store)
    return store


@pytest.fixture
def api_repo(database: Database, tmp_path: Path, clock: Clock) -> Repository:
    return make_repo(database, tmp_path, clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class Clients:
    by_name: dict[str, TestClient]
    tokens: dict[str, str]

    def __getattr__(self, name: str) -> TestClient:
        try:
            return self.by_name[name]
        except KeyError:
            raise AttributeError(name) from None


@pytest.fixture
def app(api_repo: Repository, api_keystore: KeyStore, tmp_path: Path) -> Any:
    settings = Settings(data_dir=tmp_path, public_url="https://zz.example.gov.cn", batch_worker=True)
    return create_app(settings, repo=api_repo, keystore=api_keystore)


@pytest.fixture
def clients(app: Any, api_repo: Repository) -> Iterator[Clients]:
    tokens = {}
    for name, (role, org, org_name) in PRINCIPALS.items():
        tokens[name] = access.create_token(
            api_repo, role=role, organisation_code=org, organisation_name=org_name, name=name
        ).token
    holder = construction_data(api_repo)["holder"]  # window look-ups need a registered matter (issue 19)
    register_matters(
        api_repo, PRINCIPALS["window"][1], holder["id_type"], holder["id_number"], WINDOW_MATTERS
    )
    opened: dict[str, TestClient] = {}
    with TestClient(app, raise_server_exceptions=False) as base:
        opened["anonymous"] = base
        for name, token in tokens.items():
            client = TestClient(app, raise_server_exceptions=False)
            client.headers["Authorization"] = f"Bearer {token}"
            opened[name] = client
        yield Clients(opened, tokens)


def construction_data(
    api_repo: Repository, number: str = "410100202406100001", **changes: Any
) -> dict[str, Any]:
    """A valid DATA.json for the agency's construction permit type."""
    document = draft_to_json(example_draft(get_entry(api_repo, CONSTRUCTION)))
    document["certificate_number"] = number
    document.update(changes)
    return document


def serving(document: dict[str, Any], matter: str = "ZZ2026112600001") -> dict[str, str]:
    """The window's declaration for a POST body (copies, reviews, the holder look-up's matter) when serving the
    holder of ``document``; a GET sends :func:`served` instead (a holder ID never goes in a URL)."""
    holder = document["holder"]
    return {"matter": matter, "holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}


def serving_headers(document: dict[str, Any]) -> dict[str, str]:
    """The headers naming the holder of ``document`` (a holder ID never travels in a URL)."""
    holder = document["holder"]
    return {"X-Holder-Id-Type": holder["id_type"], "X-Holder-Id": holder["id_number"]}


def served(document: dict[str, Any], matter: str = "ZZ2026112600001") -> dict[str, Any]:
    """Request options window staff send on a GET while serving the holder of ``document``: the matter in the
    query, the holder in the ``X-Holder-Id-Type`` / ``X-Holder-Id`` headers."""
    return {"params": {"matter": matter}, "headers": serving_headers(document)}
