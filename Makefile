# One command to set up and run the main job (`make demo`), one for the tests (`make test`).
# Each makes its own virtual environment in .venv. TORCH picks the PyTorch build: the default
# takes the CPU wheel this machine has on disk; on a GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.preheat-installed

.PHONY: demo test figures clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[plot,lab,test,huggingface,lightning,jax,keras,logging,ray,peers]"
	touch $@

demo: $(STAMP)
	$(BIN)/preheat compare --quick

test: $(STAMP)
	$(BIN)/python -m pytest -q

figures: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash docs/make_figures.sh

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
