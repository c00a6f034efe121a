"""One /invert request, from admission to its JSON answer; every way it can end is counted once.

Order: the inverter exists (503 no encoder) -> Content-Length under the cap (413) -> a place in the
inversion queue (503 + Retry-After) -> the body, streamed under the cap and the deadline (413, 415,
400, 504) -> the options, from the query or the form (422) -> an inversion thread (504 if the deadline
passes first) -> the photo decoded (422 naming the problem), aligned (422 no face) and inverted.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from app.errors import DeadlineExceeded, GeneratorFailed, InversionUnavailable, QueueFull, invalid
from app.invert.inverter import Inverter, InvertOptions
from app.invert.upload import check_declared_length, read_upload_form
from app.runtime.metrics import ARRIVED, Metrics
from app.runtime.settings import Settings
from app.schemas import FaceOut, InvertFormOptions, InvertOut
from inversion.photo import PhotoInversion
from inversion.refine import Mode
from photos.align import NoFaceError
from photos.decode import UploadError

DEFAULT_MODE: Mode = "faithful"
log = logging.getLogger("app.invert")


@dataclass(frozen=True)
class QueryOptions:
    """/invert's options as the query gave them (None: not in the query)."""

    mode: str | None
    steps: int | None
    align: bool | None


def _form_options(fields: dict[str, str]) -> InvertFormOptions:
    try:
        return InvertFormOptions.model_validate(fields)
    except ValidationError as e:
        errors = [{"type": x["type"], "loc": ("body", *x["loc"]), "msg": x["msg"]} for x in e.errors()]
        raise RequestValidationError(errors) from None


def options(query: QueryOptions, fields: dict[str, str], settings: Settings) -> InvertOptions:
    """The query's and the form's options merged (one place each), defaults filled, steps bounded."""
    form = _form_options(fields)
    given: dict[str, Any] = {}
    for name in ("mode", "steps", "align"):
        q, f = getattr(query, name), getattr(form, name)
        if q is not None and f is not None:
            raise invalid(("body", name), f"{name} is given both in the query and as a form field: give it once")
        given[name] = (q if q is not None else f, ("query" if q is not None else "body", name))
    mode: Mode = given["mode"][0] or DEFAULT_MODE
    steps, steps_loc = given["steps"]
    if mode == "fast":
        if steps:
            raise invalid(steps_loc, "steps apply to mode=faithful; mode=fast is the encoder alone (0 steps)")
        steps = 0
    elif steps is None:
        steps = settings.invert_default_steps
    elif not 1 <= steps <= settings.invert_max_steps:
        raise invalid(steps_loc, f"steps must be in 1..{settings.invert_max_steps} for mode=faithful, got {steps}")
    align = given["align"][0]
    return InvertOptions(mode, steps, True if align is None else align)


def _photo_error(loc: tuple[str, ...], kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message}])


async def handle(inverter: Inverter | str, request: Request, query: QueryOptions, metrics: Metrics) -> InvertOut:
    """The request's answer, or the exception its status handler turns into the documented error."""
    mode, outcome, ran = query.mode or "unknown", "failed", None
    try:
        if isinstance(inverter, str):
            raise InversionUnavailable(inverter)
        s = inverter.settings
        check_declared_length(request, s.invert_max_upload_bytes)
        deadline = request.scope.get("state", {}).get(ARRIVED, time.monotonic()) + s.invert_timeout_s
        async with inverter.admit():
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    upload = await read_upload_form(request, s.invert_max_upload_bytes)
            except TimeoutError:
                raise DeadlineExceeded("the inversion deadline passed while the upload was still arriving") from None
            opts = options(query, upload.fields, s)
            mode = opts.mode
            try:
                done = await inverter.run(upload.image, opts, deadline)
            except UploadError as e:
                outcome = "bad_upload"
                raise _photo_error(("body", "image"), e.reason, str(e)) from None
            except NoFaceError as e:
                outcome = "no_face"
                raise _photo_error(("body", "image"), "no_face", str(e)) from None
        answer = _answer(inverter, opts, done.result, done.aligned_png, done.reconstruction_png)
        outcome, ran = "ok", done.result
        return answer
    except InversionUnavailable:
        outcome = "unavailable"
        raise
    except QueueFull:
        outcome = "queue_full"
        raise
    except DeadlineExceeded:
        outcome = "deadline"
        raise
    except (RequestValidationError, HTTPException):
        outcome = "bad_request" if outcome == "failed" else outcome  # options, form, body (413, 415, 400)
        raise
    except Exception as e:
        log.exception("an inversion failed")
        raise GeneratorFailed(f"the inversion failed (not caused by the upload): {type(e).__name__}") from e
    finally:
        metrics.inversion_done(mode, outcome, *((ran.seconds, ran.steps) if ran is not None else ()))


def _answer(
    inverter: Inverter, opts: InvertOptions, r: PhotoInversion, aligned: bytes, reconstruction: bytes
) -> InvertOut:
    a = r.aligned
    face = FaceOut(
        box=None if a.face_box is None else [int(v) for v in a.face_box],
        eyes=None if a.eyes is None else [[round(float(c), 2) for c in eye] for eye in a.eyes],
        faces_found=a.faces_found,
        note=a.note,
    )
    return InvertOut(
        model_id=inverter.model_id, mode=opts.mode, steps=r.steps, seconds=round(r.seconds, 4),
        latent=r.z.tolist(), psnr=round(r.psnr, 3), ssim=round(r.ssim, 4),
        aligned=base64.b64encode(aligned).decode(), reconstruction=base64.b64encode(reconstruction).decode(),
        align=opts.align, face=face,
    )  # fmt: skip
