# Two commands on a fresh Debian machine:  make demo   and   make test
# Each sets everything up first: a .venv with the package and its test extras, mosquitto, and
# libfaketime (the wall-clock fault test).

PYTHON   ?= python3
VENV     := .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed
DURATION ?=
SPEED    ?= 5
PYTEST_ARGS ?=
# Test processes: the tests are independent (own temp dirs, brokers on free ports), so they run
# in parallel. They wait on agents and brokers more than they compute (on 2 cores: 5m40s of CPU
# in 6m36s with 3 processes, 5m25s with 4, 5m10s with 5): two per core and one more.
# `make test PYTEST_WORKERS=0` runs them in one process.
PYTEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$((2 * n + 1)))

export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache

# Run again without numba: the kernels' pure-Python twins must give the same results.
JIT_TWINS := tests/unit/test_kernels.py tests/unit/test_filters.py tests/unit/test_pipeline.py \
	tests/unit/test_proximity.py tests/unit/test_privacy.py tests/unit/test_golden.py \
	tests/unit/test_fusion.py


.PHONY: asyncapi-cli
.PHONY: setup venv mosquitto demo test lint typecheck unit soak bench schema clean install

setup: venv mosquitto asyncapi-cli

# The AsyncAPI CLI (npm) that validates the shipped contract document; where npm is missing or
# cannot install it, the test that uses it is skipped and says so.
ASYNCAPI_CLI_VERSION := 6.2.0
ASYNCAPI_STAMP := .cache/asyncapi/.installed-$(ASYNCAPI_CLI_VERSION)

asyncapi-cli: $(ASYNCAPI_STAMP)

$(ASYNCAPI_STAMP):
	@if command -v npm >/dev/null 2>&1; then \
	  mkdir -p .cache/asyncapi && \
	  if timeout 600 npm install --silent --no-audit --no-fund --fetch-timeout=20000 --fetch-retries=1 --prefix .cache/asyncapi \
	       @asyncapi/cli@$(ASYNCAPI_CLI_VERSION) >/dev/null 2>.cache/asyncapi/npm.log; then \
	    touch $@; \
	  else echo "AsyncAPI CLI not installed (npm failed, see .cache/asyncapi/npm.log): its test is skipped"; fi; \
	else echo "npm missing: the AsyncAPI CLI test is skipped (apt-get install -y npm to run it)"; fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else echo "Python's venv module is missing. Run: sudo apt-get install -y python3-venv"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[test]'
	@touch $(STAMP)

mosquitto:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing=" mosquitto mosquitto-clients"; \
	ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing="$$missing faketime"; \
	command -v dbus-daemon >/dev/null 2>&1 || missing="$$missing dbus"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  echo "installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else \
	  echo "missing:$$missing and we are not root. Run:  sudo apt-get install -y$$missing"; \
	  exit 1; \
	fi

demo: setup
	$(BIN)/edge-agent demo --config config/agent.toml --speed $(SPEED) $(if $(DURATION),--duration $(DURATION))

lint: venv
	$(BIN)/ruff check edge_agent firmware_sim tests
	$(BIN)/ruff format --check edge_agent firmware_sim tests

typecheck: venv
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) $(PYTEST_ARGS)
	NUMBA_DISABLE_JIT=1 $(BIN)/pytest -q -p no:cacheprovider $(JIT_TWINS)

test: setup lint typecheck unit

soak: setup
	$(BIN)/pytest -q -m soak $(PYTEST_ARGS)

# The peer measured beside the agent, in a venv of its own (its pins are its own); without it
# (no network) its rows say "not measured".
THEENGS_VERSION := 1.8.0
THEENGS := .cache/bench/theengs

bench: setup
	PYTHONWARNINGS=ignore $(BIN)/pip install -q -e '.[test,bench]'
	@test -x $(THEENGS)/bin/TheengsGateway || { $(PYTHON) -m venv $(THEENGS) && \
	  PYTHONWARNINGS=ignore $(THEENGS)/bin/pip install -q TheengsGateway==$(THEENGS_VERSION); } || \
	  echo "Theengs Gateway could not be installed: the bench goes on without it"
	$(BIN)/pytest -q -m bench -s $(PYTEST_ARGS)
	$(BIN)/python -m tests.support.bench_report

# On a gateway (Debian / Raspberry Pi OS), as root:  make install
# Into another root (packaging, tests):             make install DESTDIR=/tmp/root
PREFIX  ?= /opt/edge-agent
DESTDIR ?=
SYSCONF := $(DESTDIR)/etc/edge-agent
UNITDIR := $(DESTDIR)/etc/systemd/system

install:
	@if [ -z "$(DESTDIR)" ] && ! command -v bluetoothd >/dev/null 2>&1 && [ ! -x /usr/sbin/bluetoothd ] \
	  && [ ! -x /usr/libexec/bluetooth/bluetoothd ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bluez; \
	  else echo "BlueZ is missing. Run: sudo apt-get install -y bluez"; exit 1; fi; fi
	$(PYTHON) -m venv $(DESTDIR)$(PREFIX)
	PYTHONWARNINGS=ignore $(DESTDIR)$(PREFIX)/bin/pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(DESTDIR)$(PREFIX)/bin/pip install -q .
	install -d -m 0755 $(DESTDIR)$(PREFIX)/share/doc/edge-agent $(SYSCONF) $(UNITDIR)
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/edge-agent/README.md
	@# an edited configuration is never overwritten; the example is kept beside it
	install -m 0644 config/agent.toml $(SYSCONF)/agent.toml.example
	[ -e $(SYSCONF)/agent.toml ] || install -m 0644 config/agent.toml $(SYSCONF)/agent.toml
	install -m 0644 systemd/edge-agent.service $(UNITDIR)/edge-agent.service
	@if [ -e $(SYSCONF)/mqtt-password ]; then \
	  install -d -m 0755 $(UNITDIR)/edge-agent.service.d && \
	  install -m 0644 systemd/mqtt-password.conf $(UNITDIR)/edge-agent.service.d/mqtt-password.conf; fi
	@if [ -e $(SYSCONF)/store-secret ]; then \
	  install -d -m 0755 $(UNITDIR)/edge-agent.service.d && \
	  install -m 0644 systemd/store-secret.conf $(UNITDIR)/edge-agent.service.d/store-secret.conf; fi
	@if [ -e $(SYSCONF)/bthome-keys ]; then \
	  install -d -m 0755 $(UNITDIR)/edge-agent.service.d && \
	  install -m 0644 systemd/bthome-keys.conf $(UNITDIR)/edge-agent.service.d/bthome-keys.conf; fi
	@echo "installed in $(DESTDIR)$(PREFIX). Next: edit $(SYSCONF)/agent.toml (gateway, mqtt,"
	@echo "zones and receivers), then: $(PREFIX)/bin/edge-agent check-config /etc/edge-agent/agent.toml"
	@echo "  $(PREFIX)/bin/edge-agent doctor -c /etc/edge-agent/agent.toml"
	@echo "  systemctl daemon-reload && systemctl enable --now edge-agent"
	@echo "  $(PREFIX)/bin/edge-agent status -c /etc/edge-agent/agent.toml"

schema: venv
	$(BIN)/edge-agent schema --out edge_agent/schemas

clean:
	rm -rf $(VENV) .cache .numba-cache .pytest_cache .mypy_cache .ruff_cache build *.egg-info
