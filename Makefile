# One command to set up and run the main job (`make demo`), one for the tests (`make test`).
# Both use the virtual environment .venv. `make demo` installs only what the demo needs (PyTorch
# and the `lab` extra); `make test` installs everything (every extra), on top of what `make demo`
# installed. Two stamp files in .venv record what is installed, so `make demo` then `make test`
# installs only the rest, and `make test` then `make demo` installs nothing.
# TORCH picks the PyTorch build: the default takes the CPU wheel this machine has on disk; on a
# GPU machine use e.g. `make demo TORCH=torch`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.preheat-demo
TEST_STAMP := $(VENV)/.preheat-test
EXTRAS := plot,lab,test,huggingface,lightning,jax,keras,logging,ray,peers

.PHONY: demo test figures clean

# PyTorch and the lab extra: what `preheat compare` needs.
$(DEMO_STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[lab]"
	touch $@

# Everything else: the test tools and every integration and peer the suite exercises.
$(TEST_STAMP): $(DEMO_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

demo: $(DEMO_STAMP)
	$(BIN)/preheat compare --quick
	@echo "preheat is installed in $(VENV): run 'source $(VENV)/bin/activate' to call 'preheat', or call '$(BIN)/preheat'"

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

figures: $(DEMO_STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash docs/make_figures.sh

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
