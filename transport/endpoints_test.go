package transport_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster"
)

// The operational endpoints of docs/protocol.md section 1 on one node.
func TestOperationalEndpoints(t *testing.T) {
	fabric := cluster.NewFabric()
	t.Cleanup(fabric.Close)
	n := startNode(t, fabric.Broker())
	// No keep-alive: a pooled connection would outlive the test.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func(path string) (int, string, string) {
		t.Helper()
		resp, err := client.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
	}

	a, b := n.dial("alice"), n.dial("bob")
	joinAll(t, "r1", a, b)
	joinAll(t, "r2", a)
	status, ctype, body := get("/stats")
	if status != http.StatusOK || !strings.HasPrefix(ctype, "application/json") {
		t.Fatalf("/stats: %d %s", status, ctype)
	}
	var stats map[string]any
	if err := json.Unmarshal([]byte(body), &stats); err != nil {
		t.Fatalf("/stats is not JSON: %v", err)
	}
	// The tutorial's two fields, then the node's own.
	if stats["local_connections"] != float64(2) || stats["rooms"] != float64(2) || stats["node"] != n.node.ID() {
		t.Fatalf("/stats: %s", body)
	}
	if broker, ok := stats["broker"].(map[string]any); !ok || broker["connected"] != true {
		t.Fatalf("/stats broker state: %s", body)
	}

	if status, _, _ := get("/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz: %d", status)
	}
	if status, _, _ := get("/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz: %d", status)
	}
	fabric.SetDown(true)
	if status, _, _ := get("/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the broker down: %d, want 503", status)
	}
	if status, _, _ := get("/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with the broker down: %d, want 200 (the process serves)", status)
	}
	fabric.SetDown(false)
	if status, _, _ := get("/readyz"); status != http.StatusOK {
		t.Fatalf("/readyz after the broker came back: %d", status)
	}

	status, ctype, body = get("/metrics")
	if status != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") || !strings.Contains(body, "\nswitchboard_") {
		t.Fatalf("/metrics: %d %s\n%.300s", status, ctype, body)
	}
}
