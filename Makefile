# balerc: `make demo` and `make test` each create their own virtual environment.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: this exact version is the CPU wheel; anything else pulls a CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[train,bench,parquet,plot,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/balerc demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/compare_table.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
