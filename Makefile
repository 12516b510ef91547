# `make run`: set up and run the default study.  `make test`: set up and run every check.
# `make docs`: the documentation site, into site/ (mkdocs.yml; `$(BIN)/mkdocs serve` to browse).
# Both install exactly what requirements/dev.txt names (versions and hashes): `make lock`
# rewrites it from pyproject.toml; `make test-latest` tries the newest releases instead.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
# pytest arguments, e.g. `make test PYTEST_ARGS='-m "not slow"'`
PYTEST_ARGS ?=
# How many processes `make test` spreads the tests over (pytest-xdist; 0: all in one process).
# With 2 on the 2-core machine pytest took 13-16 minutes (in one process, in the session
# before, on a machine about half as fast, 28).
TEST_PROCESSES ?= 2
PYTEST_XDIST := $(if $(filter 0,$(TEST_PROCESSES)),,-n $(TEST_PROCESSES) --dist loadgroup)
# `make run`: the default study and its worker processes (one per core on a 2-core machine)
SPEC ?= mnist-mlp
WORKERS ?= 2
LOCK := requirements/dev.txt
PIP_LOCK := requirements/pip.txt
PIP_FLAGS := --quiet --disable-pip-version-check
# Where `make test-latest` builds its throwaway environment, and requirements it adds to the
# project's ranges there (e.g. LATEST_EXTRA='optuna<6' to try a release past a ceiling)
LATEST ?= .venv-latest
LATEST_EXTRA ?=

.PHONY: run test check lint docs venv data lock test-latest clean

# The venv is refreshed when the lock changes; the stamp records the last install.
# 1. the installer itself, pinned (a new venv's pip is whatever Python shipped);
# 2. every package the lock names, each checked against its hashes;
# 3. hpstudy itself, editable, with nothing more (--no-deps: the lock has it all).
$(BIN)/.installed: $(LOCK) $(PIP_LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes -r $(PIP_LOCK)
	$(BIN)/python -m pip install $(PIP_FLAGS) --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
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

# --strict: a link to a missing page, picture or heading, a page left out of the nav, or an
# API reference that does not resolve fails the build. (NO_MKDOCS_2_WARNING: Material's banner
# about MkDocs 2.0 on every build, not a problem with these pages.)
DOCS_BUILD = NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site
docs: venv
	$(DOCS_BUILD)

# MNIST too, so that the tests which read the real files run.
test: lint docs data
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

# The lock, from pyproject.toml's ranges, with the extras `make test` uses, and the installer.
lock: venv
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	    --extra test --extra ray --extra bench --extra docs --no-emit-index-url --no-emit-find-links \
	    --output-file $(LOCK) pyproject.toml requirements/tools.in
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	    --no-emit-index-url --no-emit-find-links --output-file $(PIP_LOCK) requirements/pip.in

# The newest releases inside pyproject.toml's ranges, in a throwaway venv, through the same
# checks; $(LATEST)/resolved.txt keeps what it resolved, for the README's Development section.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(LATEST)/bin/python -m pip install $(PIP_FLAGS) --upgrade --upgrade-strategy eager \
	    -e '.[test,ray,docs]' $(LATEST_EXTRA)
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/resolved.txt
	touch $(LATEST)/bin/.installed
	$(MAKE) --no-print-directory check VENV=$(LATEST)

# The checks alone, on a venv that is there already (test-latest's).
check: data
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(DOCS_BUILD)
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(LATEST) build site *.egg-info .mypy_cache .ruff_cache .pytest_cache
