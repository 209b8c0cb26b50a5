"""A video upload, streamed to disk as it arrives: the raw body, or the ``video`` field of a
multipart form. Nothing holds more than about a megabyte of it; the body's size and time
limits are counted as it streams (``service.api.limits``), so a body over them stops there.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from service.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError

# The FFmpeg demuxers an upload is read with: video containers and raw streams, never a
# playlist (HLS, DASH, concat) or an image pattern, which would open other files of the server.
FORMATS = "mov,matroska,avi,mpegts,mpeg,asf,mxf,flv,ogg,ivf,h264,hevc,m4v,mpegvideo,mjpeg"
FIELD = "video"
DEFAULT_NAME = "upload"
WRITE_BYTES = 1024 * 1024  # written to disk in pieces of about this, off the event loop
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


def safe_name(filename: str | None) -> str:
    """The client's file name as a name in the job's folder: its last part, plain characters
    only, never hidden, at most 100 characters."""
    name = _UNSAFE.sub("_", (filename or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[-100:] or DEFAULT_NAME


def is_video_body(media_type: str) -> bool:
    return media_type.startswith("video/") or media_type == "application/octet-stream"


async def receive_video(request: Request, media_type: str, folder: Path, max_parts: int) -> Path:
    """Write the request's video into ``folder``; returns its path, named as the client named
    it (the multipart field's file name, or a raw body's ``Content-Disposition``), if it did.
    A multipart form holds one ``video`` file and at most ``max_parts`` parts."""
    name = DEFAULT_NAME
    if media_type == "multipart/form-data":
        parts = _MultipartVideo(request.headers.get("content-type", ""), max_parts)
        pieces = parts.stream(request.stream())
    elif is_video_body(media_type):
        parts, pieces = None, request.stream()
        _, options = parse_options_header(request.headers.get("content-disposition", ""))
        if b"filename" in options:
            name = safe_name(options[b"filename"].decode("utf-8", errors="replace"))
    else:
        raise UnsupportedMediaTypeError(
            f"unsupported content type '{media_type or 'none'}'",
            supported=["video/*", "application/octet-stream", "multipart/form-data"],
        )
    path = folder / name
    size = 0
    with path.open("wb") as file:
        pending = bytearray()
        async for piece in pieces:
            pending += piece
            size += len(piece)
            if len(pending) >= WRITE_BYTES:
                await _write(file, pending)
                pending = bytearray()
        await _write(file, pending)
    if parts is not None:
        if not parts.found:
            raise InvalidInputError(f"the multipart body has no '{FIELD}' file field")
        path = path.rename(folder / safe_name(parts.filename))
    if size == 0:
        raise InvalidInputError("the video is empty")
    return path


async def _write(file: BinaryIO, data: bytearray) -> None:
    if data:
        await to_thread.run_sync(file.write, bytes(data))


class _MultipartVideo:
    """The ``video`` part's bytes from a multipart body; other parts are read past."""

    def __init__(self, content_type: str, max_parts: int) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidInputError("the multipart body has no boundary")
        self.max_parts = max_parts
        self.found = False
        self.filename: str | None = None
        self._parts = 0
        self._in_video = False
        self._header = b""
        self._value = b""
        self._disposition = b""
        self._data: list[bytes] = []
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
            },
        )

    async def stream(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                self._parser.write(chunk)
                for data in self._data:
                    yield data
                self._data.clear()
            self._parser.finalize()
        except FormParserError as exc:
            raise InvalidInputError(f"invalid multipart body: {exc}") from None

    def _begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_parts:
            raise PayloadTooLargeError(
                f"a multipart body holds at most {self.max_parts} fields "
                "(POLYPSERVE_MAX_FORM_FIELDS)",
                limit=self.max_parts,
            )
        self._in_video, self._disposition = False, b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") != FIELD.encode() or b"filename" not in options:
            return
        if self.found:
            raise InvalidInputError(f"a job takes one video: the body has two '{FIELD}' files")
        self.found, self._in_video = True, True
        self.filename = options[b"filename"].decode("utf-8", errors="replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_video:
            self._data.append(data[start:end])
