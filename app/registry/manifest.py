"""Which exports the service loads, by name: a manifest file, a models directory, or ``DCGAN_CHECKPOINT``.

The manifest is one JSON file (a Kubernetes ConfigMap key or a compose volume)::

    {"default": "faces",
     "models": {"faces":   {"file": "celeba-64.safetensors"},
                "faces-b": {"file": "celeba-64-v2.safetensors", "expect": {"0": "<sha256>", "7": "<sha256>"}}}}

``file`` is a plain file name in the models directory (``DCGAN_MODELS_DIR``, else the manifest's own
folder): never a path, so neither the manifest nor the admin API can name a file elsewhere.
``expect`` optionally maps seeds to the sha256 of their face's pixels (``python -m app.registry.expect
FILE SEEDS``); a candidate whose faces differ is refused. Without a manifest, a models directory
serves each ``NAME.safetensors`` in it as ``NAME``; with neither, ``DCGAN_CHECKPOINT`` is the one model,
named after its file, exactly as before.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # a model name: no dots, slashes or '@' (URLs hold it)
_NAME = re.compile(NAME_PATTERN)
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.safetensors$")
SUFFIX = ".safetensors"


class ManifestError(ValueError):
    """A manifest or models directory that cannot be served; the message names the file and the problem."""


@dataclass(frozen=True)
class Entry:
    """One model the manifest names: its export file and, optionally, the expected digests of a few faces."""

    name: str
    path: Path
    expect: dict[int, str] = field(default_factory=dict)  # seed -> sha256 of its face's uint8 pixels


@dataclass(frozen=True)
class Manifest:
    default: str
    entries: dict[str, Entry]
    models_dir: Path | None  # where the admin API may load files from (None: nowhere)


def plain_name(name: str) -> bool:
    return bool(_NAME.match(name))


def model_file(models_dir: Path, file: str) -> Path:
    """``models_dir / file`` for a plain ``*.safetensors`` file name; ``ManifestError`` for anything else."""
    if not isinstance(file, str) or not _FILE.match(file):
        raise ManifestError(f"file {file!r} must be a plain *.safetensors file name in the models directory")
    return models_dir / file


def _expect(where: str, value: Any) -> dict[int, str]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expect must be an object of seed -> sha256")
    out = {}
    for seed, digest in value.items():
        if not (str(seed).isdigit() and isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ManifestError(f"{where}: expect[{seed!r}] must map a seed to a 64-hex sha256")
        out[int(seed)] = digest
    return out


def read_manifest(path: Path, models_dir: Path | None, default: str | None) -> Manifest:
    """Parse and check a manifest file (``default``, when given, overrides the file's own)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or not models:
        raise ManifestError(f'{path}: a manifest is an object with a non-empty "models" object')
    folder = models_dir if models_dir is not None else path.parent
    entries = {}
    for name, spec in models.items():
        if not plain_name(name):
            raise ManifestError(f"{path}: model name {name!r} is not a plain name ({NAME_PATTERN})")
        if not isinstance(spec, dict) or set(spec) - {"file", "expect"}:
            raise ManifestError(f'{path}: model {name!r} must be {{"file": ..., "expect": {{...}}}}')
        try:
            file = model_file(folder, spec.get("file"))  # type: ignore[arg-type]
        except ManifestError as e:
            raise ManifestError(f"{path}: model {name!r}: {e}") from None
        entries[name] = Entry(name, file, _expect(f"{path}: model {name!r}", spec.get("expect", {})))
    chosen = default if default is not None else data.get("default", next(iter(entries)))
    if chosen not in entries:
        raise ManifestError(f"{path}: default model {chosen!r} is not one of {', '.join(entries)}")
    return Manifest(chosen, entries, folder)


def scan_dir(models_dir: Path, default: str | None) -> Manifest:
    """Every ``NAME.safetensors`` in ``models_dir`` as ``NAME`` (names that are not plain are skipped)."""
    if not models_dir.is_dir():
        raise ManifestError(f"{models_dir}: no such models directory")
    files = sorted(p for p in models_dir.iterdir() if p.name.endswith(SUFFIX) and plain_name(p.name[: -len(SUFFIX)]))
    entries = {p.name[: -len(SUFFIX)]: Entry(p.name[: -len(SUFFIX)], p) for p in files}
    if not entries:
        raise ManifestError(f"{models_dir}: no NAME.safetensors export in the models directory")
    if default is None and len(entries) > 1:
        raise ManifestError(
            f"{models_dir}: {len(entries)} models; set DCGAN_DEFAULT_MODEL to one of {', '.join(entries)}"
        )
    chosen = default if default is not None else next(iter(entries))
    if chosen not in entries:
        raise ManifestError(f"{models_dir}: default model {chosen!r} is not one of {', '.join(entries)}")
    return Manifest(chosen, entries, models_dir)


def single(checkpoint: Path, models_dir: Path | None = None) -> Manifest:
    """``DCGAN_CHECKPOINT`` alone: one model, named after its file (``demo-faces-64``), the default."""
    stem = checkpoint.name.removesuffix(SUFFIX)
    name = re.sub(r"[^A-Za-z0-9_-]", "-", stem)[:64].lstrip("-_") or "default"
    return Manifest(name, {name: Entry(name, checkpoint)}, models_dir)


def resolve(checkpoint: Path, manifest: Path | None, models_dir: Path | None, default: str | None) -> Manifest:
    """The settings' choice: a manifest, else a models directory, else the one checkpoint."""
    if manifest is not None:
        return read_manifest(manifest, models_dir, default)
    if models_dir is not None:
        return scan_dir(models_dir, default)
    return single(checkpoint)
