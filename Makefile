# LLM FinOps — `make run` starts the embedded product, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SIM_PORT ?= 9100

.PHONY: install run test fuzz lint format bench migrate demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py load_demo --sim-url http://127.0.0.1:$(SIM_PORT)/v1

# run_embedded loads the demo itself (fresh demo key each run), then supervises the simulator,
# uvicorn, the Celery worker and beat; Ctrl-C stops them all.
run: migrate
	$(PY) manage.py run_embedded --port $(PORT) --sim-port $(SIM_PORT)

# One worker per core and one more (pytest-xdist, whole modules per worker, handed out heaviest
# first: see tests/conftest.py): the live modules spend much of their time waiting on their
# servers, and the extra worker fills that (2 cores: 142 s instead of 150 s); the 15 slowest
# are listed.
TEST_WORKERS ?= $(shell python3 -c "import os; print((os.cpu_count() or 1) + 1)")
XDIST := -n $(TEST_WORKERS) --maxprocesses 8 --dist loadscope --no-loadscope-reorder
test: install
	$(PY) -m pytest $(XDIST) --durations 15 $(PYTEST_ARGS)

# The property-based tests with the thorough profile (20x the examples, randomized): for a
# scheduled run, not for every commit (tests/fuzz/profiles.py).
fuzz: install
	FINOPS_FUZZ_PROFILE=thorough $(PY) -m pytest $(XDIST) tests/fuzz $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	$(PY) bench/gateway_overhead.py

clean:
	rm -rf $(VENV) var
