# Two entry points: `make demo` (install + train on the embedded digits set) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/convclass train --data digits --model cnn3 --epochs 30 --schedule cosine --name demo

test: $(STAMP)
	$(VENV)/bin/lint-imports  # the import contracts in pyproject.toml: imports follow the data flow, no cycles
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs
