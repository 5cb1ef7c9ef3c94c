# Two commands do everything: `make book` and `make test`.
# Both create .venv from requirements.txt and install `graves` into it (editable).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# Chapters that need PyTorch (requirements-torch.txt, `make torch`); without it they are skipped, and said so.
TORCH_NOTEBOOKS := book/08_real_training.ipynb
HAVE_TORCH = $(shell $(BIN)/python -c "import torch" >/dev/null 2>&1 && echo yes)
CHECKED_NOTEBOOKS = $(if $(HAVE_TORCH),$(NOTEBOOKS),$(filter-out $(TORCH_NOTEBOOKS),$(NOTEBOOKS)))
NO_TORCH_MESSAGE = PyTorch is not installed in $(VENV): skipping $(TORCH_NOTEBOOKS) and the graves.torch tests (make torch installs it)

.PHONY: book test venv torch bench html pdf unit nbval site notebooks lab clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make torch: add the pinned CPU PyTorch to .venv (graves.torch, its tests and chapter 8)
TORCH_STAMP := $(VENV)/.torch-installed
$(TORCH_STAMP): requirements-torch.txt $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-torch.txt
	touch $(TORCH_STAMP)

torch: $(TORCH_STAMP)

## make bench: add the peers (requirements-bench.txt, and PyTorch) and run every benchmark of
## chapter 11, rewriting benchmarks/results/*.json; then re-execute book/11_performance.ipynb
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): requirements-bench.txt $(TORCH_STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run_all.py

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

## make test: unit and property tests, nbval over every notebook, strict build, PDF, site checks;
## meanwhile the portability check re-runs nbval on every notebook as a different machine would
## (tests/portability)
test: venv
	@test -n "$(HAVE_TORCH)" || echo "$(NO_TORCH_MESSAGE)"
	$(BIN)/python -m pytest tests --ignore=tests/site
	log=$$(mktemp); $(BIN)/python tests/portability/run.py $(CHECKED_NOTEBOOKS) > $$log 2>&1 & check=$$!; \
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		$(CHECKED_NOTEBOOKS) \
	&& $(MAKE) html && $(MAKE) pdf && $(BIN)/python -m pytest tests/site --durations=8; status=$$?; \
	wait $$check; portable=$$?; cat $$log; rm -f $$log; [ $$status -eq 0 ] && [ $$portable -eq 0 ]
	@test -n "$(HAVE_TORCH)" || echo "$(NO_TORCH_MESSAGE)"

## make notebooks: re-execute every chapter in place after a code change
notebooks: venv
	@test -n "$(HAVE_TORCH)" || echo "$(NO_TORCH_MESSAGE)"
	cd book && for nb in $(notdir $(if $(HAVE_TORCH),$(NOTEBOOKS),$(filter-out $(TORCH_NOTEBOOKS),$(NOTEBOOKS)))); do \
		../$(BIN)/jupyter-execute --inplace --timeout=600 $$nb || exit 1; done

## make lab: JupyterLab on the chapters
lab: venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-lab.txt
	$(BIN)/jupyter lab book/

clean:
	rm -rf _build .venv
