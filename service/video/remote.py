"""Analysis against a running service: the frames go to its ``/v1/stream`` WebSocket.

One frame at a time: each is sent only once the previous one's result is back, so the
session's latest-frame-wins slot never replaces (drops) a frame, and the service tracks every
frame as the in-process analysis does. A folder's images go as their own bytes; a video frame
goes as a PNG (lossless and quick to write at compression level 1), which the service decodes
to the very pixels the in-process analysis reads.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any
from urllib.parse import urlencode

from PIL import Image
from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import connect

from service.errors import (
    InvalidInputError,
    InvalidParameterError,
    NotReadyError,
    PayloadTooLargeError,
)
from service.stream.framing import build_frame_message
from service.stream.params import StreamParams
from service.video.source import SourceFrame

RECEIVE_TIMEOUT_S = 60.0


def stream_url(url: str, params: StreamParams) -> str:
    """``http(s)://host:port`` to the session's ``ws(s)://host:port/v1/stream?query``."""
    base = url.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            base = ws + base[len(http) :]
    query = urlencode(params.model_dump(exclude_none=True))
    return f"{base}/v1/stream" + (f"?{query}" if query else "")


class RemoteAnalyzer:
    """Frames in, the stream's per-frame results out, from a running service."""

    def __init__(self, url: str, params: StreamParams, api_key: str | None = None) -> None:
        self.url = stream_url(url, params)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._exit = contextlib.ExitStack()
        try:
            self._ws = self._exit.enter_context(
                connect(self.url, max_size=None, additional_headers=headers)
            )
        except (OSError, WebSocketException) as exc:
            raise NotReadyError(f"cannot open the stream at {self.url}: {exc}") from None
        ready = self._receive()
        if ready.get("type") != "ready":
            self.close()
            raise InvalidParameterError(f"the service refused the stream: {ready.get('error')}")
        self.model_info = ready["model"]
        self.smoothing = ready["smoothing"]
        self.max_frame_bytes = int(ready["max_frame_bytes"])
        self.processing = {"mode": "service", "url": self.url}

    def prepare(self, frame: SourceFrame) -> bytes:
        """The frame message: thread-safe, run ahead of ``analyze``."""
        image = frame.data
        if image is None:
            buffer = io.BytesIO()
            Image.fromarray(frame.rgb).save(buffer, format="PNG", compress_level=1)
            image = buffer.getvalue()
        return build_frame_message(image, frame.index, frame.time_s)

    def analyze(self, frame: SourceFrame, prepared: bytes) -> dict[str, Any]:
        if len(prepared) > self.max_frame_bytes:
            raise PayloadTooLargeError(
                f"frame {frame.index} is {len(prepared)} bytes as sent, over the service's "
                f"limit of {self.max_frame_bytes} (POLYPSERVE_MAX_FRAME_BYTES)"
            )
        self._send(prepared)
        result = self._receive()
        if result.get("type") == "error":
            raise InvalidInputError(f"the service refused frame {frame.index}: {result['error']}")
        if result.get("frame_id") != frame.index or result.get("dropped"):
            raise NotReadyError(f"the service answered frame {result.get('frame_id')} instead")
        keys = ("frame_index", "timestamp", "image", "detections", "tracks")
        return {key: result[key] for key in keys}

    def track_summaries(self) -> list[dict[str, Any]]:
        """The session report's tracks; the session ends with it."""
        self._send(json.dumps({"type": "close"}))
        report = self._receive()
        return list(report["tracks"])

    def close(self) -> None:
        self._exit.close()

    def _send(self, message: bytes | str) -> None:
        try:
            self._ws.send(message)
        except ConnectionClosed as exc:
            raise NotReadyError(f"the service closed the stream: {exc}") from None

    def _receive(self) -> dict[str, Any]:
        try:
            message = json.loads(self._ws.recv(timeout=RECEIVE_TIMEOUT_S))
        except ConnectionClosed as exc:
            raise NotReadyError(f"the service closed the stream: {exc}") from None
        except TimeoutError:
            raise NotReadyError(f"no answer from {self.url} in {RECEIVE_TIMEOUT_S:g} s") from None
        return dict(message)
