"""The one error model.

Every error a caller or operator can see is a :class:`JunctionError` with a
machine-readable ``code``, an HTTP ``status``, a human ``message`` and, for
input errors, the ``fields`` at fault. ``retriable`` tells egress whether a
retry may help. Errors cross Kafka already rendered: a Reply carries the
status, the JSON body and ``error_code``; a DeadLetter the code and message.
"""
from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

__all__ = [
    "BodyTooLarge",
    "CircuitOpen",
    "ClientError",
    "Conflict",
    "DeadlineExceeded",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "JunctionError",
    "MalformedBody",
    "MethodNotAllowed",
    "NotFound",
    "PreconditionFailed",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "TransformError",
    "TransformMemory",
    "TransformTimeout",
    "Unauthorized",
    "UpstreamError",
    "UnsupportedMediaType",
    "UpstreamNotConnected",
    "UpstreamUnreachable",
]


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class JunctionError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    retriable: ClassVar[bool] = False
    # What the caller is not told (a library's text naming the upstream's URL): for the log and the dead letter.
    detail: str | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: list[FieldError] | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or HTTPStatus(status or self.status).phrase
        self.fields = list(fields or [])
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = [f.to_dict() for f in self.fields]
        body.update(self.extra)
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status}, message={self.message!r})"


class ClientError(JunctionError):
    status = 400
    code = "bad_request"


class InvalidInput(ClientError):
    status = 422
    code = "invalid_input"


class MalformedBody(ClientError):
    status = 400
    code = "malformed_body"


class Unauthorized(ClientError):
    status = 401
    code = "unauthorized"


class Forbidden(ClientError):
    status = 403
    code = "forbidden"


class NotFound(ClientError):
    status = 404
    code = "not_found"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class Conflict(ClientError):
    status = 409
    code = "conflict"


class PreconditionFailed(ClientError):
    status = 412
    code = "precondition_failed"


class BodyTooLarge(ClientError):
    status = 413
    code = "body_too_large"

    @classmethod
    def over(cls, limit: int, what: str = "body") -> BodyTooLarge:
        """``what`` (the body, or its encoded or decoded form) is larger than ``limit`` bytes."""
        return cls(f"{what} exceeds the limit of {limit} bytes", extra={"limit": limit},
                   fields=[FieldError("(body)", f"is larger than {limit} bytes")])


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(ClientError):
    status = 429
    code = "rate_limited"


class ServerError(JunctionError):
    status = 500
    code = "internal_error"


class UpstreamError(ServerError):
    status = 502
    code = "upstream_error"


class UpstreamUnreachable(UpstreamError):
    code = "upstream_unreachable"
    retriable = True


class UpstreamNotConnected(UpstreamUnreachable):
    """No connection was made, so nothing was sent: another origin may take the call, whatever its method."""


class CircuitOpen(UpstreamError):
    status = 503
    code = "circuit_open"


class TransformError(UpstreamError):
    code = "transform_failed"


class TransformTimeout(TransformError):
    code = "transform_timeout"


class TransformMemory(TransformError):
    code = "transform_memory"


class ServiceUnavailable(ServerError):
    status = 503
    code = "service_unavailable"
    retriable = True


class DeadlineExceeded(ServerError):
    status = 504
    code = "deadline_exceeded"
