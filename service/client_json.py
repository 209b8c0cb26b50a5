"""JSON from clients, parsed with the limits Python's ``json`` module lacks.

``json.loads`` recurses once per nesting level (100 000 ``[`` raise ``RecursionError``), accepts
``NaN``/``Infinity`` (which no strict JSON answer can echo) and lone surrogates (which no UTF-8
answer can). pydantic-core's parser (jiter) refuses all three and stops at a depth of 200.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

from service.errors import InvalidInputError


def parse(data: bytes | str, what: str) -> Any:
    """``data`` as a Python value; ``InvalidInputError`` naming ``what`` when it is not strict
    JSON within the limits."""
    try:
        return pydantic_core.from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None
