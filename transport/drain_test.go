package transport_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Drain: every client is closed with 1001, new connections are refused with
// 503 before the upgrade, /readyz turns 503, and the node ends up empty.
func TestDrainClosesWith1001(t *testing.T) {
	n := startNode(t, nil)
	a, b := n.dial("alice"), n.dial("bob")
	joinAll(t, "r", a, b)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.srv.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
	for _, c := range []*wsclient.Client{a, b} {
		if code, err := c.WaitClosed(5 * time.Second); err != nil || code != 1001 {
			t.Fatalf("drained client closed with %d (%v), want 1001", code, err)
		}
	}
	_, err := wsclient.Dial(n.wsURL("/ws?client_id=late"), wsclient.Options{})
	var he *wsclient.HandshakeError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
		t.Fatalf("connecting to a draining node: %v, want 503", err)
	}
	// No keep-alive: a pooled connection would outlive the test.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(n.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d", resp.StatusCode)
	}
	waitFor(t, "node empty", 5*time.Second, func() bool { return metricsAre(n, 0, 0, 0) })
}
