"""``WS /v1/stream``: the real-time frame stream (framing in ``service.stream.framing``).

Query parameters choose the model and the smoothing; the service answers ``{"type": "ready"}``,
then one ``result`` (or ``error``) per processed frame. Text messages ``{"type": "report"}``
ask for the session report; ``{"type": "close"}`` gets the report and a normal close.
Close codes: 1008 invalid parameters or model, 1013 too many sessions, 1001 server going away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect, WebSocketState

from service.config import Settings
from service.errors import InvalidInputError, PolypServeError
from service.metrics import ServiceMetrics, observe_stream_message
from service.parsing import parse_json
from service.repository.registry import Registry
from service.stream.framing import parse_frame_message
from service.stream.params import StreamParams, resolve_options
from service.stream.session import StreamSession

logger = logging.getLogger(__name__)
router = APIRouter()

POLICY_VIOLATION, TRY_AGAIN_LATER, GOING_AWAY = 1008, 1013, 1001


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    registry: Registry = websocket.app.state.registry
    sessions: set[StreamSession] = websocket.app.state.stream_sessions
    await websocket.accept()
    if len(sessions) >= settings.max_stream_sessions:
        await websocket.close(TRY_AGAIN_LATER, f"{settings.max_stream_sessions} sessions already")
        return
    try:
        query = {k: v for k, v in websocket.query_params.items() if k != "api_key"}
        params = StreamParams.model_validate(query)
        model = registry.for_task("detection", params.model, params.version)
        assert model.manifest is not None
        options = resolve_options(params, model.manifest.defaults)
    except (ValidationError, PolypServeError) as exc:
        message = exc.message if isinstance(exc, PolypServeError) else _first_error(exc)
        await websocket.send_json({"type": "error", "error": message})
        await websocket.close(POLICY_VIOLATION, message[:120])
        return
    send_lock = asyncio.Lock()

    metrics: ServiceMetrics = websocket.app.state.metrics

    async def send(message: dict[str, Any]) -> None:
        observe_stream_message(metrics, message)
        async with send_lock:
            await websocket.send_text(json.dumps(message))

    async def close(code: int, reason: str) -> None:
        await send(session.report())
        await websocket.close(code, reason)

    session = StreamSession(
        model,
        options.smoothing,
        options.iou_threshold,
        options.max_detections,
        settings.max_image_pixels,
        send,
        close,
        websocket.app.state.decode_limiter,
        websocket.app.state.pixel_budget,
        websocket.app.state.live_work,
    )
    sessions.add(session)
    metrics.stream_sessions.set(len(sessions))
    session.start()
    idle = IdleWatch(settings.stream_idle_timeout_s, session)
    try:
        await send(
            {
                "type": "ready",
                "model": {"name": model.name, "version": model.version},
                "smoothing": options.smoothing.model_dump(),
                "max_frame_bytes": settings.max_frame_bytes,
            }
        )
        await _receive_loop(websocket, session, send, settings.max_frame_bytes, idle)
    except WebSocketDisconnect:
        pass
    finally:
        idle.cancel()
        sessions.discard(session)
        metrics.stream_sessions.set(len(sessions))
        await session.stop()


class IdleWatch:
    """Closes the session (report, then 1001) once its client has sent nothing for
    ``timeout_s``; the receive loop then sees the disconnect, as for any close."""

    def __init__(self, timeout_s: float, session: StreamSession) -> None:
        self.timeout_s = timeout_s
        self.last_message = time.monotonic()
        self._task = asyncio.create_task(self._watch(session))

    def touch(self) -> None:
        self.last_message = time.monotonic()

    def cancel(self) -> None:
        self._task.cancel()

    async def _watch(self, session: StreamSession) -> None:
        while (left := self.last_message + self.timeout_s - time.monotonic()) > 0:
            await asyncio.sleep(left)
        await session.close(GOING_AWAY, f"idle: no message for {self.timeout_s:g} s")


async def _receive_loop(
    websocket: WebSocket, session: StreamSession, send: Any, max_frame_bytes: int, idle: IdleWatch
) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        idle.touch()
        if message.get("bytes") is not None:
            data: bytes = message["bytes"]
            try:
                if len(data) > max_frame_bytes:
                    raise InvalidInputError(f"frame is over the limit of {max_frame_bytes} bytes")
                session.offer(parse_frame_message(data))
            except PolypServeError as exc:
                session.stats.errors += 1
                session.stats.received += 1
                await send({"type": "error", **exc.to_dict()})
            continue
        try:
            command = parse_json(message.get("text") or "", "the text message")
            kind = command.get("type") if isinstance(command, dict) else None
        except InvalidInputError:
            kind = None
        if kind == "report":
            await send(session.report())
        elif kind == "close":
            await send(session.report())
            if websocket.client_state == WebSocketState.CONNECTED:
                await websocket.close(1000, "closed by client request")
            return
        else:
            await send({"type": "error", "error": "text messages are {'type': 'report'|'close'}"})


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'parameters'}: {err['msg']}"


async def close_all(sessions: set[StreamSession], reason: str) -> None:
    """Send every open session its report and a close frame (1001) with ``reason``."""
    await asyncio.gather(*(session.close(GOING_AWAY, reason) for session in list(sessions)))
