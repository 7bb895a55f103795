package transport_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// TestMetricsNamingAndHistograms checks /metrics against Prometheus naming
// conventions (counters end in _total, nothing else does) and that the
// delivery latency and fan-out histograms and the hub mailbox gauge are
// exported and move with real traffic.
func TestMetricsNamingAndHistograms(t *testing.T) {
	n := startNode(t, nil)
	alice, bob := n.dial("alice"), n.dial("bob")
	for _, c := range []*wsclient.Client{alice, bob} {
		_ = c.SendJSON(map[string]any{"type": "join_room", "room": "metrics", "id": 1})
		expect(t, c, "join ack", isEvent("ack"))
	}
	const sent = 20
	for i := 0; i < sent; i++ {
		_ = alice.SendJSON(map[string]any{"type": "room_message", "room": "metrics", "content": "m"})
	}
	for i := 0; i < sent; i++ {
		expect(t, bob, "room message", func(e *wsclient.Event) bool { return e.Event == "chat" })
		expect(t, alice, "own room message", func(e *wsclient.Event) bool { return e.Event == "chat" })
	}

	fams, err := n.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, f := range fams {
		name, kind := f.GetName(), f.GetType().String()
		seen[name] = kind
		if !strings.HasPrefix(name, "switchboard_") {
			continue
		}
		switch kind {
		case "COUNTER":
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("counter %s does not end in _total", name)
			}
		default:
			if strings.HasSuffix(name, "_total") {
				t.Errorf("%s %s ends in _total, which is for counters", strings.ToLower(kind), name)
			}
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
	}
	for name, kind := range map[string]string{
		"switchboard_delivery_latency_seconds": "HISTOGRAM",
		"switchboard_fanout_recipients":        "HISTOGRAM",
		"switchboard_hub_mailbox_depth":        "GAUGE",
		"switchboard_sessions":                 "GAUGE",
		"switchboard_rooms":                    "GAUGE",
		"switchboard_broker_connected":         "GAUGE",
		"switchboard_broker_outbox":            "GAUGE",
		"switchboard_messages_in_total":        "COUNTER",
		"switchboard_messages_out_total":       "COUNTER",
	} {
		if seen[name] != kind {
			t.Errorf("%s: type %q, want %s", name, seen[name], kind)
		}
	}

	for _, f := range fams {
		switch f.GetName() {
		case "switchboard_delivery_latency_seconds":
			h := f.GetMetric()[0].GetHistogram()
			// 2 x 20 room messages were timed; each connection observed its
			// 1st, 9th, 17th... timed delivery.
			perConn := (sent + actors.LatencySampleEvery - 1) / actors.LatencySampleEvery
			if h.GetSampleCount() != uint64(2*perConn) {
				t.Errorf("delivery latency: %d samples after %d deliveries, want %d", h.GetSampleCount(), 2*sent, 2*perConn)
			}
			if h.GetSampleSum() <= 0 || h.GetSampleSum() > 60 {
				t.Errorf("delivery latency: sum %v s is not plausible", h.GetSampleSum())
			}
		case "switchboard_fanout_recipients":
			h := f.GetMetric()[0].GetHistogram()
			var twoOrFewer uint64
			for _, b := range h.GetBucket() {
				if b.GetUpperBound() == 2 {
					twoOrFewer = b.GetCumulativeCount()
				}
			}
			if twoOrFewer < sent {
				t.Errorf("fan-out: %d fan-outs of at most 2 recipients, want at least %d", twoOrFewer, sent)
			}
		}
	}

	resp, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`switchboard_delivery_latency_seconds_bucket{le="8e-06"}`,
		`switchboard_delivery_latency_seconds_bucket{le="+Inf"}`,
		`switchboard_fanout_recipients_bucket{le="1"}`,
		"# TYPE switchboard_hub_mailbox_depth gauge",
	} {
		if !bytes.Contains(body, []byte(line)) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// syncBuffer is a log sink shared by the node's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestSessionLogLinesCarrySessionID: with debug logs on, a session's opening,
// its slow-consumer cut and its end are logged with its session id and user.
func TestSessionLogLinesCarrySessionID(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := startNode(t, nil, func(ac *actors.Config, tc *transport.Config) { ac.Logger = logger; tc.Logger = logger })
	c := n.dial("logan")
	_ = c.Close()
	waitFor(t, "the session to end", 5*time.Second, func() bool { return n.node.Metrics().Sessions.Load() == 0 })

	var opened, closed map[string]any
	waitFor(t, "session opened and closed lines", 5*time.Second, func() bool {
		opened, closed = nil, nil
		for _, l := range logs.lines() {
			switch l["msg"] {
			case "session opened":
				opened = l
			case "session closed":
				closed = l
			}
		}
		return opened != nil && closed != nil
	})
	id, _ := opened[actors.KeySession].(string)
	if id == "" || opened[actors.KeyUser] != "logan" || opened["remote"] == nil {
		t.Fatalf("session opened line lacks session, user or remote: %v", opened)
	}
	if closed[actors.KeySession] != id || closed[actors.KeyUser] != "logan" {
		t.Fatalf("session closed line %v does not name session %s of logan", closed, id)
	}
	for _, l := range logs.lines() {
		if l[actors.KeyUser] == "logan" && l[actors.KeySession] != id {
			t.Errorf("a line about logan's session without its id: %v", l)
		}
	}
}

// TestGrafanaDashboardMetricsExist keeps docs/grafana-dashboard.json in step
// with /metrics: every series a panel queries is exported by a node.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}

	n := withAPI(startNode(t, nil), testAPIKey)
	c := n.dial("dash")
	// Vector families appear once they have a label value: one refused
	// handshake and one API publish.
	if _, err := wsclient.Dial(n.wsURL("/ws/secure"), wsclient.Options{}); err == nil {
		t.Fatal("/ws/secure without a token was accepted")
	}
	if status, _, _ := post(t, n, http.MethodPost, bearer(testAPIKey), `{"broadcast":true,"payload":{"event":"x"}}`); status != http.StatusOK {
		t.Fatalf("publish: %d", status)
	}
	expect(t, c, "the published event", isEvent("x"))
	fams, err := n.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				exported[f.GetName()+suffix] = true
			}
		}
	}
	series := regexp.MustCompile(`\b(?:switchboard|process|go)_[a-z_]+\b`)
	queried := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range series.FindAllString(target.Expr, -1) {
				queried++
				if !exported[name] {
					t.Errorf("panel %q queries %s, which /metrics does not export", p.Title, name)
				}
			}
		}
	}
	if queried < 20 {
		t.Fatalf("only %d series queried: the dashboard did not parse as expected", queried)
	}
}
