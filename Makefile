# balerc: `make demo` and `make test` each create their own virtual environment.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint fuzz clean

# Decoding must give the same bits whatever SIMD paths numpy picks: the golden files and
# the CPU-independent math are re-run with numpy's AVX-512 (and AVX2) dispatch disabled.
# Names a machine lacks are ignored by numpy.
NO_AVX512 := AVX512_SPR AVX512_ICL AVX512_CNL AVX512_CLX AVX512_SKX X86_V4
NO_AVX2 := $(NO_AVX512) X86_V3 AVX2 FMA3

# ORT=gpu installs onnxruntime-gpu with the CUDA libraries (a GPU machine); never both
ORT ?= cpu
# Where torch 2.13.0 comes from: pip's configured index (a local CPU wheel on the project's
# machines); elsewhere TORCH_INDEX=https://download.pytorch.org/whl/cpu, PyPI's torch
# pulling CUDA packages
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned (the CPU wheel from the local index or TORCH_INDEX, see above)
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[$(ORT),train,bench,parquet,plot,style,dev,zarr,dask]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/balerc demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	NPY_DISABLE_CPU_FEATURES="$(NO_AVX512)" $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_golden.py tests/test_exactmath.py tests/test_sections.py::test_golden_sections_decode_bit_identically
	NPY_DISABLE_CPU_FEATURES="$(NO_AVX2)" $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_golden.py tests/test_exactmath.py tests/test_sections.py::test_golden_sections_decode_bit_identically
	$(BIN)/ruff check .

# A long fuzzing campaign over the committed corpus (the CI runs a bounded one in tests/).
FUZZ_RANDOM ?= 20000
FUZZ_STRUCTURAL ?= 6000
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.campaign --random $(FUZZ_RANDOM) --structural $(FUZZ_STRUCTURAL) --seed 1 --out fuzz-report.md

bench: $(STAMP)
	$(BIN)/python benchmarks/compare_table.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache
