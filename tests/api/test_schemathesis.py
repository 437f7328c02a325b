"""Property-based requests generated from our own ``/openapi.json`` (schemathesis),
sent with a valid token to a real server: no answer is a 5xx, and every answer
matches the status codes, content types and schemas the document declares."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from dispatch.api.app import ServeOptions, create_app
from projections.stores.memory import MemoryStore
from tests.api.harness import AUTH, Server

# The document is built from the app itself (no server needed to collect the tests);
# the requests go to the real server of the ``server`` fixture.
DOCUMENT: dict[str, Any] = create_app(MemoryStore, ServeOptions(tokens=None)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.exclude(path="/api/stream").parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_answers_match_the_document(case: schemathesis.Case, server: Server) -> None:
    case.call_and_validate(base_url=server.url, headers=AUTH, checks=[
        not_a_server_error, status_code_conformance, content_type_conformance,
        response_schema_conformance])
