"""Messages of bad requests (issue 21, item 8), as RFC 9457 problems:

- a body that is not well-formed JSON names the line and column (not a character offset) and hints at
  ``Content-Type``;
- a JSON body sent without a ``Content-Type`` header, or under another media type, says it was not read as JSON
  and what to send;
- a window look-up naming a holder ID with a bad check character is bad input (422), not a refusal (403), and the
  message says what is wrong with the ID — in a POST body and in the ``X-Holder-Id`` header of a GET.
"""

from __future__ import annotations

from typing import Any

from certstore.store.repository import Repository
from tests.api.conftest import Clients, construction_data, served

LOOKUP = "/api/v1/holders/certificates"
PROBLEM = "application/problem+json"


def _bad_check_character(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with its holder's ID given a wrong check character (the last one)."""
    holder = dict(document["holder"])
    number = holder["id_number"]
    holder["id_number"] = number[:-1] + ("X" if number[-1] != "X" else "0")
    return {**document, "holder": holder}


def test_malformed_json_names_line_and_column_and_hints_at_content_type(clients: Clients) -> None:
    """A doubled comma on the second line: the problem says line 2 and the column of the second comma, the JSON
    parser's reason, and how to send the body; the field is ``body``, not ``body.<offset>``."""
    body = b'{"matter": "ZZ-A",\n "holder_id_type": "001",,\n "holder_id": "x"}'
    answer = clients.window.post(LOOKUP, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith(PROBLEM)
    problem = answer.json()
    assert problem["errors"][0]["field"] == "body"
    message = problem["errors"][0]["message"]
    assert message.startswith("invalid JSON at line 2, column 26: ")
    assert "Expecting property name enclosed in double quotes" in message
    assert "Content-Type: application/json" in message
    assert "line 2, column 26" in problem["detail"]


def test_malformed_json_on_the_first_line_counts_columns_from_one(clients: Clients) -> None:
    """A body cut short after its first character: line 1, column 2 (where the parser expected more)."""
    answer = clients.window.post(LOOKUP, content=b"{", headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["message"].startswith("invalid JSON at line 1, column 2: ")


def test_a_body_without_content_type_says_it_was_not_read_as_json(clients: Clients) -> None:
    """Well-formed JSON sent without ``Content-Type``: the API does not guess (a form post from another site must
    not pass as JSON); the problem says so and names the header to send, instead of "Input should be a valid
    dictionary"."""
    answer = clients.window.post(LOOKUP, content=b'{"matter": "ZZ-A"}')
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["errors"] == [
        {
            "field": "body",
            "message": "the body was not read as JSON: the request had no Content-Type header; "
            "send the body as JSON with the header Content-Type: application/json",
        }
    ]
    assert "valid dictionary" not in problem["detail"]


def test_a_body_under_another_media_type_names_it(clients: Clients) -> None:
    """JSON sent as ``text/plain``: the problem quotes the media type the request had."""
    answer = clients.window.post(
        LOOKUP, content=b'{"matter": "ZZ-A"}', headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 422
    assert "the request had Content-Type 'text/plain'" in answer.json()["detail"]


def test_a_json_body_with_a_missing_field_is_told_as_before(clients: Clients) -> None:
    """Well-formed JSON with ``Content-Type`` but fields missing: each field named, no hint about the header."""
    answer = clients.window.post(LOOKUP, json={"matter": "ZZ-A"})
    assert answer.status_code == 422
    fields = {e["field"] for e in answer.json()["errors"]}
    assert "body.holder_id" in fields
    assert "Content-Type" not in answer.json()["detail"]


def test_a_bad_holder_id_check_character_in_a_get_look_up_is_422(
    clients: Clients, api_repo: Repository
) -> None:
    """``GET /api/v1/certificates/{id}`` serving a holder whose ID (header ``X-Holder-Id``) has a wrong check
    character: 422 with the message naming the check character, not 403 access denied."""
    document = _bad_check_character(construction_data(api_repo))
    answer = clients.window.get("/api/v1/certificates/11410100990000025A0010000000001", **served(document))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["type"].endswith("/invalid-request")
    assert problem["detail"].startswith("the holder being served is not a valid ID: check character is ")
    assert "GB 32100" in problem["detail"]


def test_the_window_look_up_by_holder_answers_a_bad_check_character_with_422(
    clients: Clients, api_repo: Repository
) -> None:
    """``POST /api/v1/holders/certificates`` with a bad check character: 422 (as before), the same wording."""
    holder = _bad_check_character(construction_data(api_repo))["holder"]
    body = {"matter": "ZZ-A", "holder_id_type": holder["id_type"], "holder_id": holder["id_number"]}
    answer = clients.window.post(LOOKUP, json=body)
    assert answer.status_code == 422
    assert "check character is" in answer.json()["detail"]
