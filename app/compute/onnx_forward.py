"""``DCGAN_RUNTIME=onnxruntime``: the generator's fp32 forward in ONNX Runtime instead of PyTorch.

Why: on the CPU, ONNX Runtime's MLAS convolutions run this generator 1.5-1.7x faster than oneDNN's
transposed convolutions in one thread (docs/benchmarks/README.md, ``bench.runtimes``), and the forward
is most of a face's CPU.

Why opt-in, with its own model id (``-ort``): its float sums are ordered differently, so about one
channel value in 10^5 lands one level away from PyTorch's. Within the runtime the serving contract
holds as it does for PyTorch: rows are padded to a multiple of 8 (``models.sampling``), and a seed
gives the same bytes whatever batch it shares and wherever it sits (tests/app/test_onnx_forward.py).

The graph is made at load time by PyTorch's own exporter (``torch.onnx.export``, the ``torch.export``
path) from the generator that ``models.load_export`` verified, and handed to ONNX Runtime in memory:
no file is written, and no ONNX file is ever read from outside.
"""

from __future__ import annotations

import logging
import time

import torch

from models import Generator
from models.checkpoint import RUNTIME_SUFFIXES
from models.sampling import pad_rows, to_uint8

log = logging.getLogger("app.onnx_forward")
RUNTIMES = tuple(RUNTIME_SUFFIXES)  # ("torch", "onnxruntime"): the model id owns the list
OPSET = 18


class OnnxUnavailable(RuntimeError):
    """The runtime cannot be used here (package missing, or a device/precision it does not run)."""


def check_runtime(runtime: str, device: torch.device, precision: str) -> None:
    """Raise ``OnnxUnavailable`` naming the setting when ``runtime`` cannot serve on ``device`` in ``precision``."""
    if runtime not in RUNTIMES:
        raise OnnxUnavailable(f"DCGAN_RUNTIME must be one of {RUNTIMES}, got {runtime!r}")
    if runtime == "torch":
        return
    if device.type != "cpu":
        raise OnnxUnavailable(
            f"DCGAN_RUNTIME=onnxruntime runs on the CPU only, and the device is {device} "
            "(set DCGAN_DEVICE=cpu, or DCGAN_RUNTIME=torch on a GPU)"
        )
    if precision != "fp32":
        raise OnnxUnavailable(
            f"DCGAN_RUNTIME=onnxruntime runs fp32 only, and DCGAN_PRECISION={precision} (pick one of the two speed-ups)"
        )
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise OnnxUnavailable(f"DCGAN_RUNTIME=onnxruntime: the onnxruntime package is not installed ({e})") from None


class OnnxForward:
    """``render(z, rows)``: what ``models.sampling.render`` does, with G(z) run by an ONNX Runtime session.

    One session, shared by every forward worker (``InferenceSession.run`` is thread-safe and releases
    the GIL), each run in the calling thread: one intra-op thread, no spinning, as PyTorch's forwards."""

    def __init__(self, generator: Generator) -> None:
        import onnxruntime as ort

        start = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # the caller's thread: forwards run side by side in the workers
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only
        self._session = ort.InferenceSession(_onnx_bytes(generator), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        log.info("onnxruntime %s session ready in %.1f s", ort.__version__, time.perf_counter() - start)

    @torch.inference_mode()
    def render(self, z: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Latents (N, nz) float32 -> images (N, H, W, C) uint8, rows padded as ``models.sampling.render``."""
        z_rows = pad_rows(z, rows).float().contiguous()  # (rows, nz)
        (images,) = self._session.run(None, {self._input: z_rows.numpy()})  # (rows, C, H, W) float32
        return to_uint8(torch.from_numpy(images[: z.shape[0]]))


def _onnx_bytes(generator: Generator) -> bytes:
    """The eval-mode fp32 generator as an ONNX model (serialized protobuf), batch dimension dynamic."""
    if generator.training:
        raise RuntimeError("the ONNX graph needs an eval-mode generator (train-mode BatchNorm mixes the batch)")
    for name in ("onnxscript", "onnx_ir"):  # the exporter's optimiser logs each pass at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    example = torch.zeros(8, generator.config.nz)  # (8, nz)
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    program = torch.onnx.export(
        generator, (example,), dynamo=True, dynamic_shapes=({0: batch},), opset_version=OPSET,
        input_names=["z"], output_names=["images"], verbose=False, report=False,
    )  # fmt: skip
    if program is None:  # only when given a file to write
        raise RuntimeError("torch.onnx.export returned no program")
    return bytes(program.model_proto.SerializeToString())
