"""The one place errors become HTTP responses: always ``{"error": "<message>", ...}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from service.errors import PolypServeError
from service.logs import REQUEST_ID
from service.schemas import ErrorResponse

logger = logging.getLogger(__name__)

# Every status an API route may answer besides its success, all as {"error": ...}: the
# OpenAPI document lists them so that clients (and schemathesis) can rely on it.
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 422, 500, 503, 504)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": "error"} for status in ERROR_STATUSES
}


def error_response(exc: PolypServeError) -> JSONResponse:
    """The one rendering of an error, also for the middlewares that answer before routing."""
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)


async def _polypserve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PolypServeError)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in exc.errors()[:10]
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    message = f"{'.'.join(first['loc'][1:]) or 'request'}: {first['msg']}"
    return JSONResponse({"error": message, "detail": problems}, status_code=422)


# nginx's status for "client closed request": what a request whose client left mid-body is
# counted under in /metrics (it reaches no client).
CLIENT_CLOSED_REQUEST = 499


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    token = REQUEST_ID.set(getattr(request.state, "request_id", None))
    try:
        logger.info(
            "client disconnected before its request body arrived: %s %s",
            request.method,
            request.url.path,
        )
    finally:
        REQUEST_ID.reset(token)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # FastAPI's own body parsing wraps what reading the body raised (a client gone, or a body
    # limit of service.api.limits) in a 400: answer for the cause instead.
    if isinstance(exc.__cause__, ClientDisconnect):
        return await _client_disconnected(request, exc.__cause__)
    if isinstance(exc.__cause__, PolypServeError):
        return error_response(exc.__cause__)
    return JSONResponse(
        {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client.
    token = REQUEST_ID.set(getattr(request.state, "request_id", None))
    try:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
    finally:
        REQUEST_ID.reset(token)
    return JSONResponse({"error": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PolypServeError, _polypserve_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected_error)
