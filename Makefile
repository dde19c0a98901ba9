# mmdiff: `make test` and `make fuzz` work on a fresh machine with python3, gcc and make.
# The venv is created on first use; `pip install -e` re-runs (rebuilding the Cython impl)
# whenever the packaging or an impl source changes, tracked by a stamp file.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mmdiff-installed
BUILD_INPUTS := pyproject.toml setup.py $(wildcard impl/*.pyx impl/*.pxd impl/*.pxi)

.PHONY: all test fuzz bench install clean distclean

all: test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python $(BUILD_INPUTS)
	$(BIN)/pip install -e '.[dev]'
	touch $@

install: $(STAMP)

# Unit, property and corpus tests; soak tests need `pytest --soak`.
test: $(STAMP)
	$(BIN)/pytest -q -m "not soak"

NPROC := $(shell nproc 2>/dev/null || echo 1)

# The main job: replay the corpus on both models in lockstep, then a bounded
# coverage-guided campaign (60 s, all cores) seeded from it; ends with a summary.
fuzz: $(STAMP)
	$(BIN)/mmdiff run corpus/ > .mmdiff-replay.log || { cat .mmdiff-replay.log; exit 1; }
	tail -n 1 .mmdiff-replay.log
	$(BIN)/mmdiff fuzz corpus/ --max-time 60 --jobs $(NPROC)

bench: $(STAMP)
	$(BIN)/mmdiff bench

# Build products only; `distclean` also drops the venv.
clean:
	rm -rf build mmdiff.egg-info .pytest_cache .mmdiff-work .mmdiff-replay.log impl/*.c impl/*.so impl/*.html $(STAMP)
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
