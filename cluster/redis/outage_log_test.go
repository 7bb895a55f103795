package redis_test

import (
	"context"
	"io"
	"log/slog"
	"math/bits"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
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
	g := newGate(t, rs.Addr())
	logs := &logRecords{}
	log := slog.New(logs.handler())
	fast := func(rc *redis.Config, ac *actors.Config) {
		rc.ReconnectMin, rc.ReconnectMax = 5*time.Millisecond, 10*time.Millisecond
		rc.Logger, ac.Logger = log, log
	}
	n := startNodeNoWait(t, g.url(), "n1", fast)
	const attempts = 100
	waitFor(t, "many failed reconnections", 20*time.Second, func() bool {
		return n.broker.Stats().Reconnects >= attempts
	})
	g.open.Store(true)
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

// gate is Redis behind a door: a loopback listener that, while closed,
// hangs up on every connection at once (Redis unreachable, as a stopped
// server's port would be), and once open forwards to the server. The
// port stays bound all along: a stopped server's port, dialled hundreds of
// times, may be taken meanwhile (by an outgoing connection's ephemeral
// port), and the server could not start on it again.
type gate struct {
	ln   net.Listener
	open atomic.Bool
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				_ = c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			track(c)
			track(s)
			wg.Add(2)
			pump := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
			}
			go pump(c, s)
			go pump(s, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return g
}

func (g *gate) url() string { return "redis://" + g.ln.Addr().String() + "/0" }
