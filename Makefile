# Two commands do everything on a fresh machine (Python >= 3.10 and make):
#   make lab    set up, then run the whole lab headless on the embedded local Lambda
#   make test   set up, then lint and run the test suite (what CI runs; on CI, where CI=true,
#               also `make install-check`)
#   make open   set up, then JupyterLab on your own copy of the notebooks (lab-workspace/)
# Set-up is a virtual environment in .venv with labkit installed in editable mode; it is
# redone only when pyproject.toml changes.

VENV ?= .venv
PYTHON ?= python3
PRESET ?= paper
BIN := $(VENV)/bin
STAMP := $(VENV)/.labkit-installed

# On machines without internet, point LABKIT_MNIST_ROOT at a folder holding MNIST/raw/.
# A sibling shared/data/mnist mirror (as on the project's build machines) is used if present.
LABKIT_MNIST_ROOT ?= $(wildcard $(abspath ../shared/data/mnist))
export LABKIT_MNIST_ROOT

.PHONY: setup lab open test install-check lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

lab: setup
	$(BIN)/labkit lab run --preset $(PRESET)

# The tutorial as a student meets it: JupyterLab on a workspace of copies (git ignores it).
WORKSPACE ?= lab-workspace
open: setup
	$(BIN)/labkit open $(WORKSPACE)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy labkit
	$(BIN)/python -m pytest
	$(if $(filter true,$(CI)),$(MAKE) install-check)

# As a user installs it: the wheel into a new virtual environment outside the checkout, with
# no extras, then `labkit init` and the quick lab in an empty folder (about 4 minutes; the
# environment, several GB with PyTorch, is removed when the lab passed).
INSTALL_CHECK_DIR ?= /tmp/labkit-install-check
install-check: setup
	rm -rf $(INSTALL_CHECK_DIR) && mkdir -p $(INSTALL_CHECK_DIR)
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w $(INSTALL_CHECK_DIR)/dist .
	$(PYTHON) -m venv $(INSTALL_CHECK_DIR)/env
	$(INSTALL_CHECK_DIR)/env/bin/python -m pip install --quiet $(INSTALL_CHECK_DIR)/dist/*.whl
	cd $(INSTALL_CHECK_DIR) && env/bin/labkit init lab
	cd $(INSTALL_CHECK_DIR)/lab && ../env/bin/labkit lab run --preset quick --quiet
	rm -rf $(INSTALL_CHECK_DIR)/env

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
