GO       ?= go
ADDR     ?= 127.0.0.1:8080
PKGS     := ./...
# Every test with the race detector; bounded well under 10 minutes on 2 cores.
TESTFLAGS ?= -race -count=1 -timeout 9m

.PHONY: all build run test check vet fmt bench load fuzz chaos clean

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

# Go benchmarks (codecs, room fan-out to fake connections, wire writer,
# end to end over loopback). BENCH selects, BENCHTIME/BENCHCOUNT repeat; the
# figures and how they were taken are in docs/benchmarks.md.
BENCH      ?= .
BENCHTIME  ?= 1s
BENCHCOUNT ?= 1
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 30m ./actors ./transport ./cluster

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
	$(GO) test ./actors -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME)
	$(GO) test ./actors -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME)
	$(GO) test ./actors -run '^$$' -fuzz '^FuzzDecodeMembers$$' -fuzztime $(FUZZTIME)
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
