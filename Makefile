# Two entry points (see README): `make book` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test venv

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Execute the chapters that changed (or whose results are not in the store) at the cpu profile,
# then build the HTML book into _build/html.
book: $(STAMP)
	$(BIN)/mcmia book

# Unit tests, nbval on the smoke-profile notebooks (with an empty results store, so the whole pipeline
# runs), and the book build from the committed chapters with warnings as errors.
test: $(STAMP)
	bash .ci/test.sh
