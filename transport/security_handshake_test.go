package transport_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sendHead writes head on a new connection to n and returns the status of
// the answer; the connection is closed before it returns.
func sendHead(t *testing.T, n *testNode, head string) int {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// upgradeHead is an upgrade request for /ws in proto with the given
// Sec-WebSocket-Key lines.
func upgradeHead(proto string, keys ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET /ws?client_id=h %s\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", proto)
	for _, k := range keys {
		fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\n", k)
	}
	return b.String() + "\r\n"
}

// The request head may be 16 KiB, as documented: net/http's own 4 KiB of
// slack on top of MaxHeaderBytes is compensated.
func TestRequestHeadLimitIs16KiB(t *testing.T) {
	n := startNode(t, nil)
	sized := func(size int) string {
		base := upgradeHead("HTTP/1.1", "dGhlIHNhbXBsZSBub25jZQ==")
		base = strings.TrimSuffix(base, "\r\n") + "X-Filler: \r\n\r\n"
		head := strings.Replace(base, "X-Filler: ", "X-Filler: "+strings.Repeat("a", size-len(base)), 1)
		if len(head) != size {
			t.Fatalf("built a head of %d bytes, want %d", len(head), size)
		}
		return head
	}
	for _, tc := range []struct {
		size, want int
	}{
		{16<<10 - 100, http.StatusSwitchingProtocols},
		{16 << 10, http.StatusSwitchingProtocols},
		{16<<10 + 1, http.StatusRequestHeaderFieldsTooLarge},
		{16<<10 + 100, http.StatusRequestHeaderFieldsTooLarge},
		{20 << 10, http.StatusRequestHeaderFieldsTooLarge},
	} {
		if st := sendHead(t, n, sized(tc.size)); st != tc.want {
			t.Errorf("head of %d bytes: %d, want %d", tc.size, st, tc.want)
		}
	}
}

// An upgrade needs HTTP/1.1 and a Sec-WebSocket-Key of 16 bytes in
// base64 (RFC 6455, 4.1 and 4.2.1); anything else is a 400 before the
// upgrade, with no connection slot kept and no session made.
func TestUpgradeRequestShape(t *testing.T) {
	n := startNode(t, nil)
	const good = "dGhlIHNhbXBsZSBub25jZQ==" // 16 bytes
	for _, tc := range []struct {
		name string
		head string
		want int
	}{
		{"HTTP/1.1 with a good key", upgradeHead("HTTP/1.1", good), http.StatusSwitchingProtocols},
		{"HTTP/1.0", upgradeHead("HTTP/1.0", good), http.StatusBadRequest},
		{"no key", upgradeHead("HTTP/1.1"), http.StatusBadRequest},
		{"a key that is not base64", upgradeHead("HTTP/1.1", "not a key"), http.StatusBadRequest},
		{"a short word", upgradeHead("HTTP/1.1", "abc"), http.StatusBadRequest},
		{"15 bytes", upgradeHead("HTTP/1.1", base64.StdEncoding.EncodeToString(make([]byte, 15))), http.StatusBadRequest},
		{"17 bytes", upgradeHead("HTTP/1.1", base64.StdEncoding.EncodeToString(make([]byte, 17))), http.StatusBadRequest},
		{"16 bytes without padding", upgradeHead("HTTP/1.1", strings.TrimRight(good, "=")), http.StatusBadRequest},
		{"16 bytes in base64url", upgradeHead("HTTP/1.1", base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfe0123456789abc"))), http.StatusBadRequest},
		{"two keys", upgradeHead("HTTP/1.1", good, good), http.StatusBadRequest},
	} {
		if st := sendHead(t, n, tc.head); st != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.want)
		}
	}
	waitFor(t, "no session or slot left", 5*time.Second, func() bool {
		return n.node.Metrics().Sessions.Load() == 0 && n.srv.OpenConnections() == 0
	})
	if got := n.node.Metrics().Connections.Load(); got != 1 {
		t.Fatalf("%d sessions were made, want 1 (the good request's)", got)
	}
}
