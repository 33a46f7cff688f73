# Fresh machine: `make train` or `make test` create the virtualenv and install on first use;
# `make train` also downloads the config's dataset into ./data when it is not there yet (not when ARGS
# set --data.* options: then the data is yours to point at).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
CONFIG ?= configs/music_genre.yaml
EXTRAS ?= dev,export,download,spark,tune,bench
# pytest-xdist processes of make test / test-fast (WORKERS=0: one process, the tests in file order); worksteal: a
# worker that has finished takes queued tests from the other, instead of idling beside a long tail. One torch thread
# per test process unless OMP_NUM_THREADS says otherwise: the processes already share the cores, and OpenMP threads
# spin-waiting beside them only slow them down
WORKERS ?= 2
XDIST = -n $(WORKERS) --dist worksteal
TEST_ENV = OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1}

.PHONY: install train test test-fast lint results clean

$(VENV)/.installed-$(EXTRAS): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0  # CPU build first; an unpinned torch would pull a CUDA build
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed-$(EXTRAS)

train: install  ## get the config's dataset if training would not find it (verified), then train + test
	$(if $(findstring --data.,$(ARGS)),,$(VENV)/bin/genre-torch data download --config $(CONFIG) --if_missing)
	$(VENV)/bin/genre-torch fit --config $(CONFIG) $(ARGS)

test: install  ## lint + the whole test suite (slow and real-data tests included)
	$(VENV)/bin/ruff check genre_torch tests scripts docs
	$(VENV)/bin/ruff format --check genre_torch tests scripts docs
	$(TEST_ENV) $(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-fast: install  ## the loop while editing: lint + the tests not marked slow or real_data
	$(VENV)/bin/ruff check genre_torch tests scripts docs
	$(VENV)/bin/ruff format --check genre_torch tests scripts docs
	$(TEST_ENV) $(PY) -m pytest -q $(XDIST) -m "not slow and not real_data" $(PYTEST_ARGS)

results: install  ## the README results table (3 seeds per dataset)
	$(PY) scripts/results.py

clean:
	rm -rf runs checkpoints/*/ .pytest_cache
