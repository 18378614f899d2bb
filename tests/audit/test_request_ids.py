"""Client-chosen request ids (X-Request-ID) are claimed once per database, whichever process claims them."""

from __future__ import annotations

from certstore.audit.requests import SERVER_FORM, claim_request_id, client_value, server_request_id
from certstore.store.db import Database


def test_a_request_id_is_claimed_once_across_processes(database_url: str) -> None:
    """Two connections (two API processes): the first claim of a value wins, every later one loses; values too
    long, unprintable or of the server's form are never adopted; server ids are fresh each time."""
    first, second = Database(database_url), Database(database_url)
    try:
        assert claim_request_id(first, "order-17")
        assert not claim_request_id(second, "order-17")
        assert not claim_request_id(first, "order-17")
        assert claim_request_id(second, "order-18")
        for refused in ("x" * 65, "bad\nvalue", "0" * 40, ""):
            assert not claim_request_id(first, refused)
        assert client_value("bad\nvalue") == "badvalue" and client_value("x" * 80) == "x" * 64
        made = {server_request_id() for _ in range(100)}
        assert len(made) == 100 and all(SERVER_FORM.fullmatch(m) for m in made)
    finally:
        first.dispose()
        second.dispose()
