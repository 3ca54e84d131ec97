# Two set-up commands (README): `make demo` trains LaSSM on built-in synthetic rooms (CPU),
# `make test` runs the whole test suite. Both create .venv on first use.
PYTHON ?= python3
TORCH ?= torch==2.13.0
# Elsewhere than this project's machines PyPI's Linux torch wheel is the CUDA build (several GB); for
# the CPU build: make demo TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean-smoke

setup: $(VENV)/.installed

# The CPU build of torch is pinned first, so the package's "torch>=2.1" pulls nothing more.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)" $(TORCH_INDEX)
	$(BIN)/python -m pip install -q -e ".[notebooks,dev,spconv-cpu]"
	touch $@

demo: setup
	mkdir -p outputs
	$(BIN)/papermill --log-level WARNING notebooks/01_preprocess.ipynb outputs/01_preprocess.ipynb \
		-p room_size small -p num_rooms 80 -p raw_root data/demo_raw -p out_root data/demo
	$(BIN)/papermill --log-level WARNING notebooks/03_train.ipynb outputs/03_train.ipynb \
		-p preset demo -p epochs 25 -p batch_size 2 -p lr 0.003 -p eval_every 5
	$(BIN)/python -m lassm.train --summary outputs/demo-3

# Unit tests, then every notebook executed in smoke mode (nbval; LASSM_SMOKE=1).
test: setup
	LASSM_SMOKE=1 $(BIN)/python -m pytest -q -p no:cacheprovider --nbval-lax tests notebooks

lint: setup
	$(BIN)/ruff check lassm tests

clean-smoke:
	rm -rf outputs/smoke
