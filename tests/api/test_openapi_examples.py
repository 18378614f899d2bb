"""Every example in the OpenAPI document is a request the API accepts.

A reader of ``/docs`` or ``docs/openapi.json`` copies an example and sends it; it must not answer 422. The test
collects every request example of the document — the ``examples`` of each request body's schema and of each
parameter — and sends each one, as the role that makes that call, in the order a real day would: the type's
certificate is issued from the ``CertificateData`` example first, then looked up, copied, disputed, inspected
and suspended under the example matter. :data:`CALLS` says who sends which operation; an operation with an
example that :data:`CALLS` does not name fails the test, so a new example is sent too.

Two things of an example cannot be the same in every repository, and the test puts in this repository's:
the certificate identifier (its serial is keyed by the repository's serial key, so the examples show the
well-formed :data:`api.models.EXAMPLE_IDENTIFIER`; the test uses the identifier the example issue returned), and
the day — the examples carry dates (an issue date, a matter's and a grant's end), so the test's clock stands on
the examples' day, 2026-11-26 10:00 Beijing time, on which they stay acceptable for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.models import EXAMPLE_IDENTIFIER
from certstore.access import Role
from certstore.catalogue import shipped_entry
from certstore.services import access
from certstore.store.repository import Repository
from tests.api.conftest import CONSTRUCTION, PRINCIPALS, Clients
from tests.support.clock import Clock
from tests.support.matters import register_matters

#: The day the examples are written for (the example certificate's issue date), 10:00 Beijing time.
EXAMPLES_DAY = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)

#: (method, path) of each operation that has request examples → (the client that sends it, its path values),
#: in the order they are sent.
CALLS: dict[tuple[str, str], tuple[str, dict[str, str]]] = {
    ("POST", "/api/v1/certificates"): ("agency", {}),
    ("POST", "/api/v1/matters"): ("case_system", {}),
    ("POST", "/api/v1/holders/certificates"): ("window", {}),
    ("GET", "/api/v1/certificates/{identifier}"): ("window", {"identifier": EXAMPLE_IDENTIFIER}),
    ("GET", "/api/v1/certificates/{identifier}/status"): ("window", {"identifier": EXAMPLE_IDENTIFIER}),
    ("GET", "/api/v1/certificates/{identifier}/history"): ("window", {"identifier": EXAMPLE_IDENTIFIER}),
    ("GET", "/api/v1/certificates/{identifier}/preview.png"): ("window", {"identifier": EXAMPLE_IDENTIFIER}),
    ("POST", "/api/v1/certificates/{identifier}/copies"): ("window", {"identifier": EXAMPLE_IDENTIFIER}),
    ("POST", "/api/v1/reviews"): ("window", {}),
    ("POST", "/api/v1/certificates/{identifier}/inspections"): ("agency", {"identifier": EXAMPLE_IDENTIFIER}),
    ("GET", "/api/v1/certificates/{identifier}/inspections"): ("window", {"identifier": EXAMPLE_IDENTIFIER}),
    ("POST", "/api/v1/certificates/{identifier}/actions"): ("agency", {"identifier": EXAMPLE_IDENTIFIER}),
    ("POST", "/api/v1/grants"): ("bureau", {}),
    ("PUT", "/api/v1/calendar/{day}"): ("bureau", {"day": "2026-10-08"}),  # a Thursday: a holiday may be set
    ("POST", "/api/v1/principals/disable"): ("bureau", {}),
    ("POST", "/api/v1/principals/enable"): ("bureau", {}),
}


def _schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]] if ref else schema


def request_examples(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """For each operation with request examples: its example bodies and its parameters' example values."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            media = list(operation.get("requestBody", {}).get("content", {}).values())
            assert not any("example" in m or "examples" in m for m in media), "examples live on the schemas"
            bodies = [
                example
                for m in media
                for example in _schema(document, m.get("schema", {})).get("examples", [])
            ]
            parameters = {
                (parameter["in"], parameter["name"]): parameter["schema"]["examples"][0]
                for parameter in operation.get("parameters", [])
                if parameter.get("schema", {}).get("examples")
            }
            assert not any("example" in p or "examples" in p for p in operation.get("parameters", []))
            if bodies or parameters:
                found[(method.upper(), path)] = {"bodies": bodies, "parameters": parameters}
    return found


def _with_identifier(body: dict[str, Any] | None, identifier: str) -> dict[str, Any] | None:
    """``body`` naming ``identifier`` where the example names :data:`EXAMPLE_IDENTIFIER`."""
    if body is None:
        return None
    return {key: identifier if value == EXAMPLE_IDENTIFIER else value for key, value in body.items()}


def _example_holders(examples: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    """The holder ID number the examples give for each holder ID type (the bodies name both)."""
    holders: dict[str, str] = {}
    for operation in examples.values():
        for body in operation["bodies"]:
            if "holder_id_type" in body and "holder_id" in body:
                holders.setdefault(body["holder_id_type"], body["holder_id"])
            if isinstance(body.get("holder"), dict):
                holders.setdefault(body["holder"]["id_type"], body["holder"]["id_number"])
    return holders


def test_every_request_example_is_accepted(
    app: Any, clients: Clients, api_repo: Repository, clock: Clock
) -> None:
    """Each example body, sent as documented, is accepted (2xx) — the ``POST /api/v1/certificates`` example
    issues the certificate the other examples name. Each example parameter value is valid input: with the
    example certificate's holder it is answered (2xx); with another example holder (the header's example ID type
    names a resident, the certificate's holder is a company) it is valid input refused by the scope rules — the
    example matter is registered for the company (403), or the certificate is another holder's (404) — never a
    422."""
    clock.now = EXAMPLES_DAY
    examples = request_examples(app.openapi())
    assert set(examples) == set(CALLS), "every operation with an example is sent (CALLS), and only those"
    window_org = PRINCIPALS["window"][1]
    certificate_holder = examples[("POST", "/api/v1/certificates")]["bodies"][0]["holder"]
    holders = _example_holders(examples)
    # the window's case-handling system registered the example matters of the look-ups for the certificate's
    # holder (but the one the POST /api/v1/matters example registers itself)
    registered = {body["matter"] for key in CALLS for body in examples[key]["bodies"] if "matter" in body}
    registered |= {
        v for key in CALLS for (_, name), v in examples[key]["parameters"].items() if name == "matter"
    }
    registered.discard(examples[("POST", "/api/v1/matters")]["bodies"][0]["matter"])
    register_matters(
        api_repo,
        window_org,
        certificate_holder["id_type"],
        certificate_holder["id_number"],
        sorted(registered),
    )
    # the using units the grant and the principal examples name, each with its principal (token)
    named = [
        *examples[("POST", "/api/v1/principals/disable")]["bodies"],
        *examples[("POST", "/api/v1/grants")]["bodies"],
    ]
    known = {org: org_name for _role, org, org_name in PRINCIPALS.values()}
    for body in named:
        access.create_token(
            api_repo,
            role=Role.WINDOW,
            organisation_code=body["organisation_code"],
            organisation_name=known.get(body["organisation_code"], "郑州市示例数据分析中心"),
            name=body.get("name", "数据分析"),
        )

    # the inspection example needs a type with annual inspection: the agency registers version 3 of the
    # construction permit with it (the shipped version 2 has none), the bureau approves
    entry = shipped_entry(CONSTRUCTION).to_document()
    entry.update(version=3, annual_inspection=True)
    assert clients.agency.post("/api/v1/catalogue", json=entry).status_code == 201
    assert clients.bureau.post(f"/api/v1/catalogue/{CONSTRUCTION}/versions/3/approve").status_code == 200

    issued = EXAMPLE_IDENTIFIER
    for (method, path), (caller, path_values) in CALLS.items():
        client = getattr(clients, caller)
        url = path.format(**path_values).replace(EXAMPLE_IDENTIFIER, issued)
        parameters = examples[(method, path)]["parameters"]
        query = {name: value for (where, name), value in parameters.items() if where == "query"}
        headers = {name: value for (where, name), value in parameters.items() if where == "header"}
        expected = range(200, 300)
        if "X-Holder-Id-Type" in headers:
            headers["X-Holder-Id"] = holders[headers["X-Holder-Id-Type"]]
            if headers["X-Holder-Id-Type"] != certificate_holder["id_type"]:
                expected = range(403, 405)
        for example in examples[(method, path)]["bodies"] or [None]:
            body = _with_identifier(example, issued)
            answer = client.request(method, url, params=query, headers=headers, json=body)
            assert answer.status_code in expected, (method, url, body, query, headers, answer.text)
            if (method, path) == ("POST", "/api/v1/certificates"):
                issued = answer.json()["identifier"]
    assert issued != EXAMPLE_IDENTIFIER
