package main

import (
	"bytes"
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestChaosShort is the suite's short form, run by make test: three real
// node processes on a real redis-server, 24 clients exchanging numbered
// messages, and one round of every fault kind. Any violated invariant fails
// it, with the round's report in the log. The node is built without the
// race detector here (make chaos builds it with), to keep the run within its
// budget on two shared cores; the suite itself runs under -race.
func TestChaosShort(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := &testWriter{t: t}
	rep, err := run(ctx, config{Seed: 20261127, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	rep.print(out)
	out.flush()
	for _, v := range rep.Violations {
		t.Error(v)
	}
	// The short form must have exercised every kind and moved real traffic.
	for _, f := range faults {
		if rep.Faults[f.name] == 0 {
			t.Errorf("fault %s was never injected", f.name)
		}
	}
	if rep.Totals.Delivered < 1000 || rep.Totals.Acked < 500 {
		t.Errorf("too little traffic to judge: %d acked, %d delivered", rep.Totals.Acked, rep.Totals.Delivered)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines of the suite: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
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
