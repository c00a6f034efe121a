"""``python -m app`` / ``dcgan-serve``: one uvicorn process on one device (never several workers per GPU).

Settings come from ``DCGAN_*`` variables. The model is checked before uvicorn starts so that a
missing or corrupt checkpoint, or CUDA asked for but absent, ends the process with one clear line.
"""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError

from app.engine import Engine, StartupError
from app.main import create_app
from app.settings import Settings

GRACEFUL_SHUTDOWN_S = 5


def _settings_error(e: ValidationError) -> str:
    first = e.errors()[0]
    if not first["loc"]:  # a check across fields
        return f"invalid settings: {first['msg']}"
    field = ".".join(str(p) for p in first["loc"])
    return f"invalid setting DCGAN_{field.upper()}: {first['msg']}"


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as e:
        print(f"dcgan-serve: error: {_settings_error(e)}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        Engine.preflight(str(settings.checkpoint), settings.device)  # the lifespan loads it for real
    except StartupError as e:
        hint = "" if settings.checkpoint.exists() else " (set DCGAN_CHECKPOINT; `make train-demo` builds the demo one)"
        print(f"dcgan-serve: error: {e}{hint}", file=sys.stderr)
        return 1
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        workers=1,
        log_level=settings.log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
