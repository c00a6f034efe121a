"""Shared helpers for the deployment checks: the repository root, YAML loading, compose interpolation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
_DEFAULTED = re.compile(r"\$\{(\w+):-([^}]*)\}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((REPO / relative).read_text())


def with_defaults(value: str) -> str:
    """Compose interpolation with no variables set: ``${X:-d}`` -> ``d``."""
    return _DEFAULTED.sub(lambda m: m.group(2), value)


def seconds(duration: str) -> float:
    """A compose duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a compose duration: {duration!r}"
    return sum(float(n) * _UNIT_S[u] for n, u in parts)
