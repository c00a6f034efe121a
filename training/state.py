"""The full training state: ``<run>/state.safetensors``, its one owner. Written atomically, loaded without pickle.

Tensors: ``G.*``, ``D.*``, ``G_ema.*`` (state_dicts), ``opt_G.<param>.<key>`` and ``opt_D.…`` (Adam
moments and step counters), ``rng.loop.<rank>`` / ``rng.torch`` / ``rng.cuda.<rank>`` (RNG states as uint8
tensors). Metadata ``meta`` (JSON): format + version, the TrainConfig, step, epoch, position in the
epoch's data order, dataset name/hash and the optimizers' param_groups. This file is for
``--resume``, ``training.export`` and ``training.evaluate``; the service reads only generator exports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from models.atomic import atomic_write
from models.dcgan import Generator
from training.config import TrainConfig
from training.steps import Nets

STATE_NAME = "state.safetensors"
FORMAT_NAME = "dcgan-faces/train-state"
FORMAT_VERSION = 1
NETS = ("G", "D", "G_ema")
OPTIMIZERS = ("opt_G", "opt_D")


@dataclass(frozen=True)
class TrainState:
    config: TrainConfig
    meta: dict[str, Any]  # step, epoch, position, dataset, dataset_hash, optimizer param_groups
    tensors: dict[str, torch.Tensor]

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    def module_state(self, prefix: str) -> dict[str, torch.Tensor]:
        """``G`` / ``D`` / ``G_ema`` state_dict."""
        return {k[len(prefix) + 1 :]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}

    def optimizer_state(self, prefix: str) -> dict[str, Any]:
        """A ``torch.optim`` state_dict rebuilt from the flat tensors and the JSON param_groups."""
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in self.tensors.items():
            if key.startswith(prefix + "."):
                index, name = key[len(prefix) + 1 :].split(".", 1)
                state.setdefault(int(index), {})[name] = value
        return {"state": state, "param_groups": self.meta["param_groups"][prefix]}

    def generator(self, ema: bool = True) -> Generator:
        """The EMA (or raw) generator as saved: train-time BatchNorm statistics, not yet recalibrated."""
        generator = Generator(self.config.model)
        generator.load_state_dict(self.module_state("G_ema" if ema else "G"))
        return generator

    def restore(self, nets: Nets) -> None:
        """Load the networks and the optimizers (the RNG goes through ``restore_rng``)."""
        for name in NETS:
            getattr(nets, name).load_state_dict(self.module_state(name))
        for name in OPTIMIZERS:
            getattr(nets, name).load_state_dict(self.optimizer_state(name))


def _flatten_optimizer(prefix: str, state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Adam's per-parameter tensors -> ``{prefix}.{param index}.{exp_avg|exp_avg_sq|step}``."""
    out = {}
    for index, per_param in state_dict["state"].items():
        for name, value in per_param.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {prefix}.{index}.{name} is not a tensor")
            out[f"{prefix}.{index}.{name}"] = value
    return out


def _rng_tensors(loop_states: list[torch.Tensor], cuda_states: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """RNG states to save: every rank's loop generator and (CUDA runs) its own GPU's generator, by rank."""
    tensors = {f"rng.loop.{rank}": s for rank, s in enumerate(loop_states)}
    tensors["rng.torch"] = torch.get_rng_state()
    tensors |= {f"rng.cuda.{rank}": s for rank, s in enumerate(cuda_states)}
    return tensors


def restore_rng(state: TrainState, loop_rng: torch.Generator, rank: int, device: torch.device | None = None) -> bool:
    """Restore this rank's RNG states (on CUDA, its GPU's generator too); False if the run was saved with
    fewer processes than ``rank + 1`` (the loop generator then keeps its fresh seed: the continuation is
    valid but not a bit-exact replay). Files from before the per-rank CUDA states held rank 0's view of
    every GPU as ``rng.cuda.<index>``: for a one-GPU run on cuda:0 that is the same key."""
    key = f"rng.loop.{rank}"
    if key in state.tensors:
        loop_rng.set_state(state.tensors[key])
    torch.set_rng_state(state.tensors["rng.torch"])
    cuda_key = f"rng.cuda.{rank}"
    if device is not None and device.type == "cuda" and cuda_key in state.tensors:
        torch.cuda.set_rng_state(state.tensors[cuda_key], device)
    return key in state.tensors


def save_state(
    run_dir: Path,
    config: TrainConfig,
    nets: Nets,
    loop_states: list[torch.Tensor],
    meta: dict[str, Any],
    cuda_states: Sequence[torch.Tensor] = (),
) -> None:
    """Write ``run_dir/state.safetensors``: the nets, the optimizers, every rank's RNGs and ``meta``."""
    tensors = {f"{name}.{k}": v for name in NETS for k, v in getattr(nets, name).state_dict().items()}
    param_groups = {}
    for name in OPTIMIZERS:
        optimizer = getattr(nets, name).state_dict()
        tensors |= _flatten_optimizer(name, optimizer)
        param_groups[name] = optimizer["param_groups"]
    tensors |= _rng_tensors(loop_states, list(cuda_states))
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config.to_dict()}
    header |= {**meta, "param_groups": param_groups}
    atomic_write(run_dir / STATE_NAME, lambda tmp: save_file(cpu, tmp, metadata={"meta": json.dumps(header)}))


def load_state(run_dir: Path) -> TrainState:
    """Read and check ``run_dir/state.safetensors``; ValueError names the file and the problem."""
    path = run_dir / STATE_NAME
    if not path.is_file():
        raise ValueError(f"{path}: no training state to resume from (run without --resume first)")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get("meta", "{}")
        meta = json.loads(raw_meta)
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable training state ({e})") from None
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not a dcgan-faces training state (format version {FORMAT_VERSION})")
    config = TrainConfig.from_dict(meta.pop("config"))
    return TrainState(config, meta, tensors)
