"""Every error is a 4xx/5xx with ``{"error": ...}`` JSON, and the service keeps serving."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.logs import JsonFormatter
from tests.conftest import app_client
from tests.images import encode, solid_rgb
from tests.model_factory import build_classifier

pytestmark = pytest.mark.anyio

RED = encode(solid_rgb(40, 40, (220, 0, 0)))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/v1/detect?model=nope", {"content": RED}, 404),
        ("post", "/v1/detect?model=tiny-detector&version=9", {"content": RED}, 404),
        ("post", "/v1/detect?model=tiny-classifier", {"content": RED}, 409),
        ("post", "/v1/classify", {"content": b"not an image at all"}, 400),
        ("post", "/v1/classify", {"content": b""}, 400),
        ("post", "/v1/classify", {"content": RED[: len(RED) // 2]}, 400),
        ("post", "/v1/classify", {"content": png_declaring(50_000, 50_000)}, 413),
        ("post", "/v1/classify?top_k=0", {"content": RED}, 422),
        ("post", "/v1/detect?score_threshold=2", {"content": RED}, 422),
        ("get", "/v1/models/../../etc/passwd", {}, 404),
        ("get", "/v1/nothing-here", {}, 404),
    ],
)
async def test_bad_requests_get_json_errors(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, object], status: int
) -> None:
    headers = {"content-type": "image/png"} if method == "post" else {}
    response = await client.request(method.upper(), path, headers=headers, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in response.text
    healthy = await client.post("/v1/classify", content=RED, headers={"content-type": "image/png"})
    assert healthy.status_code == 200


async def test_unsupported_media_types_are_415(client: httpx.AsyncClient) -> None:
    text = await client.post(
        "/v1/classify", content=b"hello", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 415 and "supported" in text.json()
    gif = encode(solid_rgb(8, 8, (1, 2, 3)), "GIF")
    sent_as_jpeg = await client.post(
        "/v1/classify", content=gif, headers={"content-type": "image/jpeg"}
    )
    assert sent_as_jpeg.status_code == 415


async def test_multipart_without_image_field_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/classify", files={"picture": ("a.png", RED, "image/png")})
    assert response.status_code == 400
    assert "'image'" in response.json()["error"]


async def test_more_files_than_the_limit_is_the_projects_413(client: httpx.AsyncClient) -> None:
    files = [("image", (f"{i}.png", RED, "image/png")) for i in range(33)]
    response = await client.post("/v1/classify", files=files)
    assert response.status_code == 413
    assert response.json() == {
        "error": "a request holds at most 32 images (POLYPSERVE_MAX_IMAGES_PER_REQUEST)",
        "limit": 32,
    }


async def test_more_fields_than_the_limit_is_the_projects_413(client: httpx.AsyncClient) -> None:
    fields = {f"note{i}": "x" for i in range(65)}
    response = await client.post(
        "/v1/classify", data=fields, files={"image": ("a.png", RED, "image/png")}
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "a multipart body holds at most 64 fields (POLYPSERVE_MAX_FORM_FIELDS)",
        "limit": 64,
    }


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/classify",
        content=b"\0" * (20 * 1024 * 1024 + 1),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["error"]


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/forecast", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"]


async def test_an_unexpected_exception_is_a_500_logged_with_the_request_id(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in post-processing /secret/path")

    monkeypatch.setattr("service.dataplane.images.detect_outputs", broken)
    formatter = JsonFormatter()
    async with app_client(Settings(models_dir=tiny_repo), raise_app_exceptions=False) as http:
        response = await http.post(
            "/v1/detect",
            content=RED,
            headers={"content-type": "image/png", "x-request-id": "req-500"},
        )
        assert (await http.get("/v2/health/live")).status_code == 200
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}  # no path, no traceback
    logged = [json.loads(formatter.format(r)) for r in caplog.records if r.levelname == "ERROR"]
    assert any(
        e.get("request_id") == "req-500" and "RuntimeError" in e["exception"] for e in logged
    )


async def test_zero_loadable_models_is_not_ready_and_says_so(tmp_path: Path) -> None:
    (build_classifier(tmp_path) / "model.onnx").write_bytes(b"broken")
    async with app_client(Settings(models_dir=tmp_path)) as http:
        ready = await http.get("/v2/health/ready")
        models = (await http.get("/v1/models")).json()["models"]
    assert ready.status_code == 503 and "no model is ready" in ready.json()["error"]
    assert models[0]["versions"][0]["state"] == "failed"
