"""Import of a pytorch/examples / PyTorch-tutorial netG state_dict."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from models import CheckpointError, DCGANConfig, load_generator
from models.convert import convert, main
from models.sampling import render


class TutorialGenerator(nn.Module):
    """Copied from the PyTorch DCGAN tutorial (nz=100, ngf=64, nc=3), independent of our code."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


@pytest.fixture
def tutorial_pth(tmp_path: Path) -> tuple[TutorialGenerator, Path]:
    torch.manual_seed(0)
    net = TutorialGenerator()
    net.train()
    net(torch.randn(16, 100, 1, 1))  # non-trivial BN running stats
    net.eval()
    path = tmp_path / "netG_epoch_24.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_converts_and_matches_the_tutorial_model(tutorial_pth, tmp_path: Path) -> None:
    net, src = tutorial_pth
    dst = tmp_path / "out.safetensors"
    assert main([str(src), str(dst)]) == 0
    g, info = load_generator(dst, "cpu")
    assert info.config == DCGANConfig()
    assert info.provenance["dataset"] == "imported:netG_epoch_24.pth"
    z = torch.randn(8, 100)
    with torch.inference_mode():
        assert torch.equal(g(z), net(z[:, :, None, None]))
    assert render(g, z).shape == (8, 64, 64, 3)


def test_dataparallel_prefix_is_stripped(tutorial_pth, tmp_path: Path) -> None:
    net, _ = tutorial_pth
    src = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, src)
    assert convert(src, tmp_path / "dp.safetensors") == DCGANConfig()


class _Payload:
    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def test_malicious_pickle_never_runs(tmp_path: Path, capsys) -> None:
    canary = tmp_path / "canary"
    src = tmp_path / "evil.pth"
    torch.save({"main.0.weight": _Payload(canary)}, src)
    assert main([str(src), str(tmp_path / "out.safetensors")]) == 1
    assert "refused" in capsys.readouterr().err
    raw = tmp_path / "raw.pth"
    raw.write_bytes(pickle.dumps(_Payload(canary)))
    with pytest.raises(CheckpointError, match="refused"):
        convert(raw, tmp_path / "out.safetensors")
    assert not canary.exists()
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ([torch.zeros(1)], "expected a dict"),
        ({"main.0.weight": [1, 2]}, "expected a dict"),
        ({"fc.weight": torch.zeros(2, 2)}, "unexpected key 'fc.weight'"),
        ({"main.0.weight": torch.zeros(100, 512, 4, 4)}, "conv layers"),
    ],
)
def test_non_state_dicts_are_refused(tmp_path: Path, obj: object, match: str) -> None:
    src = tmp_path / "x.pth"
    torch.save(obj, src)
    with pytest.raises(CheckpointError, match=match):
        convert(src, tmp_path / "out.safetensors")
