# Two entry points for a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install dictionary bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The main job: validate the example registry shipped with the package and
# print its derived clinical scores.
run: $(STAMP)
	$(BIN)/rxpredict validate rxpredict/data/example_registry
	$(BIN)/rxpredict scores rxpredict/data/example_registry

test: $(STAMP)
	$(BIN)/python -m pytest

dictionary: $(STAMP)
	$(BIN)/rxpredict dictionary --out docs/data-dictionary.md

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_validate.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
