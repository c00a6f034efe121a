"""Dependencies as ``Annotated`` aliases: the service, and the one check every generation route makes.

All ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, two thread hops per
request for what are attribute lookups (docs/benchmarks/README.md). Each dependency node costs the
event loop time on every request, so a generation route takes exactly one: ``ServingService``.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.errors import NotRunning
from app.service import Service

_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed only when DCGAN_API_KEY is set")
WRONG_KEY = "missing or wrong API key (send X-API-Key or Authorization: Bearer)"
_bearer = HTTPBearer(auto_error=False, description="alternative to X-API-Key: `Authorization: Bearer <key>`")


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


async def serving_service(
    request: Request,
    key: Annotated[str | None, Security(_api_key)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Service:
    """The service, once the request carries the configured key (X-API-Key or Bearer; 401 if not) and the
    service accepts requests (503 if not). With no key configured, every request passes the key check."""
    service: Service = request.app.state.service
    expected = service.settings.api_key
    if expected is not None:
        given = key if key is not None else (bearer.credentials if bearer is not None else None)
        if given is None or not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise HTTPException(401, WRONG_KEY, {"WWW-Authenticate": "Bearer"})
    return accepting(service)


ServingService = Annotated[Service, Depends(serving_service)]
