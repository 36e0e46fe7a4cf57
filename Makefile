PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/troupe console

test: install
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	@set -e; for b in tests/bench/[a-z]*.py; do \
		case $$b in */soak*.py|*/fake_model_process.py) continue;; esac; \
		m=$$(echo $$b | sed 's#/#.#g; s#\.py$$##'); \
		echo "== $$m"; $(BIN)/python -m $$m; \
	done

# Faults, kill -9 and restarts across Discord, Slack and the console (about 4 minutes; prints JSON).
# Pass options with SOAK_ARGS, e.g. make soak SOAK_ARGS="--seconds 60 --channels 8".
soak: install
	$(BIN)/python -m tests.bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
