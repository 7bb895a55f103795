package actors

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// recConn records what a session queues and when it flushes.
type recConn struct {
	mu      sync.Mutex
	frames  []string
	flushes []int // len(frames) at each Flush
}

func (c *recConn) Enqueue(f []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames = append(c.frames, string(f))
	return true
}

func (c *recConn) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushes = append(c.flushes, len(c.frames))
}

func (c *recConn) Close(wire.CloseCode, string) {}
func (c *recConn) Abort(wire.CloseCode, string) {}

func (c *recConn) snapshot() ([]string, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.frames...), append([]int(nil), c.flushes...)
}

// A room's batch reaches a member as one message: the session queues its
// events in order and flushes once for all of them.
func TestSessionWritesABatchInOneFlush(t *testing.T) {
	n := startQuietNode(t, Config{Broker: newBenchBroker(), NodeID: "n1", PingInterval: time.Hour})
	c := &recConn{}
	pid := pidOf(n.Connect(c, SessionOptions{User: "u"}))
	waitUntil(t, "welcome flushed", func() bool { _, fl := c.snapshot(); return len(fl) == 1 })

	evs := []*wire.Event{wire.PresenceEvent("user_connected", "a"), wire.PresenceEvent("user_connected", "b"), wire.PresenceEvent("user_connected", "c")}
	n.root.Send(pid, &eventBatch{events: evs})
	waitUntil(t, "the batch flushed", func() bool { _, fl := c.snapshot(); return len(fl) == 2 })
	frames, flushes := c.snapshot()
	if len(frames) != 4 || flushes[1] != 4 {
		t.Fatalf("frames %d, flushes at %v: want the three events queued, then one flush", len(frames), flushes)
	}
	for i, ev := range evs {
		if frames[1+i] != string(ev.Frame) {
			t.Fatalf("frame %d is %q, want %q", 1+i, frames[1+i], ev.Frame)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// startQuietNode starts a node on a bench broker that never pings by
// itself (cfg says how), and shuts it down when the test ends.
func startQuietNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Shutdown(ctx)
	})
	return n
}
