"""API-key authentication for HTTP and WebSocket, as one ASGI middleware.

Keys come from settings (``api_keys`` and/or ``api_keys_file``, one per line, so keys can be
rotated by listing old and new together). A request presents one as ``Authorization: Bearer
<key>`` or ``X-API-Key: <key>``; a WebSocket may also use the ``api_key`` query parameter, since
browsers cannot set headers on one. Missing key: 401; wrong key: 403 (a WebSocket handshake is
refused, which clients see as HTTP 403). Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.config import Settings

_ALWAYS_OPEN = ("/v2/health/", "/static/")
_OPEN_PAGES = {"/", "/demo", "/docs", "/openapi.json", "/docs/oauth2-redirect", "/redoc", "/v2"}


def load_keys(settings: Settings) -> list[bytes]:
    keys = [key.get_secret_value() for key in settings.api_keys]
    if settings.api_keys_file is not None:
        lines = settings.api_keys_file.read_text().splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return [key.encode() for key in keys]


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.keys = load_keys(settings)
        self.protect_metrics = settings.auth_metrics

    def _is_open(self, path: str) -> bool:
        if path.startswith(_ALWAYS_OPEN) or path in _OPEN_PAGES:
            return True
        return path == "/metrics" and not self.protect_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.keys:
            await self.app(scope, receive, send)
            return
        if self._is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        presented = _presented_key(scope)
        status = 401 if presented is None else 0 if self._valid(presented) else 403
        if status == 0:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
        else:
            message = "an API key is required" if status == 401 else "the API key is not valid"
            headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
            await JSONResponse({"error": message}, status, headers)(scope, receive, send)

    def _valid(self, presented: bytes) -> bool:
        # Compare against every key, always, so timing says nothing about which one matched.
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        return matched


def _presented_key(scope: Scope) -> bytes | None:
    headers: dict[bytes, bytes] = dict(scope["headers"])
    authorization = headers.get(b"authorization", b"")
    if authorization[:7].lower() == b"bearer ":
        return authorization[7:].strip()
    if b"x-api-key" in headers:
        return headers[b"x-api-key"].strip()
    if scope["type"] == "websocket":
        values = parse_qs(scope.get("query_string", b"").decode(errors="replace")).get("api_key")
        if values:
            return str(values[0]).encode()
    return None
