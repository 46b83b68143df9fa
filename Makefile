# Shortcuts for developers; CI and newcomers use scripts/bootstrap.sh (see README.md).
VENV ?= .venv

.PHONY: install test unit lint format lock demo

install:
	bash scripts/bootstrap.sh install

test:
	bash scripts/bootstrap.sh test

unit:
	$(VENV)/bin/pytest -q tests/unit

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Pin every transitive dependency from the current venv (vxswarm itself excluded).
lock:
	{ printf "%s\n" "# Pinned transitive dependencies of vxswarm (Python 3.11, Linux x86_64)." \
	    "# Used as a pip constraints file: pip install -c requirements.lock -e '.[test]'" \
	    "# Regenerate from a working venv: make lock"; \
	  $(VENV)/bin/pip freeze --exclude-editable --disable-pip-version-check | grep -vi "^vxswarm=="; \
	} > requirements.lock

demo:
	bash scripts/bootstrap.sh demo
