# Two entry points: `make demo` (set up, then stylise the bundled sample) and `make test`.
# `make mutation` (not part of `make test`): inject the curated bugs of tests/mutation/ and check the tests catch them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test mutation install clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nst-video samples/video/cockatoo.mp4 --model weights/mosaic.onnx -o out/cockatoo_mosaic.mp4 --force

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

mutation: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python tests/mutation/run.py

clean:
	rm -rf $(VENV) out build *.egg-info
