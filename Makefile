# Every target sets up .venv itself, so each works on a brand-new machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: test demo docs bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[dev,examples,docs]"
	touch $@

$(VENV)/.examples: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[examples]"
	touch $@

$(VENV)/.bench: pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[bench]"
	touch $@

## make test: lint, type check, the test suite (with doctests), and the docs build
test: $(VENV)/.dev
	$(PY) -m ruff check src tests examples benchmarks docs
	$(PY) -m mypy src/npnet
	$(PY) -m pytest
	$(PY) -m sphinx -W --keep-going -b html -q docs docs/_build/html

## make demo: train the Chinese-MNIST example (archive from NPNET_CHINESE_MNIST or --data);
## without the archive, the same pipeline on scikit-learn's 8x8 digits, then how to get it
demo: $(VENV)/.examples
	$(PY) examples/chinese_mnist.py $(ARGS)

## make docs: build the HTML documentation into docs/_build/html
docs: $(VENV)/.dev
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

## make bench: npnet vs PyTorch, side by side
bench: $(VENV)/.bench
	$(PY) benchmarks/bench_mlp.py
	$(PY) benchmarks/bench_cnn.py
	$(PY) benchmarks/bench_resnet.py
	$(PY) benchmarks/bench_lstm.py
	$(PY) benchmarks/bench_transformer.py

lint: $(VENV)/.dev
	$(PY) -m ruff check src tests examples benchmarks docs

clean:
	rm -rf $(VENV) build dist docs/_build .pytest_cache .ruff_cache
