# The two commands a newcomer needs: `make serve` and `make test`.
# Both create ./.venv on first use (Python >= 3.11) and install the project into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# `make serve PORT=8001 HOST=0.0.0.0`; PORT may also come from the environment (HOST may not:
# some shells export HOST as the machine's name)
PORT ?= 8000
HOST = 127.0.0.1
WAIT_S ?= 300

.PHONY: serve wait test lint typecheck openapi bench demo clean

$(BIN)/kap-outcomes: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

serve: $(BIN)/kap-outcomes
	$(BIN)/kap-outcomes serve --host $(HOST) --port $(PORT)

# Until `make serve` answers /readyz (schema migrated, database up). Needs no .venv, so it also
# waits through the first `make serve &` building one; gives up after WAIT_S seconds.
wait:
	@echo "waiting for http://$(HOST):$(PORT)/readyz (up to $(WAIT_S) s) ..."
	@i=0; until curl -fsS -o /dev/null --max-time 2 "http://$(HOST):$(PORT)/readyz" 2>/dev/null; do \
	  i=$$((i + 1)); [ $$i -lt $(WAIT_S) ] || { echo "not ready after $(WAIT_S) s"; exit 1; }; \
	  sleep 1; \
	done; echo "ready: http://$(HOST):$(PORT)"

# A synthetic clinic of 40 patients in the database `make serve` uses; prints a sign-in link
# to the dashboard as its last line (`make demo ORG=other SEED=3`)
ORG ?= demo
SEED ?= 12
demo: $(BIN)/kap-outcomes
	$(BIN)/kap-outcomes demo --org $(ORG) --seed $(SEED)

test: $(BIN)/kap-outcomes
	$(BIN)/pytest

lint: $(BIN)/kap-outcomes
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/kap-outcomes
	$(BIN)/mypy

openapi: $(BIN)/kap-outcomes
	$(BIN)/kap-outcomes openapi

bench: $(BIN)/kap-outcomes
	$(BIN)/python -m bench.ingest

clean:
	rm -rf $(VENV) build dist *.egg-info
