package cluster_test

import (
	"context"
	"log/slog"
	"math/bits"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
)

// logRecords keeps every record at info and above, with its attributes.
type logRecords struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *logRecords) handler(attrs ...slog.Attr) slog.Handler {
	return &recordHandler{l: l, attrs: attrs}
}

func (l *logRecords) snapshot() []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]logLine(nil), l.lines...)
}

type recordHandler struct {
	l     *logRecords
	attrs []slog.Attr
}

func (h *recordHandler) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelInfo }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	line := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		line.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { line.attrs[a.Key] = a.Value.String(); return true })
	h.l.mu.Lock()
	h.l.lines = append(h.l.lines, line)
	h.l.mu.Unlock()
	return nil
}
func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordHandler{l: h.l, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}
func (h *recordHandler) WithGroup(string) slog.Handler { return h }

// TestRedisOutageLoggedAtSlowingRate: while Redis is unreachable, a node
// whose connections fail and are retried many times a second writes a
// warning when the outage begins, then one line after 1, 2, 4, 8, ...
// failed attempts, each with the count, and one info line when Redis is
// back, with the count; nothing else at info or above (no actor restart
// line per attempt).
func TestRedisOutageLoggedAtSlowingRate(t *testing.T) {
	rs := startRedis(t)
	rs.Stop()
	logs := &logRecords{}
	log := slog.New(logs.handler())
	fast := func(rc *cluster.RedisConfig, ac *actors.Config) {
		rc.ReconnectMin, rc.ReconnectMax = 5*time.Millisecond, 10*time.Millisecond
		rc.Logger, ac.Logger = log, log
	}
	n := startNodeNoWait(t, rs.URL(), "n1", fast)
	const attempts = 100
	waitFor(t, "many failed reconnections", 20*time.Second, func() bool {
		return n.broker.Stats().Reconnects >= attempts
	})
	rs.Restart()
	n.waitConnected(10 * time.Second)
	failed := n.broker.Stats().Reconnects

	var warnings []logLine
	var up *logLine
	for _, l := range logs.snapshot() {
		switch {
		case l.level >= slog.LevelWarn:
			warnings = append(warnings, l)
		case l.msg == "redis subscriptions up":
			up = &l
		default:
			t.Errorf("logged at %v during the outage: %s %v", l.level, l.msg, l.attrs)
		}
	}
	// Lines after 0, 1, 2, 4, ... attempts: at most 2 + log2(failed).
	if limit := 2 + bits.Len64(uint64(failed)); len(warnings) > limit || len(warnings) < 2 {
		t.Errorf("%d warnings for %d failed attempts, want 2 to %d", len(warnings), failed, limit)
	}
	for i, w := range warnings {
		if i > 0 && (w.attrs["attempts"] == "" || w.attrs["down_for"] == "") {
			t.Errorf("warning %d has no attempt count or duration: %s %v", i, w.msg, w.attrs)
		}
		t.Logf("%v %s %v", w.level, w.msg, w.attrs)
	}
	if up == nil || up.attrs["failed_attempts"] == "" || up.attrs["failed_attempts"] == "0" {
		t.Fatalf("no recovery line with the attempt count: %+v", up)
	}
	t.Logf("%d failed attempts: %d warnings; recovery: %s %v", failed, len(warnings), up.msg, up.attrs)
	if !strings.HasPrefix(warnings[0].msg, "redis pub/sub connection failed") {
		t.Errorf("first warning: %s", warnings[0].msg)
	}
}
