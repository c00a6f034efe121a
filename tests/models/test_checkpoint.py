"""Export -> load equality and every refusal: each message names the file and the problem."""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from models import CheckpointError, Direction, Provenance, load_export, load_generator, read_export_info, save_generator
from models.checkpoint import FORMAT_NAME, FORMAT_VERSION, content_sha256, upgrade_export
from tests.models.conftest import TINY, tiny_generator


def _tensors_and_meta(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())  # noqa: SIM118 (safe_open is not iterable)


def _rewrite(src: Path, dst: Path, tensors=None, meta=None) -> Path:
    """``src`` with other tensors or metadata; new tensors get a matching checksum (a well-formed file)."""
    t, m = _tensors_and_meta(src)
    if tensors is not None and meta is None:
        m = {**m, "content_sha256": content_sha256(tensors, m)}
    save_file(tensors if tensors is not None else t, str(dst), metadata=meta if meta is not None else m)
    return dst


def test_round_trip_is_exact(export_path: Path) -> None:
    g, info = load_generator(export_path, "cpu")
    reference = tiny_generator()
    for (k, a), b in zip(g.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert not g.training and not any(p.requires_grad for p in g.parameters())
    assert info.config == TINY
    assert info.provenance["dataset"] == "synthetic" and info.provenance["steps"] == 7
    assert len(info.sha256) == 64 and info.model_id.startswith("tiny-")
    assert read_export_info(export_path) == info


def test_metadata_is_self_describing(export_path: Path) -> None:
    _, meta = _tensors_and_meta(export_path)
    assert meta["format"] == FORMAT_NAME and meta["format_version"] == FORMAT_VERSION
    assert json.loads(meta["config"])["image_size"] == 32
    assert set(json.loads(meta["provenance"])) >= {
        "dataset",
        "dataset_hash",
        "steps",
        "ema",
        "bn_recalibrated",
        "created_at",
        "code_version",
    }
    assert json.loads(meta["directions"]) == [] and meta["content_sha256"] == content_sha256(
        _tensors_and_meta(export_path)[0], meta
    )


def test_save_leaves_no_temp_files(export_path: Path) -> None:
    assert [p.name for p in export_path.parent.iterdir()] == [export_path.name]


def _refused(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as e:
        load_generator(path, "cpu")
    assert str(path) in str(e.value)


def test_export_is_readable_by_other_users(export_path: Path) -> None:
    """The service container runs as its own uid and reads mounted exports: not the 0600 that safetensors leaves."""
    assert export_path.stat().st_mode & 0o777 == 0o644


def test_missing_file(tmp_path: Path) -> None:
    _refused(tmp_path / "nope.safetensors", "no such file")


@pytest.mark.parametrize("keep", [0, 3, 8, 100, -1000, -4])
def test_truncated(export_path: Path, tmp_path: Path, keep: int) -> None:
    data = export_path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:keep])
    _refused(cut, "truncated|outside the file|corrupt")


def test_random_bytes(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(4096))
    _refused(junk, "not a safetensors file|corrupt")


def test_huge_declared_header(tmp_path: Path) -> None:
    bad = tmp_path / "huge.safetensors"
    bad.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    _refused(bad, "header length")


def test_header_byte_flips_are_refused_or_harmless(export_path: Path, tmp_path: Path) -> None:
    data = bytearray(export_path.read_bytes())
    header_len = struct.unpack("<Q", data[:8])[0]
    flipped = tmp_path / "flip.safetensors"
    for pos in range(8, 8 + header_len, max(1, header_len // 60)):
        mutated = bytearray(data)
        mutated[pos] ^= 0x55
        flipped.write_bytes(mutated)
        try:
            load_generator(flipped, "cpu")
        except CheckpointError:
            continue  # refused with a clear error: fine; anything else fails the test


def test_plain_safetensors_is_not_an_export(export_path: Path, tmp_path: Path) -> None:
    _refused(_rewrite(export_path, tmp_path / "plain.safetensors", meta={}), "not a dcgan-faces generator export")


def test_wrong_version(export_path: Path, tmp_path: Path) -> None:
    _, meta = _tensors_and_meta(export_path)
    meta["format_version"] = "99"
    _refused(_rewrite(export_path, tmp_path / "v99.safetensors", meta=meta), "format_version '99'")


@pytest.mark.parametrize(
    "config",
    ['{"nz": 1000000000, "ngf": 8, "ndf": 8, "channels": 3, "image_size": 32}', '{"image_size": 48}', "not json"],
)
def test_absurd_config(export_path: Path, tmp_path: Path, config: str) -> None:
    _, meta = _tensors_and_meta(export_path)
    meta["config"] = config
    _refused(_rewrite(export_path, tmp_path / "cfg.safetensors", meta=meta), "invalid config")


def test_missing_extra_misshaped_wrong_dtype_nonfinite(export_path: Path, tmp_path: Path) -> None:
    tensors, _ = _tensors_and_meta(export_path)
    cases = {
        "missing tensor 'main.0.weight'": {k: v for k, v in tensors.items() if k != "main.0.weight"},
        "unexpected tensor 'extra'": {**tensors, "extra": torch.zeros(1)},
        "'main.0.weight' has shape": {**tensors, "main.0.weight": torch.zeros(2, 2)},
        "'main.0.weight' has dtype F16": {**tensors, "main.0.weight": tensors["main.0.weight"].half()},
        "'main.1.running_var' has non-finite": {
            **tensors,
            "main.1.running_var": torch.full_like(tensors["main.1.running_var"], float("nan")),
        },
    }
    for i, (message, case) in enumerate(cases.items()):
        _refused(_rewrite(export_path, tmp_path / f"case{i}.safetensors", tensors=case), message)


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):  # runs os.system on unpickle, if anything ever unpickled it
        return (os.system, (f"touch {self.canary}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Payload(canary)))
    _refused(evil, "not a safetensors file|corrupt|truncated")
    torch_evil = tmp_path / "evil.pt"
    torch.save({"x": _Payload(canary)}, torch_evil)
    _refused(torch_evil, "not a safetensors file|corrupt|truncated")
    assert not canary.exists()


def test_a_flipped_bit_in_the_weights_is_refused(export_path: Path, tmp_path: Path) -> None:
    data = bytearray(export_path.read_bytes())
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    data[header_end + 100] ^= 0x01  # one bit of one weight: still finite, still the right shape
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes(data))
    _refused(flipped, "content checksum mismatch")


def test_version_1_files_still_load_without_directions(export_path: Path, tmp_path: Path) -> None:
    _, meta = _tensors_and_meta(export_path)
    v1 = {k: meta[k] for k in ("format", "config", "provenance")} | {"format_version": "1"}
    path = _rewrite(export_path, tmp_path / "v1.safetensors", meta=v1)
    export = load_export(path)
    assert export.directions == () and export.info.format_version == "1"
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            export.generator.state_dict().values(), load_generator(export_path)[0].state_dict().values(), strict=True
        )
    )


def test_directions_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "with-directions.safetensors"
    smile = Direction("Smiling", unit(0), "attribute", 0.93, "classifier on CelebA 1-9000")
    save_generator(tiny_generator(), path, Provenance(), [smile, Direction("Male", unit(1), "attribute", None, "x")])
    export = load_export(path)
    assert [d.name for d in export.directions] == ["Smiling", "Male"]
    assert torch.equal(export.directions[0].vector, smile.vector) and export.directions[0].separation == 0.93
    assert export.directions[1].separation is None and export.info.format_version == FORMAT_VERSION


def unit(seed: int) -> torch.Tensor:
    v = torch.randn(TINY.nz, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (lambda: unit(0) * 2, "direction 'bad' is not a unit vector"),
        (lambda: torch.full((TINY.nz,), float("nan")), "direction 'bad' has non-finite values"),
    ],
)
def test_a_bad_direction_is_refused_by_name(export_path: Path, tmp_path: Path, vector, message: str) -> None:
    tensors, meta = _tensors_and_meta(export_path)
    tensors["direction.bad"] = vector()
    meta["directions"] = json.dumps([{"name": "bad", "kind": "attribute", "separation": 0.9, "source": "test"}])
    meta["content_sha256"] = content_sha256(tensors, meta)
    _refused(_rewrite(export_path, tmp_path / "bad.safetensors", tensors, meta), message)


def test_direction_metadata_and_tensors_must_agree(export_path: Path, tmp_path: Path) -> None:
    tensors, meta = _tensors_and_meta(export_path)
    entry = {"name": "Smiling", "kind": "attribute", "separation": 0.9, "source": "test"}
    cases = {
        "missing tensor 'direction.Smiling'": (tensors, [entry]),
        "unexpected tensor 'direction.Smiling'": ({**tensors, "direction.Smiling": unit(0)}, []),
        "tensor 'direction.Smiling' has shape": ({**tensors, "direction.Smiling": torch.ones(3)}, [entry]),
        "each needs a unique string name": ({**tensors, "direction.Smiling": unit(0)}, [entry, entry]),
        "direction 'Smiling' has kind 'magic'": (
            {**tensors, "direction.Smiling": unit(0)},
            [entry | {"kind": "magic"}],
        ),
    }
    for i, (message, (case, entries)) in enumerate(cases.items()):
        m = {**meta, "directions": json.dumps(entries)}
        m["content_sha256"] = content_sha256(case, m)
        _refused(_rewrite(export_path, tmp_path / f"d{i}.safetensors", case, m), message)
    with pytest.raises(ValueError, match="direction 'x' is not a unit vector"):
        save_generator(
            tiny_generator(),
            tmp_path / "never.safetensors",
            Provenance(),
            [Direction("x", unit(0) * 3, "attribute", None, "")],
        )
    assert not (tmp_path / "never.safetensors").exists()


def _flip_header_bits(src: Path, dst: Path, count: int, seed: int) -> list[int]:
    """``count`` copies of ``src`` with one random bit flipped in its header (length prefix and JSON); the
    indexes of those that still load."""
    data = src.read_bytes()
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    rng = random.Random(seed)
    loaded = []
    for i in range(count):
        bit = rng.randrange(header_end * 8)
        mutated = bytearray(data)
        mutated[bit // 8] ^= 1 << (bit % 8)
        dst.write_bytes(bytes(mutated))
        try:
            load_export(dst)
        except CheckpointError:
            continue
        loaded.append(i)
    return loaded


def test_every_header_bit_flip_is_refused(export_path: Path, tmp_path: Path) -> None:
    """Version 3's checksum covers the metadata: 30 random header bit flips, 30 refusals (format 2 let
    metadata flips through: direction descriptions and their edit-success figures changed silently)."""
    assert _flip_header_bits(export_path, tmp_path / "flip.safetensors", 30, seed=21) == []


def test_a_version_downgrade_cannot_skip_the_checksum(export_path: Path, tmp_path: Path) -> None:
    _, meta = _tensors_and_meta(export_path)
    _refused(_rewrite(export_path, tmp_path / "as-v2.safetensors", meta=meta | {"format_version": "2"}), "checksum")
    _refused(_rewrite(export_path, tmp_path / "as-v1.safetensors", meta=meta | {"format_version": "1"}), "never had")


def test_version_2_files_still_load(export_path: Path, tmp_path: Path) -> None:
    tensors, meta = _tensors_and_meta(export_path)
    v2 = meta | {"format_version": "2", "content_sha256": content_sha256(tensors)}  # tensors only
    export = load_export(_rewrite(export_path, tmp_path / "v2.safetensors", meta=v2))
    assert export.info.format_version == "2" and export.info.config == TINY
    _refused(_rewrite(export_path, tmp_path / "v2-bad.safetensors", meta=v2 | {"content_sha256": "0" * 64}), "checksum")


def test_upgrade_keeps_tensors_and_metadata_and_seals_both(export_path: Path, tmp_path: Path) -> None:
    tensors, meta = _tensors_and_meta(export_path)
    v2 = _rewrite(
        export_path,
        tmp_path / "v2.safetensors",
        meta=meta | {"format_version": "2", "content_sha256": content_sha256(tensors)},
    )
    upgrade_export(v2, tmp_path / "v3.safetensors")
    new_tensors, new_meta = _tensors_and_meta(tmp_path / "v3.safetensors")
    assert new_meta == meta and new_tensors.keys() == tensors.keys()
    assert all(torch.equal(new_tensors[k], tensors[k]) for k in tensors)
    _refused(_rewrite(export_path, tmp_path / "v2-bad.safetensors", meta=meta | {"format_version": "2"}), "checksum")
    with pytest.raises(CheckpointError):
        upgrade_export(tmp_path / "v2-bad.safetensors", tmp_path / "never.safetensors")
