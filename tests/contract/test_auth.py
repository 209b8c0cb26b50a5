"""API keys on every route family, CORS and request ids."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from service.api.auth import access_of
from service.app import create_app
from service.config import Settings
from tests.conftest import REPO_ROOT, app_client
from tests.contract.stream_clients import in_process_stream
from tests.images import encode, solid_rgb

pytestmark = pytest.mark.anyio
RED = encode(solid_rgb(20, 20, (220, 0, 0)))
KEYS = ["old-key-0123456789", "new-key-9876543210"]


def _settings(repo: Path, tmp_path: Path, **extra: object) -> Settings:
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# rotated keys\n{KEYS[1]}\n")
    return Settings(
        models_dir=repo,
        api_keys=[KEYS[0]],
        api_keys_file=key_file,  # type: ignore[list-item]
        cors_origins=["https://viewer.example"],
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
async def http(tiny_repo: Path, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(_settings(tiny_repo, tmp_path)) as client:
        yield client


PROTECTED = [
    ("POST", "/v1/detect"), ("POST", "/v1/forecast"), ("GET", "/v1/models"),
    ("GET", "/v2/models/tiny-classifier"), ("POST", "/v2/models/tiny-classifier/infer"),
    ("POST", "/v2/repository/index"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_routes_need_a_valid_key(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    missing = await http.request(method, path)
    assert missing.status_code == 401 and missing.json()["error"] == "an API key is required"
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = await http.request(method, path, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 403 and "not valid" in wrong.json()["error"]


async def test_both_rotated_keys_and_both_header_styles_work(http: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": f"Bearer {KEYS[0]}"}, {"X-API-Key": KEYS[1]}):
        response = await http.post(
            "/v1/detect", content=RED, headers={**headers, "content-type": "image/png"}
        )
        assert response.status_code == 200


ADMIN_KEY = "admin-key-0123456789"
UNLOAD = "/v2/repository/models/tiny-classifier/unload"


async def test_model_control_needs_the_admin_key_not_an_inference_key(
    tiny_repo: Path, tmp_path: Path
) -> None:
    settings = _settings(tiny_repo, tmp_path, model_control=True, admin_keys=[ADMIN_KEY])
    async with app_client(settings) as client:
        missing = await client.post(UNLOAD)
        assert missing.status_code == 401 and missing.json()["error"] == "an admin key is required"
        for key in KEYS:
            refused = await client.post(UNLOAD, headers={"X-API-Key": key})
            assert refused.status_code == 403
            assert refused.json()["error"] == "model control needs an admin key"
        assert (await client.post(UNLOAD, headers={"X-API-Key": "guess"})).status_code == 403
        assert (await client.get("/v2/health/ready")).status_code == 200  # nothing unloaded
        # the admin key opens inference routes too, and then model control
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        listed = await client.post("/v2/repository/index", headers=admin)
        assert listed.status_code == 200
        unloaded = await client.post(UNLOAD, headers=admin)
        assert unloaded.status_code == 200 and unloaded.json()["unloaded"] is True


async def test_model_control_needs_an_admin_key_even_when_inference_is_open(
    tiny_repo: Path,
) -> None:
    settings = Settings(models_dir=tiny_repo, model_control=True, admin_keys=[ADMIN_KEY])  # type: ignore[list-item]
    async with app_client(settings) as client:
        detect = await client.post("/v1/detect", content=RED, headers={"content-type": "image/png"})
        assert detect.status_code == 200
        assert (await client.post(UNLOAD)).status_code == 401


def test_an_admin_key_must_differ_from_the_inference_keys(tiny_repo: Path) -> None:
    settings = Settings(
        models_dir=tiny_repo, api_keys=["same-key-0123"], admin_keys=["same-key-0123"]
    )  # type: ignore[list-item]
    with pytest.raises(ValueError, match="must not also be an inference key"):
        TestClient(create_app(settings)).__enter__()


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/metrics", "/", "/v2"])
async def test_health_metrics_and_viewer_stay_open(http: httpx.AsyncClient, path: str) -> None:
    assert (await http.get(path)).status_code == 200


async def test_metrics_can_be_protected(tiny_repo: Path, tmp_path: Path) -> None:
    async with app_client(_settings(tiny_repo, tmp_path, auth_metrics=True)) as client:
        assert (await client.get("/metrics")).status_code == 401
        ok = await client.get("/metrics", headers={"X-API-Key": KEYS[0]})
        assert ok.status_code == 200


async def test_cors_only_for_configured_origins(http: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await http.options(
        "/v1/detect", headers={"Origin": "https://viewer.example", **preflight}
    )
    assert allowed.headers.get("access-control-allow-origin") == "https://viewer.example"
    other = await http.options(
        "/v1/detect", headers={"Origin": "https://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_request_id_is_echoed_or_made(http: httpx.AsyncClient) -> None:
    given = await http.get("/v2/health/live", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = await http.get("/v2/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert len(made.headers["x-request-id"]) == 32


def test_the_stream_authenticates_at_the_handshake(tiny_repo: Path, tmp_path: Path) -> None:
    app = create_app(_settings(tiny_repo, tmp_path))
    with TestClient(app) as client:
        for query in ("", "api_key=guess"):
            with pytest.raises(WebSocketDisconnect) as refused, in_process_stream(client, query):
                pass
            assert refused.value.code == 1008
        with in_process_stream(client, f"api_key={KEYS[1]}") as stream:
            assert stream.receive()["type"] == "ready"


def _readme_access_table() -> dict[str, str]:
    """``METHOD /path`` -> the key column of the README's "Who may call what" table."""
    text = (REPO_ROOT / "README.md").read_text().split("### Who may call what", 1)[1]
    rows = text.split("\n\n")[2].splitlines()[2:]
    table = {}
    for row in rows:
        routes, key = row.strip("|").split("|")
        for route in re.findall(r"`([A-Z]+ /[^`]*)`", routes):
            table[route] = key.strip()
    return table


def test_the_readme_lists_every_route_with_the_key_it_needs(tiny_repo: Path) -> None:
    app = create_app(Settings(models_dir=tiny_repo))
    routes = [
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    ]
    routes += [
        "WS /v1/stream",
        "GET /",
        "GET /demo",
        "GET /static/*",
        "GET /docs",
        "GET /docs/oauth2-redirect",
        "GET /redoc",
        "GET /openapi.json",
    ]
    table = _readme_access_table()
    expected = {"none": "open", "inference": "inference", "admin": "admin"}
    for route in routes:
        method, path = route.split(" ", 1)
        listed = f"{method} {path.replace('/versions/{version}', '')}"
        assert listed in table, f"{route} is missing from the README's access table"
        key = table[listed].split(";")[0].split(",")[0]
        assert access_of(path.replace("*", "viewer.js"), False) == expected[key], route
    assert table["GET /metrics"].startswith("none; an inference key")
    assert access_of("/metrics", True) == "inference"
    assert set(table) <= {r.replace("/versions/{version}", "") for r in routes}, "stale rows"
