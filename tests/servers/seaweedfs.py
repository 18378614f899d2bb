"""The throwaway SeaweedFS S3 server (:mod:`devservers.seaweedfs`) as the session fixture ``s3_server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devservers.seaweedfs import S3Server, SeaweedFS, SeaweedFSStartError, find_weed

__all__ = ["s3_server"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real SeaweedFS S3 server for the test session."""
    try:
        weed = find_weed()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))
    seaweed = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), weed=weed)
    try:
        server = seaweed.start()
    except SeaweedFSStartError as exc:
        pytest.fail(f"SeaweedFS did not start:\n{exc}", pytrace=False)
    try:
        yield server
    finally:
        seaweed.stop()
