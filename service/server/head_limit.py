"""A limit on the request head (request line and headers) for uvicorn's httptools protocol.

httptools buffers a head of any size (hundreds of megabytes of headers, held in memory); h11
has a limit but parses in Python. This protocol counts the head as httptools parses it and,
past the limit, answers 431 with the service's JSON error and closes the connection, before
the rest arrives.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import HeadTooLargeError


class _StopParsing(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, max_head_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_head_bytes = max_head_bytes
        self.head_bytes = 0
        self.refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self.refused:  # the parser's error after a refusal: the 431 is already out
            super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes <= self.max_head_bytes or self.refused:
            return
        self.refused = True
        error = HeadTooLargeError(
            f"the request line and headers are over the limit of {self.max_head_bytes} bytes "
            "(POLYPSERVE_MAX_HEADER_BYTES)",
            limit=self.max_head_bytes,
        )
        body = json.dumps(error.to_dict()).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()
        raise _StopParsing


def bounded_protocol(max_head_bytes: int) -> Any:
    """The protocol class to give ``uvicorn.Config(http=...)``."""
    return functools.partial(BoundedHttpToolsProtocol, max_head_bytes=max_head_bytes)
