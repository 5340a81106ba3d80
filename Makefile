# Two entry points: `make demo` (the main job) and `make test` (the linter, then the test suite).
# Each creates .venv and installs the project into it on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/resnet-lab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,lightning,huggingface,onnx]'
	touch $@

install: $(BIN)/resnet-lab

demo: install
	$(BIN)/resnet-lab demo

test: install browser lint
	$(BIN)/python -m pytest -q --durations=15

# The linter (ruff, configured in pyproject.toml); `make test` runs it first.
lint: install
	$(BIN)/ruff check src tests benchmarks

# The report test opens pages in headless Chromium: as root with apt-get, install Debian's chromium,
# chromium-driver (and fonts-liberation, chromium's recommended font) when missing. Elsewhere this
# only says so, and that test skips (with CI=true it fails).
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver with apt-get (for the report's browser test)"; \
	  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation >/dev/null; } || \
	  { echo "apt-get could not install chromium and chromium-driver" >&2; [ "$$CI" != true ]; }; \
	else \
	  echo "note: /usr/bin/chromium or /usr/bin/chromedriver is missing; install them as root with" \
	       "'apt-get install chromium chromium-driver' (the browser test skips without them, fails with CI=true)"; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
