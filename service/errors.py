"""One error hierarchy; each error carries its HTTP status and one handler renders it.

PolypServeError (500)
├── InvalidInputError (400)          undecodable image, malformed body
├── UnauthorizedError (401)          no API key presented; comes with WWW-Authenticate
├── ForbiddenError (403)             a wrong key, or an inference key on an admin route
├── NotFoundError (404)              an unknown video job
│   └── ModelNotFoundError (404)     unknown model or version
├── RequestTimeoutError (408)        the request body did not arrive in time
├── ConflictError (409)              a video job's results asked for before it is done
│   └── WrongTaskError (409)         a model of another task than the route's
├── PayloadTooLargeError (413)       body bytes, files, image pixels or values over the limits
├── UnsupportedMediaTypeError (415)  a body in a content type the route does not read
├── InvalidParameterError (422)      parameters outside what the model serves
├── HeadTooLargeError (431)          request line and headers over their limit (uvicorn level)
├── NotReadyError (503)              the service or the model is not ready
│   └── OverloadedError (503)        a queue is full; comes with Retry-After
└── DeadlineExceededError (504)      the request's deadline passed before its work ran
"""

from __future__ import annotations

from typing import Any, ClassVar


class PolypServeError(Exception):
    status_code: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers: dict[str, str] = {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, **self.details}


class InvalidInputError(PolypServeError):
    status_code = 400


class UnauthorizedError(PolypServeError):
    status_code = 401

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.headers = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(PolypServeError):
    status_code = 403


class NotFoundError(PolypServeError):
    status_code = 404


class ModelNotFoundError(NotFoundError):
    pass


class RequestTimeoutError(PolypServeError):
    status_code = 408


class ConflictError(PolypServeError):
    status_code = 409


class WrongTaskError(ConflictError):
    pass


class PayloadTooLargeError(PolypServeError):
    status_code = 413


class UnsupportedMediaTypeError(PolypServeError):
    status_code = 415


class InvalidParameterError(PolypServeError):
    status_code = 422


class HeadTooLargeError(PolypServeError):
    status_code = 431


class NotReadyError(PolypServeError):
    status_code = 503


class OverloadedError(NotReadyError):
    def __init__(self, message: str, retry_after_s: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.headers = {"Retry-After": str(retry_after_s)}


class DeadlineExceededError(PolypServeError):
    status_code = 504
