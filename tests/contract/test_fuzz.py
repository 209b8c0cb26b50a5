"""Property-based fuzzing of the whole HTTP API from its OpenAPI schema with schemathesis,
against a live uvicorn: no 5xx, and every response matches the schema.

(schemathesis's pytest plugin does not run under this pytest, so the operations are driven with
Hypothesis directly: the same strategies and the same checks.)
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
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


# Where the OpenAPI document cannot describe the body (raw bytes, Triton's binary extension,
# JSON options read by hand), requests are generated here: JSON of any shape (lone surrogates,
# NaN, huge integers, deep nesting), headers of any length, and the fields each route reads.
ADMIN_KEY = "fuzz-admin-key-0123456789"
# Text with lone surrogates ("Cs"), which JSON can carry as escapes and UTF-8 cannot.
_TEXT = st.text(st.characters(categories=["Cs", "L", "N", "P"]), max_size=8)
_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats()
    | _TEXT | st.sampled_from(["\ud800", "-1", "abc"])
)  # fmt: skip
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
_DIMS = st.integers(-1, 3) | st.integers(2**31 - 2, 2**31) | st.sampled_from([2**62, 2**64])
_TENSOR = st.fixed_dictionaries(
    {"name": st.sampled_from(["images", "x", "\ud800"]), "shape": st.lists(_DIMS, max_size=5),
     "datatype": st.sampled_from(["FP32", "FP16", "INT64", "BYTES", "BOOL", "FP99"])},
    optional={"data": _JSON, "parameters": st.fixed_dictionaries(
        {}, optional={"binary_data_size": _SCALARS | st.integers(0, 64)})},
)  # fmt: skip
_OUTPUT = st.fixed_dictionaries(
    {"name": st.sampled_from(["logits", "y"])},
    optional={"parameters": st.fixed_dictionaries(
        {}, optional={"classification": _SCALARS, "binary_data": st.booleans()})},
)  # fmt: skip
_INFER = st.fixed_dictionaries(
    {"inputs": st.lists(_TENSOR, max_size=2)},
    optional={"id": _SCALARS, "outputs": st.lists(_OUTPUT, max_size=2),
              "parameters": st.fixed_dictionaries({}, optional={"binary_data_output": _SCALARS})},
)  # fmt: skip


def _mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` four times in five: a request has many fields, and one wrong field hides what
    the others would reach."""
    return st.integers(0, 4).flatmap(lambda i: other if i == 0 else valid)


_SERIES = st.fixed_dictionaries({
    "values": _mostly(st.lists(st.floats(-1e6, 1e6), min_size=8, max_size=40),
                      st.lists(st.floats() | st.none(), min_size=1, max_size=40)),
    "id": _mostly(st.none() | _TEXT, _SCALARS),
    "start": st.sampled_from(["9999-12-31T23:59:59", "9999-06-01", "10000-01-01", "9999-12"])
    | st.datetimes().map(lambda d: d.isoformat()) | st.none(),
    "freq": _mostly(st.sampled_from(["s", "min", "h", "D", "W", "MS", "QS", "YS", None]),
                    st.sampled_from(["Y", "", "\ud800"])),
    "missing": _mostly(st.sampled_from(["error", "interpolate", "ffill"]), _SCALARS),
})  # fmt: skip
_FORECAST = st.fixed_dictionaries({
    "series": st.lists(_SERIES, min_size=1, max_size=3),
    "horizon": _mostly(st.integers(1, 4), st.integers(-1, 6) | _SCALARS),
    "model": _mostly(st.none(), _SCALARS),
    "quantiles": _mostly(st.none() | st.lists(st.sampled_from([0.1, 0.5, 0.9]), max_size=3),
                         st.lists(st.floats(), max_size=3)),
})  # fmt: skip


def _encode(value: object) -> bytes:
    # ensure_ascii: a lone surrogate travels as the escape "\ud800", as a client would send it
    return json.dumps(value, allow_nan=True).encode()


_BODY = (
    _JSON.map(_encode) | st.binary(max_size=64)
    | st.integers(1, 100_000).map(lambda depth: b"[" * depth)
)  # fmt: skip
_HEADER_LENGTH = (
    st.none()
    | st.integers(0, 200).map(str)
    | st.sampled_from(["-1", "abc", "9" * 5000, "¹", "1 2", "18446744073709551616"])
)


@st.composite
def _binary_infer(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """Any request, or (half of the time) one whose tensor is right, so that the outputs'
    parameters and the encoding of the answer are reached too."""
    if draw(st.booleans()):
        header = _encode(draw(_INFER))
        tail = draw(st.binary(max_size=256))
        return header + tail, draw(_HEADER_LENGTH | st.just(str(len(header))))
    n = draw(st.integers(1, 2))
    tail = draw(
        st.sampled_from(
            [
                bytes(n * 12288),
                np.full(n * 3072, 1e30, np.float32).tobytes(),
                np.full(n * 3072, np.nan, np.float32).tobytes(),
            ]
        )
    )
    images = {
        "name": "images",
        "shape": [n, 3, 32, 32],
        "datatype": "FP32",
        "parameters": {"binary_data_size": len(tail)},
    }
    request = {
        "inputs": [images],
        "id": draw(_SCALARS),
        "outputs": draw(st.lists(_OUTPUT, max_size=2)),
    }
    header = _encode(request)
    return header + tail, str(len(header))


def _strict_json(response: httpx.Response) -> None:
    """The answer is strict JSON (no NaN/Infinity literals) unless it is a binary tensor."""
    if response.headers.get("content-type", "").startswith("application/json"):
        json.loads(response.content, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))


@pytest.fixture(scope="module")
def control_server(tiny_repo: Path) -> Iterator[LiveServer]:
    server = LiveServer(
        tiny_repo, POLYPSERVE_MODEL_CONTROL="true", POLYPSERVE_ADMIN_KEYS=f'["{ADMIN_KEY}"]'
    )
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


def _target(route: str) -> st.SearchStrategy[tuple[str, bytes, dict[str, Any]]]:
    json_type = {"content-type": "application/json"}
    if route == "infer":
        return _binary_infer().map(
            lambda b: (
                "/v2/models/tiny-classifier/infer",
                b[0],
                {} if b[1] is None else {"Inference-Header-Content-Length": b[1].encode()},
            )
        )
    if route == "forecast":
        return (_FORECAST.map(_encode) | _BODY).map(lambda b: ("/v1/forecast", b, json_type))
    path = {"index": "/v2/repository/index", "load": "/v2/repository/models/tiny-forecaster/load"}[
        route
    ]
    return _BODY.map(lambda b: (path, b, json_type))


@pytest.mark.parametrize("route", ["infer", "forecast", "index", "load"])
def test_hand_read_bodies_never_fail(control_server: LiveServer, route: str) -> None:
    seen: Counter[int] = Counter()
    with httpx.Client(
        base_url=control_server.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as client:

        @given(request=_target(route))
        @settings(
            max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(request: tuple[str, bytes, dict[str, Any]]) -> None:
            path, body, headers = request
            response = client.post(path, content=body, headers=headers)
            seen[response.status_code] += 1
            assert response.status_code < 500 or response.status_code in (503, 504), (
                f"{response.status_code} for {body[:300]!r} {headers}: {response.text[:300]}"
            )
            _strict_json(response)

        check()
    assert sum(seen.values()) >= 250 and len(seen) >= 2, seen  # refusals and successes both
