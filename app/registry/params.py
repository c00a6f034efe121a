"""The ``model=`` query parameter every generation route takes: a plain registry name, never a path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from app.registry.manifest import NAME_PATTERN

ModelQuery = Annotated[
    str | None,
    Query(
        pattern=NAME_PATTERN,
        max_length=64,
        description="registry name (GET /v1/models); default: the default model. 404 lists the loaded names",
    ),
]
MODEL_ID_HEADER = "X-Model-Id"  # every image response names the version that rendered it
