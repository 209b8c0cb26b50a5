"""A 60-second soak in CI (``python -m tests.perf.soak`` runs the 5-minute one): mixed traffic
on every route and two stream sessions; no 5xx, no transport error, bounded memory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tests.conftest import LiveServer
from tests.perf.soak import soak


def test_one_minute_of_mixed_traffic(tiny_repo: Path) -> None:
    server = LiveServer(tiny_repo)
    try:
        server.wait_until_ready()
        result = asyncio.run(soak(server.url, 60.0, server.process.pid))
    finally:
        server.stop()
    print("\nsoak:", json.dumps(result))
    assert result["errors"] == {}
    assert result["requests"]["WS /v1/stream"] > 100
    assert all(
        result["requests"].get(route, 0) > 10
        for route in (
            "POST /v1/detect",
            "POST /v1/classify",
            "POST /v1/segment",
            "POST /v1/forecast",
            "POST /v2/models/tiny-detector/infer",
            "GET /v1/models",
        )
    )
    assert result["rss_growth_mb"] < 100
