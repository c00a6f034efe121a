"""Where training reports go: a tqdm bar, ``log.jsonl`` (one JSON object per line), TensorBoard, loss.png.

Only rank 0 constructs a real ``RunLog``; the others get a disabled one that drops everything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

LOG_NAME = "log.jsonl"
SCALARS = ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2", "img_s")


class RunLog:
    def __init__(self, run_dir: Path, total: int, initial: int, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = run_dir / LOG_NAME
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)
        self.writer: Any = None
        if enabled and tensorboard:
            try:  # optional: the [train] extra installs it
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.event({"event": "warning", "message": "tensorboard is not installed; skipping tb/"})

    def event(self, record: dict[str, Any]) -> None:
        """Append one record to log.jsonl (and echo notable events above the progress bar)."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if record.get("event") not in (None, "step"):
            self.bar.write(json.dumps(record))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.event({"event": "step", "step": step, **values})
        if not self.enabled:
            return
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)
        self._board("train", step, values)

    def quality(self, step: int, values: dict[str, float]) -> None:
        """An ``eval`` record (SWD against the held-out images) in log.jsonl and under quality/ in TensorBoard."""
        self.event({"event": "eval", "step": step, **values})
        self._board("quality", step, values)

    def _board(self, group: str, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"{group}/{k}", v, step)

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / LOG_NAME
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:  # a line torn by a crash mid-append: the run resumes without it
            continue
    return records


def truncate_log(run_dir: Path, step: int) -> None:
    """Drop step records after ``step`` (logged by a run that died before its next checkpoint)."""
    records = [r for r in read_log(run_dir) if not (r.get("event") == "step" and r["step"] > step)]
    tmp = run_dir / f".{LOG_NAME}.tmp"  # atomic: a kill mid-rewrite must not lose the log
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, run_dir / LOG_NAME)


def plot_losses(run_dir: Path) -> Path | None:
    """loss.png from log.jsonl: Loss_D and Loss_G against the step (as in the tutorial's figure); None when
    there is nothing to plot or matplotlib is not installed."""
    rows = [r for r in read_log(run_dir) if r.get("event") == "step"]
    if not rows:
        return None
    try:  # the [train] extra; a run without it still ends with its export, just without the plot
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["loss_g"] for r in rows], label="G")
    ax.plot(steps, [r["loss_d"] for r in rows], label="D")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Generator and discriminator loss during training")
    ax.legend()
    path = run_dir / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
