# The two commands of the README: `make demo` and `make test`. Each bootstraps uv if missing.
SHELL := /bin/bash
PY ?= python3
UV := $(PY) -m uv

.PHONY: demo test sync uv node-deps bench

uv:
	@$(UV) --version >/dev/null 2>&1 || $(PY) -m pip install --quiet uv || $(PY) -m pip install --quiet --user --break-system-packages uv

sync: uv
	@$(UV) sync --frozen --compile-bytecode --quiet

# The MCP Inspector (tests/e2e) runs on the machine's node; the conformance suite needs Node 22, which
# comes with it as an npm package (tests/e2e/conformance), leaving the machine's node as it is.
node-deps:
	@cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error
	@cd tests/e2e/conformance && npm ci --no-audit --no-fund --loglevel=error

demo: sync
	$(UV) run --frozen mlgate demo

test: sync node-deps
	$(UV) run --frozen pytest

bench: sync
	$(UV) run --frozen python -m bench
