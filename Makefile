# Every CI step is a target here, so a laptop runs exactly what CI runs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ENV ?= dev
# The problem under problems/ every ml-project call works on; empty = `problem:` of
# environments/base.yaml (the project's default). E.g. make ci-staging PROBLEM=my_problem
PROBLEM ?=
PROBLEM_ARG = $(if $(PROBLEM),--problem $(PROBLEM))
# CI's outputs: <env>.out (the training log ending in its --json result), <env>-summary.md, ...
# With PROBLEM set, each name starts with it (my_problem-staging.out), so problems never overwrite
# one another's outputs.
OUT ?= outputs
STEM = $(OUT)/$(if $(PROBLEM),$(PROBLEM)-)
# Without MLFLOW_TRACKING_URI (a fork's pull request, a laptop) the ci-* and release-prod targets
# train into this embedded store. train, score and monitor use the CLI's own default instead
# (MLFLOW_TRACKING_URI, else ./mlflow.db), so `make train` then `make batch score monitor` on a
# laptop read the model that training registered.
CI_STORE ?= $(OUT)/ci-store
CI_TRACKING_URI = $${MLFLOW_TRACKING_URI:-sqlite:///$(abspath $(CI_STORE))/mlflow.db}
# Extra `ml-project train` options for train and the CI targets, e.g.
# TRAIN_ARGS="--set params.max_iter=50" or TRAIN_ARGS=--allow-dirty (staging/prod, uncommitted code).
TRAIN_ARGS ?=
BATCH ?= $(STEM)batch.parquet
# `make batch` keeps the records matching this pandas query (empty: all of them), e.g.
# BATCH_QUERY='month == 12'. Exported: the recipe reads it from the environment, quotes intact.
BATCH_QUERY ?=
export BATCH_QUERY
MONITOR_ARGS ?= --labels
MONITOR = $(BIN)/ml-project monitor --env $(ENV) \
  $(PROBLEM_ARG) --input $(BATCH) --json $(MONITOR_ARGS) --summary $(STEM)$(ENV)-monitor.md \
  | tee $(STEM)$(ENV)-monitor.out
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help
.PHONY: help install-run install install-spark train test lint lock test-fast test-integration test-examples \
	check-workflows ci-staging ci-summary ci-release-summary ci-reproduce ci-show release-prod latest-release settle batch \
	score monitor ci-monitor ui bench

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

# The installer. uv (from PATH, else bootstrapped into the venv by pip at the lock's version)
# fetches and unpacks the lock in parallel, then the bytecode is compiled on every core: a fresh
# clone's install takes about half of pip's time (docs/dependencies.md). pip installs when uv
# cannot be had or fails (uv reads no pip.conf: a private index configured for pip only), or
# with INSTALLER=pip; both install the same exact pins. uv shows a build's
# log only when it fails, so setuptools' note on the editable install is not printed.
INSTALLER ?= uv
# After uv, compileall compiles the bytecode on every core (-j0), as uv's --compile-bytecode
# would, but skips what is already compiled and the packages' own test suites (tests/: a fifth of
# the source, never imported): ~30% less CPU for a fresh clone's install (benchmarks/profiles/
# install-2026-12-07c.txt). A file that does not compile (a template) is left alone, as pip and uv
# leave it; a skipped file is compiled if it is ever imported.
NOT_COMPILED := site-packages/([^/]+/)*tests?/
comma := ,
# $(call install_lock,EXTRAS): the project, editable, with EXTRAS at the pins of the lock, and
# the newest pip, as pip's own path does (a logged model's conda.yaml records pip's version). The
# shell echoes the install command it chose.
install_lock = @uv="$$(command -v uv || echo $(BIN)/uv)"; \
  if [ "$(INSTALLER)" = uv ] && { [ -x "$$uv" ] || { pin="$$(grep -i '^uv==' requirements.lock)" && \
      $(BIN)/python -m pip install --quiet "$$pin"; }; } && \
      ( set -x; "$$uv" pip install --quiet --python $(BIN)/python \
        --upgrade-package pip -c requirements.lock -e ".$(if $(1),[$(1)])" pip ); then \
    ( set -x; $(BIN)/python -m compileall -qq -j0 -x '$(NOT_COMPILED)' \
        $(VENV)/lib/python*/site-packages ) || true; \
  else \
    if [ "$(INSTALLER)" = uv ]; then echo "uv could not install the lock (no uv, or an index \
only pip is configured for): pip installs it"; fi; \
    set -x; $(BIN)/python -m pip install --quiet --upgrade pip; \
    $(BIN)/python -m pip install --quiet -c requirements.lock -e ".$(if $(1),[$(1)])"; \
  fi

# Three installs, each a part of the next: what the commands that run the project need (train,
# score, serve: the project alone, no extra), then the developer's tools and the data-source
# clients ([dev], [sources]: lint and the tests), then [spark]. A fresh clone's `make train`
# installs and compiles only the first: 111 distributions instead of 162 (benchmarks/profiles/
# install-2026-12-07c.txt); `make test` or `make lint` afterwards adds the rest. `make install`
# in a fresh clone installs in one go (one resolution), and counts as install-run too.
$(BIN)/.installed-run: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(call install_lock,)
	touch $@

$(BIN)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(call install_lock,dev$(comma)sources)
	touch $(BIN)/.installed-run $@

$(BIN)/.installed-spark: $(BIN)/.installed
	$(call install_lock,dev$(comma)spark$(comma)sources)
	touch $@

# SKIP_INSTALL=1 uses the tools already in BIN as they are (the tests run targets that way).
install-run: $(if $(SKIP_INSTALL),,$(BIN)/.installed-run) ## create .venv and install what train, score and serve need (no extra), at the lock's pins

install: $(if $(SKIP_INSTALL),,$(BIN)/.installed) ## install-run, plus the [dev] tools (lint, tests) and the [sources] clients (S3, PostgreSQL)

install-spark: $(if $(SKIP_INSTALL),,$(BIN)/.installed-spark) ## install, plus the [spark] extra (pyspark, ~450 MB; needs Java 17): the tests use it

train: install-run ## train, evaluate and register a model in ENV (default dev): make train ENV=staging PROBLEM=NAME TRAIN_ARGS=--allow-dirty
	$(BIN)/ml-project train --env $(ENV) $(PROBLEM_ARG) $(TRAIN_ARGS)

# pytest-xdist workers: twice the cores, as most tests wait on a CLI subprocess, a server or a
# JVM (on 2 cores: 2 workers kept them ~58% busy, 4 ~88%). Override: make test TEST_WORKERS=2
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 )))
# One OpenMP thread per process in the tests (scikit-learn starts one a core in each process: with
# TEST_WORKERS processes on the cores they only wait on one another). Override: TEST_THREADS=4
TEST_THREADS ?= 1
# A test that fits on more threads (reproduce's two-thread model) waits for them passively: on
# cores shared by TEST_WORKERS processes a spinning OpenMP thread burns the CPU the thread it
# waits for needs (one training and its reproduction: 41 -> 34 CPU-s, 478 -> 345 s wall,
# benchmarks/profiles/ci-durations-2026-12-08.txt). The result is the same: only how idle
# threads wait changes.
TEST_OMP_WAIT ?= passive
# The tests' temporary folders (stores, project copies, artifacts) in memory where /dev/shm has
# room (4 GB free): on a disk, sqlite's syncs cost ~10% of a test file's wall time (measured in
# benchmarks/profiles/ci-durations-2026-12-07b.txt); pytest then keeps the last run's folders only.
# Override: make test TEST_TMPDIR=/tmp (or TEST_TMPDIR= for the system's default).
TEST_TMPDIR ?= $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 4194304 {print "/dev/shm"}')
PYTEST = OMP_NUM_THREADS=$(TEST_THREADS) OMP_WAIT_POLICY=$(TEST_OMP_WAIT) \
  $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR)) $(BIN)/python -m pytest \
  $(if $(filter /dev/shm,$(TEST_TMPDIR)),-o tmp_path_retention_count=1)
test: lint install-spark ## lint, then the whole test suite (unit, data, model, integration, workflows)
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile

lint: install ## ruff (lint rules and formatting) and mypy (strict on the platform, ml_project/)
	$(BIN)/ruff check ml_project problems tests benchmarks deploy .ci
	$(BIN)/ruff format --check ml_project problems tests benchmarks deploy .ci
	$(BIN)/mypy

# The workflows played event by event against real servers: with the integration tests.
WORKFLOW_EVENTS = tests/ci/test_workflow_events.py tests/ci/test_workflow_releases.py
test-fast: install ## unit, data, model and workflow tests: no tracking store, no subprocess CLI
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile tests/unit tests/data tests/model tests/ci \
	  $(addprefix --ignore=,$(WORKFLOW_EVENTS))

test-integration: install-spark ## the real CLI in subprocesses, temp stores, real mlflow servers (PostgreSQL), Spark, the workflows event by event
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile tests/integration $(WORKFLOW_EVENTS)

test-examples: install ## the bundled examples' own tests (tests/examples/<problem>/: a fork deletes them)
	@if [ -n "$$(find tests/examples -name 'test_*.py' 2>/dev/null)" ]; then \
	  $(PYTEST) -n $(TEST_WORKERS) --dist loadfile tests/examples; \
	else echo "test-examples: no tests under tests/examples/"; fi

check-workflows: install ## check .github/ against GitHub's workflow and dependabot schemas (offline)
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema custom.github-workflows-require-timeout .github/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

ci-staging: install-run ## CI's staging training, gate included, into $MLFLOW_TRACKING_URI (else outputs/ci-store)
	@mkdir -p $(OUT) $(CI_STORE)
	MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" $(BIN)/ml-project train --env staging \
	  $(PROBLEM_ARG) --json $(TRAIN_ARGS) | tee $(STEM)staging.out

# $(call prod_server,TARGET): in CI, stop with one paragraph when no server holds prod.
prod_server = @if [ -n "$${CI:-}" ] && [ -z "$${MLFLOW_TRACKING_URI:-}" ]; then \
	  echo "$(1): MLFLOW_TRACKING_URI is not set. Prod lives on a tracking server (a model" \
	    "trained into the runner's throwaway store would be lost): set the secret on the" \
	    "production environment (docs/ci-cd.md, Secrets)." >&2; \
	  exit 2; fi

release-prod: install-run ## prod retraining on the full data, gate, promotion (CI needs MLFLOW_TRACKING_URI)
	$(call prod_server,release-prod)
	@mkdir -p $(OUT) $(CI_STORE)
	MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" $(BIN)/ml-project train --env prod \
	  $(PROBLEM_ARG) --json $(TRAIN_ARGS) | tee $(STEM)prod.out

ci-summary: install-run ## Markdown of ENV's CI training (metrics, gate, lineage) and its verdict row, also to $GITHUB_STEP_SUMMARY
	$(BIN)/ml-project summary --input $(STEM)$(ENV).out --output $(STEM)$(ENV)-summary.md
	$(BIN)/ml-project summary --input $(STEM)$(ENV).out --verdict --output $(STEM)$(ENV)-verdict.md
	@cat $(STEM)$(ENV)-summary.md
	@if [ -n "$${GITHUB_STEP_SUMMARY:-}" ]; then cat $(STEM)$(ENV)-summary.md >> "$$GITHUB_STEP_SUMMARY"; fi

# A release's prod jobs each write a verdict (a table's header and its problem's row); their
# files, gathered in OUT, make one table. Needs no install: the release's last job runs it alone.
ci-release-summary: ## one summary of a release's prod jobs (OUT/*prod-verdict.md): which problems were promoted, which refused
	@mkdir -p $(OUT)
	@shopt -s nullglob; files=($(OUT)/*prod-verdict.md); rows=""; \
	for file in "$${files[@]}"; do rows+="$$(tail -n +3 "$$file")"$$'\n'; done; \
	promoted="$$(grep -c '| promoted |' <<< "$$rows" || true)"; \
	refused="$$(grep -c '| refused |' <<< "$$rows" || true)"; \
	{ echo "## Release$${GITHUB_REF_NAME:+ $$GITHUB_REF_NAME}: $$promoted promoted, $$refused refused"; echo; \
	  if [ -n "$$rows" ]; then head -n 2 "$${files[0]}"; printf '%s' "$$rows"; echo; fi; \
	  echo "A problem missing from this table stopped before its gate: see its prod job's log."; \
	} > $(OUT)/release-summary.md
	@cat $(OUT)/release-summary.md
	@if [ -n "$${GITHUB_STEP_SUMMARY:-}" ]; then cat $(OUT)/release-summary.md >> "$$GITHUB_STEP_SUMMARY"; fi

ci-reproduce: install-run ## rebuild the model version CI just trained in ENV and compare it, bit for bit
	version="$$($(BIN)/ml-project summary --input $(STEM)$(ENV).out --field model_version)"; \
	MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" \
	  $(BIN)/ml-project reproduce --env $(ENV) $(PROBLEM_ARG) --version "$$version"

ci-show: install-run ## ENV's registered model after a CI run: versions, aliases, gate results, lineage
	@mkdir -p $(OUT)
	MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" $(BIN)/ml-project show --env $(ENV) $(PROBLEM_ARG)
	MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" $(BIN)/ml-project show --env $(ENV) $(PROBLEM_ARG) \
	  --json > $(STEM)$(ENV)-show.json

settle: install-run ## end what stopped jobs left in ENV (versions without a verdict, runs of dead processes)
	MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" $(BIN)/ml-project settle --env $(ENV) $(PROBLEM_ARG)

batch: install-run ## the batch to score: a stand-in export of the problem's records (BATCH_QUERY filters)
	@mkdir -p $(OUT)
	$(BIN)/ml-project extract-batch --env $(ENV) $(PROBLEM_ARG) --query "$$BATCH_QUERY" \
	  --output $(BATCH)

score: install-run ## score the batch (BATCH=, default outputs/[<problem>-]batch.parquet) with ENV's champion
	@mkdir -p $(OUT)
	$(BIN)/ml-project predict --env $(ENV) \
	  $(PROBLEM_ARG) --input $(BATCH) --output $(STEM)$(ENV)-scored.parquet --json \
	  | tee $(STEM)$(ENV)-score.out

monitor: install-run ## drift check of the batch against ENV's champion: exit 7 = drift (MONITOR_ARGS=--labels)
	@mkdir -p $(OUT)
	$(MONITOR)

ci-monitor: install-run ## `make monitor` for CI: drift=true|false to $GITHUB_OUTPUT, fails only on errors
	@mkdir -p $(OUT)
	@code=0; $(MONITOR) || code=$$?; \
	if [ -n "$${GITHUB_STEP_SUMMARY:-}" ] && [ -f $(STEM)$(ENV)-monitor.md ]; then \
	  cat $(STEM)$(ENV)-monitor.md >> "$$GITHUB_STEP_SUMMARY"; fi; \
	drift=false; [ $$code -eq 7 ] && drift=true; \
	if [ -n "$${GITHUB_OUTPUT:-}" ]; then echo "drift=$$drift" >> "$$GITHUB_OUTPUT"; fi; \
	echo "drift=$$drift (monitor exit code $$code)"; \
	[ $$code -eq 0 ] || [ $$code -eq 7 ]

latest-release: install-run ## print the release tag prod's champion was trained from: the code the scheduled retraining runs
	$(call prod_server,latest-release)
	@tag="$$(MLFLOW_TRACKING_URI="$(CI_TRACKING_URI)" $(BIN)/ml-project champion-release \
	  --env prod $(PROBLEM_ARG))"; \
	if [ -n "$$tag" ]; then echo "$$tag"; fi; \
	if [ -n "$${GITHUB_OUTPUT:-}" ]; then echo "tag=$$tag" >> "$$GITHUB_OUTPUT"; fi

lock: ## re-resolve requirements.lock in a fresh venv from pyproject.toml, and regenerate conda.yaml
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet -e ".[dev,spark,sources]"
	( echo "# Exact versions for reproduction: pip install -c requirements.lock -e '.[dev]'"; \
	  echo "# Regenerate with: make lock. Resolved for Python 3.11 on linux x86_64."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -v '^ml-project' ) > requirements.lock
	rm -rf .lock-venv
	$(PYTHON) .ci/conda_env.py

# Extra options of .ci/docs_check.py, e.g. DOCS_CHECK_ARGS="--page docs/monitoring.md --keep"
DOCS_CHECK_ARGS ?=
.PHONY: docs-check
docs-check: install ## run every shell block of README.md and docs/ in a scratch clone of HEAD (trains: minutes)
	$(BIN)/python .ci/docs_check.py $(DOCS_CHECK_ARGS)

UI_PORT ?= 5000
ui: install-run ## MLflow's UI on the store `make train` uses, light: one worker, no job runner (UI_PORT)
	@echo "MLflow UI: http://127.0.0.1:$(UI_PORT)/#/models (registered models, aliases) and" \
	  "http://127.0.0.1:$(UI_PORT)/#/experiments (runs); Ctrl-C stops it"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --host 127.0.0.1 --port $(UI_PORT) \
	  --workers 1 --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}"

bench: install ## run the benchmarks (several minutes): results in benchmarks/results/<date>.json and .md
	@if [ ! -f benchmarks/run.py ]; then echo "make bench: no benchmarks/run.py here (it measures \
	the template's bundled example, which this project was made without)" >&2; exit 2; fi
	$(BIN)/python benchmarks/run.py
