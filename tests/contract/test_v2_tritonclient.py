"""The Open Inference Protocol as ``tritonclient`` speaks it, against a live uvicorn."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import LiveServer

CLASSIFIER_INPUT = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
CLASSIFIER_INPUT[1, 0] += 1.0  # the second image is red


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(live_server.url.removeprefix("http://"))


def reference_outputs(repo: Path, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(repo / model / "1" / "model.onnx"))
    return list(session.run(None, feeds))


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "polypserve"
    assert {"binary_tensor_data", "classification", "model_repository"} <= set(
        metadata["extensions"]
    )


def test_model_metadata_and_config(client: triton.InferenceServerClient) -> None:
    assert client.is_model_ready("tiny-classifier")
    assert client.is_model_ready("tiny-classifier", "1")
    assert not client.is_model_ready("tiny-classifier", "9")
    metadata = client.get_model_metadata("tiny-classifier")
    assert metadata["platform"] == "onnxruntime_onnx" and metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, 32, 32]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}]
    config = client.get_model_config("tiny-classifier")
    assert config["max_batch_size"] == 8
    assert config["input"][0] == {
        "name": "images",
        "data_type": "TYPE_FP32",
        "dims": [3, 32, 32],
        "format": "FORMAT_NCHW",
    }
    assert "max_queue_delay_microseconds" in config["dynamic_batching"]
    assert config["parameters"]["latency_budget_ms"] == {"string_value": "0"}


@pytest.mark.parametrize("binary", [True, False])
def test_infer_matches_onnxruntime(
    client: triton.InferenceServerClient, tiny_repo: Path, binary: bool
) -> None:
    images = triton.InferInput("images", list(CLASSIFIER_INPUT.shape), "FP32")
    images.set_data_from_numpy(CLASSIFIER_INPUT, binary_data=binary)
    wanted = [triton.InferRequestedOutput("logits", binary_data=binary)]
    result = client.infer("tiny-classifier", [images], outputs=wanted, request_id="req-7")
    (expected,) = reference_outputs(tiny_repo, "tiny-classifier", {"images": CLASSIFIER_INPUT})
    np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5, atol=1e-5)
    assert result.get_response()["id"] == "req-7"
    assert result.get_response()["model_version"] == "1"


def test_infer_every_model_with_default_binary_outputs(
    client: triton.InferenceServerClient, tiny_repo: Path
) -> None:
    feeds = {
        "tiny-detector": ("images", np.ones((1, 3, 64, 64), np.float32)),
        "tiny-segmenter": ("images", np.ones((2, 3, 64, 64), np.float32)),
        "tiny-forecaster": ("series", np.arange(24, dtype=np.float32).reshape(3, 8, 1)),
    }
    for model, (name, array) in feeds.items():
        tensor = triton.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        result = client.infer(model, [tensor], model_version="1")  # no outputs: all, binary
        session = ort.InferenceSession(str(tiny_repo / model / "1" / "model.onnx"))
        for output, expected in zip(
            session.get_outputs(), session.run(None, {name: array}), strict=True
        ):
            np.testing.assert_allclose(result.as_numpy(output.name), expected, atol=1e-5)


def test_classification_extension(client: triton.InferenceServerClient) -> None:
    images = triton.InferInput("images", list(CLASSIFIER_INPUT.shape), "FP32")
    images.set_data_from_numpy(CLASSIFIER_INPUT)
    wanted = [triton.InferRequestedOutput("logits", class_count=1)]
    top = client.infer("tiny-classifier", [images], outputs=wanted).as_numpy("logits")
    assert top.shape == (2, 1)
    assert top[1, 0].decode().endswith(":1:red")
    assert float(top[1, 0].decode().split(":")[0]) > 0


@pytest.mark.parametrize(
    ("model", "tensor", "needle"),
    [
        ("tiny-classifier", triton.InferInput("images", [1, 3, 16, 16], "FP32"), "'images': shape"),
        ("tiny-classifier", triton.InferInput("images", [1, 3, 32, 32], "FP64"), "datatype FP64"),
        ("tiny-classifier", triton.InferInput("pixels", [1, 3, 32, 32], "FP32"), "'pixels'"),
        ("tiny-classifier", triton.InferInput("images", [9, 3, 32, 32], "FP32"), "batch size 9"),
        ("no-such-model", triton.InferInput("images", [1, 3, 32, 32], "FP32"), "unknown model"),
    ],
)
def test_errors_carry_the_servers_message(
    client: triton.InferenceServerClient, model: str, tensor: triton.InferInput, needle: str
) -> None:
    shape = tensor.shape()
    dtype = {"FP32": np.float32, "FP64": np.float64}[tensor.datatype()]
    tensor.set_data_from_numpy(np.zeros(shape, dtype))
    with pytest.raises(InferenceServerException) as raised:
        client.infer(model, [tensor])
    assert needle in raised.value.message()


def test_unknown_output_and_version(client: triton.InferenceServerClient) -> None:
    images = triton.InferInput("images", [1, 3, 32, 32], "FP32")
    images.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InferenceServerException, match="unknown output 'probs'"):
        client.infer("tiny-classifier", [images], outputs=[triton.InferRequestedOutput("probs")])
    with pytest.raises(InferenceServerException, match="no version 9") as raised:
        client.infer("tiny-classifier", [images], model_version="9")
    assert raised.value.status() == "404"


@pytest.mark.parametrize(
    ("request_codec", "response_codec"), [("gzip", "deflate"), ("deflate", "gzip")]
)
def test_compressed_requests_and_responses(
    client: triton.InferenceServerClient, request_codec: str, response_codec: str
) -> None:
    images = triton.InferInput("images", list(CLASSIFIER_INPUT.shape), "FP32")
    images.set_data_from_numpy(CLASSIFIER_INPUT)
    result = client.infer(
        "tiny-classifier",
        [images],
        request_compression_algorithm=request_codec,
        response_compression_algorithm=response_codec,
    )
    assert result.as_numpy("logits").shape == (2, 2)


def test_statistics_count_inferences(client: triton.InferenceServerClient) -> None:
    images = triton.InferInput("images", [1, 3, 32, 32], "FP32")
    images.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    before = client.get_inference_statistics("tiny-classifier")["model_stats"][0]
    client.infer("tiny-classifier", [images])
    after = client.get_inference_statistics("tiny-classifier")["model_stats"][0]
    assert after["inference_count"] == before["inference_count"] + 1
    success = after["inference_stats"]["success"]
    assert success["count"] == before["inference_stats"]["success"]["count"] + 1
    assert success["ns"] > 0 and after["batch_stats"]
    everything = client.get_inference_statistics()["model_stats"]
    assert {s["name"] for s in everything} >= {"tiny-classifier", "tiny-detector"}


def test_raw_binary_request_and_plain_http_errors(live_server: LiveServer) -> None:
    raw = np.ones((2, 8, 1), np.float32).tobytes()
    response = httpx.post(
        f"{live_server.url}/v2/models/tiny-forecaster/infer",
        content=raw,
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    assert header["outputs"][0]["shape"] == [2, 4, 3]
    not_json = httpx.post(f"{live_server.url}/v2/models/tiny-forecaster/infer", content=b"{x")
    assert not_json.status_code == 400 and "invalid inference request" in not_json.json()["error"]
    bomb = gzip.compress(b"\0" * (25 * 1024 * 1024))
    refused = httpx.post(
        f"{live_server.url}/v2/models/tiny-forecaster/infer",
        content=bomb,
        headers={"Content-Encoding": "gzip"},
    )
    assert refused.status_code == 413


def test_json_numbers_past_the_datatypes_range_are_refused(live_server: LiveServer) -> None:
    request = {
        "inputs": [
            {"name": "series", "shape": [1, 8, 1], "datatype": "FP32", "data": [1e39] + [1.0] * 7}
        ]
    }
    response = httpx.post(f"{live_server.url}/v2/models/tiny-forecaster/infer", json=request)
    assert response.status_code == 400
    assert "does not fit FP32" in response.json()["error"]


@pytest.mark.anyio
async def test_aio_client(live_server: LiveServer, tiny_repo: Path) -> None:
    import tritonclient.http.aio as triton_aio

    client = triton_aio.InferenceServerClient(live_server.url.removeprefix("http://"))
    try:
        assert await client.is_server_ready()
        assert (await client.get_model_metadata("tiny-classifier"))["name"] == "tiny-classifier"
        images = triton.InferInput("images", list(CLASSIFIER_INPUT.shape), "FP32")
        images.set_data_from_numpy(CLASSIFIER_INPUT)
        result = await client.infer("tiny-classifier", [images])
        (expected,) = reference_outputs(tiny_repo, "tiny-classifier", {"images": CLASSIFIER_INPUT})
        np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5, atol=1e-5)
        with pytest.raises(InferenceServerException, match="unknown model"):
            await client.get_model_metadata("nope")
    finally:
        await client.close()


@pytest.mark.parametrize("binary", [True, False])
def test_every_shipped_model_infers_like_onnxruntime(binary: bool) -> None:
    """tritonclient against the shipped models' served versions: JSON and binary tensors,
    both ways."""
    from tests.conftest import REPO_ROOT

    models = REPO_ROOT / "models"
    names = sorted(p.name for p in models.iterdir() if (p / "1" / "model.onnx").is_file())
    if not names:
        pytest.skip("no shipped models")
    server = LiveServer(models)
    try:
        server.wait_until_ready(timeout=120)
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        rng = np.random.default_rng(1)
        for name in names:
            metadata = client.get_model_metadata(name)
            arrays = {  # every input: the hybrid forecaster takes three
                spec["name"]: rng.random([2 if d == -1 else d for d in spec["shape"]], np.float32)
                for spec in metadata["inputs"]
            }
            tensors = []
            for input_name, array in arrays.items():
                tensor = triton.InferInput(input_name, list(array.shape), "FP32")
                tensor.set_data_from_numpy(array, binary_data=binary)
                tensors.append(tensor)
            wanted = [
                triton.InferRequestedOutput(o["name"], binary_data=binary)
                for o in metadata["outputs"]
            ]
            result = client.infer(name, tensors, outputs=wanted)
            # without a version, the highest one answers
            served = max(int(p.name) for p in (models / name).iterdir() if p.name.isdigit())
            session = ort.InferenceSession(str(models / name / str(served) / "model.onnx"))
            expected = session.run(None, arrays)
            for output, reference in zip(metadata["outputs"], expected, strict=True):
                np.testing.assert_allclose(
                    result.as_numpy(output["name"]), reference, rtol=1e-4, atol=1e-4
                )
    finally:
        server.stop()


@pytest.mark.anyio
async def test_aio_client_covers_config_stats_extensions_and_errors(
    live_server: LiveServer,
) -> None:
    import tritonclient.http.aio as triton_aio

    client = triton_aio.InferenceServerClient(live_server.url.removeprefix("http://"))
    try:
        assert await client.is_server_live()
        assert await client.is_model_ready("tiny-classifier", "1")
        assert (await client.get_server_metadata())["name"] == "polypserve"
        config = await client.get_model_config("tiny-classifier")
        assert config["max_batch_size"] == 8 and config["input"][0]["dims"] == [3, 32, 32]
        images = triton.InferInput("images", list(CLASSIFIER_INPUT.shape), "FP32")
        images.set_data_from_numpy(CLASSIFIER_INPUT, binary_data=False)
        top = await client.infer(
            "tiny-classifier",
            [images],
            outputs=[triton.InferRequestedOutput("logits", binary_data=False, class_count=1)],
            request_compression_algorithm="gzip",
            response_compression_algorithm="gzip",
        )
        best = top.as_numpy("logits")[1, 0]  # JSON strings come back as str, binary as bytes
        assert (best.decode() if isinstance(best, bytes) else best).endswith(":1:red")
        stats = await client.get_inference_statistics("tiny-classifier")
        assert stats["model_stats"][0]["inference_count"] > 0
        index = await client.get_model_repository_index()
        assert any(entry["name"] == "tiny-classifier" for entry in index)
        with pytest.raises(InferenceServerException, match="unknown output 'probs'"):
            await client.infer(
                "tiny-classifier", [images], outputs=[triton.InferRequestedOutput("probs")]
            )
    finally:
        await client.close()
