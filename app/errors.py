"""Every failure a client can cause or meet, mapped to its status; nothing the user sends makes a 500.

- 422: validation (FastAPI's own, plus ``invalid()`` for settings- and model-dependent limits),
  answered without echoing the input (a NaN in it would not even serialise to JSON).
- 413: the body cap (``app.web.lean_route``, the routes that read a body; with or without Content-Length,
  chunked too).
- 503 + Retry-After: not ready / shutting down / device lost, the queue is full, or the device ran out of
  memory for this batch.  504: deadline passed.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.runtime.metrics import Metrics
from app.schemas import ErrorOut

log = logging.getLogger("app.errors")
RETRY_AFTER_S = "1"


class QueueFull(RuntimeError):
    """Admitting the request would exceed the queue bound (answer 503 with Retry-After)."""


class DeadlineExceeded(RuntimeError):
    """The request's deadline passed before its rows were computed (answer 504)."""


class ClientGone(RuntimeError):
    """The client disconnected while queued; its rows were never computed (answer 499)."""


class NotRunning(RuntimeError):
    """The batcher is not started or is stopping (answer 503)."""


class BatchOutOfMemory(RuntimeError):
    """The device ran out of memory for the forward of this request's batch (answer 503: the next may fit)."""


class GeneratorFailed(RuntimeError):
    """The forward of the batch this request was in failed (answer 500; the input did not cause it)."""


class InversionUnavailable(RuntimeError):
    """/invert is not served by this process (no encoder for the model, or turned off): 503, no Retry-After."""


def invalid(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    """A 422 in FastAPI's shape for limits pydantic cannot know statically (n vs settings, latent length)."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg}])


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# OpenAPI ``responses=`` for the generation routes: every error they can answer.
GENERATION_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _doc("the body cannot be decoded (e.g. not UTF-8)"),
    401: _doc("API key required (only when DCGAN_API_KEY is set)"),
    404: _doc("unknown model= (the message lists the loaded models)"),
    413: _doc("request body above DCGAN_MAX_BODY_BYTES"),
    422: _doc("invalid input; `loc` names the field"),
    499: _doc("client disconnected while queued (never computed)"),
    500: _doc("the generator failed for the batch this request was in (not caused by the input)"),
    503: _doc("not ready, shutting down, device lost, queue full, or out of device memory (see Retry-After)"),
    504: _doc("the request's deadline (DCGAN_REQUEST_TIMEOUT_S) passed before it was computed"),
}


# OpenAPI ``responses=`` for POST /invert.
INVERT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _doc("the multipart body is malformed or was cut short"),
    401: GENERATION_ERRORS[401],
    413: _doc("the body is over DCGAN_INVERT_MAX_UPLOAD_BYTES (by Content-Length or as it streams)"),
    415: _doc("the body is not multipart/form-data"),
    422: _doc(
        "a bad option or form field, or a photo that cannot be used: `loc` is [body, image] and `type` names the"
        " problem (empty, not_an_image, truncated, too_many_pixels, animated, unsupported_mode, no_face)"
    ),
    500: _doc("the inversion itself failed (not caused by the upload)"),
    503: _doc(
        "not ready; the inversion queue is full (with Retry-After); or this model has no encoder / inversion is"
        " turned off (no Retry-After: the message says which)"
    ),
    504: _doc("the inversion deadline (DCGAN_INVERT_TIMEOUT_S, from arrival, upload included) passed"),
}


def install(app: FastAPI, metrics: Metrics) -> None:
    """Register the handlers; 422s are counted as ``rejections{reason=invalid}``."""

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        metrics.rejected("invalid")
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return _error(422, errors)

    async def queue_full(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": RETRY_AFTER_S})

    async def out_of_memory(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": RETRY_AFTER_S})

    async def not_running(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc), {"Retry-After": RETRY_AFTER_S})

    async def deadline(request: Request, exc: Exception) -> JSONResponse:
        return _error(504, str(exc))

    async def client_gone(request: Request, exc: Exception) -> JSONResponse:
        return _error(499, str(exc))

    async def generator_failed(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, str(exc))

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(QueueFull, queue_full)
    app.add_exception_handler(NotRunning, not_running)
    app.add_exception_handler(BatchOutOfMemory, out_of_memory)
    app.add_exception_handler(DeadlineExceeded, deadline)
    app.add_exception_handler(ClientGone, client_gone)

    async def inversion_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, str(exc))  # no Retry-After: retrying will not help

    app.add_exception_handler(GeneratorFailed, generator_failed)
    app.add_exception_handler(InversionUnavailable, inversion_unavailable)
