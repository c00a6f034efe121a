# The two fresh-machine commands: `make serve` and `make test`. Each creates or updates the
# virtual environment from pyproject.toml first (torch + torchvision come from PyPI).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: venv test lint serve train-demo demo-rebuild demo-directions demo-quality train-demo-lfw bench-serve bench-train compose-smoke gpu-check clean

PYTHON ?= python3
CONSTRAINTS := -c deploy/constraints.txt -c deploy/constraints-dev.txt  # the tested versions (the image: the first)

# A venv that cannot be made leaves nothing behind: a half-made .venv would pass `test -x` next time.
$(STAMP): pyproject.toml deploy/constraints.txt deploy/constraints-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make: dcgan-faces needs Python >= 3.11; $(PYTHON) is $$($(PYTHON) --version 2>&1)" >&2; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
		echo "make: $(PYTHON) cannot create virtual environments (no venv/ensurepip module)." >&2; \
		echo "      On Debian or Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	@test -x $(PY) && $(PY) -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); } || { \
		rm -rf $(VENV); echo "make: creating $(VENV) failed (see above); nothing was left behind" >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' $(CONSTRAINTS)
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

serve: $(STAMP)
	$(PY) -m app

# Reproduces checkpoints/demo-faces-64.safetensors from CelebA's first 10,000 aligned images: trains on
# 1-9,000, holds 9,001-10,000 out for SWD. One torch thread: two threads on cores that other work
# shares spin-wait and run 2-5x slower. CELEBA is a CelebA root (holding img_align_celeba/).
# DiffAugment (--augment) for the small dataset; bf16 autocast (--amp) where the CPU has native bf16
# (DEMO_AMP= to train in fp32: the result then differs in its bits, not in its recipe otherwise).
CELEBA ?=
DEMO_RUN ?= runs/demo
DEMO := checkpoints/demo-faces-64.safetensors
CLASSIFIER := checkpoints/attributes-64.safetensors
DEMO_AMP ?= $(shell grep -qsE 'avx512_bf16|amx_bf16' /proc/cpuinfo && echo --amp)
NEED_CELEBA = @test -n "$(CELEBA)" || { echo "usage: make $@ CELEBA=<CelebA root: img_align_celeba/, list_attr_celeba.txt>" >&2; exit 2; }

train-demo: $(STAMP)
	$(NEED_CELEBA)
	OMP_NUM_THREADS=1 $(PY) -m training --dataset celeba --data $(CELEBA) --max-images 10000 --holdout 1000 \
		--image-size 64 --ngf 32 --ndf 32 --batch-size 128 --channels-last $(DEMO_AMP) \
		--augment color,translation,cutout --steps 15000 --seed 1 \
		--eval-every 1250 --snapshot-every 1250 --checkpoint-every 250 --out $(DEMO_RUN) --export $(DEMO)
	$(MAKE) demo-rebuild CELEBA=$(CELEBA)

# Everything that depends on the demo, in one command (after `make train-demo`, or a new export copied
# to $(DEMO)): its directions and encoder, the quality table, the inversion evaluation and every figure.
# Look at each figure afterwards: docs/api/arithmetic.png's exemplar seeds were picked by eye
# (scripts/docs_figures.py ARITHMETIC) and must be picked again for a new generator.
demo-rebuild: demo-directions demo-quality
	OMP_NUM_THREADS=1 $(PY) -m training.invert_eval --checkpoint $(DEMO) --celeba $(CELEBA) --images 100 --threads 1
	$(PY) scripts/docs_figures.py
	$(PY) scripts/playground_screenshot.py
	$(PY) scripts/invert_screenshot.py $(CELEBA)/img_align_celeba/009500.jpg $(CELEBA)/img_align_celeba/009600.jpg

# The attribute classifier (trained on images 1-9,000, tested on 9,001-10,000) and the demo's
# InterFaceGAN directions, written into the demo export; the edit-success table goes to docs/edits/.
# Then the demo's inversion encoder, last: it is bound to the export file's SHA-256, which the
# directions just changed (checkpoints/demo-faces-64.encoder.safetensors).
demo-directions: $(STAMP)
	$(NEED_CELEBA)
	$(PY) -m training.attributes --celeba $(CELEBA) --max-images 10000 --holdout 1000 --out $(CLASSIFIER)
	$(PY) -m training.directions --checkpoint $(DEMO) --classifier $(CLASSIFIER) --out $(DEMO) \
		--report docs/edits/edit-success.json
	OMP_NUM_THREADS=1 $(PY) -m training.encoder --checkpoint $(DEMO) --celeba $(CELEBA) $(DEMO_AMP)

# The quality table of the model card: SWD with its scale, in one run (docs/quality/demo-quality.json):
# the real-vs-real floor, an untrained generator, the run at 25/50/75 % and the demo; OLD_DEMO=PATH
# adds an earlier export (e.g. `git show cb4fa3b:checkpoints/demo-faces-64.safetensors`) to the table.
OLD_DEMO ?=
demo-quality: $(STAMP)
	$(NEED_CELEBA)
	$(PY) -m training.evaluate --run $(DEMO_RUN) --data $(CELEBA) --floor --random-init \
		--checkpoint $(OLD_DEMO) $(DEMO_RUN)/snapshots/generator-step-0003750.safetensors \
		$(DEMO_RUN)/snapshots/generator-step-0007500.safetensors \
		$(DEMO_RUN)/snapshots/generator-step-0011250.safetensors $(DEMO) --json docs/quality/demo-quality.json

# The earlier grey demo, for machines without CelebA: scikit-image's 100 LFW faces (25x25, grey).
train-demo-lfw: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m training --dataset lfw-sample --image-size 64 --ngf 32 --ndf 32 --batch-size 64 \
		--steps 3000 --seed 1 --out runs/demo-lfw --export runs/demo-lfw/demo-faces-64-lfw.safetensors

# Benchmarks (docs/benchmarks/): print ratios measured side by side in one run.
bench-serve: $(STAMP)
	$(PY) -m bench.serve

bench-train: $(STAMP)
	$(PY) -m bench.train --channels-last

# On a machine with a GPU: the cuda-marked tests, 200 training steps with and without pinned inputs, and
# the serving byte contract's cost, as one JSON report on stdout. No venv rebuild (that would need the
# internet): it runs $(PY) as it is; `make gpu-check PY=python3` uses another interpreter.
gpu-check:
	@test -x "$$(command -v $(PY))" || { echo "make: $(PY) not found (make venv, or pass PY=...)" >&2; exit 1; }
	$(PY) scripts/gpu_check.py

# Needs a working Docker engine (see README); not part of `make test`.
compose-smoke:
	bash scripts/compose_smoke.sh

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
