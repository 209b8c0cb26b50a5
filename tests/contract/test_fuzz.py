"""Property-based fuzzing of the whole HTTP API from its OpenAPI schema with schemathesis,
against a live uvicorn: no 5xx, and every response matches the schema.

(schemathesis's pytest plugin does not run under this pytest, so the operations are driven with
Hypothesis directly: the same strategies and the same checks.)
"""

from __future__ import annotations

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.conftest import LiveServer

EXAMPLES_PER_OPERATION = 80
# "Schema-valid data must be accepted" cannot hold for image bodies: the schema says "binary",
# and random bytes are rightly refused as an undecodable image (400).
EXCLUDED_CHECKS = [positive_data_acceptance]
MINIMUM_REQUESTS = 1000


def test_api_never_fails_and_never_lies(live_server: LiveServer) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server.url}/openapi.json")
    failures: list[str] = []
    sent = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def check(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(session=session, excluded_checks=EXCLUDED_CHECKS)

            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # every operation's first failure
                failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:1500])
    assert failures == [], "\n\n".join(failures)
    print(f"{sent} generated requests")
    assert sent >= MINIMUM_REQUESTS, f"only {sent} requests generated"
