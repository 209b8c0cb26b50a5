"""Tensors on the wire: OIP datatypes, JSON ``data``, and Triton's binary tensor extension.

BYTES elements travel in binary as a 4-byte little-endian length followed by the bytes; in
JSON as strings. Binary tensor data is always row-major and little-endian.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from service.errors import InvalidInputError

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}  # fmt: skip
# The manifest's element types (ONNX's) to OIP datatypes and Triton's config types.
FROM_ELEMENT_TYPE = {
    "bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
    "float32": "FP32", "float64": "FP64", "string": "BYTES",
}  # fmt: skip
TRITON_CONFIG_TYPES = {name: f"TYPE_{'STRING' if name == 'BYTES' else name}" for name in DATATYPES}


def datatype_of(array: np.ndarray) -> str:
    if array.dtype == np.object_:
        return "BYTES"
    for name, dtype in DATATYPES.items():
        if name != "BYTES" and array.dtype == dtype.newbyteorder("="):
            return name
    raise InvalidInputError(f"unsupported element type {array.dtype}")


def from_json(name: str, datatype: str, shape: list[int], data: Any) -> np.ndarray:
    """A tensor from JSON ``data``: nested or flat lists, row-major."""
    dtype = _dtype(name, datatype)
    count = _element_count(name, shape)
    try:
        if datatype == "BYTES":
            flat = np.asarray(_flatten(data), dtype=np.object_)
            flat = np.asarray([_to_bytes(v) for v in flat], dtype=np.object_)
        else:
            # a JSON number past the datatype's range would otherwise arrive as inf
            with np.errstate(over="raise"):
                flat = np.asarray(data, dtype=dtype).reshape(-1)
    except (TypeError, ValueError, OverflowError, FloatingPointError) as exc:
        raise InvalidInputError(f"input '{name}': data does not fit {datatype}: {exc}") from None
    _check_finite(name, flat)
    if flat.size != count:
        raise InvalidInputError(
            f"input '{name}': {flat.size} values given for shape {shape} ({count} expected)"
        )
    return flat.reshape(shape)


def from_binary(name: str, datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    """A tensor from its binary extension bytes."""
    dtype = _dtype(name, datatype)
    count = _element_count(name, shape)
    if datatype == "BYTES":
        values = _split_bytes(name, raw)
        if len(values) != count:
            raise InvalidInputError(f"input '{name}': {len(values)} strings for shape {shape}")
        return np.asarray(values, dtype=np.object_).reshape(shape)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"input '{name}': {len(raw)} bytes given, shape {shape} of {datatype} needs "
            f"{count * dtype.itemsize}"
        )
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    _check_finite(name, array)
    return array


def to_binary(array: np.ndarray) -> bytes:
    if array.dtype == np.object_:
        parts = []
        for value in array.reshape(-1):
            encoded = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(encoded)) + encoded)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def to_json_data(array: np.ndarray) -> list[Any]:
    """Flat row-major ``data`` for a JSON response; a non-finite float (which strict JSON cannot
    write) is ``null`` there, and exact in binary outputs."""
    if array.dtype == np.object_:
        return [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in array.flat]
    flat = array.reshape(-1)
    values: list[Any] = flat.tolist()
    if flat.dtype.kind == "f" and not np.isfinite(flat).all():
        values = [v if math.isfinite(v) else None for v in values]
    return values


def _check_finite(name: str, array: np.ndarray) -> None:
    # NaN or infinity in an input only ever comes back as NaN in the outputs
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise InvalidInputError(f"input '{name}' holds NaN or infinity")


def _dtype(name: str, datatype: str) -> np.dtype[Any]:
    if datatype not in DATATYPES:
        raise InvalidInputError(f"input '{name}': unknown datatype '{datatype}'")
    return DATATYPES[datatype]


# More elements than any request body could carry at one byte each (and than numpy's int64
# shape arithmetic can multiply without wrapping).
MAX_ELEMENTS = 2**31


def _element_count(name: str, shape: list[int]) -> int:
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise InvalidInputError(f"input '{name}': invalid shape {shape}")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise InvalidInputError(f"input '{name}': shape {shape} holds over {MAX_ELEMENTS} elements")
    return count


def _flatten(data: Any) -> list[Any]:
    if isinstance(data, list):
        return [item for part in data for item in _flatten(part)]
    return [data]


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{value!r} is not a string")


def _split_bytes(name: str, raw: bytes) -> list[bytes]:
    values, offset = [], 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInputError(f"input '{name}': truncated BYTES element")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInputError(f"input '{name}': truncated BYTES element")
        values.append(raw[offset : offset + length])
        offset += length
    return values
