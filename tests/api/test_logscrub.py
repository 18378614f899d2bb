"""Holder ID numbers out of the server's access log (issue 17): :class:`api.logscrub.AccessLogScrubber` as a
unit, and the access log of a real ``certstore serve`` process after requests that put ID numbers in the URL every
way a client could."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from uvicorn.logging import AccessFormatter

from api.logscrub import MASK, WITHHELD, AccessLogScrubber, logging_config, scrub
from devservers.api import ApiServer

RESIDENT_ID = "11010519491231002X"
CREDIT_CODE = "91410100MA44A1B2XW"
SHORT_ID = "4101051985"  # not 18 characters: found only as a holder_id value


def _percent_encoded(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())


#: request targets a client could send, each holding an ID number
LEAKY_TARGETS = [
    f"/api/v1/holders/111/{RESIDENT_ID}/certificates?matter=ZZ-LOG-1",
    f"/api/v1/holders/001/{CREDIT_CODE.lower()}/certificates",
    f"/api/v1/certificates/x?matter=ZZ-LOG-1&holder_id_type=111&holder_id={RESIDENT_ID.lower()}",
    f"/api/v1/certificates/x/history?holder_id={SHORT_ID}&matter=ZZ",
    f"/api/v1/audit/events?HOLDER%5FID={SHORT_ID}",
    f"/api/v1/certificates?issuer_code={CREDIT_CODE}",
    f"/api/v1/certificates/{_percent_encoded(RESIDENT_ID)}",
    f"/api/v1/public/certificates/{RESIDENT_ID}/status",
]
LEAKS = [
    RESIDENT_ID,
    RESIDENT_ID.lower(),
    CREDIT_CODE,
    CREDIT_CODE.lower(),
    SHORT_ID,
    _percent_encoded(RESIDENT_ID),
]


@pytest.mark.parametrize("target", LEAKY_TARGETS)
def test_scrub_masks_every_form_of_id_number(target: str) -> None:
    """Each target comes out without the ID number in any form (plain, lower case, percent-encoded)."""
    scrubbed = scrub(target)
    assert not any(leak in scrubbed for leak in LEAKS), scrubbed
    assert scrubbed == WITHHELD or scrubbed.split("?")[0].startswith("/api/v1/")


def test_scrub_leaves_everything_else_as_it_was() -> None:
    """Paths without an ID number, 17- and 19-character runs, hex digests and the holder ID *type* stay."""
    for text in (
        "/api/v1/certificates/ABC123/history?matter=ZZ2026112600123&holder_id_type=111",
        "/api/v1/audit/events?holder=1f0c9e8d7a6b5c4d3e2f1a0b9c8d7e6f&limit=10",
        "12345678901234567 and 1234567890123456789",
        "/api/v1/health",
        "/v/1.2.156.3005.2.abc?x=1%202",
    ):
        assert scrub(text) == text
    assert scrub(f"id {RESIDENT_ID}.") == f"id {MASK}."
    assert scrub(f"/x?holder_id={CREDIT_CODE}&a=1") == "/x?holder_id=***&a=1"


def test_the_filter_keeps_uvicorns_access_record_usable() -> None:
    """On a record shaped as uvicorn's access logger emits it, the filter masks the arguments and uvicorn's
    own formatter still formats the line; the record is never dropped."""
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", LEAKY_TARGETS[0], "1.1", 410), None,
    )  # fmt: skip
    assert AccessLogScrubber().filter(record) is True
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False).format(
        record
    )
    assert RESIDENT_ID not in line
    assert line.startswith(
        '127.0.0.1:5000 - "GET /api/v1/holders/111/***/certificates?matter=ZZ-LOG-1 HTTP/1.1" 410'
    )


def test_the_logging_configuration_puts_the_filter_on_the_access_logger_and_handlers() -> None:
    """What ``certstore serve`` hands uvicorn: uvicorn's configuration plus the filter, by import string."""
    config = logging_config()
    assert config["filters"]["scrub_ids"] == {"()": "api.logscrub.AccessLogScrubber"}
    assert "scrub_ids" in config["loggers"]["uvicorn.access"]["filters"]
    assert all("scrub_ids" in handler["filters"] for handler in config["handlers"].values())
    logging.config.dictConfig(logging_config({"version": 1, "disable_existing_loggers": False}))
    assert any(isinstance(f, AccessLogScrubber) for f in logging.getLogger("uvicorn.access").filters)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ApiServer]]:
    """A real ``certstore serve`` (one worker: uvicorn configures its logging from what serve hands it; the
    supervisor's worker processes configure theirs from the same dictionary, by the same import string — see
    :func:`test_the_logging_configuration_puts_the_filter_on_the_access_logger_and_handlers`)."""
    root = tmp_path_factory.mktemp("logscrub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTSTORE_")}
    started = [ApiServer(root / "data", env=env, workers=1)]
    try:
        for server in started:
            server.start()
        yield started
    finally:
        for server in started:
            server.stop()


def test_the_access_log_of_certstore_serve_holds_no_id_number(servers: list[ApiServer]) -> None:
    """Every leaky target sent (with and without a token) to the server: after it stops, its access log holds a
    line per request — access logging stays on — and no ID number in any form."""
    for server in servers:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for target in LEAKY_TARGETS:
                client.get(target)
                client.get(target, headers={"Authorization": "Bearer not-a-token"})
            assert (
                client.post("/api/v1/holders/certificates", json={"holder_id": RESIDENT_ID}).status_code
                == 401
            )
    logs = []
    for server in servers:
        server.stop()
        assert server.log_path is not None
        logs.append(Path(server.log_path).read_text(errors="replace"))
    for log in logs:
        access = [line for line in log.splitlines() if '" 4' in line and "HTTP/1.1" in line]
        assert len(access) >= 2 * len(LEAKY_TARGETS) + 1, log[-3000:]
        assert "/api/v1/holders/111/***/certificates" in log
        assert f"holder_id={SHORT_ID}" not in log and "holder_id=***" in log
        leaked = [leak for leak in LEAKS if leak in log]
        assert not leaked, leaked
