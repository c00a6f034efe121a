#!/bin/sh
# One torchrun worker: `python -m training` on the PVCs. It resumes when the run directory already holds
# state.safetensors (written atomically by rank 0 every --checkpoint-every steps), so a restarted pod or
# worker continues from the last checkpoint and never starts the run over. Extra arguments (the launcher's
# --dry-run) and TRAIN_ARGS (your options, e.g. --amp --channels-last) come last and win.
set -eu
resume=""
if [ -f "$OUT/state.safetensors" ]; then resume="--resume"; fi
# TRAIN_ARGS and resume are unquoted on purpose: each is several words or none.
# shellcheck disable=SC2086
exec python -m training --dataset celeba --data "$DATA" --out "$OUT" --cache-dir "$CACHE" \
  --export "$EXPORT" --device "${DEVICE:-cuda}" --batch-size "$BATCH_SIZE" --steps "$STEPS" \
  $resume ${TRAIN_ARGS:-} "$@"
