"""The admin API: off unless ``DCGAN_ADMIN_TOKEN`` is set, and then only with that token (never the API key).

- ``PUT /admin/models/{name}`` ``{"file": "x.safetensors", "expect": {...}}``: load, or replace with zero
  downtime, from the models directory (a plain file name, never a path);
- ``PUT /admin/default`` ``{"name": ...}``: move the default alias;
- ``DELETE /admin/models/{name}``: unload (never the default);
- ``POST /admin/reload``: re-read the manifest, as SIGHUP does.

Off, every admin path answers 404, as if it did not exist.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from app.registry.manifest import NAME_PATTERN, Entry, ManifestError, model_file
from app.registry.registry import RegistryFull, SwapRefused, UnknownModel
from app.registry.routes import ModelEntryOut, describe
from app.service import Service
from app.web.deps import accepting

ADMIN_HEADER = "X-Admin-Token"
ModelName = Annotated[str, Path(pattern=NAME_PATTERN, max_length=64)]


async def admin_service(request: Request) -> Service:
    """The service, for a request carrying the admin token (``X-Admin-Token``); 404 when admin is off."""
    service: Service = request.app.state.service
    token = service.settings.admin_token
    if token is None:
        raise HTTPException(404, "Not Found")
    given = request.headers.get(ADMIN_HEADER.lower(), "")
    if not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, f"missing or wrong admin token (send {ADMIN_HEADER})")
    return accepting(service)


AdminService = Annotated[Service, Depends(admin_service)]
router = APIRouter(prefix="/admin", tags=["admin"], include_in_schema=True)
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong admin token"},
    404: {"description": "admin API off (no DCGAN_ADMIN_TOKEN), or an unknown model"},
    409: {"description": "DCGAN_MAX_LOADED_MODELS reached, or no models directory"},
    422: {"description": "the candidate was refused (checksum, config, non-finite output, digests...)"},
}


class LoadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: str = Field(min_length=1, max_length=140, description="a *.safetensors file name in the models directory")
    expect: dict[int, str] = Field(default_factory=dict, description="seed -> sha256 of its face's pixels")


class DefaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN, max_length=64)


@router.put("/models/{name}", response_model=ModelEntryOut, responses=_ERRORS, summary="Load or replace a model")
async def put_model(name: ModelName, body: LoadBody, service: AdminService) -> ModelEntryOut:
    """Loaded beside the serving version, validated, then flipped in; a refused candidate changes nothing."""
    registry = service.registry
    folder = registry.manifest.models_dir
    if folder is None:
        raise HTTPException(409, "no models directory (set DCGAN_MODELS_DIR or DCGAN_MODELS_MANIFEST)")
    try:
        entry = Entry(name, model_file(folder, body.file), dict(body.expect))
    except ManifestError as e:
        raise HTTPException(422, str(e)) from None
    async with registry.lock:
        try:
            model = await registry.put(entry)
        except SwapRefused as e:
            raise HTTPException(422, str(e)) from None
        except RegistryFull as e:
            raise HTTPException(409, str(e)) from None
    return describe(model, registry.default)


@router.delete("/models/{name}", responses=_ERRORS, summary="Unload a model")
async def delete_model(name: ModelName, service: AdminService) -> dict[str, str]:
    registry = service.registry
    async with registry.lock:
        try:
            registry.unload(name)
        except UnknownModel as e:
            raise HTTPException(404, str(e)) from None
        except SwapRefused as e:
            raise HTTPException(409, str(e)) from None
    return {"unloaded": name}


@router.put("/default", responses=_ERRORS, summary="Move the default alias")
async def put_default(body: DefaultBody, service: AdminService) -> dict[str, str]:
    registry = service.registry
    async with registry.lock:
        try:
            registry.set_default(body.name)
        except UnknownModel as e:
            raise HTTPException(404, str(e)) from None
    return {"default": registry.default}


@router.post("/reload", responses=_ERRORS, summary="Re-read the manifest (as SIGHUP)")
async def reload(service: AdminService) -> dict[str, str]:
    return await service.reload_manifest()
