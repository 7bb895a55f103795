package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// testRedisConfig is the broker configuration of the tests: every timeout
// short, so that faults are detected and repaired within a test's budget.
func testRedisConfig(url string) redis.Config {
	return redis.Config{
		URL:            url,
		ProbeIdle:      400 * time.Millisecond,
		ProbeTimeout:   400 * time.Millisecond,
		ReconnectMin:   20 * time.Millisecond,
		ReconnectMax:   200 * time.Millisecond,
		FlushWait:      2 * time.Second,
		PresenceTTL:    1500 * time.Millisecond,
		CommandTimeout: 2 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// testNode is one real node (actors + transport + HTTP on a loopback port)
// on the Redis broker.
type testNode struct {
	t      testing.TB
	id     string
	node   *actors.Node
	broker *redis.Broker
	srv    *transport.Server
	hs     *http.Server
	url    string // http://127.0.0.1:port
	once   sync.Once
}

type nodeOpt func(*redis.Config, *actors.Config)

func withBroker(f func(*redis.Config)) nodeOpt {
	return func(c *redis.Config, _ *actors.Config) { f(c) }
}

// startNode starts node id on the Redis at url and waits until its
// subscriptions are up.
func startNode(t testing.TB, url, id string, opts ...nodeOpt) *testNode {
	t.Helper()
	n := startNodeNoWait(t, url, id, opts...)
	n.waitConnected(5 * time.Second)
	return n
}

// startNodeNoWait starts node id on the Redis at url, reachable or not.
func startNodeNoWait(t testing.TB, url, id string, opts ...nodeOpt) *testNode {
	t.Helper()
	rcfg := testRedisConfig(url)
	acfg := actors.Config{NodeID: id, PingInterval: 5 * time.Second, RatePerSecond: -1}
	for _, o := range opts {
		o(&rcfg, &acfg)
	}
	broker, err := redis.New(rcfg)
	if err != nil {
		t.Fatal(err)
	}
	acfg.Broker = broker
	node, err := actors.NewNode(acfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := transport.New(node, transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.NewHTTPServer(ln.Addr().String())
	go func() { _ = hs.Serve(ln) }()
	n := &testNode{t: t, id: id, node: node, broker: broker, srv: srv, hs: hs, url: "http://" + ln.Addr().String()}
	t.Cleanup(n.stop)
	return n
}

// stop drains and shuts the node down (idempotent).
func (n *testNode) stop() {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = n.srv.Drain(ctx)
		_ = n.hs.Shutdown(ctx)
		_ = n.node.Shutdown(ctx)
	})
}

func (n *testNode) waitConnected(d time.Duration) {
	n.t.Helper()
	waitFor(n.t, n.id+" connected to redis", d, func() bool { return n.node.BrokerState().Connected })
}

func (n *testNode) wsURL(path string) string { return "ws" + strings.TrimPrefix(n.url, "http") + path }

// dial connects client id and consumes its welcome.
func (n *testNode) dial(id string) *wsclient.Client {
	n.t.Helper()
	c, err := wsclient.Dial(n.wsURL("/ws?client_id="+id), wsclient.Options{})
	if err != nil {
		n.t.Fatalf("dial %s on %s: %v", id, n.id, err)
	}
	n.t.Cleanup(func() { _ = c.Close() })
	ev, err := c.Next(5 * time.Second)
	if err != nil || ev.Event != "welcome" || ev.Node != n.id {
		n.t.Fatalf("welcome for %s on %s: %v %+v", id, n.id, err, ev)
	}
	return c
}

// ready returns the /readyz status code.
func (n *testNode) ready() int {
	resp, err := http.Get(n.url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
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

func isPresence(event, user string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == event && e.UserID == user }
}

func isAck(id string) func(*wsclient.Event) bool {
	return func(e *wsclient.Event) bool { return e.Event == "ack" && string(e.ID) == `"`+id+`"` }
}

// join makes c join room and waits for the ack.
func join(t testing.TB, c *wsclient.Client, room string) {
	t.Helper()
	id := "join-" + room
	if err := c.SendJSON(map[string]any{"type": "join_room", "room": room, "id": id}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "join ack "+room, isAck(id))
}

// startRedis starts a redis-server and, first of all, registers the check
// that the goroutines of everything the test starts afterwards are gone
// when it ends (cleanups run last-in first-out, so this one runs last).
func startRedis(t *testing.T, extra ...string) *redistest.Server {
	t.Helper()
	checkGoroutines(t)
	return redistest.Start(t, extra...)
}

func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// roomChannel is the room's Redis channel with the default prefix.
func roomChannel(room string) string { return actors.RoomChannel("websocket", room) }

func seq(prefix string, i int) string { return fmt.Sprintf("%s-%04d", prefix, i) }
