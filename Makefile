# The two commands of the README. Each creates .venv and installs what it needs on first use.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit bench clean prometheus

demo: $(STAMP) prometheus
	$(BIN)/sluice demo

test: $(STAMP) prometheus lint typecheck
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) prometheus
	$(BIN)/python -m benchmarks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Prometheus comes from Debian; the tests start their own on loopback (the package's service is
# not started: no init system runs here, and policy-rc.d keeps it that way where one does).
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing Debian's prometheus"; \
	  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; \
	  rm -f /usr/sbin/policy-rc.d; }

clean:
	rm -rf $(VENV) .sluice .pytest_cache .mypy_cache .ruff_cache
