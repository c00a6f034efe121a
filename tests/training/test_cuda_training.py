"""The CUDA training path: each flag- and policy-setting function on the CPU with CUDA's presence
simulated, the foreach EMA against the loop it replaced, DDP's D all-reduces counted over an
in-process gloo group, and, marked ``cuda``, real steps on a GPU (`make gpu-check`)."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel

from models.dcgan import Generator
from training import distributed, loop, steps
from training.config import TrainConfig
from training.device_checks import check_options
from training.distributed import SLOW_TIMEOUT, STEP_TIMEOUT, Dist
from training.state import _rng_tensors, load_state, restore_rng

CPU, GPU = torch.device("cpu"), torch.device("cuda", 1)


@torch.no_grad()
def ema_loop(ema: torch.nn.Module, model: torch.nn.Module, beta: float) -> None:
    """The EMA update before the foreach one, kept here as the reference."""
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.lerp_(p, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


@pytest.mark.parametrize("channels_last", [False, True])
def test_foreach_ema_gives_the_loops_numbers(tiny_config: Callable[..., TrainConfig], channels_last: bool) -> None:
    torch.manual_seed(0)
    model = Generator(tiny_config().model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    by_loop, by_foreach = copy.deepcopy(model), copy.deepcopy(model)
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            for b in model.buffers():
                b.add_(1)
        beta = steps.ema_beta(0.999, step)
        ema_loop(by_loop, model, beta)
        steps.ema_update(by_foreach, model, beta)
    for (name, a), b in zip(by_loop.state_dict().items(), by_foreach.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_initial_weights_are_drawn_on_the_cpu_whatever_the_device(
    tiny_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Built for the meta device (a stand-in for a GPU: no values), the weights were drawn on the CPU
    and were exactly those of a CPU build with the same seed, before they moved."""
    config = tiny_config()
    on_cpu = steps.build_nets(config, CPU, Dist())
    drawn: list[dict[str, torch.Tensor]] = []
    original_to = torch.nn.Module.to

    def to(module: torch.nn.Module, *args: Any, **kwargs: Any) -> torch.nn.Module:
        if args and args[0] == torch.device("meta"):  # the move to the device: record what moves
            assert all(p.device == CPU for p in module.parameters())
            drawn.append({k: v.clone() for k, v in module.state_dict().items()})
        return original_to(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    on_meta = steps.build_nets(config, torch.device("meta"), Dist())
    assert next(on_meta.G.parameters()).is_meta and len(drawn) == 2
    for net, weights in zip((on_cpu.G, on_cpu.D), drawn, strict=True):
        assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())


def test_upload_pins_and_does_not_block_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda t: calls.append(("pin",)) or t)
    monkeypatch.setattr(torch.Tensor, "to", lambda t, *a, **k: calls.append(("to", *a, k)) or t)
    z = torch.zeros(4, 16)
    steps.upload(z, GPU)
    assert calls == [("pin",), ("to", GPU, {"non_blocking": True})]
    calls.clear()
    steps.upload(z, GPU, pinned=False)  # the gpu_check baseline: a blocking copy
    assert calls == [("to", GPU, {})]
    calls.clear()
    assert steps.upload(z, CPU) is z and calls == []  # the CPU's maths and bits are untouched


def test_options_are_checked_against_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ValueError, match=r"--compile: .* C compiler .*install gcc"):
        check_options(amp=False, compile=True, sync_bn=False, device=GPU)
    with pytest.raises(ValueError, match=r"--compile: .* C\+\+ compiler"):
        check_options(amp=False, compile=True, sync_bn=False, device=CPU)
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}" if name == "gcc" else None)
    check_options(amp=False, compile=True, sync_bn=False, device=GPU)  # Triton finds gcc
    with pytest.raises(ValueError, match="--sync-bn: SyncBatchNorm needs CUDA"):
        check_options(amp=False, compile=False, sync_bn=True, device=CPU)
    check_options(amp=False, compile=False, sync_bn=True, device=GPU)


@pytest.mark.parametrize(("capability", "warns"), [((7, 5), True), ((8, 0), False), ((9, 0), False)])
def test_amp_below_sm80_warns(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], warns: bool) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_options(amp=True, compile=False, sync_bn=False, device=GPU)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert bool(messages) == warns
    if warns:
        assert "--amp" in messages[0] and "sm 7.5" in messages[0] and "emulated" in messages[0]


def test_each_rank_saves_and_restores_its_own_cuda_rng(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    states = [torch.full((16,), r, dtype=torch.uint8) for r in range(2)]
    loop_state = torch.Generator().get_state()
    tensors = _rng_tensors([loop_state] * 2, states)
    assert torch.equal(tensors["rng.cuda.1"], states[1]) and "rng.cuda.2" not in tensors
    assert not any(k.startswith("rng.cuda") for k in _rng_tensors([loop_state], []))
    restored: list[tuple[torch.Tensor, torch.device]] = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device)))
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    state = loop.TrainState(TrainConfig(dataset="synthetic"), {"step": 1}, tensors)
    assert restore_rng(state, torch.Generator(), 1, GPU)
    assert len(restored) == 1 and torch.equal(restored[0][0], states[1]) and restored[0][1] == GPU
    restore_rng(state, torch.Generator(), 1, CPU)  # a CPU continuation leaves CUDA alone
    assert len(restored) == 1


def test_torchrun_on_cuda_sets_timeouts_device_id_and_a_cpu_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(("init", kw)))
    monkeypatch.setattr(dist, "new_group", lambda **kw: calls.append(("group", kw)) or "gloo-group")
    info, device = distributed.init_distributed("cuda")
    assert device == GPU and (info.rank, info.world, info.local_rank) == (3, 4, 1)
    assert calls == [
        ("init", {"backend": "nccl", "timeout": STEP_TIMEOUT, "device_id": GPU}),
        ("group", {"backend": "gloo", "timeout": SLOW_TIMEOUT}),
    ]
    calls.clear()
    assert distributed.init_distributed("cpu")[1] == CPU  # gloo for the steps too, with the same two timeouts
    assert calls == [
        ("init", {"backend": "gloo", "timeout": STEP_TIMEOUT, "device_id": None}),
        ("group", {"backend": "gloo", "timeout": SLOW_TIMEOUT}),
    ]
    waited: list[object] = []
    monkeypatch.setattr(dist, "barrier", lambda group=None: waited.append(group))
    distributed.barrier(info)
    assert waited == ["gloo-group"]  # never an NCCL barrier for the data phase or the export


@pytest.mark.parametrize(("local_rank", "order"), [(0, ["load", "barrier"]), (1, ["barrier", "load"])])
def test_one_rank_per_node_decodes_while_the_others_wait(
    monkeypatch: pytest.MonkeyPatch, local_rank: int, order: list[str]
) -> None:
    events: list[str] = []
    monkeypatch.setattr(loop, "load_images", lambda config: events.append("load") or "images")
    monkeypatch.setattr(loop, "barrier", lambda info: events.append("barrier"))
    config = TrainConfig(dataset="synthetic")
    assert loop._load_data(config, Dist(rank=8 + local_rank, world=16, local_rank=local_rank)) == "images"
    assert events == order  # rank 8 is node 1's first: it decodes although it is not rank 0


def test_the_host_copy_is_released_after_the_upload() -> None:
    data = loop.ImageSet(torch.zeros(64, 3, 8, 8, dtype=torch.uint8), "synthetic", "hash")
    emptied = loop.without_pixels(data)
    assert emptied.images.shape == (0, 3, 8, 8) and emptied.images.untyped_storage().nbytes() == 0
    assert emptied.name == data.name and emptied.content_hash == data.content_hash  # the log and export still say


@pytest.fixture
def gloo_world_of_one() -> Iterator[None]:
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.usefixtures("gloo_world_of_one")
def test_ddp_all_reduces_ds_gradients_once_per_step(tiny_config: Callable[..., TrainConfig]) -> None:
    """Before: after the real half, the fake half and the G step (three); now once, after the fake half."""
    config = tiny_config()
    nets = steps.build_nets(config, CPU, Dist())
    reference = copy.deepcopy(nets)
    ddp_d = DistributedDataParallel(nets.D)
    reduced: list[int] = []

    def counting(state, bucket):  # type: ignore[no-untyped-def]  # DDP refuses hooks whose annotations are strings
        reduced.append(bucket.index())
        future: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        future.set_result(bucket.buffer())
        return future

    ddp_d.register_comm_hook(None, counting)
    nets.D_fwd = ddp_d
    torch.manual_seed(1)
    real, z = torch.rand(8, 3, 32, 32) * 2 - 1, torch.randn(8, config.nz)
    amp = steps.autocast(config, CPU)
    _, _, _, fake = steps.d_step(nets, real, z, amp)
    assert len(reduced) == 1  # one bucket, one all-reduce for real + fake
    steps.g_step(nets, fake, amp)
    assert len(reduced) == 1  # the G step's D gradients stay local: zero_grad drops them
    steps.d_step(reference, real, z, amp)
    for a, b in zip(nets.D.parameters(), reference.D.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)  # same update as without DDP (one rank: the mean is the sum)


# ---- on a GPU (`make gpu-check`) --------------------------------------------------------------------


@pytest.mark.cuda
def test_cuda_and_cpu_start_from_the_same_weights(tiny_config: Callable[..., TrainConfig]) -> None:
    config = tiny_config()
    on_cpu, on_gpu = steps.build_nets(config, CPU, Dist()), steps.build_nets(config, torch.device("cuda"), Dist())
    for a, b in zip(on_cpu.G.state_dict().values(), on_gpu.G.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu())


@pytest.mark.cuda
def test_cuda_foreach_ema_gives_the_loops_numbers(tiny_config: Callable[..., TrainConfig]) -> None:
    torch.manual_seed(0)
    model = Generator(tiny_config().model).cuda()
    by_loop, by_foreach = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema_loop(by_loop, model, 0.9)
    steps.ema_update(by_foreach, model, 0.9)
    pairs = zip(by_loop.state_dict().values(), by_foreach.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


@pytest.mark.cuda
@pytest.mark.filterwarnings("ignore:TensorFloat32 tensor cores:UserWarning")  # inductor's hint; fp32 matmuls by choice
@pytest.mark.filterwarnings("ignore:--amp. this GPU:RuntimeWarning")  # pre-Ampere: tested above
def test_cuda_five_steps_with_amp_channels_last_and_compile(tiny_config: Callable[..., TrainConfig]) -> None:
    config = tiny_config(steps=5, device="cuda", amp=True, channels_last=True, compile=True)
    trainer = loop.train(config, Dist(), torch.device("cuda"))
    assert trainer.step == 5 and trainer.images.is_cuda and trainer.data.images.numel() == 0  # host copy freed
    assert torch.backends.cudnn.benchmark
    assert all(math.isfinite(v) for p in trainer.nets.G.parameters() for v in (p.float().sum().item(),))
    assert (Path(config.out) / "generator.safetensors").is_file()


@pytest.mark.cuda
def test_cuda_resume_round_trip(tiny_config: Callable[..., TrainConfig]) -> None:
    """Stopped after 3 steps and resumed: the nets, optimizers, step and both RNGs are the saved ones. (Not
    a bit-exact replay of an uninterrupted run: cudnn.benchmark may pick a different algorithm per process.)"""
    device = torch.device("cuda")
    first = loop.train(tiny_config(steps=3, device="cuda"), Dist(), device)
    saved = load_file(Path(first.config.out) / "state.safetensors")
    assert "rng.cuda.0" in saved
    torch.cuda.manual_seed(12345)  # disturb it: the resume must put it back
    resumed = loop.Trainer(tiny_config(steps=6, device="cuda", resume=True), Dist(), device)
    assert resumed.step == 3 and torch.equal(torch.cuda.get_rng_state(device), saved["rng.cuda.0"])
    assert torch.equal(resumed.loop_rng.get_state(), saved["rng.loop.0"])
    for name, value in resumed.nets.G.state_dict().items():
        assert torch.equal(value.cpu(), saved[f"G.{name}"]), name
    resumed.run()
    assert load_state(Path(first.config.out)).step == 6


def test_sync_bn_swaps_batchnorm_in_place_and_keeps_the_state_dict(tiny_config: Callable[..., TrainConfig]) -> None:
    """--sync-bn under torchrun: the trained G's BatchNorms become SyncBatchNorm (same keys, so the training
    state and the export are unchanged); the EMA copy, which is exported, keeps plain BatchNorm. (DDP itself
    takes SyncBatchNorm on GPU modules only: the wrapping runs in `make gpu-check`'s world of one.)"""
    nets = steps.build_nets(tiny_config(), CPU, Dist())
    keys = list(nets.G.state_dict())
    assert distributed.sync_batchnorm(nets.G) is nets.G
    norms = [m for m in nets.G.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) for m in norms)
    assert list(nets.G.state_dict()) == keys
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in nets.G_ema.modules())


@pytest.mark.cuda
def test_cuda_sync_bn_trains_under_ddp(tiny_config: Callable[..., TrainConfig]) -> None:
    """A world of one over nccl: the SyncBatchNorm G wrapped by DDP runs a forward and backward."""
    dist.init_process_group("nccl", store=dist.HashStore(), rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        device = torch.device("cuda", 0)
        nets = steps.build_nets(tiny_config(), device, Dist())
        wrapped = distributed.wrap(nets.G, Dist(world=2), device, sync_bn=True)
        wrapped(torch.randn(8, nets.G.config.nz, device=device)).mean().backward()
        assert all(p.grad is not None for p in nets.G.parameters())
    finally:
        dist.destroy_process_group()
