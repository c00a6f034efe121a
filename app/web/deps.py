"""Dependencies as ``Annotated`` aliases: the service, and the one check every generation route makes.

All ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, two thread hops per
request for what are attribute lookups (docs/benchmarks/README.md). Each dependency node costs the
event loop time on every request, so a generation route takes exactly one, ``ServingService``, which
reads the key headers itself. The two ways to send the key are declared to OpenAPI as security
schemes (``SECURITY_SCHEMES``, and ``SECURED`` on each route) instead of as two more dependencies.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import APIKeyHeader, HTTPBearer

from app.errors import NotRunning
from app.service import Service

WRONG_KEY = "missing or wrong API key (send X-API-Key or Authorization: Bearer)"
_SCHEMES = (
    APIKeyHeader(name="X-API-Key", auto_error=False, description="needed only when DCGAN_API_KEY is set"),
    HTTPBearer(auto_error=False, description="alternative to X-API-Key: `Authorization: Bearer <key>`"),
)
SECURITY_SCHEMES = {s.scheme_name: jsonable_encoder(s.model, by_alias=True, exclude_none=True) for s in _SCHEMES}
SECURED: dict[str, Any] = {"security": [{name: []} for name in SECURITY_SCHEMES]}  # openapi_extra of a route


def accepting(service: Service) -> Service:
    """The service if it serves requests now (ready or draining); 503 (``NotRunning``) while starting or
    stopping. The one readiness check of the request path."""
    if not service.accepting:
        raise NotRunning(f"the service is {service.state}")
    return service


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def accepting_service(request: Request) -> Service:
    return accepting(request.app.state.service)


AcceptingService = Annotated[Service, Depends(accepting_service)]


def _given_key(request: Request) -> str | None:
    """X-API-Key, else the credentials of ``Authorization: Bearer <key>`` (as APIKeyHeader/HTTPBearer read them)."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials if scheme.lower() == "bearer" and credentials else None


async def serving_service(request: Request) -> Service:
    """The service, once the request carries the configured key (X-API-Key or Bearer; 401 if not) and the
    service accepts requests (503 if not). With no key configured, every request passes the key check."""
    service: Service = request.app.state.service
    expected = service.settings.api_key
    if expected is not None:
        given = _given_key(request)
        if given is None or not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise HTTPException(401, WRONG_KEY, {"WWW-Authenticate": "Bearer"})
    return accepting(service)


ServingService = Annotated[Service, Depends(serving_service)]
