# Two commands do all set-up on a fresh Debian 12 machine as root:
#   make demo   - install tshark if missing, make .venv, install auditor, audit the bundled pilot capture
#   make test   - the same set-up, then the whole test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
OUT     ?= out
APT     := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends

.PHONY: demo test setup system-deps test-deps lint bench bench-formats fuzz clean

# tshark does the deep DCE/RPC dissection; python3-venv is missing on minimal Debian images
system-deps:
	@command -v tshark >/dev/null 2>&1 || { apt-get update -q && $(APT) tshark; }
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -q && $(APT) python3-venv; }

# the HTML report is tested in a real headless browser; the capture-format tests compress real
# captures with the command-line tools users have
test-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && $(APT) chromium; }
	@for t in zstd:zstd lz4:lz4 bzip2:bzip2 xz:xz-utils; do command -v $${t%%:*} >/dev/null 2>&1 \
	    || { apt-get update -q && $(APT) $${t#*:}; }; done
	@# firewall exports are checked by the real tools (nft -c, iptables-restore --test) in a netns
	@PATH="$$PATH:/usr/sbin:/sbin"; command -v nft >/dev/null 2>&1 || { apt-get update -q && $(APT) nftables; }
	@PATH="$$PATH:/usr/sbin:/sbin"; command -v iptables-restore >/dev/null 2>&1 \
	    || { apt-get update -q && $(APT) iptables; }

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,xlsx]'
	touch $(STAMP)

setup: system-deps $(STAMP)

PILOT   := fixtures/pcaps/pilot
AUDIT   := $(VENV)/bin/auditor

demo: setup
	@mkdir -p $(OUT)
	$(AUDIT) audit $(PILOT)/pilot.pcapng --inventory $(PILOT)/inventory.yaml \
	    --report $(OUT)/report.html --report $(OUT)/report.xlsx --report $(OUT)/report.md
	$(AUDIT) audit $(PILOT)/pilot.pcapng --inventory $(PILOT)/inventory.yaml --format json -o $(OUT)/audit.json
	$(AUDIT) flows $(PILOT)/pilot.pcapng --format csv -o $(OUT)/flows.csv
	$(AUDIT) plot matrix $(PILOT)/pilot.pcapng --inventory $(PILOT)/inventory.yaml -o $(OUT)/matrix.png
	$(AUDIT) plot diagram $(PILOT)/pilot.pcapng --inventory $(PILOT)/inventory.yaml -o $(OUT)/diagram.png
	$(AUDIT) firewall --inventory $(PILOT)/inventory.yaml --from-capture $(PILOT)/pilot.pcapng -o $(OUT)/firewall-asbuilt.csv
	$(AUDIT) firewall --inventory $(PILOT)/inventory.yaml -o $(OUT)/firewall-design.csv
	@echo
	@echo "demo output is in $(OUT)/: report.html (open it in a browser), report.xlsx, report.md,"
	@echo "audit.json, flows.csv, matrix.png, diagram.png, firewall-design.csv, firewall-asbuilt.csv"

# one pytest worker per core (pytest-xdist): each worker has its own temporary folders and cache
# home (tests/conftest.py), so no test shares state with another worker's
TEST_JOBS ?= auto

test: setup test-deps
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_JOBS)

lint: setup
	$(VENV)/bin/ruff check auditor tests benchmarks

# seeded structural fuzzing of the capture reader through the CLI (tests/fuzz/); not in `make test`,
# which runs a 300-case slice of it; then atheris (coverage-guided) for FUZZ_SECONDS where it installs.
# FUZZ_CASES=100000 FUZZ_SEED=7 make fuzz for a longer campaign.
FUZZ_CASES ?= 10000
FUZZ_SEED  ?= 0
FUZZ_SECONDS ?= 60
fuzz: setup
	$(PY) -m tests.fuzz --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)
	-$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) -m tests.fuzz.coverage --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

bench: setup
	$(PY) benchmarks/bench_flows.py

# read speed of every capture format and compression (several minutes: tshark reads each file)
bench-formats: setup
	$(PY) benchmarks/bench_formats.py

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
