# One command to run, one to test (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install

$(BIN)/hostdown-bridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(BIN)/hostdown-bridge

# Tokens for the embedded default config, made once, kept in .run/ (git-ignored).
.run/webhook.token .run/admin.token:
	mkdir -p .run && chmod 700 .run
	$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(32))' > $@

run: install .run/webhook.token .run/admin.token
	@echo "webhook token: .run/webhook.token   admin token: .run/admin.token   API: http://127.0.0.1:8080"
	HOSTDOWN_BRIDGE_WEBHOOK_TOKEN="$$(cat .run/webhook.token)" \
	HOSTDOWN_BRIDGE_ADMIN_TOKEN="$$(cat .run/admin.token)" \
	$(BIN)/hostdown-bridge serve

# Every suite, each named (tests/suites.py): unit, real processes, PostgreSQL, the real
# monitoring systems, the real Nova API, the BMC simulators and the Helm chart (rendered by
# Helm's own library). --require-suites fails the run if one selects nothing.
SUITES := unit process postgres monitoring zabbix realnova bmc chart
empty :=
test: install
	$(BIN)/pip install -q -e '.[test,chart]'
	bash tests/install_peers.sh
	$(BIN)/python -m tests.realnova.novalab install
	$(BIN)/python -m tests.harness.ironic install
	$(BIN)/python -m pytest -m "$(subst $(empty) $(empty), or ,$(SUITES))" --require-suites "$(SUITES)"
