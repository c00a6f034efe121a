"""The /invert request body: ``multipart/form-data`` with one file field ``image`` and optional option fields.

Read as it streams, into memory only: the body is refused (413) as soon as its Content-Length or the
bytes received pass the cap, so nothing beyond the cap is ever held, and nothing is ever written to
disk (FastAPI's ``UploadFile`` spools parts over 1 MB to a temporary file). The client's file name is
read for the response's wording only, never used as a path. Nothing is kept after the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.errors import invalid

IMAGE_FIELD = "image"
OPTION_FIELDS = ("mode", "steps", "align")
MAX_FIELD_BYTES = 64  # an option's value ("faithful", "300", "false")
MAX_PARTS = 1 + len(OPTION_FIELDS)


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the upload is over the {limit:,}-byte cap (DCGAN_INVERT_MAX_UPLOAD_BYTES)")


def check_declared_length(request: Request, limit: int) -> None:
    """413 before reading anything when Content-Length announces more than ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)


@dataclass
class Upload:
    """The photo's bytes, its client-side file name (for messages only) and the option fields given."""

    image: bytes
    filename: str | None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Collector:
    """python-multipart's callbacks: the parts' headers and data, each part's name checked as it ends."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self.ended = False  # the closing boundary arrived
        self._header_name = bytearray()
        self._header_value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_end": self._end,
        }

    def _end(self) -> None:
        self.ended = True

    def _begin(self) -> None:
        if len(self.parts) >= MAX_PARTS:
            raise invalid(("body",), f"at most {MAX_PARTS} form fields: {IMAGE_FIELD} and {', '.join(OPTION_FIELDS)}")
        self.parts.append(_Part())

    def _header_end(self) -> None:
        name, value = bytes(self._header_name).lower(), bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()
        if name == b"content-disposition":
            _, params = parse_options_header(value)
            part = self.parts[-1]
            part.name = params.get(b"name", b"").decode("utf-8", "replace")
            filename = params.get(b"filename")
            part.filename = None if filename is None else filename.decode("utf-8", "replace")[:200]
            if part.name not in (IMAGE_FIELD, *OPTION_FIELDS):
                expected = ", ".join((IMAGE_FIELD, *OPTION_FIELDS))
                raise invalid(("body", part.name), f"unknown form field {part.name!r}; expected {expected}")

    def _data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        if part.name != IMAGE_FIELD and len(part.data) + end - start > MAX_FIELD_BYTES:
            raise invalid(("body", part.name or ""), f"a form field's value is at most {MAX_FIELD_BYTES} bytes")
        part.data.extend(data[start:end])


def _boundary(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise HTTPException(
            415, f"send the photo as multipart/form-data with a file field {IMAGE_FIELD!r} (got {kind.decode()!r})"
        )
    return boundary


async def read_upload_form(request: Request, limit: int) -> Upload:
    """The request's multipart form, streamed under ``limit`` bytes (413 past it; 415 not multipart;
    400 malformed or cut short; 422 missing, repeated or unknown fields)."""
    check_declared_length(request, limit)
    collector = _Collector()
    parser = MultipartParser(_boundary(request), collector.callbacks(), max_size=limit)  # type: ignore[arg-type]
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            parser.write(chunk)
        parser.finalize()
        if not collector.ended:
            raise HTTPException(400, "the multipart body was cut short (no closing boundary)")
    except MultipartParseError as e:
        raise HTTPException(400, f"the multipart body is malformed ({e})") from None
    except (HTTPException, RequestValidationError):  # ours: 413, 422
        raise
    except Exception as e:  # the client left mid-body, or the stream broke
        raise HTTPException(400, f"the body could not be read ({type(e).__name__})") from e
    return _form(collector.parts)


def _form(parts: list[_Part]) -> Upload:
    seen: dict[str, _Part] = {}
    for part in parts:
        if part.name is None:
            raise HTTPException(400, "the multipart body is malformed (a part without Content-Disposition)")
        if part.name in seen:
            raise invalid(("body", part.name), f"the form field {part.name!r} is given twice")
        seen[part.name] = part
    image = seen.get(IMAGE_FIELD)
    if image is None:
        raise invalid(("body", IMAGE_FIELD), f"the form has no file field {IMAGE_FIELD!r}: attach the photo there")
    fields = {}
    for name, part in seen.items():
        if name != IMAGE_FIELD:
            try:
                fields[name] = part.data.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid(("body", name), f"the form field {name!r} is not UTF-8 text") from None
    return Upload(bytes(image.data), image.filename, fields)
