package transport_test

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// testNode is one real node on a loopback listener.
type testNode struct {
	t    testing.TB
	node *actors.Node
	srv  *transport.Server
	hs   *http.Server
	url  string // http://127.0.0.1:port
}

type nodeOpt func(*actors.Config, *transport.Config)

func startNode(t testing.TB, broker actors.Broker, opts ...nodeOpt) *testNode {
	t.Helper()
	if broker == nil {
		broker = cluster.NewInProc()
	}
	acfg := actors.Config{Broker: broker, PingInterval: 5 * time.Second}
	tcfg := transport.Config{}
	for _, o := range opts {
		o(&acfg, &tcfg)
	}
	node, err := actors.NewNode(acfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := transport.New(node, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.NewHTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(ln) }()
	tn := &testNode{t: t, node: node, srv: srv, hs: hs, url: "http://" + ln.Addr().String()}
	t.Cleanup(tn.stop)
	return tn
}

func (n *testNode) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = n.srv.Drain(ctx)
	_ = n.hs.Shutdown(ctx)
	_ = n.node.Shutdown(ctx)
}

func (n *testNode) wsURL(path string) string { return "ws" + strings.TrimPrefix(n.url, "http") + path }

// dial connects client id and consumes its welcome.
func (n *testNode) dial(id string) *wsclient.Client {
	n.t.Helper()
	c, err := wsclient.Dial(n.wsURL("/ws?client_id="+id), wsclient.Options{})
	if err != nil {
		n.t.Fatalf("dial %s: %v", id, err)
	}
	n.t.Cleanup(func() { _ = c.Close() })
	ev, err := c.Next(5 * time.Second)
	if err != nil || ev.Event != "welcome" {
		n.t.Fatalf("welcome for %s: %v %+v", id, err, ev)
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func expect(t testing.TB, c *wsclient.Client, what string, match func(*wsclient.Event) bool) *wsclient.Event {
	t.Helper()
	ev, err := c.WaitFor(5*time.Second, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return ev
}

func isEvent(name string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == name }
}

// goroutineBaseline returns a check that the goroutine count came back.
func goroutineBaseline(t testing.TB) func() {
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
