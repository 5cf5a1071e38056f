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
	$(BIN)/python -m pip install --quiet -e ".[plot,test,trainers]"
	touch $@

demo: $(STAMP)
	$(BIN)/preheat plot "linear_warmup(500) >> cosine_decay(9500, end=0.1)" --total 10000 --peak 3e-4
	$(BIN)/preheat plot "linear_warmup(500) >> cosine_decay(9500, end=0.1)" \
		"wsd(500, 10000, decay_fraction=0.2, shape='1-sqrt')" \
		"untuned_linear_warmup(0.999) >> cosine_decay(8001)" \
		--total 10000 --peak 3e-4 --out out/demo.png
	@echo "figure: out/demo.png"

test: $(STAMP)
	$(BIN)/python -m pytest -q

figures: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash docs/make_figures.sh

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
