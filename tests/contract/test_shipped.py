"""Contract tests against the shipped models in ``models/``, on real colonoscopy images from
``../shared/data``: in-process, against a live uvicorn, and against a running stack when
``POLYPSERVE_TEST_URL`` is set (the compose ``contract-tests`` service)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from service.config import Settings
from service.dataplane.tasks.segmentation import rle_decode
from tests.conftest import DATA_ROOT, REPO_ROOT, LiveServer, app_client

pytestmark = pytest.mark.anyio
MODELS = REPO_ROOT / "models"
KVASIR = DATA_ROOT / "kvasir-seg"
# Images of the held-out test split only: the shipped models never saw them.
TEST_IDS = (
    (KVASIR / "splits" / "pranet_test_kvasir_100.txt").read_text().split()[:6]
    if (KVASIR / "splits" / "pranet_test_kvasir_100.txt").is_file()
    else []
)


def _require(*names: str) -> None:
    missing = [name for name in names if not (MODELS / name).is_dir()]
    if missing:
        pytest.skip(f"not shipped yet: {missing}")
    if not TEST_IDS:
        if os.environ.get("CI"):
            pytest.fail(f"the data set is missing at {DATA_ROOT}")
        pytest.skip(f"no data at {DATA_ROOT}")


@pytest.fixture(scope="module")
def shipped_server() -> Iterator[LiveServer]:
    server = LiveServer(MODELS)
    try:
        server.wait_until_ready(timeout=120)
        yield server
    finally:
        server.stop()


# A running stack (the compose contract-tests service) is tested too when its address is given.
TRANSPORTS = ["asgi", "uvicorn", *(["remote"] if os.environ.get("POLYPSERVE_TEST_URL") else [])]


@pytest.fixture(params=TRANSPORTS)
async def shipped(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    if not any(p.is_dir() for p in MODELS.iterdir()):
        pytest.skip("no shipped models")
    if request.param == "remote":
        url = os.environ["POLYPSERVE_TEST_URL"]
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            yield http
    elif request.param == "asgi":
        async with app_client(Settings(models_dir=MODELS)) as http:
            yield http
    else:
        server: LiveServer = request.getfixturevalue("shipped_server")
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            yield http


# The airline passengers series (1949-1952), as published.
AIRLINE = [
    112,
    118,
    132,
    129,
    121,
    135,
    148,
    148,
    136,
    119,
    104,
    118,
    115,
    126,
    141,
    135,
    125,
    149,
    170,
    170,
    158,
    133,
    114,
    140,
    145,
    150,
    178,
    163,
    172,
    178,
    199,
    199,
    184,
    162,
    146,
    166,
    171,
    180,
    193,
    181,
    183,
    218,
    230,
    242,
    209,
    191,
    172,
    194,
]


def _image(image_id: str) -> bytes:
    return (KVASIR / "images" / f"{image_id}.jpg").read_bytes()


def _mask(image_id: str) -> np.ndarray:
    return np.asarray(Image.open(KVASIR / "masks" / f"{image_id}.jpg").convert("L")) >= 128


def _box_iou(a: list[float], b: list[float]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


async def test_every_shipped_model_is_ready_with_its_metrics(shipped: httpx.AsyncClient) -> None:
    assert (await shipped.get("/v2/health/ready")).status_code == 200
    catalogue = (await shipped.get("/v1/models")).json()["models"]
    assert {m["name"] for m in catalogue} == {p.name for p in MODELS.iterdir() if p.is_dir()}
    for model in catalogue:
        assert all(v["state"] == "ready" for v in model["versions"]), model
        assert model["metrics"], f"{model['name']} has no evaluation figures"


@pytest.mark.parametrize(
    ("route", "name", "newest"),
    [("/v1/segment", "polyp-segmenter", 2), ("/v1/classify", "polyp-classifier", 4)],
)
async def test_the_newest_version_serves_by_default_and_a_pinned_version_1_still_answers(
    shipped: httpx.AsyncClient, route: str, name: str, newest: int
) -> None:
    _require(name)
    jpeg = {"content": _image(TEST_IDS[0]), "headers": {"content-type": "image/jpeg"}}
    default = await shipped.post(route, **jpeg)
    pinned = await shipped.post(route, params={"version": 1}, **jpeg)
    assert default.status_code == pinned.status_code == 200, (default.text, pinned.text)
    assert default.json()["model"] == {"name": name, "version": newest}
    assert pinned.json()["model"] == {"name": name, "version": 1}
    versions = (await shipped.get(f"/v1/models/{name}")).json()["versions"]
    assert {v["version"] for v in versions} >= {1, newest}


async def test_detector_finds_the_polyps_of_test_images(shipped: httpx.AsyncClient) -> None:
    _require("polyp-detector")
    import json

    boxes = json.loads((KVASIR / "kavsir_bboxes.json").read_text())
    found = 0
    for image_id in TEST_IDS:
        response = await shipped.post(
            "/v1/detect", content=_image(image_id), headers={"content-type": "image/jpeg"}
        )
        assert response.status_code == 200
        result = response.json()["results"][0]
        truth = boxes[image_id]
        assert result["image"] == {"width": truth["width"], "height": truth["height"]}
        gt = [[b["xmin"], b["ymin"], b["xmax"], b["ymax"]] for b in truth["bbox"]]
        found += any(_box_iou(d["box"], g) >= 0.5 for d in result["detections"] for g in gt)
    # The model card's recall at 0.4 on the whole split is about 0.8; most of six must match.
    assert found >= len(TEST_IDS) - 2


async def test_segmenter_masks_match_the_ground_truth(shipped: httpx.AsyncClient) -> None:
    _require("polyp-segmenter")
    dices = []
    for image_id in TEST_IDS:
        response = await shipped.post(
            "/v1/segment", content=_image(image_id), headers={"content-type": "image/jpeg"}
        )
        (mask,) = response.json()["results"][0]["masks"]
        predicted, truth = rle_decode(mask["rle"]), _mask(image_id)
        assert predicted.shape == truth.shape
        dices.append(2 * (predicted & truth).sum() / max(predicted.sum() + truth.sum(), 1))
    png = await shipped.post(
        "/v1/segment",
        content=_image(TEST_IDS[0]),
        headers={"content-type": "image/jpeg", "accept": "image/png"},
    )
    assert Image.open(io.BytesIO(png.content)).size[::-1] == _mask(TEST_IDS[0]).shape
    assert float(np.mean(dices)) > 0.6, dices


async def test_classifier_calls_polyp_crops_polyps(shipped: httpx.AsyncClient) -> None:
    _require("polyp-classifier")
    files = [("image", (f"{i}.jpg", _image(i), "image/jpeg")) for i in TEST_IDS]
    response = await shipped.post("/v1/classify", files=files, params={"top_k": 2})
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(TEST_IDS)
    assert all(len(r["labels"]) == 2 for r in results)
    assert abs(sum(label["score"] for label in results[0]["labels"]) - 1.0) < 1e-3


async def test_forecaster_serves_a_real_series(shipped: httpx.AsyncClient) -> None:
    _require("series-forecaster")
    limits = (await shipped.get("/v1/models/series-forecaster")).json()["limits"]
    assert len(AIRLINE) >= limits["min_length"]
    series = {"id": "airline", "values": AIRLINE, "start": "1949-01-01", "freq": "MS"}
    response = await shipped.post(
        "/v1/forecast", json={"horizon": limits["max_horizon"], "series": [series]}
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert len(result["forecast"]) == limits["max_horizon"]
    assert 100 < np.mean(result["forecast"]) < 400  # the series' own scale
    assert result["timestamps"][0] == f"19{49 + len(AIRLINE) // 12}-01-01T00:00:00"
