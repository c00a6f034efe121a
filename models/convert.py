"""Import a pytorch/examples ``dcgan/main.py`` or PyTorch-tutorial ``netG`` state_dict.

    python -m models.convert netG_epoch_24.pth out.safetensors

The ``.pth`` is read with ``torch.load(..., weights_only=True)``: a pickle that carries code or
anything but a plain ``{name: tensor}`` dict is refused before any of it runs. Sizes (nz, ngf,
nc, image size) are read off the tensor shapes, so any tutorial-layout generator converts.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
import warnings
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, Provenance, code_version, save_generator
from models.config import IMAGE_SIZES, DCGANConfig
from models.dcgan import Generator

_KEY = re.compile(r"^main\.\d+\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a plain tensor state_dict without executing pickled code; strip DataParallel prefixes."""
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols; we refuse or accept anyway
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: refused: not a plain tensor state_dict ({first})") from None
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: refused: expected a dict of name -> tensor, got {type(obj).__name__}")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    bad = [k for k in state if not _KEY.match(k)]
    if bad:
        raise CheckpointError(f"{path}: not a tutorial DCGAN generator state_dict (unexpected key {bad[0]!r})")
    return state


def infer_config(state: dict[str, torch.Tensor], path: Path) -> DCGANConfig:
    """Read nz, ngf, nc and image size off the ConvTranspose weight shapes."""
    convs = sorted((int(k.split(".")[1]), v) for k, v in state.items() if k.endswith(".weight") and v.dim() == 4)
    if len(convs) < 2:
        raise CheckpointError(f"{path}: not a DCGAN generator (found {len(convs)} conv layers)")
    first, last = convs[0][1], convs[-1][1]  # (nz, ngf*2^k, 4, 4), (ngf, nc, 4, 4)
    size = 4 * 2 ** (len(convs) - 1)
    if size not in IMAGE_SIZES:
        raise CheckpointError(f"{path}: {len(convs)} conv layers give {size}x{size}, unsupported")
    try:
        return DCGANConfig(nz=first.shape[0], ngf=last.shape[0], channels=last.shape[1], image_size=size)
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None


def convert(src: Path, dst: Path) -> DCGANConfig:
    state = read_state_dict(src)
    config = infer_config(state, src)
    generator = Generator(config)
    expected = generator.state_dict()
    for name, tensor in expected.items():
        if name not in state:
            raise CheckpointError(f"{src}: missing tensor {name!r} for {config}")
        if state[name].shape != tensor.shape:
            got, want = list(state[name].shape), list(tensor.shape)
            raise CheckpointError(f"{src}: tensor {name!r} has shape {got}, expected {want}")
    generator.load_state_dict(state, strict=True)
    provenance = Provenance(dataset=f"imported:{src.name}", code_version=code_version())
    save_generator(generator, dst, provenance)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="netG .pth state_dict (pytorch/examples or tutorial)")
    parser.add_argument("dst", type=Path, help="output .safetensors generator export")
    args = parser.parse_args(argv)
    try:
        config = convert(args.src, args.dst)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.dst} ({config})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
