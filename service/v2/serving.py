"""One Open Inference Protocol inference: the body in (compressed, JSON or Triton's binary
extension), the encoded response out, over the same data plane as the v1 routes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from service.dataplane.predict import infer
from service.dataplane.timing import StageTimer, complete
from service.errors import InvalidInputError
from service.parsing import is_whole_number
from service.repository.model_version import ModelVersion
from service.v2.infer import build_response, compress, decompress, parse_request

HEADER_LENGTH = "inference-header-content-length"


@dataclass(frozen=True)
class EncodedResponse:
    content: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


async def serve_inference(
    model: ModelVersion, body: bytes, headers: Mapping[str, str], max_body_bytes: int
) -> EncodedResponse:
    """Decode the request (its ``Content-Encoding``, its ``Inference-Header-Content-Length``),
    run it in the model's batches, and encode the answer as the client accepts it."""
    assert model.manifest is not None
    timer = StageTimer()
    with timer.stage("decode"):
        body = decompress(body, headers.get("content-encoding"), max_body_bytes)
        parsed = parse_request(body, _header_length(headers.get(HEADER_LENGTH)), model.manifest)
        _check_batch(model, parsed.inputs)
    outputs = await infer(model, parsed.inputs, timer)
    with timer.stage("encode"):
        content, json_length = build_response(
            model.name, model.version, parsed, outputs, model.manifest.labels
        )
        response_headers: dict[str, str] = {}
        if json_length is not None:
            response_headers["Inference-Header-Content-Length"] = str(json_length)
        content, encoding = compress(content, headers.get("accept-encoding", ""))
        if encoding:
            response_headers["Content-Encoding"] = encoding
    complete(model, timer)
    media_type = "application/json" if json_length is None else "application/octet-stream"
    return EncodedResponse(content, media_type, response_headers)


def _header_length(value: str | None) -> int | None:
    if value is None:
        return None
    if not (is_whole_number(value) and len(value) <= 18):
        raise InvalidInputError(
            "Inference-Header-Content-Length must be a whole number of at most 18 digits"
        )
    return int(value)


def _check_batch(model: ModelVersion, inputs: dict[str, np.ndarray]) -> None:
    assert model.batcher is not None
    if not model.batcher.batchable:
        return
    limit = model.batcher.config.max_batch_size
    for name, array in inputs.items():
        if array.shape and array.shape[0] > limit:
            raise InvalidInputError(
                f"input '{name}': batch size {array.shape[0]} exceeds the maximum of {limit}"
            )
