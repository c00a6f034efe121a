from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models import load_generator, precision
from models.dcgan import Generator
from tests.training.conftest import write_image
from training import export, steps
from training.config import TrainConfig
from training.distributed import Dist
from training.logs import read_log
from training.loop import train

CPU = torch.device("cpu")


def steps_logged(run_dir: Path) -> list[dict[str, float]]:
    """Step records without the wall-clock throughput."""
    return [{k: v for k, v in r.items() if k != "img_s"} for r in read_log(run_dir) if r.get("event") == "step"]


def test_a_few_real_steps_write_every_output(tiny_config: Callable[..., TrainConfig]) -> None:
    config = tiny_config(steps=4, sample_every=2, checkpoint_every=2, tensorboard=True, export=None)
    train(config, Dist(), CPU)
    run = Path(config.out)
    rows = steps_logged(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2"))
        assert 0 <= r["d_x"] <= 1
    assert TrainConfig.from_json((run / "config.json").read_text()) == config
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    assert (run / "loss.png").stat().st_size > 0 and any((run / "tb").iterdir())
    _, info = load_generator(run / "generator.safetensors")
    assert info.config == config.model
    assert info.provenance["dataset"] == "synthetic" and info.provenance["steps"] == 4
    assert info.provenance["ema"] is True and info.provenance["bn_recalibrated"] is True


def test_channels_last_trains(tiny_config: Callable[..., TrainConfig]) -> None:
    trainer = train(tiny_config(steps=2, channels_last=True), Dist(), CPU)
    assert all(math.isfinite(r["loss_g"]) for r in steps_logged(Path(tiny_config().out)))
    cl = torch.channels_last
    for net in (trainer.nets.G, trainer.nets.D):  # in effect, not only accepted: every conv weight is NHWC
        convs = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        assert convs and all(w.is_contiguous(memory_format=cl) and not w.is_contiguous() for w in convs)
    real = steps.real_batch(trainer.images, torch.arange(4), torch.zeros(4, dtype=torch.bool))
    fake = trainer.nets.G(torch.randn(4, trainer.config.nz))
    assert fake.is_contiguous(memory_format=cl) and not fake.is_contiguous()  # activations stay NHWC
    assert real.contiguous(memory_format=cl).is_contiguous(memory_format=cl)


def test_amp_on_a_cpu_without_native_bf16_is_refused(
    tiny_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda cpuinfo=None: frozenset({"avx2", "avx512f"}))
    with pytest.raises(ValueError, match="--amp: bf16 on the CPU needs AVX-512 BF16 or AMX"):
        train(tiny_config(steps=2, amp=True), Dist(), CPU)


@pytest.mark.skipif(not precision.cpu_bf16_support(), reason="this CPU has neither AVX-512 BF16 nor AMX")
def test_amp_with_augment_on_the_cpu_resumes_exactly(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """bf16 autocast + DiffAugment: the losses stay fp32 and finite, and --resume is still exact."""
    opts = {"amp": True, "augment": "color,translation,cutout", "channels_last": True}
    whole = train(tiny_config(steps=4, checkpoint_every=2, out=str(tmp_path / "whole"), **opts), Dist(), CPU)
    train(tiny_config(steps=2, out=str(tmp_path / "part"), **opts), Dist(), CPU)
    train(tiny_config(steps=4, out=str(tmp_path / "part"), resume=True, **opts), Dist(), CPU)
    rows = steps_logged(tmp_path / "whole")
    assert rows == steps_logged(tmp_path / "part") and all(math.isfinite(r["loss_d"]) for r in rows)
    assert all(p.dtype == torch.float32 for p in whole.nets.G.parameters())  # weights and Adam stay fp32
    _, info = load_generator(tmp_path / "whole" / "generator.safetensors")
    assert info.provenance["recipe"]["amp"] is True
    assert info.provenance["recipe"]["augment"] == "color,translation,cutout"
    assert "data" not in info.provenance["recipe"] and "out" not in info.provenance["recipe"]


def test_resume_reproduces_an_uninterrupted_run(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    whole = tiny_config(steps=6, checkpoint_every=3, out=str(tmp_path / "whole"))
    train(whole, Dist(), CPU)
    part = tiny_config(steps=3, out=str(tmp_path / "part"))
    train(part, Dist(), CPU)
    train(tiny_config(steps=6, out=str(tmp_path / "part"), resume=True), Dist(), CPU)

    assert steps_logged(tmp_path / "part") == steps_logged(tmp_path / "whole")  # exact float equality
    a, b = load_file(tmp_path / "whole" / "state.safetensors"), load_file(tmp_path / "part" / "state.safetensors")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_resume_refuses_a_different_run(tiny_config: Callable[..., TrainConfig]) -> None:
    train(tiny_config(steps=2), Dist(), CPU)
    with pytest.raises(ValueError, match="--lr"):
        train(tiny_config(steps=4, lr=1e-3, resume=True), Dist(), CPU)


def test_folder_run_logs_skipped_files(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    for i in range(8):
        write_image(tmp_path / "faces" / f"{i}.png", i)
    (tmp_path / "faces" / "bad.jpg").write_bytes(b"not a jpeg")
    config = tiny_config(dataset="folder", data=str(tmp_path / "faces"), steps=1)
    train(config, Dist(), CPU)
    (event,) = [r for r in read_log(Path(config.out)) if r.get("event") == "data"]
    assert (event["images"], event["skipped"]) == (8, 1)


def test_bn_recalibration_changes_running_stats() -> None:
    torch.manual_seed(0)
    G = Generator(TrainConfig(dataset="synthetic", image_size=32, nz=16, ngf=8).model)
    before = G.main[1].running_mean.clone()  # fresh BN: zeros
    export.recalibrate_bn(G, samples=64, batch_size=32)
    assert not G.training
    assert not torch.equal(before, G.main[1].running_mean)
    assert torch.all(G.main[1].running_var != 1.0)


def test_export_cli_from_a_run_dir(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    config = tiny_config(steps=2)
    train(config, Dist(), CPU)
    out = tmp_path / "exported.safetensors"
    assert export.main([config.out, str(out), "--bn-recal-samples", "32"]) == 0
    G, info = load_generator(out)
    state = load_file(Path(config.out) / "state.safetensors")
    assert torch.equal(G.main[0].weight, state["G_ema.main.0.weight"])  # the EMA weights, unchanged
    assert not torch.equal(G.main[1].running_mean, state["G_ema.main.1.running_mean"])  # BN recalibrated
    assert info.provenance["steps"] == 2 and info.provenance["bn_recalibrated"] is True
    assert export.main([str(tmp_path / "nothing"), str(out)]) == 1


def test_a_run_without_matplotlib_still_exports(
    tiny_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """matplotlib is the [train] extra's: without it the run ends with its export and no loss.png."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    config = tiny_config(steps=2)
    train(config, Dist(), CPU)
    assert (Path(config.out) / "generator.safetensors").is_file() and not (Path(config.out) / "loss.png").exists()
