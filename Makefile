GO       ?= go
ADDR     ?= 127.0.0.1:8080
PKGS     := ./...
# Every test with the race detector; bounded well under 10 minutes on 2 cores.
TESTFLAGS ?= -race -count=1 -timeout 9m

.PHONY: all build run test check vet fmt bench fuzz chaos clean

all: build

build:
	$(GO) build -o bin/switchboard ./cmd/switchboard

run: build
	./bin/switchboard --addr $(ADDR)

# gofmt and vet first, then every test.
test: check
	$(GO) test $(TESTFLAGS) $(PKGS)

check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

FUZZTIME ?= 30s
fuzz:
	$(GO) test ./actors -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	$(GO) test ./actors -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME)

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
