# The two commands of README.md. Both install what they need (idempotent, ~1 s when up to date).
.PHONY: demo test test-fast venv browser clean

VENV := .venv
PYTEST_ARGS ?=

venv:
	@scripts/env/make_venvs.sh all

## headless Chromium for the HTML report test (Debian's chromium package; a no-op when installed)
browser:
	@scripts/env/install_chromium.sh

## make demo: the whole pipeline on CPU with the tiny offline model (recipes/tiny-cpu.yaml)
demo: venv
	$(VENV)/bin/ovr demo --recipe recipes/tiny-cpu.yaml

## make test: the test suite (what CI runs)
test: venv browser
	$(VENV)/bin/python -m pytest -m "not gpu" $(PYTEST_ARGS)

## make test-fast: skip the slow end-to-end tests
test-fast: venv browser
	$(VENV)/bin/python -m pytest -m "not gpu and not slow" $(PYTEST_ARGS)

clean:
	rm -rf .ovr
