"""Reading a safetensors file as untrusted input: the header bounded, parsed, and every tensor entry checked
against the shapes the caller expects, before a single tensor byte is read (``read_tensors``)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

MAX_HEADER_BYTES = 1 << 20  # a DCGAN header is a few KB; refuse to parse megabytes of JSON
ITEMSIZE = {"F32": 4}  # the one dtype our files hold


class CheckpointError(ValueError):
    """A file that is not a valid export; the message names the file and the problem."""


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """Parse and bounds-check the safetensors header; returns (header, data section size)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: not a safetensors file or truncated (header length {header_len})")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not an object)")
    return header, size - 8 - header_len


def check_tensor_table(
    path: Path, header: dict[str, Any], expected: dict[str, tuple[int, ...]], data_size: int
) -> None:
    """Every expected tensor present, F32, the right shape, and inside the file; nothing extra."""
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(entries))
    extra = sorted(set(entries) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    if extra:
        raise CheckpointError(f"{path}: unexpected tensor {extra[0]!r} ({len(extra)} unexpected)")
    for name, shape in expected.items():
        problem = _entry_problem(entries[name], shape, data_size)
        if problem:
            raise CheckpointError(f"{path}: tensor {name!r} {problem}")


def read_tensors(
    path: Path, header: dict[str, Any], expected: dict[str, tuple[int, ...]], data_size: int
) -> dict[str, torch.Tensor]:
    """``check_tensor_table``, then the expected tensors themselves (a ``CheckpointError`` if unreadable)."""
    check_tensor_table(path, header, expected, data_size)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in expected}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable tensor data ({e})") from None


def _entry_problem(entry: Any, shape: tuple[int, ...], data_size: int) -> str | None:
    if not isinstance(entry, dict) or entry.get("dtype") not in ITEMSIZE:
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        return f"has dtype {dtype}, expected F32"
    if list(entry.get("shape", [])) != list(shape):
        return f"has shape {entry.get('shape')}, expected {list(shape)}"
    offsets = entry.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        return "has no valid data_offsets"
    begin, end = offsets
    if begin < 0 or end - begin != math.prod(shape) * ITEMSIZE[entry["dtype"]] or end > data_size:
        return "lies outside the file (truncated or corrupt)"
    return None
