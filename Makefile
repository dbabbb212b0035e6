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

# The main job: the clinic app on loopback, with a demo database filled from
# the simulator and one login per role (passwords generated now and printed).
DEMO_HOME ?= $(CURDIR)/var/demo
PORT      ?= 8501
run: $(STAMP)
	RXPREDICT_HOME=$(DEMO_HOME) $(BIN)/rxpredict demo --port $(PORT)
	RXPREDICT_HOME=$(DEMO_HOME) $(BIN)/streamlit run app/main.py --server.address 127.0.0.1 \
		--server.port $(PORT) --server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer

test: $(STAMP)
	$(BIN)/python -m pytest

dictionary: $(STAMP)
	$(BIN)/rxpredict dictionary --out docs/data-dictionary.md

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_validate.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis var
