"""Triton's model repository extension: load, reload and unload while clients keep inferring,
with model control turned on and an admin key."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from service.config import Settings
from tests.conftest import LiveServer, app_client
from tests.model_factory import build_classifier, build_forecaster

ADMIN_KEY = "admin-key-0123456789"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    build_classifier(tmp_path)
    build_forecaster(tmp_path)
    live = LiveServer(
        tmp_path, POLYPSERVE_MODEL_CONTROL="true", POLYPSERVE_ADMIN_KEYS=f'["{ADMIN_KEY}"]'
    )
    try:
        live.wait_until_ready()
        yield live
    finally:
        live.stop()


def _infer(client: triton.InferenceServerClient) -> str:
    images = triton.InferInput("images", [1, 3, 32, 32], "FP32")
    images.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    response = client.infer("tiny-classifier", [images]).get_response()
    return str(response["model_version"])


class SteadyClient(threading.Thread):
    """Infers without pause until stopped, counting versions served and failures."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        client = triton.InferenceServerClient(self.address)
        while not self.stopping.is_set():
            try:
                self.versions[_infer(client)] += 1
            except InferenceServerException as exc:
                self.failures.append(str(exc))


def test_reload_under_load_loses_nothing_and_a_bad_version_keeps_the_old(
    server: LiveServer, tmp_path: Path
) -> None:
    address = server.url.removeprefix("http://")
    client = triton.InferenceServerClient(address)
    steady = SteadyClient(address)
    steady.start()
    try:
        deadline = time.monotonic() + 30
        while steady.versions["1"] < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        build_classifier(tmp_path, version=2)
        client.load_model("tiny-classifier", headers=ADMIN)
        assert client.get_model_metadata("tiny-classifier")["versions"] == ["1", "2"]
        assert _infer(client) == "2"
        broken = build_classifier(tmp_path, version=3)
        (broken / "model.onnx").write_bytes(b"corrupt")
        with pytest.raises(InferenceServerException, match="failed to load") as raised:
            client.load_model("tiny-classifier", headers=ADMIN)
        assert "version 3" in raised.value.message()
        assert _infer(client) == "2"  # the old versions keep serving
        shutil.rmtree(broken)
        served_two = steady.versions["2"]
        while steady.versions["2"] < served_two + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        steady.stopping.set()
        steady.join(timeout=30)
    assert steady.failures == []
    assert steady.versions["1"] > 0 and steady.versions["2"] > 0


def test_unload_and_load_again(server: LiveServer) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    index = {(e["name"], e["version"]): e["state"] for e in client.get_model_repository_index()}
    assert index[("tiny-classifier", "1")] == "READY"
    client.unload_model("tiny-classifier", headers=ADMIN)
    assert not client.is_model_ready("tiny-classifier")
    with pytest.raises(InferenceServerException, match="no ready version"):
        _infer(client)
    index = client.get_model_repository_index()
    assert {
        "name": "tiny-classifier",
        "version": "1",
        "state": "UNAVAILABLE",
        "reason": "unloaded by request",
    } in index
    assert client.is_model_ready("tiny-forecaster")
    client.load_model("tiny-classifier", headers=ADMIN)
    assert client.is_model_ready("tiny-classifier") and _infer(client) == "1"
    with pytest.raises(InferenceServerException, match="no model 'ghost'"):
        client.load_model("ghost", headers=ADMIN)


def test_polypserve_cli_drives_the_control_api(
    server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.cli import main

    build_classifier(tmp_path, version=2)
    assert main(["repository", "unload", "tiny-forecaster", "--url", server.url]) == 1  # no key
    monkeypatch.setenv("POLYPSERVE_ADMIN_KEY", ADMIN_KEY)
    assert main(["repository", "load", "tiny-classifier", "--url", server.url]) == 0
    assert main(["repository", "index", "--url", server.url]) == 0
    assert main(["repository", "unload", "tiny-forecaster", "--url", server.url]) == 0
    assert main(["repository", "load", "ghost", "--url", server.url]) == 1
    ready = httpx.get(f"{server.url}/v2/models/tiny-classifier/versions/2/ready")
    assert ready.status_code == 200


@pytest.mark.anyio
async def test_model_control_is_off_by_default_and_the_index_stays_readable(
    tmp_path: Path,
) -> None:
    build_classifier(tmp_path)
    async with app_client(Settings(models_dir=tmp_path)) as http:
        for action in ("unload", "load"):
            response = await http.post(f"/v2/repository/models/tiny-classifier/{action}")
            assert response.status_code == 404 and "turned off" in response.json()["error"]
        assert (await http.get("/v2/health/ready")).status_code == 200
        index = await http.post("/v2/repository/index")
    assert index.status_code == 200 and index.json()[0]["state"] == "READY"


def test_model_control_cannot_be_turned_on_without_an_admin_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="POLYPSERVE_ADMIN_KEYS"):
        Settings(models_dir=tmp_path, model_control=True)
