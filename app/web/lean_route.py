"""``LeanRoute``: the generation routes' FastAPI route class, with the per-request work done in one pass.

FastAPI derives everything about a route from its endpoint's signature once: the OpenAPI operation,
one pydantic validator per parameter, the error locations. At request time its generic machinery
walks that description again for every request (``solve_dependencies``, two exit stacks, the
body-limit wrappers, the telemetry hooks): 0.1 ms of event-loop CPU per request, a quarter of an
``n=1`` request (docs/benchmarks/README.md).

A ``LeanRoute`` keeps what FastAPI derived, and replaces only that walk, for the shapes the generation
routes use: one ``async`` dependency of the request alone, maybe the ``Request``, scalar query
parameters and one JSON body, returning a ``Response``. It validates each value with FastAPI's own
``ModelField`` (same pydantic validators, same errors, same ``loc``), in FastAPI's order: the body is
read (413 over the cap; 400 if it cannot be decoded; 422 for bad JSON), then the dependency runs
(401, 503), then parameters and body are validated together (one 422 listing every error). A
signature outside these shapes is refused when the route is declared, so no route silently loses a
FastAPI feature. One difference, on purpose: a 413 is always the documented JSON error, where
FastAPI's path answers Starlette's plain text when a Content-Length announces the size.

Per app, ``app.state.lean`` (a ``LeanConfig``) holds the body cap, and ``stock``, which sends these
routes down FastAPI's own path instead (``reference_app``, under the same cap). ``create_app`` sets
``stock`` when FastAPI's OpenTelemetry is on (``DCGAN_OPENTELEMETRY``: its tracing sees the
dependency and endpoint steps); the tests set it to check that both paths answer every request alike.
App-level ``dependency_overrides`` also take FastAPI's path.

It reads FastAPI's private modules (``fastapi._compat``, ``Dependant``), so it runs only on the FastAPI
versions it was tested with (``TESTED_FASTAPI``; the tests hold it to FastAPI's answers). On any other
version, or one whose private modules moved, ``fastapi_unknown`` says why, ``create_app`` logs it in
one warning line and sets ``stock``, and a LeanRoute declared there is a plain ``APIRoute`` under the
body cap: the same answers, more event-loop time per request, never a crash at import or start.
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import fastapi
from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import Receive, Scope, Send

try:  # FastAPI's private modules: present in the tested versions, maybe not in the next one
    from fastapi._compat import field_annotation_is_sequence
    from fastapi.datastructures import DefaultPlaceholder

    _PRIVATE_IMPORT_ERROR: str | None = None
except ImportError as e:  # pragma: no cover - only on an untested FastAPI
    _PRIVATE_IMPORT_ERROR = str(e)
if TYPE_CHECKING:
    from fastapi.dependencies.models import Dependant

TESTED_FASTAPI = ((0, 165), (0, 165))  # (major, minor), inclusive: widen after tests/app/test_lean_route.py passes
TOO_LARGE = "Content Too Large"  # Starlette's words for its body limit (RequestBodyLimitMiddleware)
UNPARSABLE = "There was an error parsing the body"  # FastAPI's
NO_BODY = object()  # the request had no body bytes (a JSON `null` body is None)


@dataclass(frozen=True)
class LeanConfig:
    """What an app's LeanRoutes read per request, as ``app.state.lean``."""

    max_body_bytes: int  # a longer body is a 413
    stock: bool = False  # take FastAPI's own request path instead


@dataclass(frozen=True)
class _Query:
    """One scalar query parameter: FastAPI's field, and what a request that omits it gets."""

    name: str
    alias: str
    field: Any  # fastapi._compat ModelField: .validate(value, loc=...) -> (value, errors)
    required: bool
    default: Any


def fastapi_unknown() -> str | None:
    """None when LeanRoute was tested with the installed FastAPI; else one line saying why not."""
    version = fastapi.__version__
    if _PRIVATE_IMPORT_ERROR is not None:
        return f"FastAPI {version}: its private modules moved ({_PRIVATE_IMPORT_ERROR})"
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = ()
    low, high = TESTED_FASTAPI
    if not low <= major_minor <= high:
        tested = ".".join(map(str, low)) + ("" if low == high else "-" + ".".join(map(str, high)))
        return f"FastAPI {version} is not a version LeanRoute was tested with ({tested}.x)"
    return None


def _missing(loc: tuple[str, ...]) -> dict[str, Any]:
    """FastAPI's error for an absent required value."""
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": None}


class LeanRoute(APIRoute):
    """An ``APIRoute`` (schema, validators, ``response_model`` docs unchanged) whose request handling is a
    straight line over the fields FastAPI built from the signature."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.reference_app = self.app  # FastAPI's request_response(get_route_handler()): the same route, stock
        self.app = self._handle
        self.lean = fastapi_unknown() is None  # False: always FastAPI's own path (an untested FastAPI)
        if self.lean:
            self._derive()

    def _derive(self) -> None:
        """What the one-pass handling needs, read off FastAPI's description of the endpoint."""
        d = self.dependant
        self._check(d)
        dep = d.dependencies[0]
        self._dependency: Callable[[Request], Awaitable[Any]] = dep.call  # type: ignore[assignment]
        self._dependency_name: str = dep.name  # type: ignore[assignment]  # checked: not None
        self._request_name = d.request_param_name
        self._query = [_Query(f.name, f.alias, f, f.field_info.is_required(), f.default) for f in d.query_params]
        self._body = self.body_field  # None: the route takes no body
        self._body_required = self._body is not None and self._body.field_info.is_required()
        self._body_default = None if self._body is None or self._body_required else self._body.default

    def _check(self, d: Dependant) -> None:
        """Refuse, at declaration, any signature this class would not handle exactly as FastAPI does."""
        problems = []
        if d.path_params or d.header_params or d.cookie_params:
            problems.append("path, header and cookie parameters")
        if len(d.dependencies) != 1:
            problems.append(f"{len(d.dependencies)} dependencies (exactly one, of the request alone)")
        else:
            dep = d.dependencies[0]
            takes_more = dep.dependencies or dep.query_params or dep.body_params or dep.header_params
            if takes_more or None in (dep.name, dep.request_param_name) or not inspect.iscoroutinefunction(dep.call):
                problems.append("a dependency that is not `async def f(request)`")
        if any(field_annotation_is_sequence(f.field_info.annotation) for f in d.query_params):
            problems.append("list-valued query parameters")
        optional = [f for f in [*d.query_params, *d.body_params] if not f.field_info.is_required()]
        if any(f.field_info.validate_default or not _immutable(f.default) for f in optional):
            problems.append("defaults that are validated or mutable")
        if len(d.body_params) > 1 or self._embed_body_fields:
            problems.append("several or embedded body parameters")
        special = (d.background_tasks_param_name, d.response_param_name, d.websocket_param_name)
        if any(special) or d.security_scopes_param_name:
            problems.append("BackgroundTasks, Response, WebSocket or SecurityScopes parameters")
        strict = self.strict_content_type
        if not (strict.value if isinstance(strict, DefaultPlaceholder) else strict):
            problems.append("strict_content_type=False")
        if not inspect.iscoroutinefunction(d.call):
            problems.append("a plain `def` endpoint")
        if problems:
            raise TypeError(f"LeanRoute {self.path}: unsupported: {'; '.join(problems)}")

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        config: LeanConfig = request.app.state.lean
        if config.stock or not self.lean or request.app.dependency_overrides:  # FastAPI's own path
            await RequestBodyLimitMiddleware(self.reference_app, config.max_body_bytes)(scope, receive, send)
            return
        response = await self.endpoint(**await self._arguments(request, config.max_body_bytes))
        if not isinstance(response, Response):
            raise TypeError(f"LeanRoute {self.path}: the endpoint must return a Response, got {type(response)}")
        await response(scope, receive, send)

    async def _arguments(self, request: Request, max_body_bytes: int) -> dict[str, Any]:
        """The endpoint's keyword arguments. Raises FastAPI's errors in FastAPI's order: the body's (413,
        400, bad JSON), the dependency's (401, 503), then one 422 listing every parameter and body error."""
        body = await self._json_body(request, max_body_bytes) if self._body is not None else NO_BODY
        values: dict[str, Any] = {self._dependency_name: await self._dependency(request)}
        if self._request_name is not None:
            values[self._request_name] = request
        errors = self._validate_query(request, values) + self._validate_body(body, values)
        if errors:
            raise RequestValidationError(errors, body=None if body is NO_BODY else body)
        return values

    def _validate_body(self, body: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
        if self._body is None:
            return []
        if body is NO_BODY:
            values[self._body.name] = self._body_default
            return [_missing(("body",))] if self._body_required else []
        values[self._body.name], errors = self._body.validate(body, loc=("body",))
        return list(errors)

    def _validate_query(self, request: Request, values: dict[str, Any]) -> list[dict[str, Any]]:
        params = query_params(request.scope["query_string"])
        errors: list[dict[str, Any]] = []
        for q in self._query:
            raw = params.get(q.alias)
            if raw is None:
                if q.required:
                    errors.append(_missing(("query", q.alias)))
                values[q.name] = q.default
                continue
            value, field_errors = q.field.validate(raw, loc=("query", q.alias))
            errors.extend(field_errors)
            values[q.name] = value
        return errors

    @staticmethod
    async def _json_body(request: Request, limit: int) -> Any:
        """The decoded JSON body, or ``NO_BODY`` when there are no body bytes; the raw bytes when the request
        does not say it is JSON (pydantic then refuses them, naming ``body``), as FastAPI does."""
        data = await _read_capped(request, limit)
        if not data:
            return NO_BODY
        content_type = request.headers.get("content-type")
        if not content_type or not _is_json(content_type):
            return data
        try:
            return json.loads(data)
        except json.JSONDecodeError as e:
            error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error", "input": {}}
            raise RequestValidationError([error | {"ctx": {"error": e.msg}}], body=e.doc) from e
        except Exception as e:  # not UTF-8/16/32, a number too long, nesting too deep (RecursionError)
            raise HTTPException(400, UNPARSABLE) from e


def query_params(query_string: bytes) -> dict[str, str]:
    """The query as FastAPI reads it (Starlette's ``QueryParams`` parse; the last of repeated keys wins).
    Without ``%`` or ``+`` nothing needs unquoting and splitting gives ``parse_qsl``'s answer, 5x faster."""
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return {name: value for name, _, value in (pair.partition("=") for pair in text.split("&") if pair)}


async def _read_capped(request: Request, limit: int) -> bytes:
    """The request body; 413 as soon as it (or its Content-Length) passes ``limit`` bytes."""
    length = _content_length(request)
    if length is not None and length > limit:
        raise HTTPException(413, TOO_LARGE)
    if length == 0:
        return b""  # nothing to read (ASGI does not ask an app to drain an empty body)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, TOO_LARGE)
            chunks.append(chunk)
    except HTTPException:
        raise
    except Exception as e:  # the client left mid-body, or the stream broke
        raise HTTPException(400, UNPARSABLE) from e
    return b"".join(chunks)


def _is_json(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, with any parameters (FastAPI's rule)."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _content_length(request: Request) -> int | None:
    """The declared body length; None when absent or not a number (Starlette's rule)."""
    for name, value in request.scope["headers"]:  # one pass over the raw headers, without a Headers object
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _immutable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))
