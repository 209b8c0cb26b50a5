"""Contract tests of /v1/classify, /v1/detect and /v1/segment against the tiny models."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from service.config import Settings
from service.dataplane import images
from service.dataplane.tasks.segmentation import rle_decode
from tests.conftest import app_client
from tests.images import encode, red_square_on_green, solid_rgb

pytestmark = pytest.mark.anyio

RED = encode(solid_rgb(200, 100, (220, 0, 0)))
GREEN = encode(solid_rgb(200, 100, (0, 200, 0)))


async def test_classify_raw_body_returns_sorted_labels(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/classify", content=RED, headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "tiny-classifier", "version": 1}
    labels = body["results"][0]["labels"]
    assert [item["label"] for item in labels] == ["red", "not_red"]
    assert labels[0]["class_id"] == 1 and labels[0]["score"] > 0.99
    assert {"decode", "inference", "total"} <= set(body["timing_ms"])


async def test_classify_multipart_batch_keeps_order_and_top_k(client: httpx.AsyncClient) -> None:
    files = [("image", ("a.png", GREEN, "image/png")), ("image", ("b.jpg", RED, "image/png"))]
    response = await client.post("/v1/classify", files=files, params={"top_k": 1})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["labels"][0]["label"] for r in results] == ["not_red", "red"]
    assert all(len(r["labels"]) == 1 for r in results)


async def test_detect_boxes_in_original_pixels_after_nms(client: httpx.AsyncClient) -> None:
    # 200x100 letterboxed into 64x64: scale 0.32, 16 px of padding on top and bottom. The
    # model's input box [8, 8, 40, 40] maps to [25, -25 -> 0, 125, 75] in the image; its
    # overlapping twin (IoU 0.78) is suppressed.
    response = await client.post("/v1/detect", content=RED, headers={"content-type": "image/png"})
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["image"] == {"width": 200, "height": 100}
    (detection,) = result["detections"]
    assert detection["box"] == pytest.approx([25.0, 0.0, 125.0, 75.0], abs=0.01)
    assert detection["label"] == "red_thing" and detection["score"] > 0.9


async def test_detect_thresholds_are_parameters(client: httpx.AsyncClient) -> None:
    loose = await client.post(
        "/v1/detect",
        content=RED,
        headers={"content-type": "image/png"},
        params={"iou_threshold": 0.9},
    )
    assert len(loose.json()["results"][0]["detections"]) == 2
    green = await client.post("/v1/detect", content=GREEN, headers={"content-type": "image/png"})
    assert green.json()["results"][0]["detections"] == []
    capped = await client.post(
        "/v1/detect",
        content=RED,
        headers={"content-type": "image/png"},
        params={"iou_threshold": 0.9, "max_detections": 1},
    )
    assert len(capped.json()["results"][0]["detections"]) == 1


async def test_segment_returns_rle_mask_at_original_size(client: httpx.AsyncClient) -> None:
    pixels = red_square_on_green(128, 64, (32, 16, 96, 48))
    response = await client.post(
        "/v1/segment", content=encode(pixels), headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    assert result["image"] == {"width": 128, "height": 64}
    (mask,) = result["masks"]
    assert mask["label"] == "red_region"
    decoded = rle_decode(mask["rle"])
    truth = np.zeros((64, 128), bool)
    truth[16:48, 32:96] = True
    assert decoded.shape == (64, 128)
    assert (decoded == truth).mean() > 0.98
    assert mask["area_fraction"] == pytest.approx(0.25, abs=0.02)
    assert mask["box"] == pytest.approx([32, 16, 96, 48], abs=2)


async def test_segment_png_with_accept_header(client: httpx.AsyncClient) -> None:
    pixels = red_square_on_green(128, 64, (32, 16, 96, 48))
    response = await client.post(
        "/v1/segment",
        content=encode(pixels),
        headers={"content-type": "image/png", "accept": "image/png"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    mask = np.asarray(Image.open(io.BytesIO(response.content)))
    assert mask.shape == (64, 128)
    assert mask[32, 64] == 255 and mask[2, 2] == 0


async def test_jpeg_exif_rotation_is_applied(client: httpx.AsyncClient) -> None:
    # Stored 100 wide x 200 high with orientation 6 (rotate 90° clockwise): upright 200 x 100.
    stored = Image.fromarray(solid_rgb(100, 200, (220, 0, 0)))
    exif = stored.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif.tobytes())
    response = await client.post(
        "/v1/detect", content=buffer.getvalue(), headers={"content-type": "image/jpeg"}
    )
    assert response.json()["results"][0]["image"] == {"width": 200, "height": 100}


async def test_an_idle_model_works_in_one_thread_and_a_busy_one_decodes_beside_it(
    tiny_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded_in: list[str] = []
    prepare_batch = images.prepare_batch

    def recording(*args: object, **kwargs: object) -> object:
        decoded_in.append(threading.current_thread().name)
        if decoded_in[-1].startswith("infer"):
            time.sleep(0.05)  # keeps the model busy while the others arrive
        return prepare_batch(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(images, "prepare_batch", recording)
    headers = {"content-type": "image/png"}
    async with app_client(Settings(models_dir=tiny_repo, intra_op_threads=1)) as http:
        alone = await http.post("/v1/classify", content=RED, headers=headers)
        assert alone.status_code == 200
        assert alone.json()["results"][0]["labels"][0]["label"] == "red"
        # Decoded, run and post-processed in the model's inference thread: one round trip.
        assert len(decoded_in) == 1 and decoded_in[0].startswith("infer")
        together = await asyncio.gather(
            *(http.post("/v1/classify", content=RED, headers=headers) for _ in range(5))
        )
        assert [r.status_code for r in together] == [200] * 5
        # Several requests in at once: they decode in decode threads beside the model (at most
        # the first, if it was alone for a moment, took the one-thread path).
        assert sum(name.startswith("infer") for name in decoded_in[1:]) <= 1
        bad = await http.post("/v1/classify", content=b"not a png", headers=headers)
        assert bad.status_code == 400
        stats = (await http.get("/v2/models/tiny-classifier/stats")).json()["model_stats"][0]
        assert stats["inference_count"] == 6 and stats["inference_stats"]["success"]["count"] == 6
        # A bad image is the client's failure, not the model's, on either path.
        assert stats["inference_stats"]["fail"]["count"] == 0
