"""Schemathesis, in-process, against the app's own OpenAPI schema: every operation, a fixed seed.

Each operation gets valid (positive) and invalid (negative) cases from its schema. Checks: no
5xx, every status code is one the schema documents for that operation, every response body
conforms to the documented schema and content type. The app runs through its lifespan
(schemathesis starts it once per app) on the tiny 32x32 export.

Driven with plain Hypothesis ``@given`` over ``operation.as_strategy()`` rather than the
schemathesis pytest plugin, whose lazy fixture loader does not work with pytest 9.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from app.main import create_app
from app.runtime.settings import Settings

# (method, path, examples): the generation routes get most of the budget
OPERATIONS = [
    ("POST", "/generate", 450),
    ("POST", "/interpolate", 350),
    ("POST", "/arithmetic", 350),
    ("GET", "/latents", 300),
    ("POST", "/invert", 250),  # multipart uploads: random bytes, bad options, wrong content types
    ("GET", "/v1/model", 20),
    ("GET", "/v1/models", 10),
    ("GET", "/v1/models/{name}@{model_id}/faces/{seed}.png", 100),
    ("GET", "/v1/models/{name}@{model_id}/faces/{seed}/edit.png", 50),
    ("GET", "/faces/{seed}.png", 50),
    ("GET", "/healthz", 5),
    ("GET", "/readyz", 5),
    ("GET", "/metrics", 5),
]
MIN_TOTAL_CASES = 1000
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.content_type_conformance,
]
CASES: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module")
def api_schema(invertible: Path) -> Any:
    # small caps keep each case cheap; max_wait_ms=0: a lone request never waits for company. The export
    # has an encoder beside it, so /invert reaches the photo pipeline.
    settings = Settings(
        checkpoint=invertible, device="cpu", max_batch_images=64, max_images_per_request=16,
        max_interpolation_steps=16, max_queued_images=256, max_wait_ms=0, invert_default_steps=2,
        invert_max_steps=4, invert_max_upload_bytes=64 * 1024, invert_nice=0,
    )  # fmt: skip
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))


@pytest.fixture(scope="module", autouse=True)
def enough_cases() -> Iterator[None]:
    """After the module: with every operation fuzzed, at least MIN_TOTAL_CASES requests were made."""
    yield
    total = sum(CASES.values())
    print(f"\nschemathesis: {total} cases, statuses {dict(sorted(STATUSES.items()))}, per operation {dict(CASES)}")
    if len(CASES) == len(OPERATIONS):  # the whole module ran (not a -k subset)
        assert total >= MIN_TOTAL_CASES, dict(CASES)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "path", "examples"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_operation_conforms(api_schema: Any, method: str, path: str, examples: int) -> None:
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=examples, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def fuzz(case: Any) -> None:
        CASES[f"{method} {path}"] += 1
        response = case.call_and_validate(checks=CHECKS)
        STATUSES[response.status_code] += 1

    fuzz()
