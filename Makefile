GO       ?= go
ADDR     ?= 127.0.0.1:8080
PKGS     := ./...
# Every test with the race detector; bounded well under 10 minutes on 2 cores.
TESTFLAGS ?= -race -count=1 -timeout 9m

.PHONY: all build run test test-client check vet fmt deps system-deps bench load fuzz chaos clean sentinel-failover

all: build

build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

run: build
	./bin/switchboard --addr $(ADDR)

# gofmt and vet first, then what the tests need (deps), then every test.
# CI=true makes a test whose tool is missing fail instead of skipping.
test: check deps build
	CI=$${CI:-true} $(GO) test $(TESTFLAGS) $(PKGS)
	$(CLIENT_TEST)

# The JavaScript client's tests (transport/web/client, node --test): real
# nodes started from bin/switchboard, one at a time, and a redis-server;
# about 15 s.
CLIENT_TEST = cd transport/web/client && CI=$${CI:-true} SB_BIN=$(CURDIR)/bin/switchboard npm test --silent
test-client: build deps
	$(CLIENT_TEST)

# What the tests run besides Go: real redis-server processes (and
# redis-cli), nginx in front of two nodes, and the demo page in headless
# Chromium driven by playwright-core from npm. deps installs what is
# missing: the Debian packages with apt-get when run as root (after an
# apt-get update), else it prints the exact command and stops; then npm ci
# in transport/web and transport/web/client whenever a lock file is newer
# than what is installed.
# DEPS_PATH is where the tools are looked for; DEPS_INSTALL is yes when
# deps may install them.
DEB_PACKAGES := redis-server=redis-server redis-cli=redis-tools nginx=nginx node=nodejs npm=npm chromium=chromium
DEPS_PATH    ?= $(PATH):/usr/sbin:/sbin
DEPS_INSTALL ?= $(shell [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && echo yes)
WEB_DEPS     := transport/web/node_modules/.package-lock.json
CLIENT_DEPS  := transport/web/client/node_modules/.package-lock.json

deps: system-deps $(WEB_DEPS) $(CLIENT_DEPS)

system-deps:
	@missing=""; \
	for pair in $(DEB_PACKAGES); do \
	  PATH="$(DEPS_PATH)" command -v "$${pair%%=*}" >/dev/null 2>&1 || missing="$$missing $${pair#*=}"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$(DEPS_INSTALL)" = yes ]; then \
	  echo "make deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq$$missing >/dev/null; \
	else \
	  echo "make deps: the tests need Debian packages that are missing:$$missing"; \
	  echo "install them (as root), then run make test again:"; \
	  echo "  sudo apt-get update && sudo apt-get install -y$$missing"; \
	  exit 1; \
	fi

# playwright-core exactly as package-lock.json pins it (~2 s); the browser
# test uses the system's Chromium, so no browser is downloaded.
$(WEB_DEPS): transport/web/package-lock.json | system-deps
	cd transport/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error

# The client's one dev dependency, ws (Node 20 has no global WebSocket).
$(CLIENT_DEPS): transport/web/client/package-lock.json | system-deps
	cd transport/web/client && npm ci --no-audit --no-fund --loglevel=error

# The Sentinel failover under traffic (a SIGKILLed primary), five runs in
# a row (make test runs it once).
sentinel-failover: deps
	$(GO) test -race -count=5 -run TestRedisSentinelFailover -v ./cluster/redis

check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# Go benchmarks (codecs, room fan-out to fake connections, wire writer,
# end to end over loopback). BENCH selects, BENCHTIME/BENCHCOUNT repeat; the
# figures and how they were taken are in docs/benchmarks.md.
BENCH      ?= .
BENCHTIME  ?= 1s
BENCHCOUNT ?= 1
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 30m ./actors/... ./transport ./cluster/...

# The load tool's headline run: a room fan-out on one node started in a
# child process, against the bare-gws baseline, three times each. LOAD_FLAGS
# replaces the scenario (see docs/benchmarks.md for the others); every run
# is bounded by --duration.
LOAD_FLAGS ?= --rooms 10 --members 100 --messages 2000 room
load:
	$(GO) build -ldflags "-X main.commit=$$(git rev-parse --short HEAD 2>/dev/null)" -o bin/switchboard-bench ./cmd/switchboard-bench
	./bin/switchboard-bench --inprocess 1 --spawn --baseline --repeat 3 --duration 2m $(LOAD_FLAGS)

FUZZTIME ?= 30s
fuzz:
	$(GO) test ./actors/wire -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	$(GO) test ./actors/wire -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME)
	$(GO) test ./actors/wire -run '^$$' -fuzz '^FuzzDecodeMembers$$' -fuzztime $(FUZZTIME)
	$(GO) test ./actors/wire -run '^$$' -fuzz '^FuzzEncodedFrom$$' -fuzztime $(FUZZTIME)
	$(GO) test ./transport -run '^$$' -fuzz '^FuzzFrameGate$$' -fuzztime $(FUZZTIME)
	$(GO) test ./transport -run '^$$' -fuzz '^FuzzFrameHeaders$$' -fuzztime $(FUZZTIME)
	$(GO) test ./transport -run '^$$' -fuzz '^FuzzClientFrames$$' -fuzztime $(FUZZTIME)

# The chaos suite's long form: three real nodes (built with the race
# detector) on a real redis-server, faults injected for CHAOS_DURATION while
# clients exchange numbered messages; invariants printed after each fault.
# CHAOS_FLAGS passes more (-seed N, -faults a,b, -nodes 2, ...). make test
# runs the short form (one round of each fault).
CHAOS_DURATION ?= 10m
CHAOS_FLAGS    ?=
chaos:
	$(GO) run ./cmd/switchboard-chaos -duration $(CHAOS_DURATION) $(CHAOS_FLAGS)

clean:
	rm -rf bin
