# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_ORDER := 8f5c2a4e-3b1d-4e7a-9c6f-0a1b2c3d4e5f
PYTEST_ARGS ?=
WORKERS ?= 1
# uvicorn waits this long for in-flight downloads on SIGTERM, then aborts them.
SHUTDOWN_GRACE_SECONDS ?= 30
# Per-worker metric files; emptied at every start so counters begin at zero.
PROMETHEUS_MULTIPROC_DIR ?= var/prometheus
# Connections and requests one worker serves at once; past it uvicorn answers 503.
LIMIT_CONCURRENCY ?= 256
# Seconds an idle keep-alive connection stays open.
TIMEOUT_KEEP_ALIVE ?= 5
# Proxies whose X-Forwarded-For/-Proto uvicorn believes: TRUSTED_PROXIES when set.
FORWARDED_ALLOW_IPS ?= $(or $(TRUSTED_PROXIES),127.0.0.1)
# The protocol that also closes connections whose request headers never arrive
# (REQUEST_HEADER_TIMEOUT, see app/web/server.py).
HTTP_PROTOCOL := app.web.server:HeaderDeadlineProtocol

.PHONY: run test test-shuffled lint format docs bench bench-render bench-variants load screenshot samples system-deps worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

## run: set up and serve the service (sandbox mode unless AUTOENHANCE_API_KEY is set)
run: $(VENV)/.runtime
	@echo ""
	@echo "  Serving on http://$(HOST):$(PORT)   (docs: http://$(HOST):$(PORT)/docs)"
	@echo "  Try:  curl -fOJ http://$(HOST):$(PORT)/orders/$(DEMO_ORDER)/images"
	@echo ""
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)"
	PROMETHEUS_MULTIPROC_DIR="$(PROMETHEUS_MULTIPROC_DIR)" $(BIN)/uvicorn app:app \
		--host $(HOST) --port $(PORT) --workers $(WORKERS) \
		--timeout-graceful-shutdown $(SHUTDOWN_GRACE_SECONDS) \
		--http $(HTTP_PROTOCOL) --limit-concurrency $(LIMIT_CONCURRENCY) \
		--timeout-keep-alive $(TIMEOUT_KEEP_ALIVE) \
		--proxy-headers --forwarded-allow-ips "$(FORWARDED_ALLOW_IPS)"

## test: set up and run the whole suite
test: $(VENV)/.dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## test-shuffled: the whole suite in a shuffled order (SEED=... replays one)
SEED ?= 12345
test-shuffled: $(VENV)/.dev
	$(BIN)/python -m pytest -p randomly --randomly-seed=$(SEED) $(PYTEST_ARGS)

## lint: ruff and mypy
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## docs: write docs/configuration.md and .env.example from the fields of Settings
docs: $(VENV)/.runtime
	$(BIN)/python -m app.core.settings_doc

## bench: every scenario next to this machine's ceiling (curl straight at the sandbox, nginx, and
##   the Go zipstreamer built from ZIPSTREAMER_SRC, a checkout of its source), best of 3; then
##   bench-render and bench-variants
bench: $(VENV)/.dev
	$(BIN)/python -m bench.stream
	$(BIN)/python -m bench.render
	$(BIN)/python -m bench.variants

## bench-render: images/s per core rendering `mls` from 12-megapixel JPEGs: Pillow, pyvips, vipsthumbnail
bench-render: $(VENV)/.dev
	$(BIN)/python -m bench.render

## bench-variants: a 40-image order as variants=mls,print beside it without, 200 ms upstream latency
bench-variants: $(VENV)/.dev
	$(BIN)/python -m bench.variants

## load: bounded load run on loopback (50 clients, 60 s)
load: $(VENV)/.dev
	$(BIN)/python -m bench.load

## worker: a job worker for the Redis (scale-out) backend
worker: $(VENV)/.runtime
	$(BIN)/python -m app.jobs.worker

## screenshot: regenerate docs/screenshot.png and docs/screenshot-orders.png from the browser test
screenshot: $(VENV)/.dev
	SCREENSHOT=docs/screenshot.png $(BIN)/python -m pytest tests/browser/test_page.py -q -k test_screenshot

## samples: redraw sample_images/
samples: $(VENV)/.runtime
	$(BIN)/python sample_images/make_samples.py

## system-deps: Debian packages the tests and benchmarks use (root)
system-deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		unzip 7zip libarchive-tools redis-server chromium fonts-dejavu-core curl nginx wget aria2 \
		libvips-tools golang-go default-jdk-headless

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
