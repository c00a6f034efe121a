"""What every test package shares: real components that may be missing, and the CelebA subset beside the repo.

A test that needs a real component (Chromium, Prometheus, kubectl, the CelebA subset in ``../shared``)
skips, saying why, on a developer's machine that lacks it; under ``CI=true`` it fails instead, because
CI installs or provides all of them and a silent skip there would hide a broken check.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from inversion.encoder import Encoder, EncoderConfig, default_path, save_encoder
from models import DCGANConfig, Direction, Generator, Provenance, init_weights, read_export_info, save_generator

REPO = Path(__file__).resolve().parent.parent
CELEBA_10K = REPO.parent / "shared" / "data" / "celeba-10k"  # 10,000 aligned CelebA images + attributes


def tiny_export(
    path: Path, config: DCGANConfig, directions: Sequence[Direction] = (), dataset: str = "synthetic", steps: int = 0
) -> Path:
    """A generator with the paper's random init (seed 0), in eval mode, exported to ``path``."""
    torch.manual_seed(0)
    generator = Generator(config)
    generator.apply(init_weights)
    save_generator(generator.eval(), path, Provenance(dataset=dataset, steps=steps), directions)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``cuda``-marked tests skip without a CUDA device, on CI too (CI has no GPU; `make gpu-check` runs them)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run `make gpu-check` on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def tiny_encoder(export: Path, width: int = 8) -> Path:
    """A random-init encoder (seed 0) for ``export``, written where the service looks: beside it."""
    info = read_export_info(export)
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig.for_generator(info.config, width=width)).eval()
    path = default_path(export)
    save_encoder(encoder, path, info, {"data": "none: random init for tests"})
    return path


def celeba_photos(names: Sequence[str], out: Path) -> dict[str, Path]:
    """The named files of ../shared's CelebA subset (e.g. the held-out 009500.jpg), copied into ``out``."""
    tar = CELEBA_10K / "img_align_celeba.tar"
    require(tar.is_file(), f"needs the CelebA subset at {CELEBA_10K} (absent in a user's clone)")
    found: dict[str, Path] = {}
    with tarfile.open(tar) as archive:
        for member in archive:
            name = member.name.rsplit("/", 1)[-1]
            if name in names and member.isfile():
                data = archive.extractfile(member)
                assert data is not None
                found[name] = out / name
                found[name].write_bytes(data.read())
                if len(found) == len(names):
                    break
    assert set(found) == set(names), f"not in {tar}: {set(names) - set(found)}"
    return found


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, reason: str) -> None:
    """Skip (developer machine) or fail (CI) when a real component the test drives is missing."""
    if available:
        return
    if on_ci():
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def celeba_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CelebA root (``<root>/img_align_celeba/000001.jpg``...) holding the first 60 images of ../shared's
    subset, plus its attribute file; unpacked once per session (a few hundred KB)."""
    tar = CELEBA_10K / "img_align_celeba.tar"
    require(tar.is_file(), f"needs the CelebA subset at {CELEBA_10K} (absent in a user's clone)")
    root = tmp_path_factory.mktemp("celeba")
    wanted = {f"img_align_celeba/{i:06d}.jpg" for i in range(1, 61)}
    with tarfile.open(tar) as archive:
        members = [m for m in archive.getmembers() if m.name.removeprefix("./") in wanted]
        archive.extractall(root, members=members, filter="data")
    (root / "list_attr_celeba.txt").write_bytes((CELEBA_10K / "list_attr_celeba.txt").read_bytes())
    return root


@pytest.fixture(scope="session")
def celeba_10k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole 10,000-image subset unpacked as a CelebA root (about 1 s; 28 MB under tmp)."""
    tar = CELEBA_10K / "img_align_celeba.tar"
    require(tar.is_file(), f"needs the CelebA subset at {CELEBA_10K} (absent in a user's clone)")
    root = tmp_path_factory.mktemp("celeba-10k")
    with tarfile.open(tar) as archive:
        archive.extractall(root, filter="data")
    return root
