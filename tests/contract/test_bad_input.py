"""A corpus of hostile input against a live uvicorn: each gets the right 4xx with a clear
``{"error": ...}``, normal requests are answered right after, and memory comes back."""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import LiveServer, rss_mb
from tests.contract.test_errors import png_declaring
from tests.images import encode, solid_rgb

RED = encode(solid_rgb(48, 48, (220, 0, 0)))
JPEG = encode(solid_rgb(48, 48, (220, 0, 0)), "JPEG")


def _save(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tiny_repo: Path) -> Iterator[LiveServer]:
    live = LiveServer(tiny_repo, POLYPSERVE_BODY_TIMEOUT_S="1.5")
    live.wait_until_ready()
    yield live
    live.stop()


IMAGE_CORPUS: list[tuple[str, bytes, str, int]] = [
    ("empty", b"", "image/jpeg", 400),
    ("truncated jpeg", JPEG[: len(JPEG) // 2], "image/jpeg", 400),
    ("truncated png", RED[:40], "image/png", 400),
    ("truncated webp", encode(solid_rgb(48, 48, (1, 2, 3)), "WEBP")[:30], "image/webp", 400),
    ("corrupt jpeg", JPEG[:20] + bytes(range(256)) * 4, "image/jpeg", 400),
    ("png header, garbage body", RED[:33] + b"\x00garbage" * 50, "image/png", 400),
    ("decompression bomb", png_declaring(50_000, 50_000), "image/png", 413),
    ("gif as jpeg", encode(solid_rgb(8, 8, (0, 0, 0)), "GIF"), "image/jpeg", 415),
    ("pdf as jpeg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "image/jpeg", 400),
    ("1x1", encode(solid_rgb(1, 1, (9, 9, 9))), "image/png", 200),
    ("65535 wide", encode(solid_rgb(65_535, 1, (9, 9, 9))), "image/png", 200),
    ("cmyk", _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"), "image/jpeg", 200),
    (
        "16-bit",
        _save(Image.fromarray(np.full((16, 16), 60000, np.uint16)), "PNG"),
        "image/png",
        200,
    ),
    ("palette", _save(Image.new("P", (16, 16), 1), "PNG"), "image/png", 200),
    ("alpha", _save(Image.new("RGBA", (16, 16), (255, 0, 0, 128)), "PNG"), "image/png", 200),
]

FORECAST_CORPUS: list[tuple[str, bytes, int]] = [
    ("NaN", b'{"horizon": 1, "series": [{"values": [1, 2, 3, 4, 5, 6, 7, NaN]}]}', 422),
    ("infinity", b'{"horizon": 1, "series": [{"values": [1, 2, 3, 4, 5, 6, 7, Infinity]}]}', 422),
    ("strings", b'{"horizon": 1, "series": [{"values": ["a", "b"]}]}', 422),
    ("nested", b'{"horizon": 1, "series": [{"values": [[1, 2], [3]]}]}', 422),
    ("a million values", json.dumps({"horizon": 1, "series": [{"values": [1.0] * 1_000_000}]})
     .encode(), 413),
    ("horizon 0", b'{"horizon": 0, "series": [{"values": [1, 2, 3, 4, 5, 6, 7, 8]}]}', 422),
    ("horizon -1", b'{"horizon": -1, "series": [{"values": [1, 2, 3, 4, 5, 6, 7, 8]}]}', 422),
    ("horizon 1e9", b'{"horizon": 1000000000, "series": [{"values": [1, 2, 3, 4, 5, 6, 7, 8]}]}',
     422),
    ("malformed", b'{"horizon": 1, "series": [', 422),
    *[(f"timestamps past 9999 ({freq})", json.dumps({"horizon": 1, "series": [
        {"values": [1.0] * 40, "start": "9999-12-01", "freq": freq}]}).encode(), 422)
      for freq in ("D", "MS", "YS")],
    ("unknown freq", b'{"horizon": 1, "series": [{"values": [1, 2, 3, 4, 5, 6, 7, 8], '
     b'"start": "2020-01-01", "freq": "fortnight"}]}', 422),
    ("lone surrogate id", b'{"horizon": 1, "series": [{"id": "\\ud800", '
     b'"values": [1, 2, 3, 4, 5, 6, 7, 8]}]}', 422),
    ("lone surrogate model", b'{"model": "\\udfff", "horizon": 1, '
     b'"series": [{"values": [1, 2, 3, 4, 5, 6, 7, 8]}]}', 422),
    ("huge", b'{"horizon": 1, "pad": "' + b"x" * (21 * 1024 * 1024) + b'"}', 413),
]  # fmt: skip


def _infer_body(shape: list[int], **output_parameters: object) -> bytes:
    images = {"name": "images", "shape": shape, "datatype": "FP32", "data": [0.0] * 3072}
    outputs = [{"name": "logits", "parameters": output_parameters}]
    return json.dumps({"inputs": [images], "outputs": outputs}).encode()


INFER = "/v2/models/tiny-classifier/infer"
# (name, path, body, headers, status): v2 and repository requests that once reached a 500
V2_CORPUS: list[tuple[str, str, bytes, dict[str, str], int]] = [
    ("shape product past int64", INFER, _infer_body([2**62, 4]), {}, 400),
    ("dimension past uint64", INFER, _infer_body([2**64]), {}, 400),
    ("zero-size batch", INFER, _infer_body([0, 3, 32, 32]), {}, 400),
    ("raw binary, empty", INFER, b"", {"Inference-Header-Content-Length": "0"}, 400),
    ("5 000-digit header length", INFER, b"{}", {"Inference-Header-Content-Length": "9" * 5000},
     400),
    ("classification -1", INFER, _infer_body([1, 3, 32, 32], classification=-1), {}, 400),
    ("classification 'abc'", INFER, _infer_body([1, 3, 32, 32], classification="abc"), {}, 400),
    ("NaN input", INFER, _infer_body([1, 3, 32, 32]).replace(b"0.0", b"NaN", 1), {}, 400),
    ("index, not UTF-8", "/v2/repository/index", b"\xff\xfe{}", {}, 400),
    ("index, 100 000 [", "/v2/repository/index", b"[" * 100_000, {}, 400),
    ("infer, 100 000 [", INFER, b"[" * 100_000, {}, 400),
]  # fmt: skip


def test_the_whole_corpus_gets_clear_answers_and_memory_returns(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for _ in range(20):  # warm up allocators before the baseline
            client.post("/v1/classify", content=RED, headers={"content-type": "image/png"})
        baseline = rss_mb(server.process.pid)
        answers = []
        for _ in range(3):
            for name, body, media_type, status in IMAGE_CORPUS:
                response = client.post(
                    "/v1/detect", content=body, headers={"content-type": media_type}
                )
                answers.append((name, response.status_code, status, response.json()))
            for name, body, status in FORECAST_CORPUS:
                response = client.post(
                    "/v1/forecast", content=body, headers={"content-type": "application/json"}
                )
                answers.append((name, response.status_code, status, response.json()))
            for path in (
                "/v1/detect?model=",
                "/v1/detect?model=..%2F..%2Fetc%2Fpasswd",
                "/v1/detect?model=unknown",
            ):
                response = client.post(path, content=RED, headers={"content-type": "image/png"})
                answers.append((path, response.status_code, 404, response.json()))
            for name, path, body, headers, status in V2_CORPUS:
                response = client.post(path, content=body, headers=headers)
                answers.append((name, response.status_code, status, response.json()))
            fields = [("field", (None, "x")) for _ in range(1000)]
            many = client.post("/v1/classify", files=[*fields, ("image", ("a.png", RED))])
            answers.append(("1000 fields", many.status_code, 413, many.json()))
            none = client.post("/v1/classify", files=[("picture", ("a.png", RED))])
            answers.append(("no image field", none.status_code, 400, none.json()))
        wrong = [(n, got, want) for n, got, want, _ in answers if got != want]
        assert wrong == []
        assert all(
            isinstance(body.get("error", ""), str) for _, got, _, body in answers if got >= 400
        )
        assert all(body["error"] for _, got, _, body in answers if got >= 400)
        ok = client.post("/v1/classify", content=RED, headers={"content-type": "image/png"})
        assert ok.status_code == 200
        time.sleep(0.5)
        grown = rss_mb(server.process.pid) - baseline
    assert grown < 150, f"resident memory grew by {grown:.0f} MB"


def test_a_slow_upload_is_cut_off_and_does_not_block_others(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as slow:
        slow.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Content-Length: 100000\r\n\r\n" + RED[:10]
        )
        started = time.monotonic()
        fast = httpx.post(
            f"{server.url}/v1/classify", content=RED, headers={"content-type": "image/png"}
        )
        assert fast.status_code == 200 and time.monotonic() - started < 1.0
        slow.settimeout(10)
        answer = b""
        while b"}" not in answer:  # headers and body may come in separate segments
            chunk = slow.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive" in answer


@pytest.mark.parametrize(
    ("path", "content_type"), [("/v1/detect", "image/png"), ("/v1/forecast", "application/json")]
)
def test_slow_streamed_body_over_the_limit_is_413(
    server: LiveServer, path: str, content_type: str
) -> None:
    # No Content-Length: the limit is found while the body streams, on an image route that
    # reads its own body and on a route whose JSON body FastAPI parses.
    def chunks() -> Iterator[bytes]:
        for _ in range(22):
            yield b"\0" * (1024 * 1024)
            time.sleep(0.01)

    response = httpx.post(
        f"{server.url}{path}", content=chunks(), headers={"content-type": content_type}, timeout=30
    )
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert response.json()["limit"] > 0


def test_a_multi_image_request_splits_into_batches(server: LiveServer) -> None:
    files = [("image", (f"{i}.png", RED, "image/png")) for i in range(20)]
    response = httpx.post(f"{server.url}/v1/classify", files=files, timeout=30)
    assert response.status_code == 200 and len(response.json()["results"]) == 20


@pytest.mark.parametrize(
    ("limit", "first_status"),
    [
        # The stalled response holds its place in flight until the send timeout cuts it off.
        ("POLYPSERVE_MAX_IN_FLIGHT", 503),
        # The model's admission place was given back when the handler returned.
        ("POLYPSERVE_MAX_QUEUE_SIZE", 200),
    ],
)
def test_a_client_that_never_reads_is_cut_off_and_frees_its_place(
    tiny_repo: Path, limit: str, first_status: int
) -> None:
    """One place, a response far larger than the socket buffers, a client that never reads
    it: after the send timeout the answer is cut off and the place is free."""
    blocks = np.kron(np.random.default_rng(0).integers(0, 2, (48, 64)), np.ones((62, 62)))
    pixels = np.stack([blocks * 220, (1 - blocks) * 200, blocks * 0], -1).astype(np.uint8)
    image = encode(pixels, "JPEG", quality=80)  # 12 megapixels of red and green blocks
    boundary = b"polypserve-test"
    part = (
        b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; '
        b'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n' + image + b"\r\n"
    )
    body = part * 24 + b"--" + boundary + b"--\r\n"  # masks' RLE: about 8 MB of JSON
    server = LiveServer(
        tiny_repo,
        **{limit: "1"},
        POLYPSERVE_SEND_TIMEOUT_S="2",
        POLYPSERVE_MAX_REQUEST_PIXELS="300000000",
        POLYPSERVE_MAX_DECODED_PIXELS="300000000",
    )
    try:
        server.wait_until_ready()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(
            b"POST /v1/segment HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary="
            + boundary
            + b"\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        stalled.settimeout(60)
        received = stalled.recv(12)  # the status line has come: the handler has returned
        stalled_since = time.monotonic()
        deadline = time.monotonic() + 60
        statuses = []
        while time.monotonic() < deadline:
            status = httpx.post(
                f"{server.url}/v1/segment", content=RED, headers={"content-type": "image/png"}
            ).status_code
            statuses.append(status)
            if status == 200:
                break
            time.sleep(0.25)
        time.sleep(max(0.0, stalled_since + 3.0 - time.monotonic()))  # past the send timeout
        stalled.settimeout(10)
        while chunk := stalled.recv(1 << 20):
            received += chunk
        stalled.close()
    finally:
        server.stop()
    assert statuses[0] == first_status and statuses[-1] == 200
    head, _, answer = received.partition(b"\r\n\r\n")
    declared = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    assert head.startswith(b"HTTP/1.1 200") and len(answer) < declared  # cut off
