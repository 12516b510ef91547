# `make run`: set up and run the default study.  `make test`: set up and run every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
# pytest arguments, e.g. `make test PYTEST_ARGS='-m "not slow"'`
PYTEST_ARGS ?=
# `make run`: the default study and its worker processes (one per core on a 2-core machine)
SPEC ?= mnist-mlp
WORKERS ?= 2

.PHONY: run test lint venv data clean

# The venv is rebuilt when pyproject.toml changes; the stamp records the last install.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(BIN)/.installed

$(DATA_DIR)/MNIST/raw/train-images-idx3-ubyte: | $(BIN)/.installed
	$(BIN)/hpstudy fetch mnist --data-dir $(DATA_DIR)

data: $(DATA_DIR)/MNIST/raw/train-images-idx3-ubyte

run: venv data
	$(BIN)/hpstudy run $(SPEC) --workers $(WORKERS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# MNIST too, so that the tests which read the real files run.
test: lint data
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
