"""ASGI middlewares for request limits: body size, and inference requests in flight.

A declared ``Content-Length`` over the limit is refused before the body is read; a body that
arrives without one is counted as it streams and refused the moment it passes the limit.
Uploads streamed to disk (a video job's) have their own limits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import forecast, images, v2_models
from service.api.errors import error_response
from service.errors import OverloadedError, PayloadTooLargeError, RequestTimeoutError
from service.parsing import is_whole_number
from service.scheduling.priority import LiveWork

_SEND_CHUNK = 256 * 1024


@dataclass(frozen=True)
class UploadLimit:
    """A route whose body is streamed to disk: its size and arrival time limits, and the
    setting that holds the size (named in the 413)."""

    max_bytes: int
    timeout_s: float
    setting: str


def _body_too_large(limit: int, setting: str | None = None) -> PayloadTooLargeError:
    named = f" ({setting})" if setting else ""
    return PayloadTooLargeError(
        f"request body is over the limit of {limit} bytes{named}", limit=limit
    )


def _parsed_as_json(path: str, headers: dict[bytes, bytes]) -> bool:
    """Whether the body becomes Python objects: a forecast, or a v2 inference request whose
    tensors travel as JSON numbers (without Triton's binary extension). Parsed, each number of
    a few bytes costs tens, so such bodies get the smaller limit."""
    if path == forecast.PATH:
        return True
    return (
        path.startswith(v2_models.MODELS_PREFIX)
        and b"inference-header-content-length" not in headers
    )


class BodyLimitMiddleware:
    """Caps the request body (size and arrival time) and the time to hand out the response:
    a client that never reads its answer is cut off instead of holding its place for ever."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        body_timeout_s: float,
        send_timeout_s: float,
        json_limit: int | None = None,
        uploads: dict[str, UploadLimit] | None = None,
    ) -> None:
        self.app = app
        self.default_limit = max_body_bytes
        self.json_limit = min(json_limit or max_body_bytes, max_body_bytes)
        self.timeout = body_timeout_s
        self.send_timeout = send_timeout_s
        self.uploads = uploads or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self.json_limit if _parsed_as_json(scope["path"], headers) else self.default_limit
        timeout, setting = self.timeout, None
        upload = self.uploads.get(scope["path"]) if scope["method"] == "POST" else None
        if upload is not None:
            limit, timeout, setting = upload.max_bytes, upload.timeout_s, upload.setting
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if is_whole_number(declared) and int(declared) > limit:
            await error_response(_body_too_large(limit, setting))(scope, receive, send)
            return
        received = 0
        body_complete = False
        # The whole body must arrive by this deadline: a client trickling bytes cannot hold a
        # connection (and its memory) forever.
        deadline = asyncio.get_running_loop().time() + timeout

        async def counting_receive() -> Message:
            nonlocal received, body_complete
            if body_complete:  # later receives only wait for a disconnect: no deadline
                return await receive()
            try:
                # asyncio.timeout, not wait_for: that wraps every message in a new task.
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeoutError(
                    f"the request body did not arrive within {timeout:g} s"
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _body_too_large(limit, setting)
                body_complete = not message.get("more_body", False)
            return message

        async def timed_send(message: Message) -> None:
            # A large body goes out in pieces, so that the server's flow control holds each
            # piece until the client takes the previous ones; each piece must go in time, and a
            # stalled reader raises here, which ends the request (freeing what it held).
            body = message.get("body", b"") if message["type"] == "http.response.body" else b""
            if len(body) <= _SEND_CHUNK:
                async with asyncio.timeout(self.send_timeout):
                    await send(message)
                return
            more = message.get("more_body", False)
            for start in range(0, len(body), _SEND_CHUNK):
                last = start + _SEND_CHUNK >= len(body)
                piece = {
                    "type": "http.response.body",
                    "body": body[start : start + _SEND_CHUNK],
                    "more_body": more or not last,
                }
                async with asyncio.timeout(self.send_timeout):
                    await send(piece)

        await self.app(scope, counting_receive, timed_send)


# Routes that run inference; the in-flight limit counts these only, so health and metrics
# stay answerable under any load.
_INFERENCE_PREFIXES = (*images.PATHS, forecast.PATH)


def _is_inference(path: str) -> bool:
    return path.startswith(_INFERENCE_PREFIXES) or v2_models.is_inference_path(path)


class InFlightLimitMiddleware:
    """Refuses inference requests beyond ``max_in_flight`` at once with 503 and Retry-After,
    before reading their bodies, so overload costs almost nothing."""

    def __init__(self, app: ASGIApp, max_in_flight: int, live: LiveWork | None = None) -> None:
        self.app = app
        self.limit = max_in_flight
        self.in_flight = 0
        self.live = live or LiveWork()  # what background jobs yield to

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_inference(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            error = OverloadedError(
                f"the service is at its limit of {self.limit} requests in flight"
            )
            await error_response(error)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            with self.live.holding():
                await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
