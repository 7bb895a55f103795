package transport_test

import (
	"context"
	"errors"
	"flag"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport"
)

// The browser test drives the demo page in headless Chromium with
// playwright-core (transport/web/e2e/browser.test.mjs). It needs node, the
// system's chromium and `npm ci` in transport/web; make deps (which make
// test runs) installs all three. Under CI=true (make test sets it) a
// missing piece fails the test; elsewhere it skips with the command that
// fixes it.
//
// Screenshots go to the -artifacts directory when go test is given
// -artifacts, else to $TMPDIR/switchboard-test-output/browser (kept after
// the run); the path is logged. SWITCHBOARD_DEMO_PNG=path also copies the
// main screenshot there (the README's docs/demo.png is made this way).

const webDir = "web"

// browserJWTSecret signs the token of the page that connects with auth.
var browserJWTSecret = []byte("browser-test-secret-of-32-bytes!")

func browserToken(t *testing.T, sub string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}).SignedString(browserJWTSecret)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type browserTools struct {
	node, chromium string
}

func browserToolsOrSkip(t *testing.T) browserTools {
	t.Helper()
	inCI := os.Getenv("CI") != "" && os.Getenv("CI") != "false"
	missing := func(what, fix string) {
		t.Helper()
		if inCI {
			t.Fatalf("browser test: %s (CI=%s, so this fails instead of skipping): %s", what, os.Getenv("CI"), fix)
		}
		t.Skipf("browser test skipped: %s; %s", what, fix)
	}
	var tools browserTools
	var err error
	if tools.node, err = exec.LookPath("node"); err != nil {
		missing("node is not installed", "apt-get install -y nodejs npm (or run make deps)")
	}
	tools.chromium = os.Getenv("SWITCHBOARD_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser"} {
		if tools.chromium != "" {
			break
		}
		tools.chromium, _ = exec.LookPath(name)
	}
	if tools.chromium == "" {
		missing("chromium is not installed", "apt-get install -y chromium (or set SWITCHBOARD_CHROMIUM)")
	}
	if _, err := os.Stat(filepath.Join(webDir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed", "run `npm ci` in transport/web (or run make deps)")
	}
	return tools
}

// demoNode is a node serving the demo page and the publish API, restartable
// on the same address.
type demoNode struct {
	t         *testing.T
	id        string
	newBroker func() (actors.Broker, error) // a fresh broker for each start

	mu   sync.Mutex // guards the fields below: the control handler and cleanup
	addr string
	node *actors.Node
	srv  *transport.Server
	hs   *http.Server
	done chan struct{} // closed when Serve returns
}

func startDemoNode(t *testing.T, newBroker func() (actors.Broker, error), id string) *demoNode {
	t.Helper()
	d := &demoNode{t: t, id: id, newBroker: newBroker, addr: "127.0.0.1:0"}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	return d
}

func (d *demoNode) start() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.node != nil {
		return errors.New("already running")
	}
	broker, err := d.newBroker()
	if err != nil {
		return err
	}
	node, err := actors.NewNode(actors.Config{NodeID: d.id, Broker: broker, PingInterval: 5 * time.Second})
	if err != nil {
		return err
	}
	auth, err := transport.NewHMACAuthenticator(browserJWTSecret)
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	// Tokens are accepted on /ws but not required: alice and bob connect by
	// name, as guests (guest:alice, guest:bob), carol with a token.
	srv, err := transport.New(node, transport.Config{Auth: auth, AllowAnonymous: true})
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	srv.MountDemo()
	srv.Handle(transport.PublishPath, srv.PublishAPI(testAPIKey))
	// Go listeners set SO_REUSEADDR: the port of a stopped node can be bound
	// again at once.
	ln, err := net.Listen("tcp", d.addr)
	if err != nil {
		_ = node.Shutdown(context.Background())
		return err
	}
	d.addr = ln.Addr().String()
	d.node, d.srv, d.hs, d.done = node, srv, srv.NewHTTPServer(d.addr), make(chan struct{})
	go func(hs *http.Server, done chan struct{}) {
		defer close(done)
		_ = hs.Serve(ln)
	}(d.hs, d.done)
	return nil
}

// stop drains the node as on SIGTERM: clients get 1001, then the listener
// and the node close.
func (d *demoNode) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = d.srv.Drain(ctx)
	_ = d.hs.Close()
	<-d.done
	_ = d.node.Shutdown(ctx)
	d.node = nil
}

func (d *demoNode) url() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return "http://" + d.addr
}

// browserBrokers joins the test's nodes with a real redis-server when one is
// installed (as after make deps), else with the in-process fabric. The second
// result releases what the first one needs, once the nodes are stopped.
func browserBrokers(t *testing.T) (func() (actors.Broker, error), func()) {
	if _, err := redistest.Binary(); err != nil {
		t.Logf("brokers: in-process fabric (%v)", err)
		fabric := cluster.NewFabric()
		t.Cleanup(fabric.Close)
		return func() (actors.Broker, error) { return fabric.Broker(), nil }, fabric.Close
	}
	rs := redistest.Start(t) // this test's own server: no channel prefix needed
	t.Logf("brokers: Redis at %s", rs.URL())
	return func() (actors.Broker, error) {
		return redis.New(redis.Config{URL: rs.URL()})
	}, func() {}
}

// screenshotDir is where the run's screenshots are kept.
func screenshotDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir := filepath.Join(os.TempDir(), "switchboard-test-output", "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBrowserDemo runs the demo page in headless Chromium against two nodes
// on one broker: room and direct messages between the nodes, an API publish,
// and reconnection after node A restarts on the same port. The checks are in
// web/e2e/browser.test.mjs; each one it passes is logged.
func TestBrowserDemo(t *testing.T) {
	tools := browserToolsOrSkip(t)
	newBroker, closeBrokers := browserBrokers(t)
	checkGoroutines := goroutineBaseline(t) // after the redis-server's waiter
	a := startDemoNode(t, newBroker, "node-a")
	b := startDemoNode(t, newBroker, "node-b")

	control := http.NewServeMux()
	control.HandleFunc("POST /stop-a", func(w http.ResponseWriter, r *http.Request) {
		a.stop()
		t.Log("control: node A stopped")
		_, _ = io.WriteString(w, "stopped\n")
	})
	control.HandleFunc("POST /start-a", func(w http.ResponseWriter, r *http.Request) {
		if err := a.start(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		t.Logf("control: node A started again on %s", a.url())
		_, _ = io.WriteString(w, "started\n")
	})
	cs := httptest.NewServer(control)
	rr := httptest.NewServer(roundRobin(a.url(), b.url()))

	out := screenshotDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.node, filepath.Join("e2e", "browser.test.mjs"))
	cmd.Dir = webDir
	cmd.Env = append(os.Environ(),
		"SB_URL_A="+a.url(), "SB_URL_B="+b.url(), "SB_URL_RR="+rr.URL,
		"SB_NODE_A=node-a", "SB_NODE_B=node-b",
		"SB_CONTROL="+cs.URL, "SB_API_KEY="+testAPIKey, "SB_TOKEN="+browserToken(t, "carol"),
		"SB_OUT="+out, "SB_CHROMIUM="+tools.chromium,
		"SB_TIMEOUT_MS=60000",
	)
	cmd.WaitDelay = 5 * time.Second
	started := time.Now()
	output, err := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimRight(string(output), "\n"), "\n") {
		t.Log("browser: " + line)
	}
	if err != nil {
		t.Fatalf("browser test failed after %v: %v", time.Since(started).Round(time.Millisecond), err)
	}
	t.Logf("browser test passed in %v", time.Since(started).Round(time.Millisecond))

	for _, name := range []string{"demo-node-a.png", "demo-node-b.png", "demo-after-restart.png"} {
		path := filepath.Join(out, name)
		f, err := os.Open(path)
		if err != nil {
			t.Fatalf("screenshot missing: %v", err)
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width != 1280 || cfg.Height != 800 {
			t.Fatalf("screenshot %s: %v %dx%d, want a 1280x800 PNG", path, err, cfg.Width, cfg.Height)
		}
		t.Logf("screenshot: %s", path)
	}
	if dst := os.Getenv("SWITCHBOARD_DEMO_PNG"); dst != "" {
		src, err := os.ReadFile(filepath.Join(out, "demo-node-a.png"))
		if err == nil {
			err = os.WriteFile(dst, src, 0o644)
		}
		if err != nil {
			t.Fatalf("SWITCHBOARD_DEMO_PNG: %v", err)
		}
		t.Logf("copied the screenshot to %s", dst)
	}

	cs.Close()
	rr.Close()
	a.stop()
	b.stop()
	closeBrokers()
	http.DefaultClient.CloseIdleConnections()
	checkGoroutines()
}

// roundRobin is a load balancer in front of the given nodes that sends
// each request (WebSocket upgrades included) to the next node in turn, as
// the README's nginx does.
func roundRobin(urls ...string) http.Handler {
	var next atomic.Uint64
	targets := make([]*url.URL, len(urls))
	for i, u := range urls {
		targets[i], _ = url.Parse(u)
	}
	return &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(targets[(next.Add(1)-1)%uint64(len(targets))])
	}}
}
