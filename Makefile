# Orderline — the front door. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
UV := $(BIN)/uv
export PATH := $(BIN):$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
# uv must not pick up a managed or other interpreter: the machine's python3 is the one we use.
export UV_PYTHON_DOWNLOADS := never

PACKAGES := orderline_runtime orderline_catalogue orderline_devtools orderline_intake orderline_provisioning \
	orderline_device_monitor orderline_archive orderline_reporting orderline_simulators orderline_cli

.DEFAULT_GOAL := help
.PHONY: help venv protos protos-check docs lint typecheck browser test test-unit test-integration test-e2e chart checkov run bench soak clean audit

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard */pyproject.toml */*/pyproject.toml)
	$(UV) sync --frozen --python $(BIN)/python
	@touch $@

venv: $(VENV)/.synced ## create .venv and install the workspace from uv.lock

protos: venv ## generate Python code and typed stubs from protos/
	$(BIN)/buf lint protos
	$(BIN)/python scripts/gen_protos.py

protos-check: venv ## fail when protos do not lint, code is stale, or HEAD~1's contract breaks
	$(BIN)/buf lint protos
	$(BIN)/python scripts/gen_protos.py --check
	@# Against the previous commit: a shallow clone lacks it, and a check that cannot run fails.
	@git rev-parse --verify --quiet 'HEAD~1^{commit}' >/dev/null || { \
		echo "protos-check: buf breaking needs the previous commit (git fetch --deepen=1)" >&2; \
		exit 1; }
	$(BIN)/buf breaking protos --against '.git#ref=HEAD~1,subdir=protos'

docs: venv ## regenerate the generated tables in docs/ (topology, role matrix)
	$(BIN)/python scripts/gen_docs.py

lint: venv typecheck ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv ## mypy (strict) on every package
	$(BIN)/mypy $(addprefix -p ,$(PACKAGES))

# The management report's HTML is checked in a real browser (services/reporting's render test):
# Debian's chromium, installed here when it is missing and the machine can; without it that one
# test skips and says why.
browser: ## headless Chromium (and CJK fonts) for the report rendering test, when missing
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing chromium and fonts-noto-cjk (apt-get) for the report rendering test"; \
			export DEBIAN_FRONTEND=noninteractive; \
			timeout 300 apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null \
			|| { timeout 300 apt-get update -qq && timeout 300 apt-get install -y -qq --no-install-recommends \
				chromium fonts-noto-cjk >/dev/null; } \
			|| echo "browser: could not install chromium; the rendering test will skip"; \
		else \
			echo "browser: no chromium and no apt-get as root; the rendering test will skip"; \
		fi; }

# Every test but the soak runs in two workers, whole files each (a file's fixtures are set up
# once), the end-to-end files first (conftest.py): they are the longest, and the many short
# unit, integration and contract files after them even the two workers out at the end. The
# end-to-end files' stacks of real processes spend much of their time waiting (restarts,
# outages, seals), and every wait in them is bounded polling for a state, never a timed
# assertion, so they hold beside another file's work.
test: venv protos-check lint checkov browser ## everything CI runs (starts its own NATS and PostgreSQL)
	ORDERLINE_REQUIRE_CHECKOV=1 $(BIN)/pytest -m "not soak" -n 2 --dist loadfile \
		-q -p no:cacheprovider --durations=25

test-unit: venv ## domain tests only (no I/O)
	$(BIN)/pytest -q services/*/tests/unit libs/runtime/tests/unit libs/catalogue/tests

test-integration: venv ## each package against real NATS and both databases (no whole stack)
	$(BIN)/pytest -q -m "not soak" services/*/tests/integration libs/runtime/tests/integration \
		libs/devtools/tests simulators/tests cli/tests

test-e2e: venv ## end-to-end tests: every process started for real
	$(BIN)/pytest -q tests/e2e -m "not soak"

soak: venv ## long fault-injection soak
	$(BIN)/pytest -q -m soak tests/e2e

# Every locked dependency against the OSV database (api.osv.dev), through uv; the ids in
# audit-accepted.txt are ignored. Not part of `make test`: the machines it runs on reach the
# package registries only, and the audit needs the OSV service (docs/security.md).
audit: venv ## known vulnerabilities in uv.lock's dependencies (needs api.osv.dev)
	$(UV) audit --locked $$(sed -e 's/#.*//' audit-accepted.txt | awk 'NF {print "--ignore", $$1}')

chart: venv checkov ## render, lint, validate and checkov the Helm chart; image checks
	ORDERLINE_REQUIRE_CHECKOV=1 $(BIN)/pytest -q -p no:cacheprovider deploy/helm/tests

# checkov has its own virtual environment: its pinned dependencies clash with the workspace's.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30

$(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	@touch $@

checkov: $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION) ## install checkov (pinned) in .venv-checkov

run: venv ## bring the whole system up locally and show demo orders moving (Ctrl-C stops it)
	$(BIN)/orderline up

bench: venv ## pipeline benchmark, SQLite and PostgreSQL (flags: BENCH_ARGS="--quick", --help)
	$(BIN)/python -m bench.pipeline $(BENCH_ARGS)

BASE ?= e7223e2
.PHONY: bench-statements
bench-statements: venv ## micro-benchmark: one SQLite statement via SQLAlchemy and via a plan
	$(BIN)/python -m bench.statements

.PHONY: bench-devices
bench-devices: venv ## device-monitor: samples/s of one process, 10,000 devices; sample to device.abnormal p50/p99
	$(BIN)/python -m bench.device_ingest $(BENCH_ARGS)

.PHONY: bench-compare
bench-compare: venv ## base (BASE=<rev>, default e7223e2) against this checkout, alternating runs
	$(BIN)/python -m bench.compare --base $(BASE) $(BENCH_ARGS)

.PHONY: nats-config
nats-config: venv ## NATS users per service: passwords and the nats-server authorization block (NATS_CONFIG_OUT=var/nats-auth)
	$(BIN)/python -m orderline_runtime.messaging.permissions --out $(or $(NATS_CONFIG_OUT),var/nats-auth)

clean: ## remove the virtualenv and local state
	rm -rf $(VENV) var
