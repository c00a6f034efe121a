# The two fresh-machine commands: `make serve` and `make test`. Each creates or updates the
# virtual environment from pyproject.toml first (torch + torchvision come from PyPI).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: venv test lint serve train-demo bench-serve bench-train compose-smoke clean

$(STAMP): pyproject.toml deploy/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -c deploy/constraints.txt  # the versions the Docker image installs
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

serve: $(STAMP)
	$(PY) -m app

# Reproduces checkpoints/demo-faces-64.safetensors: 29.5 min on a busy 2-core CPU. One torch
# thread, as it was trained: two threads on oversubscribed cores spin-wait and run 2-5x slower.
train-demo: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m training --dataset lfw-sample --image-size 64 --ngf 32 --ndf 32 --batch-size 64 \
		--steps 3000 --seed 1 --out runs/demo --export checkpoints/demo-faces-64.safetensors

# Benchmarks (docs/benchmarks/): print ratios measured side by side in one run.
bench-serve: $(STAMP)
	$(PY) -m bench.serve

bench-train: $(STAMP)
	$(PY) -m bench.train --channels-last

# Needs a working Docker engine (see README); not part of `make test`.
compose-smoke:
	bash scripts/compose_smoke.sh

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
