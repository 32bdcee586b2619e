"""A property-based run of the API's own OpenAPI document (schemathesis) against the running
API, the session's dev server and real offline pools: whatever a caller sends, no answer is a
5xx, and every answer has a documented status, content type and shape.

Examples are few per operation, so the run stays short; runs it starts belong to the `fuzz`
owner and are cancelled afterwards.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.api import ApiServer

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _call(server: ApiServer, method: str, path: str) -> Any:
    request = urllib.request.Request(
        f"{server.url}{path}", method=method, headers=server.headers("fuzz")
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


@pytest.fixture(scope="module")
def fuzzed_api(api_server: ApiServer) -> Iterator[Any]:
    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")
    yield schema
    runs = _call(api_server, "GET", "/v1/research?status=running&page_size=100")["runs"]
    for run in runs:
        _call(api_server, "POST", f"/v1/research/{run['id']}/cancel")


def test_no_server_error_and_every_answer_matches_the_schema(
    fuzzed_api: Any, api_server: ApiServer
) -> None:
    operations = [result.ok() for result in fuzzed_api.get_all_operations()]
    assert len(operations) >= 14, [op.label for op in operations]
    headers = api_server.headers("fuzz")
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=6,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_within_the_schema(case: Any) -> None:
            answer = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
            statuses.append(answer.status_code)

        answers_within_the_schema()
    # Every operation was called, and the calls reached past the door (not only 422s).
    assert len(statuses) >= 3 * len(operations)
    assert {200, 404, 422} <= set(statuses), sorted(set(statuses))
