"""Inference requests and responses of the Open Inference Protocol, JSON or binary.

A request body is JSON, or (Triton's binary tensor extension) a JSON header of
``Inference-Header-Content-Length`` bytes followed by the inputs' binary data in input order;
a header length of 0 means the whole body is the one input's raw tensor.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from service.errors import InvalidInputError, PayloadTooLargeError
from service.repository.manifest import Manifest, TensorSpec
from service.schemas import Text
from service.v2.tensors import (
    FROM_ELEMENT_TYPE,
    datatype_of,
    from_binary,
    from_json,
    to_binary,
    to_json_data,
)


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


# A dimension numpy can index; the product is bounded separately (service.v2.tensors).
Dim = Annotated[int, Field(ge=0, lt=2**31)]


class InputTensor(_Loose):
    name: Text
    shape: list[Dim] = Field(max_length=16)
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = None


class OutputRequest(_Loose):
    name: Text
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _top_classes(cls, parameters: dict[str, Any]) -> dict[str, Any]:
        top = parameters.get("classification")
        if top is not None and (type(top) is not int or top < 1):
            raise ValueError("classification is the number of top classes, a whole number >= 1")
        return parameters


class InferRequestBody(_Loose):
    id: Text | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputTensor] = Field(min_length=1)
    outputs: list[OutputRequest] | None = None


@dataclass
class ParsedRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[OutputRequest]
    binary_default: bool
    parameters: dict[str, Any] = field(default_factory=dict)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip|deflate``, refusing output over ``limit`` bytes."""
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInputError(f"unsupported Content-Encoding '{encoding}'")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if encoding == "gzip" else 0))
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidInputError(f"the {encoding} body is corrupt: {exc}") from None
    if len(data) > limit:
        raise PayloadTooLargeError(f"the decompressed body is over the limit of {limit} bytes")
    return data


def compress(content: bytes, accept_encoding: str) -> tuple[bytes, str | None]:
    """The response body in the first encoding the client accepts (gzip, then deflate), at the
    fastest level: the tensors are mostly noise to a compressor."""
    accepted = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    if "gzip" in accepted:
        return gzip.compress(content, compresslevel=1), "gzip"
    if "deflate" in accepted:
        return zlib.compress(content, 1), "deflate"
    return content, None


def parse_request(body: bytes, header_length: int | None, manifest: Manifest) -> ParsedRequest:
    if header_length == 0:
        return _raw_request(body, manifest)
    header = body if header_length is None else body[:header_length]
    if header_length is not None and header_length > len(body):
        raise InvalidInputError("Inference-Header-Content-Length is longer than the body")
    try:
        request = InferRequestBody.model_validate_json(header)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "request"
        raise InvalidInputError(f"invalid inference request: {where}: {err['msg']}") from None
    binary = body[header_length:] if header_length is not None else b""
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    for tensor in request.inputs:
        size = tensor.parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InvalidInputError(f"input '{tensor.name}': binary_data_size is out of range")
            raw = binary[offset : offset + size]
            offset += size
            inputs[tensor.name] = from_binary(tensor.name, tensor.datatype, tensor.shape, raw)
        elif tensor.data is None:
            raise InvalidInputError(f"input '{tensor.name}' has neither data nor binary data")
        else:
            inputs[tensor.name] = from_json(tensor.name, tensor.datatype, tensor.shape, tensor.data)
    _check_inputs(inputs, request.inputs, manifest)
    outputs = request.outputs or [OutputRequest(name=n) for n in manifest.output_names()]
    unknown = [o.name for o in outputs if o.name not in manifest.output_names()]
    if unknown:
        raise InvalidInputError(f"unknown output '{unknown[0]}'", outputs=manifest.output_names())
    binary_default = bool(request.parameters.get("binary_data_output", False))
    return ParsedRequest(request.id, inputs, outputs, binary_default, request.parameters)


def _raw_request(body: bytes, manifest: Manifest) -> ParsedRequest:
    """Header length 0: the body is the single input's tensor; a dynamic batch axis is inferred."""
    if len(manifest.inputs) != 1:
        raise InvalidInputError("a raw binary request needs a model with exactly one input")
    spec = manifest.inputs[0]
    if not body:
        raise InvalidInputError(f"input '{spec.name}': the body is empty")
    datatype = FROM_ELEMENT_TYPE[spec.dtype]
    fixed = [d for d in spec.shape[1:] if d is not None]
    if len(fixed) != len(spec.shape) - 1:
        raise InvalidInputError(f"input '{spec.name}' has dynamic axes beyond the batch axis")
    row_bytes = int(np.prod(fixed, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
    if spec.shape[0] is not None:
        shape = [d for d in spec.shape if d is not None]
    elif row_bytes and len(body) % row_bytes == 0:
        shape = [len(body) // row_bytes, *fixed]
    else:
        raise InvalidInputError(f"input '{spec.name}': {len(body)} bytes is no whole batch")
    tensor = from_binary(spec.name, datatype, shape, body)
    outputs = [OutputRequest(name=n) for n in manifest.output_names()]
    return ParsedRequest(None, {spec.name: tensor}, outputs, binary_default=True)


def _check_inputs(
    inputs: dict[str, np.ndarray], given: list[InputTensor], manifest: Manifest
) -> None:
    specs = {spec.name: spec for spec in manifest.inputs}
    for tensor in given:
        if tensor.name not in specs:
            raise InvalidInputError(f"unknown input '{tensor.name}'", inputs=sorted(specs))
    for name, spec in specs.items():
        if name not in inputs:
            raise InvalidInputError(f"missing input '{name}'")
        _check_tensor(name, inputs[name], next(t for t in given if t.name == name), spec)


def _check_tensor(name: str, array: np.ndarray, given: InputTensor, spec: TensorSpec) -> None:
    expected = FROM_ELEMENT_TYPE[spec.dtype]
    if given.datatype != expected:
        raise InvalidInputError(f"input '{name}': datatype {given.datatype}, expected {expected}")
    if array.ndim != len(spec.shape) or any(
        want is not None and want != have
        for want, have in zip(spec.shape, array.shape, strict=True)
    ):
        wanted = [-1 if d is None else d for d in spec.shape]
        raise InvalidInputError(f"input '{name}': shape {list(array.shape)}, expected {wanted}")
    if array.size == 0:
        raise InvalidInputError(f"input '{name}': shape {list(array.shape)} holds no elements")


def build_response(
    model_name: str,
    version: int,
    request: ParsedRequest,
    outputs: dict[str, np.ndarray],
    labels: list[str],
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, its JSON header length."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for wanted in request.outputs:
        array = outputs[wanted.name]
        top = wanted.parameters.get("classification")
        if top:
            array = classification_strings(array, int(top), labels)
        entry: dict[str, Any] = {
            "name": wanted.name,
            "datatype": datatype_of(array),
            "shape": list(array.shape),
        }
        if wanted.parameters.get("binary_data", request.binary_default):
            blob = to_binary(array)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = to_json_data(array)
        entries.append(entry)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": str(version),
        "outputs": entries,
    }
    if request.id is not None:
        response["id"] = request.id
    header = json.dumps(response, separators=(",", ":"), allow_nan=False).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def classification_strings(scores: np.ndarray, top: int, labels: list[str]) -> np.ndarray:
    """Triton's classification extension: per row, the top classes as ``value:index[:label]``."""
    rows = scores.reshape(scores.shape[0], -1) if scores.ndim > 1 else scores.reshape(1, -1)
    top = min(top, rows.shape[1])
    order = np.argsort(-rows, axis=1, kind="stable")[:, :top]
    strings = np.empty((rows.shape[0], top), dtype=np.object_)
    for r, row in enumerate(order):
        for k, index in enumerate(row):
            label = f":{labels[index]}" if index < len(labels) else ""
            strings[r, k] = f"{rows[r, index]:f}:{index}{label}".encode()
    return strings if scores.ndim > 1 else strings[0]
