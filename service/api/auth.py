"""API-key authentication for HTTP and WebSocket, as one ASGI middleware.

Two scopes. Inference keys (``api_keys`` and/or ``api_keys_file``, one per line, so keys can be
rotated by listing old and new together) open every inference and catalogue route; with none
configured those routes are open. Admin keys (``admin_keys``/``admin_keys_file``) also open model
control (``/v2/repository/models/*``), which no inference key opens and which needs an admin key
even when inference is open. A request presents a key as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>``; a WebSocket and a video job's annotated video may also use the
``api_key`` query parameter, since browsers set no headers on a WebSocket or on a ``<video>``'s
requests. Missing key: 401; wrong key, or an inference key on an admin route: 403 (a WebSocket
handshake is refused, which clients see as HTTP 403). Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response
from service.config import Settings
from service.errors import ForbiddenError, PolypServeError, UnauthorizedError

_ALWAYS_OPEN = ("/v2/health/", "/static/")
_OPEN_PAGES = {"/", "/demo", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc", "/v2"}
_ADMIN_PREFIX = "/v2/repository/models/"
_MEDIA_PATH = re.compile(r"/v1/videos/[^/]+/annotated\.mp4")
Access = Literal["open", "inference", "admin"]


def load_keys(inline: list[SecretStr], file: Path | None) -> list[bytes]:
    keys = [key.get_secret_value() for key in inline]
    if file is not None:
        lines = file.read_text().splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [key.encode() for key in keys]


def access_of(path: str, protect_metrics: bool) -> Access:
    """Which key a route needs (the README's security table lists the same)."""
    if path.startswith(_ADMIN_PREFIX):
        return "admin"
    if path.startswith(_ALWAYS_OPEN) or path in _OPEN_PAGES:
        return "open"
    return "inference" if path != "/metrics" or protect_metrics else "open"


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.keys = load_keys(settings.api_keys, settings.api_keys_file)
        self.admin_keys = load_keys(settings.admin_keys, settings.admin_keys_file)
        if set(self.keys) & set(self.admin_keys):
            raise ValueError("an admin key must not also be an inference key")
        self.protect_metrics = settings.auth_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        access = access_of(scope["path"], self.protect_metrics)
        # Without admin keys model control is off (Settings refuses it on), so its routes may
        # answer for themselves that it is.
        unguarded = {"open": True, "inference": not self.keys, "admin": not self.admin_keys}
        if unguarded[access]:
            await self.app(scope, receive, send)
            return
        presented = _presented_key(scope)
        if presented is None:
            await _refuse(
                scope, receive, send, UnauthorizedError(f"an {_KEY_NAMES[access]} is required")
            )
        elif _matches(presented, self.admin_keys) or (
            access == "inference" and _matches(presented, self.keys)
        ):
            await self.app(scope, receive, send)
        elif access == "admin" and _matches(presented, self.keys):
            await _refuse(scope, receive, send, ForbiddenError("model control needs an admin key"))
        else:
            await _refuse(scope, receive, send, ForbiddenError("the API key is not valid"))


_KEY_NAMES = {"inference": "API key", "admin": "admin key"}


async def _refuse(scope: Scope, receive: Receive, send: Send, error: PolypServeError) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
        return
    await error_response(error)(scope, receive, send)


def _matches(presented: bytes, keys: list[bytes]) -> bool:
    # Compare against every key, always, so timing says nothing about which one matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


def _is_media(scope: Scope) -> bool:
    path: str = scope["path"]
    return scope["method"] in ("GET", "HEAD") and bool(_MEDIA_PATH.fullmatch(path))


def _presented_key(scope: Scope) -> bytes | None:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    authorization = headers.get(b"authorization", b"")
    if authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].strip()
    if scope["type"] == "websocket" or _is_media(scope):
        values = parse_qs(scope.get("query_string", b"").decode(errors="replace")).get("api_key")
        if values:
            return str(values[0]).encode()
    return None
