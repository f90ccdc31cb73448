# One entry point for people and CI. `make run` serves the embedded default; `make test` runs
# lint and the whole suite against real PostgreSQL, Redis and Kafka.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
ADDR   ?= 127.0.0.1:8000

.PHONY: run test lint format proto services-up services-down services-status demo migrate clean soak

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py seed_demo

run: demo
	@echo "Serving on http://$(ADDR)/ (admin: http://$(ADDR)/admin/)"
	$(PY) manage.py runserver $(ADDR)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) scripts/import_cycles.py

format: $(VENV)/.dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Python modules for proto/*.proto, into the package `authproto/` (committed; a test checks
# they are current). -Iauthproto=proto makes generated imports read `from authproto import ...`.
# gRPC stubs only for the files that declare a service.
proto: $(VENV)/.dev
	$(PY) -m grpc_tools.protoc -Iauthproto=proto --python_out=. --pyi_out=. proto/*.proto
	$(PY) -m grpc_tools.protoc -Iauthproto=proto --grpc_python_out=. $$(grep -l '^service ' proto/*.proto)

test: lint
	scripts/test $(PYTEST_ARGS)

# The soak with faults (bench/soak, issue 16): 10 minutes of load on the whole stack (its own
# PostgreSQL, Redis and Kafka) while they restart and its processes are killed; a report of
# every guarantee. `make soak SOAK_ARGS=--short` is CI's 90-second mode (tests/ops/test_soak.py).
soak: $(VENV)/.dev
	$(PY) bench/soak/run.py $(SOAK_ARGS)

services-up:
	scripts/services start

services-down:
	scripts/services stop

services-status:
	scripts/services status

clean: services-down
	rm -rf $(VENV) var .pytest_cache .ruff_cache
