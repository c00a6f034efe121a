"""The service's one settings object: pydantic-settings, read from ``DCGAN_*`` environment variables.

Built in ``create_app`` (or by the caller and injected), never at import time. Every field is
validated here so a typo in the environment is a startup error naming the variable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from inversion.refine import DEFAULT_STEPS, MAX_STEPS

# <repo>/checkpoints/... from a checkout and from the Docker image (both install the package in place).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "demo-faces-64.safetensors"
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class Settings(BaseSettings):
    """Service configuration; each field ``x`` is read from the environment variable ``DCGAN_X``."""

    # env_ignore_empty: `DCGAN_API_KEY=` (as compose files write it) means "no key", not "the empty key"
    model_config = SettingsConfigDict(env_prefix="DCGAN_", extra="forbid", frozen=True, env_ignore_empty=True)

    checkpoint: Path = Field(default=DEFAULT_CHECKPOINT, description="generator export (.safetensors) to serve")
    # The registry (app/registry): several models by name. Unset, DCGAN_CHECKPOINT is the one model.
    models_manifest: Path | None = Field(default=None, description="JSON manifest: model name -> export file")
    models_dir: Path | None = Field(
        default=None, description="folder of exports (manifest files and admin loads come only from here)"
    )
    default_model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="alias")
    max_loaded_models: int = Field(default=4, ge=1, le=64, description="models loaded at once (one more mid-swap)")
    admin_token: SecretStr | None = Field(default=None, description="enables /admin (load, swap, unload); unset: off")
    face_cache_bytes: int = Field(
        default=64 << 20, ge=0, le=1 << 40, description="in-process LRU of cacheable-URL faces (0: no cache)"
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N (auto = CUDA if present, else CPU)")
    host: str = Field(default="127.0.0.1", description="bind address of `python -m app`")
    port: int = Field(default=8000, ge=0, le=65535, description="bind port of `python -m app`")
    api_key: SecretStr | None = Field(default=None, description="if set, generation routes need `X-API-Key` or Bearer")
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32", description="fp32 | bf16 (opt-in: needs AVX-512 BF16 or AMX on a CPU; its own model id)"
    )
    runtime: Literal["torch", "onnxruntime"] = Field(
        default="torch", description="torch | onnxruntime (opt-in, CPU fp32: a faster forward; its own model id)"
    )
    max_images_per_request: int = Field(default=64, ge=1, le=1024, description="largest n (images) one request may ask")
    max_batch_images: int = Field(default=256, ge=1, le=4096, description="latent rows per generator forward")
    cpu_chunk_rows: int = Field(
        default=64, ge=8, le=4096, multiple_of=8, description="on CPU, rows per forward call within a batch"
    )
    cuda_chunk_rows: int = Field(
        default=64, ge=8, le=4096, multiple_of=8, description="on CUDA, the one row count every forward computes"
    )
    max_wait_ms: float = Field(default=5.0, ge=0, le=1000, description="how long the batcher waits to fill a batch")
    max_queued_images: int = Field(default=2048, ge=1, le=1_000_000, description="queued rows before 503 queue_full")
    request_timeout_s: float = Field(default=10.0, gt=0, le=600, description="deadline per request; 504 past it")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30, description="request body cap; 413 above it")
    max_interpolation_steps: int = Field(default=32, ge=2, le=256, description="largest `steps` of /interpolate")
    forward_workers: int | None = Field(
        default=None, ge=1, le=64, description="generator forwards at once (None: 2, or 1 on a 1-core CPU)"
    )
    torch_threads: int | None = Field(
        default=None, ge=1, le=256, description="torch threads per forward (None: CPU (cores - 1) / workers; GPU 1)"
    )
    access_log: bool = Field(
        default=False, description="one log line per request (off: /metrics counts requests by route and status)"
    )
    opentelemetry: bool = Field(
        default=False, description="FastAPI's native OpenTelemetry, used when a provider is configured"
    )
    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$", description="log level")
    # POST /invert (a photo in, its latent out): its own threads, queue and deadline, apart from generation's
    invert_enabled: bool = Field(default=True, description="serve POST /invert when the export has an encoder")
    invert_encoder: Path | None = Field(
        default=None, description="encoder file (None: `<export stem>.encoder.safetensors` beside the export)"
    )
    invert_concurrency: int = Field(
        default=1, ge=1, le=16, description="inversions that run at once, each in its own thread (not a forward worker)"
    )
    invert_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Linux nice of the inversion threads: generation's threads get the CPU first",
    )
    invert_queue: int = Field(default=4, ge=0, le=1024, description="inversions waiting for a thread before 503")
    invert_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="deadline per inversion, from arrival (upload included); 504 past it"
    )
    invert_max_upload_bytes: int = Field(
        default=8 << 20, ge=1024, le=1 << 30, description="largest /invert body (multipart, photo included); 413 above"
    )
    invert_max_pixels: int = Field(
        default=40_000_000, ge=4096, le=1 << 31, description="largest decoded photo (width x height); 422 above"
    )
    invert_default_steps: int = Field(
        default=DEFAULT_STEPS, ge=1, le=MAX_STEPS, description="`steps` of mode=faithful by default"
    )
    invert_max_steps: int = Field(default=500, ge=1, le=MAX_STEPS, description="largest `steps` a request may ask")

    @field_validator("device")
    @classmethod
    def _device_spec(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @model_validator(mode="after")
    def _admin_token_is_its_own(self) -> Settings:
        """The admin token swaps models: it must not be the key that every client of the API holds."""
        key, token = self.api_key, self.admin_token
        if token is not None and key is not None and token.get_secret_value() == key.get_secret_value():
            raise ValueError("admin_token must differ from api_key")
        if token is not None and len(token.get_secret_value()) < 16:
            raise ValueError("admin_token must be at least 16 characters")
        return self

    @model_validator(mode="after")
    def _a_request_fits(self) -> Settings:
        """The largest request fits in one forward and in the queue: a request is never split, never stuck."""
        largest = max(self.max_images_per_request, self.max_interpolation_steps)
        for name in ("max_batch_images", "max_queued_images"):
            if getattr(self, name) < largest:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must be >= the largest request "
                    f"({largest} = max(max_images_per_request, max_interpolation_steps))"
                )
        if self.invert_default_steps > self.invert_max_steps:
            raise ValueError(
                f"invert_default_steps ({self.invert_default_steps}) must be <= invert_max_steps "
                f"({self.invert_max_steps})"
            )
        return self
