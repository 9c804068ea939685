# bigbench — `make demo` and `make test` set up everything they need on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
TORCH_VERSION ?= 2.13.0
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test smoke lint clean

install: $(STAMP)

# Re-run the install when the dependency list changes.
$(STAMP): pyproject.toml scripts/install_torch.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	scripts/install_torch.sh $(BIN)/python $(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install  ## Train the reference CNN on the built-in digits (about 15 s on 2 CPU cores)
	$(BIN)/bigbench train configs/cnn.yaml

test: install  ## The test suite (CPU only), the smoke training run and the smoke benchmark
	$(BIN)/python -m pytest -q
	$(BIN)/bigbench train configs/smoke.yaml --device cpu --out $$(mktemp -d)/smoke
	$(BIN)/bigbench bench --device cpu --suite smoke --out $$(mktemp -d)/bench

lint: install
	$(BIN)/ruff check bigbench tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
