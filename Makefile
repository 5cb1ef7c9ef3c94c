# Two commands do everything: `make book` and `make test`.
# Both create .venv from requirements.txt and install `graves` into it (editable).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))

.PHONY: book test venv html pdf unit nbval site notebooks lab clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make book: build the site into _build/html
book: venv html

html: venv
	rm -rf _build/html _build/.doctrees
	$(BIN)/jupyter-book build . --builder html -W -n --keep-going

## make pdf: the whole book as one PDF, _build/pdf/book.pdf, printed by Debian's Chromium
## from the single-page build
pdf: venv
	rm -rf _build/singlehtml _build/pdf
	$(BIN)/jupyter-book build . --builder singlehtml -W -n --keep-going
	$(BIN)/python book/_ext/book_pdf.py _build/singlehtml _build/pdf/book.pdf

## make test: unit and property tests, nbval over every notebook, strict build, PDF, site checks
test: venv
	$(BIN)/python -m pytest tests --ignore=tests/site
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg book
	$(MAKE) html
	$(MAKE) pdf
	$(BIN)/python -m pytest tests/site --durations=8

## make notebooks: re-execute every chapter in place after a code change
notebooks: venv
	cd book && for nb in $(notdir $(NOTEBOOKS)); do \
		../$(BIN)/jupyter-execute --inplace --timeout=600 $$nb || exit 1; done

## make lab: JupyterLab on the chapters
lab: venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-lab.txt
	$(BIN)/jupyter lab book/

clean:
	rm -rf _build .venv
