"""Graceful shutdown of a live uvicorn: SIGTERM under steady load loses nothing."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from service.stream.framing import build_frame_message
from tests.conftest import LiveServer
from tests.contract.stream_clients import StreamClosedError, socket_stream
from tests.images import encode, solid_rgb

RED = encode(solid_rgb(64, 64, (220, 0, 0)))


class SteadyLoad(threading.Thread):
    """Posts detect requests back to back until told to stop; counts outcomes."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.ok = 0
        self.failed: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    response = client.post(
                        "/v1/detect", content=RED, headers={"content-type": "image/png"}
                    )
                    if response.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(f"{response.status_code} {response.text}")
                except httpx.TransportError as exc:
                    self.failed.append(repr(exc))


def test_sigterm_drains_then_exits_cleanly(tiny_repo: Path) -> None:
    server = LiveServer(tiny_repo, POLYPSERVE_SHUTDOWN_GRACE_S="2")
    server.wait_until_ready()
    loads = [SteadyLoad(server.url) for _ in range(3)]
    for load in loads:
        load.start()
    with socket_stream(server.url, "") as stream:
        stream.receive()
        stream.send(build_frame_message(RED, 1))
        assert stream.receive()["type"] == "result"
        time.sleep(0.5)
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # Readiness turns 503 at once while requests are still served.
        while httpx.get(f"{server.url}/v2/health/ready").status_code != 503:
            assert time.monotonic() - signalled < 1.0
        served_before = sum(load.ok for load in loads)
        time.sleep(1.0)  # well inside the grace period: a balancer would now have drained
        assert sum(load.ok for load in loads) > served_before
        for load in loads:
            load.stopping.set()
        for load in loads:
            load.join(timeout=30)
        # At the end of the grace the stream gets its report and a close with a reason.
        report = stream.receive()
        assert report["type"] == "report" and report["frames"]["processed"] == 1
        try:
            stream.receive()
            raise AssertionError("the stream was not closed")
        except StreamClosedError as closed:
            assert closed.code == 1001 and "shutting down" in closed.reason
    assert server.process.wait(timeout=30) == 0
    assert [failure for load in loads for failure in load.failed] == []
