"""Memory bounded by explicit limits against a live uvicorn: the request head, the decoded
pixels per request and in the process, the values of a forecast, and resident memory given back
after large requests (``python -m tests.perf.memory`` measures the same on the shipped models)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.dataplane.forecast import prepare_series
from service.errors import DeadlineExceededError, OverloadedError, PayloadTooLargeError
from service.repository.manifest import Manifest
from service.scheduling.pixel_budget import PixelBudget
from service.schemas import ForecastRequest
from tests.conftest import LiveServer, rss_mb
from tests.perf.memory import flat_png


@pytest.fixture(scope="module")
def server(tiny_repo: Path) -> Iterator[LiveServer]:
    live = LiveServer(
        tiny_repo,
        POLYPSERVE_MAX_REQUEST_PIXELS="10000000",
        POLYPSERVE_MAX_FORECAST_VALUES="1000",
        POLYPSERVE_MAX_HEADER_BYTES="16384",
    )
    live.wait_until_ready()
    yield live
    live.stop()


def _raw(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("where", ["header", "url"])
def test_a_request_head_over_the_limit_is_431_json(server: LiveServer, where: str) -> None:
    big = b"a" * 100_000
    head = (
        b"GET /v2/health/live" + (b"?q=" + big if where == "url" else b"") + b" HTTP/1.1\r\n"
        b"Host: x\r\n" + (b"X-Big: " + big + b"\r\n" if where == "header" else b"") + b"\r\n"
    )
    answer = _raw(server.port, head)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431") and answer.count(b"HTTP/1.1") == 1
    assert json.loads(body)["limit"] == 16384
    ok = httpx.get(f"{server.url}/v2/health/live", headers={"X-Fine": "b" * 8000})
    assert ok.status_code == 200


def test_decoded_pixels_are_limited_per_request(server: LiveServer) -> None:
    image = flat_png(2000, 2000)  # 4 M pixels: two fit the 10 M budget, three do not
    files = [("image", (f"{i}.png", image)) for i in range(3)]
    refused = httpx.post(f"{server.url}/v1/classify", files=files, timeout=60)
    assert refused.status_code == 413
    assert refused.json()["limit"] == 10_000_000 and "MAX_REQUEST_PIXELS" in refused.json()["error"]
    served = httpx.post(f"{server.url}/v1/classify", files=files[:2], timeout=60)
    assert served.status_code == 200 and len(served.json()["results"]) == 2


def test_forecast_values_are_limited_per_request(server: LiveServer) -> None:
    series = [{"values": [1.0] * 300}] * 4
    refused = httpx.post(f"{server.url}/v1/forecast", json={"horizon": 1, "series": series})
    assert refused.status_code == 413 and refused.json()["limit"] == 1000
    served = httpx.post(f"{server.url}/v1/forecast", json={"horizon": 1, "series": series[:3]})
    assert served.status_code == 200


def test_bodies_parsed_as_json_have_the_smaller_limit(server: LiveServer) -> None:
    numbers = b'{"inputs": [{"name": "images", "data": [' + b"0," * 4_300_000 + b"0]}]}"
    infer = f"{server.url}/v2/models/tiny-classifier/infer"
    as_json = httpx.post(infer, content=numbers)
    assert as_json.status_code == 413 and as_json.json()["limit"] == 8 * 1024 * 1024
    binary = httpx.post(
        infer,
        content=numbers,  # the same size as binary tensors: not refused
        headers={"Inference-Header-Content-Length": "2"},
    )
    assert binary.status_code == 400


def test_memory_comes_back_after_large_images(server: LiveServer) -> None:
    """Bursts of 5 M-pixel images from 4 clients. The first grows the allocator's per-thread
    arenas once (80 to 140 MB kept, where the burst's peak is about 260 MB over idle); after
    that, a leak or memory kept at the peak would show as growth from one burst to the next."""
    files = [("image", (f"{i}.png", flat_png(2500, 2000))) for i in range(2)]
    pid = server.process.pid

    def burst() -> float:
        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(segment, range(12))) == [200] * 12
        time.sleep(1.5)
        return rss_mb(pid)

    def segment(_: int) -> int:
        return httpx.post(f"{server.url}/v1/segment", files=files, timeout=60).status_code

    idle = rss_mb(pid)
    after_first = burst()
    assert after_first - idle < 200, "resident memory stayed near the first burst's peak"
    for _ in range(2):
        assert burst() - after_first < 100, "resident memory grew from one burst to the next"


def test_the_process_budget_waits_then_refuses_with_retry_after() -> None:
    async def scenario() -> None:
        budget = PixelBudget(per_request=100, total=150, release_over=1000)
        with pytest.raises(PayloadTooLargeError):
            async with budget.hold(101, 1.0):
                pass
        async with budget.hold(100, 1.0):
            with pytest.raises(OverloadedError) as refused:
                async with budget.hold(100, 0.05):
                    pass
            assert refused.value.headers == {"Retry-After": "1"}
            async with budget.hold(50, 0.05):  # what still fits goes at once
                assert budget.in_use == 150

        async def later() -> None:
            async with budget.hold(100, 1.0):
                await asyncio.sleep(0.1)

        async with budget.hold(100, 1.0):
            waiting = asyncio.create_task(later())
            await asyncio.sleep(0.05)
            assert not waiting.done()  # it waits for room, not refused
        await asyncio.wait_for(waiting, 1.0)
        assert budget.in_use == 0

    asyncio.run(scenario())


def test_preparing_forecasts_stops_at_the_deadline(tiny_repo: Path) -> None:
    manifest = Manifest.model_validate_json(
        (tiny_repo / "tiny-forecaster" / "1" / "manifest.json").read_text()
    )
    assert manifest.forecasting is not None
    request = ForecastRequest(horizon=1, series=[{"values": [1.0] * 16}] * 3)  # type: ignore[list-item]
    with pytest.raises(DeadlineExceededError):
        prepare_series(manifest.forecasting, request, 1000, deadline=time.monotonic() - 1)
    assert len(prepare_series(manifest.forecasting, request, 1000).scales) == 3
