package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestChaosShort is the suite's short form, run by make test: three real
// node processes on a real redis-server, 24 clients exchanging numbered
// messages, and one round of every fault kind the standalone topology
// takes. Any violated invariant fails it, with the round's report in the
// log.
func TestChaosShort(t *testing.T) {
	rep := runChaos(t, config{Seed: 20261127})
	// The short form must have exercised every kind the topology takes and
	// moved real traffic.
	for _, f := range faults {
		if _, skipped := rep.Skipped[f.name]; !skipped && rep.Faults[f.name] == 0 {
			t.Errorf("fault %s was never injected", f.name)
		}
	}
	if rep.Totals.Delivered < 1000 || rep.Totals.Acked < 500 {
		t.Errorf("too little traffic to judge: %d acked, %d delivered", rep.Totals.Acked, rep.Totals.Delivered)
	}
}

// TestChaosSentinel runs the nodes behind Redis Sentinel (a primary, a
// replica and three sentinels, real processes) and fails the primary over
// twice under traffic: first a SIGKILL (the killed server comes back as a
// replica of the new primary), then a planned SENTINEL FAILOVER back to
// it. Every round's ledger must hold: nothing lost outside the failover's
// window between nodes, no duplicate, no silent gap in a room's stream;
// the nodes must be subscribed on the new primary and back to their
// baseline after each.
func TestChaosSentinel(t *testing.T) {
	rep := runChaos(t, config{Seed: 20261128, RedisTopology: topoSentinel, Faults: []string{"sentinel-failover"}, Rounds: 2})
	if n := rep.Faults["sentinel-failover"]; n != 2 {
		t.Errorf("%d failovers injected, want 2", n)
	}
	var hows []string
	for _, f := range rep.Failovers {
		hows = append(hows, f.how)
	}
	if want := []string{"SIGKILL", "SENTINEL FAILOVER"}; !slices.Equal(hows, want) {
		t.Errorf("failovers %q, want %q", hows, want)
	}
	if rep.Totals.Delivered < 1000 || rep.Totals.Acked < 200 {
		t.Errorf("too little traffic to judge: %d acked, %d delivered", rep.Totals.Acked, rep.Totals.Delivered)
	}
}

// TestChaosCluster runs the nodes on a Redis Cluster (three primaries and
// their replicas, real processes, cluster-node-timeout 1.5 s) and moves a
// shard's slots three times under traffic: a CLUSTER FAILOVER of the hub's
// shard (every node's chat, connect events and direct messages), a SIGKILL
// of the next shard's primary (the killed server comes back as a replica
// of the one that took over), and the migration of a subscribed
// partition's slot to another shard. Every round's ledger must hold:
// nothing lost outside the fault's window between nodes, no duplicate, no
// silent gap in a room's stream; the nodes must be subscribed on the new
// owners and back to their baseline after each.
func TestChaosCluster(t *testing.T) {
	rep := runChaos(t, config{Seed: 20261129, RedisTopology: topoCluster, Faults: []string{"cluster-failover"}, Rounds: 3})
	var hows []string
	for _, f := range rep.Failovers {
		hows = append(hows, f.how)
	}
	if want := []string{"CLUSTER FAILOVER", "SIGKILL", "slot migration"}; !slices.Equal(hows, want) {
		t.Errorf("failovers %q, want %q", hows, want)
	}
	if rep.Totals.Delivered < 1000 || rep.Totals.Acked < 200 {
		t.Errorf("too little traffic to judge: %d acked, %d delivered", rep.Totals.Acked, rep.Totals.Delivered)
	}
}

// TestChaosTopologies checks the choice of topology and what each fault
// says about it, without starting anything.
func TestChaosTopologies(t *testing.T) {
	for _, tc := range []struct {
		cfg     config
		wantErr string
	}{
		{config{RedisTopology: "sentinels"}, `unknown redis topology "sentinels"`},
		{config{RedisTopology: topoSentinel, NoRedis: true}, "no-redis runs without Redis"},
		{config{RedisTopology: topoSentinel}, ""},
	} {
		err := tc.cfg.normalize()
		if got := fmt.Sprint(err); tc.wantErr == "" && err != nil || tc.wantErr != "" && !strings.Contains(got, tc.wantErr) {
			t.Errorf("%+v: error %v, want %q", tc.cfg.RedisTopology, err, tc.wantErr)
		}
	}
	for _, tc := range []struct{ fault, topology string }{
		{"redis-stop", topoSentinel}, {"redis-crash", topoSentinel}, {"sentinel-failover", topoStandalone},
		{"redis-stop", topoCluster}, {"redis-crash", topoCluster}, {"sentinel-failover", topoCluster},
		{"cluster-failover", topoStandalone}, {"cluster-failover", topoSentinel}, {"mass-exit", topoCluster},
	} {
		if why := faultByName[tc.fault].skipOn(tc.topology); why == "" {
			t.Errorf("%s does not skip the %s topology", tc.fault, tc.topology)
		}
	}
	for _, name := range []string{"redis-pause", "redis-pubsub-kill", "subscription-kill", "mass-exit"} {
		if f := faultByName[name]; f.skipOn != nil && f.skipOn(topoSentinel) != "" {
			t.Errorf("%s skips the sentinel topology: %s", name, f.skipOn(topoSentinel))
		}
	}
	for _, name := range []string{"redis-pause", "redis-pubsub-kill", "subscription-kill", "slow-reader"} {
		if f := faultByName[name]; f.skipOn != nil && f.skipOn(topoCluster) != "" {
			t.Errorf("%s skips the cluster topology: %s", name, f.skipOn(topoCluster))
		}
	}
	// This test binary stands for a node without --redis-cluster.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newTopology(context.Background(), topoCluster, t.TempDir(), "chaos", self); !errors.Is(err, errClusterUnsupported) {
		t.Errorf("cluster topology behind a node without --redis-cluster: %v, want %v", err, errClusterUnsupported)
	}
}

// runChaos runs the suite with cfg, logs its report, fails the test on any
// violation, and checks that the suite's own goroutines are gone after it.
// The node is built without the race detector (cfg.Race is false: make
// chaos builds it with), to keep the run within its budget on two shared
// cores; the suite itself runs under -race.
func runChaos(t *testing.T, cfg config) *report {
	t.Helper()
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := &testWriter{t: t}
	cfg.Out = out
	rep, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep.print(out)
	out.flush()
	for _, v := range rep.Violations {
		t.Error(v)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines of the suite: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
	return rep
}

// testWriter sends the suite's report to the test log, line by line.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		i := bytes.IndexByte(w.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf.Next(i + 1)[:i]))
	}
}

func (w *testWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.t.Log(w.buf.String())
		w.buf.Reset()
	}
}
