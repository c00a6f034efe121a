"""The encoder file: save -> load is exact, and every refusal names the file and the problem."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from inversion import Encoder, EncoderConfig, default_path, load_encoder, save_encoder
from models import CheckpointError, DCGANConfig, Export
from tests.inversion.conftest import TINY, tiny_encoder


def _saved(tmp_path: Path, export: Export) -> Path:
    path = default_path(export.info.path)
    save_encoder(tiny_encoder(), path, export.info, {"steps": 2})
    return path


def test_default_path_sits_beside_the_export() -> None:
    assert default_path("checkpoints/demo-faces-64.safetensors") == Path(
        "checkpoints/demo-faces-64.encoder.safetensors"
    )


def test_round_trip_is_exact_and_bound_to_the_export(tmp_path: Path, export: Export) -> None:
    path = _saved(tmp_path, export)
    encoder, info = load_encoder(path, expect_generator=export.info)
    reference = tiny_encoder()
    for (name, a), b in zip(encoder.state_dict().items(), reference.state_dict().values(), strict=True):
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(a, b), name
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert info.generator_sha256 == export.info.sha256 and info.generator_id == export.info.model_id
    assert info.config == EncoderConfig(nz=16, channels=3, image_size=32, width=8)
    assert info.provenance == {"steps": 2}
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert encoder(x).shape == (2, 16)
    assert torch.equal(encoder(x), reference(x))
    assert path.stat().st_size < 100_000  # tiny here; the demo's is ~4.4 MB


def test_a_flipped_bit_in_a_tensor_is_refused(tmp_path: Path, export: Export) -> None:
    path = _saved(tmp_path, export)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_encoder(path)


def test_edited_metadata_is_refused(tmp_path: Path, export: Export) -> None:
    path = _saved(tmp_path, export)
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        meta = dict(f.metadata())
    meta["generator_sha256"] = "0" * 64  # re-bind to another export without retraining
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_encoder(path)


def test_an_encoder_for_another_export_is_refused(tmp_path: Path, export: Export) -> None:
    path = _saved(tmp_path, export)
    with pytest.raises(CheckpointError, match=r"not this one .*dcgan-train-encoder"):
        load_encoder(path, expect_generator="f" * 64)


def test_a_pickle_is_refused_without_being_unpickled(tmp_path: Path) -> None:
    path = tmp_path / "evil.encoder.safetensors"
    path.write_bytes(pickle.dumps({"main.0.weight": [1.0] * 100}))
    with pytest.raises(CheckpointError, match=str(path)):
        load_encoder(path)


def test_a_generator_export_is_not_an_encoder(export: Export) -> None:
    with pytest.raises(CheckpointError, match="not a dcgan-faces encoder"):
        load_encoder(export.info.path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such file"):
        load_encoder(tmp_path / "absent.encoder.safetensors")


def test_an_encoder_that_does_not_fit_the_generator_is_not_saved(tmp_path: Path, export: Export) -> None:
    other = Encoder(EncoderConfig.for_generator(DCGANConfig(nz=32, ngf=8, ndf=8, image_size=32), 8))
    with pytest.raises(ValueError, match="does not fit"):
        save_encoder(other, tmp_path / "e.safetensors", export.info, {})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nz": 16, "channels": 3, "image_size": 48, "width": 8}, "image_size"),
        ({"nz": 16, "channels": 3, "image_size": 32, "width": 0}, "width"),
        ({"nz": 16, "channels": 3, "image_size": 32}, "keys"),
    ],
)
def test_bad_config_json_is_refused(config: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EncoderConfig.from_json(json.dumps(config))


def test_sizes_follow_the_generator() -> None:
    config = EncoderConfig.for_generator(TINY, 8)
    assert config.fits(TINY) and not config.fits(DCGANConfig(nz=17, image_size=32))
    demo = Encoder(EncoderConfig.for_generator(DCGANConfig(nz=100, ngf=32, ndf=32)))
    assert sum(p.numel() for p in demo.parameters()) < 1_500_000  # a few MB as float32
