# Two commands do all set-up on a fresh Debian 12 machine as root:
#   make demo   - install tshark if missing, make .venv, install auditor, audit the bundled pilot capture
#   make test   - the same set-up, then the whole test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
OUT     ?= out
APT     := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: demo test setup system-deps lint bench clean

system-deps:
	@command -v tshark >/dev/null 2>&1 || { apt-get update -q && $(APT) tshark; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -q && $(APT) python3-venv; }

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,xlsx]'
	touch $(STAMP)

setup: system-deps $(STAMP)

demo: setup
	@mkdir -p $(OUT)
	$(VENV)/bin/auditor flows fixtures/pcaps/pilot/pilot.pcapng --format csv -o $(OUT)/flows.csv
	$(VENV)/bin/auditor flows fixtures/pcaps/pilot/pilot.pcapng
	@echo "demo output written to $(OUT)/"

test: setup
	$(PY) -m pytest -q -p no:cacheprovider

lint: setup
	$(VENV)/bin/ruff check auditor tests benchmarks

bench: setup
	$(PY) benchmarks/bench_flows.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
