# The two commands a newcomer needs: `make serve` and `make test`.
# Both create ./.venv on first use (Python >= 3.11) and install the project into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: serve test lint typecheck openapi bench clean

$(BIN)/kap-outcomes: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

serve: $(BIN)/kap-outcomes
	$(BIN)/kap-outcomes serve

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
