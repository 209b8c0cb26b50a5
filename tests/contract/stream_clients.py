"""One small synchronous WebSocket client interface over two transports: Starlette's in-process
test client and the ``websockets`` library over a real socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class StreamClosedError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code}: {reason}")
        self.code = code
        self.reason = reason


class StreamClient(Protocol):
    def send(self, data: bytes | str) -> None: ...
    def receive(self) -> dict[str, Any]: ...


class _InProcess:
    def __init__(self, session: Any) -> None:
        self._session = session

    def send(self, data: bytes | str) -> None:
        if isinstance(data, bytes):
            self._session.send_bytes(data)
        else:
            self._session.send_text(data)

    def receive(self) -> dict[str, Any]:
        try:
            message = self._session.receive()
        except WebSocketDisconnect as exc:
            raise StreamClosedError(exc.code, exc.reason or "") from None
        if message["type"] == "websocket.close":
            raise StreamClosedError(message.get("code", 1000), message.get("reason", ""))
        return dict(json.loads(message["text"]))


class _Socket:
    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def send(self, data: bytes | str) -> None:
        self._connection.send(data)

    def receive(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._connection.recv(timeout=30)))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            raise StreamClosedError(code, exc.rcvd.reason if exc.rcvd else "") from None


@contextmanager
def in_process_stream(client: TestClient, query: str) -> Iterator[StreamClient]:
    with client.websocket_connect(f"/v1/stream?{query}") as session:
        yield _InProcess(session)


@contextmanager
def socket_stream(base_url: str, query: str) -> Iterator[StreamClient]:
    url = base_url.replace("http://", "ws://") + f"/v1/stream?{query}"
    with connect(url, max_size=32 * 1024 * 1024) as connection:
        yield _Socket(connection)
