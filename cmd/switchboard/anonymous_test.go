package main

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// --allow-anonymous: a node with a key refuses clients without a token,
// unless it takes them as guests; the flag needs a key and excludes
// --auth-required.
func TestAllowAnonymousFlag(t *testing.T) {
	secret := "a-secret-of-at-least-32-bytes-000"
	for _, args := range [][]string{
		{"--allow-anonymous"},
		{"--allow-anonymous", "--jwt-secret", secret, "--auth-required"},
	} {
		if _, err := parseOptions(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
	strict := startInproc(t, "--jwt-secret", secret)
	_, err := wsclient.Dial("ws"+strings.TrimPrefix(strict.base, "http")+"/ws?client_id=alice", wsclient.Options{})
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Fatalf("no token, no --allow-anonymous: %v, want 401", err)
	}
	guests := startInproc(t, "--jwt-secret", secret, "--allow-anonymous")
	c, err := wsclient.Dial("ws"+strings.TrimPrefix(guests.base, "http")+"/ws?client_id=alice", wsclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ev, err := c.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "welcome" }); err != nil || ev.Client != "guest:alice" {
		t.Fatalf("guest welcome: %v %+v", err, ev)
	}
	if !guests.logs.Contains("guests_on_ws=true") {
		t.Fatalf("the log does not say guests are taken:\n%s", guests.logs)
	}
}
