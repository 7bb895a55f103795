package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func publish(t *testing.T, base, auth, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/publish", strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestExtrasDemoPageAndAPIOffByDefault: the node serves the demo page and its
// assets, no directory listing, and no publish API without a key; pprof
// is off.
func TestExtrasDemoPageAndAPIOffByDefault(t *testing.T) {
	n := startInproc(t)
	status, body, h := get(t, n.base+"/")
	if status != 200 || !strings.Contains(body, "<title>Switchboard demo</title>") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("GET /: %d, CSP %q", status, h.Get("Content-Security-Policy"))
	}
	for path, ctype := range map[string]string{"/demo/app.js": "javascript", "/demo/style.css": "text/css", "/demo/favicon.svg": "image/svg+xml"} {
		if status, _, h := get(t, n.base+path); status != 200 || !strings.Contains(h.Get("Content-Type"), ctype) {
			t.Errorf("GET %s: %d %q", path, status, h.Get("Content-Type"))
		}
	}
	for _, path := range []string{"/demo/", "/demo/e2e/browser.test.mjs", "/demo/package.json", "/nothing-here", "/debug/pprof/"} {
		if status, _, _ := get(t, n.base+path); status != 404 {
			t.Errorf("GET %s: %d, want 404", path, status)
		}
	}
	if status, body := publish(t, n.base, "Bearer x", `{"broadcast":true,"payload":{"event":"x"}}`); status != 404 {
		t.Errorf("publish without --api-key: %d %s, want 404", status, body)
	}
}

// TestExtrasAPIKeyAndPprof: --api-key (or SWITCHBOARD_API_KEY) turns the
// publish API on; --pprof serves the profiler on the admin listener.
func TestExtrasAPIKeyAndPprof(t *testing.T) {
	n := startInproc(t, "--api-key", "s3cret", "--pprof")
	c := dialWelcome(t, n.ws("ada"))
	if status, _ := publish(t, n.base, "", `{"user":"ada","payload":{"event":"hello"}}`); status != 401 {
		t.Errorf("no key: %d, want 401", status)
	}
	if status, _ := publish(t, n.base, "Bearer wrong", `{"user":"ada","payload":{"event":"hello"}}`); status != 401 {
		t.Errorf("wrong key: %d, want 401", status)
	}
	status, body := publish(t, n.base, "Bearer s3cret", `{"user":"ada","payload":{"event":"hello","n":1}}`)
	if status != 200 || !strings.Contains(body, `"local_recipients":1`) {
		t.Fatalf("publish: %d %s", status, body)
	}
	ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "hello" })
	if err != nil || string(ev.Raw) != `{"event":"hello","n":1}` {
		t.Fatalf("ada's event: %v %+v", err, ev)
	}
	if status, body, _ := get(t, n.admin+"/debug/pprof/"); status != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("--pprof: GET /debug/pprof/ on the admin listener = %d", status)
	}

	o, err := parseOptions([]string{"--addr", "127.0.0.1:0"}, func(k string) string {
		if k == "SWITCHBOARD_API_KEY" {
			return "from-env"
		}
		return ""
	}, io.Discard)
	if err != nil || o.apiKey != "from-env" {
		t.Fatalf("SWITCHBOARD_API_KEY: %v %q", err, o.apiKey)
	}
}
