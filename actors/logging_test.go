package actors_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// recordLog keeps the level and message of every record, at every level.
type recordLog struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *recordLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *recordLog) WithGroup(string) slog.Handler      { return l }

func (l *recordLog) snapshot() []slog.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]slog.Record(nil), l.records...)
}

// TestNormalEndingsLogNothingAtInfo: clients that close, and clients the
// node closes (a drain) while their frames are still arriving, leave no
// log line at info or above. The frames that reach a session after it
// ended are dead letters to protoactor, which logs each at info; the
// node hands protoactor's info lines on at debug.
func TestNormalEndingsLogNothingAtInfo(t *testing.T) {
	log := &recordLog{}
	n := newNode(t, func(c *actors.Config) { c.Logger = slog.New(log) })

	leaver := connect(t, n, "leaver")
	leaver.send(`{"type":"join_room","room":"lobby","id":1}`)
	leaver.conn.waitEvent(t, "leaver joined", ackOf("1"))
	drained := connect(t, n, "drained")
	drained.send(`{"type":"join_room","room":"lobby","id":1}`)
	drained.conn.waitEvent(t, "drained joined", ackOf("1"))

	n.Deliver(leaver.pid, &actors.SocketClosed{}) // the client closed
	n.Deliver(drained.pid, &actors.CloseSession{Code: wire.CloseGoingAway, Reason: "node shutting down"})
	drained.conn.waitClosed(t)
	waitFor(t, "sessions and rooms gone", func() bool {
		return n.Metrics().Sessions.Load() == 0 && n.Metrics().Rooms.Load() == 0
	})
	// What the client sent before it saw the close frame.
	drained.send(`{"type":"room_message","room":"lobby","content":"late","id":2}`)
	drained.send(`{"type":"ping","id":3}`)
	n.Deliver(drained.pid, &actors.SocketClosed{})

	deadLetter := false
	waitFor(t, "the late frames' dead letters", func() bool {
		for _, r := range log.snapshot() {
			deadLetter = deadLetter || r.Message == "[DeadLetter]"
		}
		return deadLetter
	})
	for _, r := range log.snapshot() {
		if r.Level >= slog.LevelInfo {
			t.Errorf("logged at %v: %s", r.Level, r.Message)
		}
	}
}
