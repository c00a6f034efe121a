"""SIGKILL ``python -m training`` at random moments and check that nothing is lost.

    .venv/bin/python scripts/kill_training.py --trials 24          # the full run (a few minutes on 2 cores)
    .venv/bin/python scripts/kill_training.py --trials 4 --json f  # what tests/reliability runs

One run dir, one tiny config (synthetic data, 32 px, ngf/ndf 8, batch 8, a checkpoint every step).
Each trial starts the run (``--resume`` once a state exists) and kills it with SIGKILL, cycling
through three moments: while a checkpoint is being written (the temp file has appeared), at a
random time during training, and at a random time during start-up. After every kill:
``state.safetensors`` loads (``training.state.load_state``) and its step never goes backwards;
the next trial's log says it resumed from exactly that step. A last ``--resume`` run trains
``--final-steps`` more and its ``generator.safetensors`` loads with ``models.load_generator``.
Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models import load_generator  # noqa: E402
from training.logs import read_log  # noqa: E402
from training.state import load_state  # noqa: E402

NEVER = 10**7  # --steps of the killed runs: they never finish on their own
MODES = ("during-checkpoint-write", "random-during-training", "random-during-startup")


def command(run: Path, steps: int, resume: bool) -> list[str]:
    args = [
        sys.executable, "-m", "training", "--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "32",
        "--nz", "16", "--ngf", "8", "--ndf", "8", "--batch-size", "8", "--steps", str(steps), "--seed", "1",
        "--device", "cpu", "--log-every", "1", "--sample-every", "100000", "--checkpoint-every", "1",
        "--bn-recal-samples", "32", "--no-tensorboard", "--out", str(run), "--cache-dir", str(run.parent / "cache"),
    ]  # fmt: skip
    return [*args, "--resume"] if resume else args


def state_step(run: Path) -> int:
    """Step of the run's checkpoint (0 if none yet); raises if the file exists but does not load."""
    path = run / "state.safetensors"
    return load_state(run).step if path.exists() else 0


def kill_at(proc: subprocess.Popen[bytes], run: Path, mode: str, rng: random.Random, startup_s: float) -> bool:
    """SIGKILL ``proc`` at the moment ``mode`` names; False if it finished first."""
    deadline = time.monotonic() + 120
    if mode == "random-during-startup":
        time.sleep(rng.uniform(0.0, startup_s))
    else:
        starts, writes_to_skip, seen = _starts(run), rng.randint(0, 5), set(run.glob(".*.tmp"))
        while proc.poll() is None and time.monotonic() < deadline:
            if mode == "during-checkpoint-write" and (new := set(run.glob(".state.safetensors.*.tmp")) - seen):
                if writes_to_skip == 0:
                    break  # a checkpoint is being written right now
                writes_to_skip, seen = writes_to_skip - 1, seen | new
            if mode == "random-during-training" and _training(run, starts):
                time.sleep(rng.uniform(0.0, 2.0))
                break
            time.sleep(0.0005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _starts(run: Path) -> int:
    """How many runs have logged their start (``data`` event) in this run dir."""
    try:
        return sum(r.get("event") == "data" for r in read_log(run))
    except OSError:
        return 0


def _training(run: Path, starts_before: int) -> bool:
    """This process has started (a new ``data`` event) and logged a step since."""
    try:
        records = read_log(run)
    except OSError:
        return False
    starts = [i for i, r in enumerate(records) if r.get("event") == "data"]
    return len(starts) > starts_before and any(r.get("event") == "step" for r in records[starts[-1] :])


def resumed_from(run: Path) -> int | None:
    """``start_step`` of the last ``data`` event in the run's log."""
    events = [r for r in read_log(run) if r.get("event") == "data"]
    return int(events[-1]["start_step"]) if events else None


def trials(workdir: Path, count: int, final_steps: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    run = workdir / "run"
    log = workdir / "train.log"
    figures: dict[str, object] = {"trials": count, "killed": 0, "finished_early": 0, "by_mode": {m: 0 for m in MODES}}
    problems: list[str] = []
    startup_s, last_step, mid_write_leftovers = 3.0, 0, 0
    for i in range(count):
        mode = MODES[i % len(MODES)]
        resume, starts_before = (run / "state.safetensors").exists(), _starts(run)
        start = time.monotonic()
        with log.open("ab") as out:
            proc = subprocess.Popen(command(run, NEVER, resume), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
            killed = kill_at(proc, run, mode, rng, startup_s)
        if mode == "random-during-training" and killed:
            startup_s = max(1.0, time.monotonic() - start - 0.5)  # roughly how long imports and data take
        figures["killed"] = int(figures["killed"]) + killed  # type: ignore[call-overload]
        figures["finished_early"] = int(figures["finished_early"]) + (not killed)  # type: ignore[call-overload]
        figures["by_mode"][mode] += killed  # type: ignore[index]
        if not killed and proc.returncode != 0:
            problems.append(f"trial {i}: exited {proc.returncode} (see {log})")
        mid_write_leftovers += mode == MODES[0] and any(run.glob(".state.safetensors.*.tmp"))
        try:
            step = state_step(run)
        except ValueError as e:
            problems.append(f"trial {i} ({mode}): checkpoint does not load: {e}")
            break
        if step < last_step:
            problems.append(f"trial {i} ({mode}): checkpoint went back from step {last_step} to {step}")
        if resume and _starts(run) > starts_before:  # it got far enough to log where it resumed from
            started = resumed_from(run)
            if started != last_step:
                problems.append(f"trial {i}: resumed from step {started}, the checkpoint said {last_step}")
        last_step = step
        print(f"trial {i:2d} {mode:24} killed={killed!s:5} checkpoint step {step}", flush=True)
    steps = last_step + final_steps  # --steps may change on --resume: finish a few steps after the last kill
    final = subprocess.run(command(run, steps, (run / "state.safetensors").exists()), cwd=REPO, capture_output=True)
    if final.returncode != 0:
        problems.append(f"final --resume run exited {final.returncode}: {final.stderr.decode()[-500:]}")
    else:
        _, info = load_generator(run / "generator.safetensors", "cpu")
        figures["final_export_steps"] = info.provenance.get("steps")
        if info.provenance.get("steps") != steps:
            problems.append(f"final export says {info.provenance.get('steps')} steps, expected {steps}")
        if resumed_from(run) != last_step:
            problems.append(f"final run resumed from {resumed_from(run)}, the checkpoint said {last_step}")
    figures |= {
        "last_checkpoint_step_before_final_run": last_step,
        "kills_with_a_temp_file_left_mid_write": mid_write_leftovers,
        "temp_files_left_in_run_dir": len(list(run.glob(".*.tmp"))),
        "checkpoints_that_failed_to_load": sum("does not load" in p for p in problems),
        "problems": problems,
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--final-steps", type=int, default=20, help="steps the last run trains after the last kill")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kill-training-") as tmp:
        figures = trials(Path(tmp), args.trials, args.final_steps, args.seed)
    for key, value in figures.items():
        print(f"{key:40} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
