package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

// request sends method to url and returns the status and up to 1 MiB of
// the body.
func request(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// debugRequests are the /debug/ paths any feature ever served, with a few
// that none did. The CPU profile and the trace ask for one second, so that a
// listener that wrongly serves them still answers quickly.
var debugRequests = []struct{ method, path string }{
	{"GET", "/debug/"},
	{"GET", "/debug/pprof/"},
	{"GET", "/debug/pprof/cmdline"},
	{"GET", "/debug/pprof/goroutine?debug=1"},
	{"GET", "/debug/pprof/heap"},
	{"GET", "/debug/pprof/symbol"},
	{"GET", "/debug/pprof/profile?seconds=1"},
	{"GET", "/debug/pprof/trace?seconds=1"},
	{"GET", "/debug/vars"},
	{"GET", "/debug/actors"},
	{"POST", "/debug/kill?id=hub&mode=panic"},
	{"GET", "/debug/kill?id=hub"},
}

// TestAdminListenerOwnsDebug: with every debug feature on, the public
// listener answers 404 to every /debug/ path, and the admin listener serves
// them (and nothing else).
func TestAdminListenerOwnsDebug(t *testing.T) {
	n := startInproc(t, "--pprof", "--enable-kill")
	if n.admin == "" {
		t.Fatal("no admin listener with --pprof --enable-kill")
	}
	for _, r := range debugRequests {
		if st, _ := request(t, r.method, n.base+r.path); st != http.StatusNotFound {
			t.Errorf("public %s %s: %d, want 404", r.method, r.path, st)
		}
	}

	if st, body := request(t, "GET", n.admin+"/debug/pprof/"); st != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("admin GET /debug/pprof/: %d", st)
	}
	if st, body := request(t, "GET", n.admin+"/debug/pprof/goroutine?debug=1"); st != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("admin goroutine profile: %d", st)
	}
	if st, _ := request(t, "GET", n.admin+"/debug/pprof/symbol"); st != http.StatusOK {
		t.Errorf("admin GET /debug/pprof/symbol: %d", st)
	}
	if d := actorsOf(t, n.admin); d.Counts["hub"] != 1 {
		t.Errorf("admin /debug/actors: %+v", d.Counts)
	}
	if st := postKill(t, n.admin, "session-$nope", "stop"); st != http.StatusNotFound {
		t.Errorf("admin POST /debug/kill of no actor: %d, want 404 from the handler", st)
	}
	// The command line may hold secrets: not served, even here.
	if st, _ := request(t, "GET", n.admin+"/debug/pprof/cmdline"); st != http.StatusNotFound {
		t.Errorf("admin GET /debug/pprof/cmdline: %d, want 404", st)
	}
	// The admin listener is not a second public one.
	for _, path := range []string{"/", "/ws?client_id=x", "/stats", "/metrics", "/healthz", "/api/publish"} {
		if st, _ := request(t, "GET", n.admin+path); st != http.StatusNotFound {
			t.Errorf("admin GET %s: %d, want 404", path, st)
		}
	}
	if !n.logs.Contains("admin_addr=" + strings.TrimPrefix(n.admin, "http://")) {
		t.Errorf("the start line does not give the admin address:\n%s", n.logs)
	}

	// One feature opens the listener with that feature's paths only.
	p := startInproc(t, "--pprof")
	if st := getJSON(t, p.admin+"/debug/actors", nil); st != http.StatusNotFound {
		t.Errorf("--pprof alone: admin /debug/actors %d, want 404", st)
	}
	k := startInproc(t, "--enable-kill")
	if st, _ := request(t, "GET", k.admin+"/debug/pprof/"); st != http.StatusNotFound {
		t.Errorf("--enable-kill alone: admin /debug/pprof/ %d, want 404", st)
	}
}

// TestAdminAddrMustBeLoopback: a non-loopback --admin-addr is a config error
// naming the flag, unless --admin-allow-remote (then the node warns).
func TestAdminAddrMustBeLoopback(t *testing.T) {
	noEnv := func(string) string { return "" }
	o, err := parseOptions(nil, noEnv, io.Discard)
	if err != nil || o.adminAddr != "127.0.0.1:6060" || o.adminEnabled() {
		t.Fatalf("defaults: %v %q enabled %v", err, o.adminAddr, o.adminEnabled())
	}
	for _, addr := range []string{"127.0.0.1:6060", "127.0.0.2:0", "[::1]:6060", "localhost:6060"} {
		if _, err := parseOptions([]string{"--admin-addr", addr}, noEnv, io.Discard); err != nil {
			t.Errorf("%s refused: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "[::]:6060", "admin.example.com:6060", "6060", ""} {
		_, err := parseOptions([]string{"--pprof", "--admin-addr", addr}, noEnv, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--admin-addr") {
			t.Errorf("--admin-addr %q: %v, want an error naming --admin-addr", addr, err)
		}
		if _, err := parseOptions([]string{"--admin-addr", addr, "--admin-allow-remote"}, noEnv, io.Discard); addr != "" && addr != "6060" && err != nil {
			t.Errorf("--admin-addr %q --admin-allow-remote: %v", addr, err)
		}
	}
	env := map[string]string{"SWITCHBOARD_ADMIN_ADDR": "0.0.0.0:7070", "SWITCHBOARD_ADMIN_ALLOW_REMOTE": "true"}
	if o, err := parseOptions(nil, func(k string) string { return env[k] }, io.Discard); err != nil || o.adminAddr != "0.0.0.0:7070" {
		t.Errorf("environment: %v %+v", err, o)
	}

	// Allowed, the node says what it means. (Decided without binding:
	// tests listen on loopback only.)
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	remote, err := parseOptions([]string{"--pprof", "--admin-addr", "0.0.0.0:6060", "--admin-allow-remote"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	warnRemoteAdmin(remote, "0.0.0.0:6060", log)
	if !strings.Contains(logs.String(), "admin listener is not on loopback") {
		t.Fatalf("no warning for a remote admin listener:\n%s", logs.String())
	}
	logs.Reset()
	local, err := parseOptions([]string{"--pprof", "--admin-addr", "127.0.0.1:0", "--admin-allow-remote"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	warnRemoteAdmin(local, "127.0.0.1:6060", log)
	if logs.Len() != 0 {
		t.Fatalf("a warning for a loopback admin listener:\n%s", logs.String())
	}
	// And the flag starts a node.
	if n := startInproc(t, "--pprof", "--admin-addr", "127.0.0.1:0", "--admin-allow-remote"); n.admin == "" {
		t.Fatal("no admin listener")
	}
}
