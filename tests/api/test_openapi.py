"""The OpenAPI document: exported to docs/openapi.json, and the API honours it under schemathesis.

schemathesis generates requests from the document for every operation and checks that no response is a server
error (5xx) and that every response matches the documented status codes, media types and schemas. It runs with
the agency's token (the widest write access) and with the window's (the sharing side); 401/403 answers are part
of the contract too.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import DEFAULT_PATH, openapi_document, render
from tests.api.conftest import Clients

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: The time-stamp authority's DER request (POST /api/v1/tsa) is sent like any binary body.
schemathesis.serializer.alias("application/timestamp-query", "application/octet-stream")


def test_the_exported_document_is_current() -> None:
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(openapi_document()), (
        "docs/openapi.json is out of date: run python -m api.openapi"
    )


def test_every_operation_is_documented_with_a_summary_and_problem_errors() -> None:
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)


def test_api_honours_its_openapi_document(app: Any, clients: Clients) -> None:
    """Every operation, with generated inputs, as the agency and as window staff (hypothesis drives the cases;
    the schemathesis pytest plugin is not used because it does not support this pytest)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    callers = [f"Bearer {clients.tokens[role]}" for role in ("agency", "window")]
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=5,  # 5 cases × ≥30 operations × 2 callers × 2 databases
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def run(case: Any) -> None:
            for caller in callers:
                case.headers = {**(case.headers or {}), "Authorization": caller}
                case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them together
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert not failures, "\n\n".join(failures)
