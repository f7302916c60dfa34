# `make demo` and `make test` each create .venv when it is missing, install the project into it, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.iadet-installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@# imagecorruptions-imaug (the corruption benchmark) wants opencv-python, which would overwrite the
	@# cv2 of opencv-contrib-python-headless; it only uses core OpenCV, so install it without deps (its
	@# others, numba included, are the project's). It installs the same files as the unmaintained
	@# imagecorruptions 1.1.2 that earlier versions used: remove that first, then (re)install it.
	@$(BIN)/python -m pip uninstall -q -y imagecorruptions 2>/dev/null || true
	$(BIN)/python -m pip install -q --no-deps --force-reinstall "imagecorruptions-imaug==1.1.5"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/iadet compare --preset finetune --methods none,ia --seeds 1 --output runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
