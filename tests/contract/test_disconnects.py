"""A client that goes away mid-body is the client's doing: counted under its own status (499,
nginx's "client closed request"), logged at info, never a 500 with a traceback."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import httpx

from tests.conftest import LiveServer

ROUTES = [
    ("/v1/detect", "image/png"),
    ("/v1/classify", "multipart/form-data; boundary=b"),
    ("/v1/forecast", "application/json"),
    ("/v2/models/{name}/infer", "application/json"),
]


def _abandon(port: int, route: str, content_type: str) -> None:
    """Send the head and a tenth of the declared body, then close the connection."""
    path = route.replace("{name}", "tiny-classifier")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: 10000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + b"--b\r\n" + b"x" * 1000)
        time.sleep(0.2)


def _statuses(metrics: str, route: str) -> set[str]:
    pattern = rf'polypserve_requests_total\{{[^}}]*route="{re.escape(route)}",status="(\d+)"\}}'
    return set(re.findall(pattern, metrics))


def test_a_client_that_leaves_mid_body_is_counted_and_logged_as_such(tiny_repo: Path) -> None:
    server = LiveServer(tiny_repo)
    try:
        server.wait_until_ready()
        for route, content_type in ROUTES:
            _abandon(server.port, route, content_type)
        deadline = time.monotonic() + 10
        while True:  # the server sees each disconnect when it next reads that body
            metrics = httpx.get(f"{server.url}/metrics").text
            if all(_statuses(metrics, route) for route, _ in ROUTES):
                break
            assert time.monotonic() < deadline, metrics
            time.sleep(0.1)
        ok = httpx.post(
            f"{server.url}/v1/detect", content=b"", headers={"content-type": "image/png"}
        )
        assert ok.status_code == 400  # still serving
    finally:
        log = server.stop()
    for route, _ in ROUTES:
        assert _statuses(metrics, route) == {"499"}, route
    assert "Traceback" not in log and "unhandled error" not in log
    assert log.count("client disconnected") == len(ROUTES)
