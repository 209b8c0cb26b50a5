"""Strict parsing of what clients (and folder names) hold, where Python's own parsers accept
too much.

``json.loads`` recurses once per nesting level (100 000 ``[`` raise ``RecursionError``), accepts
``NaN``/``Infinity`` (which no strict JSON answer can echo) and lone surrogates (which no UTF-8
answer can). pydantic-core's parser (jiter) refuses all three and stops at a depth of 200.
``str.isdigit`` accepts digits that ``int`` refuses.
"""

from __future__ import annotations

from typing import Any

import pydantic_core

from service.errors import InvalidInputError


def parse_json(data: bytes | str, what: str) -> Any:
    """``data`` as a Python value; ``InvalidInputError`` naming ``what`` when it is not strict
    JSON within the limits."""
    try:
        return pydantic_core.from_json(data, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None


def is_whole_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "¹" and "٣", which ``int`` refuses."""
    return text.isascii() and text.isdigit()
