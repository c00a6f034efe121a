"""The one way this project writes a file that others read: whole or not at all.

Both formats (the generator export in ``models.checkpoint``, the training state in ``training.state``)
go through ``atomic_write``: a temporary file in the same folder, fsync, rename over the target,
fsync the folder. A reader, or a run killed mid-write, sees the old file or the whole new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

READABLE = 0o644  # mkstemp leaves 0600; exports are read by other users (the container's service user)


def atomic_write(path: Path, write: Callable[[str], None], mode: int = READABLE) -> None:
    """Call ``write(temp_path)`` and move the result to ``path`` atomically; nothing is left on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write: only space
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)
