# The two commands a newcomer needs: `make demo` and `make test`. Both create the virtual
# environment on first use and install fulfil into it (editable, with the dev tools).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test unit lint format install clean

$(BIN)/fulfil: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# Compiled once here, so that no command compiles fulfil's modules on every run where the shell
# sets PYTHONDONTWRITEBYTECODE=1 (as an installed, not editable, fulfil never does).
install: $(BIN)/fulfil
	$(BIN)/python -m compileall -q fulfil > /dev/null

demo: install
	$(BIN)/fulfil demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pdftotext (poppler-utils) and qpdf are optional: without them two PDF rendering checks skip
# (the PDF's structure is still checked in Python). Said before the run, not left to the summary.
test: lint
	@command -v pdftotext >/dev/null 2>&1 && command -v qpdf >/dev/null 2>&1 || echo "note: pdftotext or qpdf is not installed: the 2 PDF rendering checks will skip (Debian/Ubuntu: sudo apt-get install poppler-utils qpdf)"
	$(BIN)/pytest -n auto

# The pure tests alone (no database, no server, no child process): seconds.
unit: install
	$(BIN)/pytest -m unit -q

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache build dist *.egg-info
