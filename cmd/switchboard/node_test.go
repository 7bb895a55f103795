package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// inprocNode is the node command's run() in this process, on a free
// loopback port: the whole command minus the signal handling.
type inprocNode struct {
	t      *testing.T
	base   string // http://127.0.0.1:port
	admin  string // http://127.0.0.1:port of the admin listener; empty when it is off
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

// startInproc runs the node with args (flags as on the command line) and
// stops it, bounded, when the test ends.
func startInproc(t *testing.T, args ...string) *inprocNode {
	t.Helper()
	o, err := parseOptions(append([]string{"--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("options: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &inprocNode{t: t, cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	ready := make(chan listening, 1)
	go func() { n.done <- run(ctx, o, n.logs, ready) }()
	select {
	case at := <-ready:
		n.base = "http://" + at.Public
		if at.Admin != "" {
			n.admin = "http://" + at.Admin
		}
	case err := <-n.done:
		cancel()
		t.Fatalf("node did not start: %v\n%s", err, n.logs)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("node did not start within 10 s")
	}
	t.Cleanup(func() { n.stop() })
	return n
}

// stop cancels run's context (what SIGTERM does) and waits for it to return.
func (n *inprocNode) stop() error {
	n.cancel()
	select {
	case err, ok := <-n.done:
		if ok {
			close(n.done)
		}
		return err
	case <-time.After(20 * time.Second):
		n.t.Errorf("node did not stop within 20 s\n%s", n.logs)
		return nil
	}
}

func (n *inprocNode) ws(id string) string {
	return "ws" + strings.TrimPrefix(n.base, "http") + "/ws?client_id=" + id
}

// dialWelcome connects client id to a node at base and reads its welcome.
func dialWelcome(t *testing.T, wsURL string) *wsclient.Client {
	t.Helper()
	c, err := wsclient.Dial(wsURL, wsclient.Options{})
	if err != nil {
		t.Fatalf("dial %s: %v", wsURL, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if ev, err := c.Next(5 * time.Second); err != nil || ev.Event != "welcome" {
		t.Fatalf("welcome: %v %+v", err, ev)
	}
	return c
}

// joinRoom joins room with an id and waits for the ack.
func joinRoom(t *testing.T, c *wsclient.Client, room string) {
	t.Helper()
	id := "join-" + room
	if err := c.SendJSON(map[string]any{"type": "join_room", "room": room, "id": id}); err != nil {
		t.Fatal(err)
	}
	want := `"` + id + `"`
	if _, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "ack" && string(e.ID) == want }); err != nil {
		t.Fatalf("join %s: %v", room, err)
	}
}

// getJSON decodes the JSON answer of GET url into v and returns the status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: decode: %v", url, err)
		}
	}
	return resp.StatusCode
}

// waitUntil polls cond every 10 ms until it holds, failing after d.
func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer collects a node's log lines from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Contains(sub string) bool { return strings.Contains(s.String(), sub) }

var _ fmt.Stringer = (*syncBuffer)(nil)
