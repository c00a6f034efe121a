"""Dependencies as ``Annotated`` aliases: the service, the ready engine, the API key check.

All ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, two thread hops per
request for what are attribute lookups (docs/benchmarks/README.md). The generation routes take one
``AuthorizedService`` (key check and service in one node) and read ``service.engine`` themselves:
each dependency node costs the event loop time on every request (docs/benchmarks/README.md).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.engine import Engine
from app.service import Service

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed only when DCGAN_API_KEY is set")
_bearer = HTTPBearer(auto_error=False, description="alternative to X-API-Key: `Authorization: Bearer <key>`")


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]


async def get_engine(service: ServiceDep) -> Engine:
    """The loaded engine; 503 (``NotRunning``) while loading or shutting down."""
    return service.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


async def authorized_service(
    request: Request,
    key: Annotated[str | None, Security(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Service:
    """The service, once the request carries the configured key (X-API-Key or Bearer); 401 if not. With
    no key configured, every request passes."""
    service: Service = request.app.state.service
    expected = service.settings.api_key
    if expected is None:
        return service
    given = key if key is not None else (bearer.credentials if bearer is not None else None)
    if given is None or not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            401, "missing or wrong API key (send X-API-Key or Authorization: Bearer)", {"WWW-Authenticate": "Bearer"}
        )
    return service


AuthorizedService = Annotated[Service, Depends(authorized_service)]
