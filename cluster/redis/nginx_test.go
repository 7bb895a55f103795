package redis_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// operationsDoc is the operator's guide; its nginx block is what
// TestNginxInFrontOfTwoNodes runs.
const operationsDoc = "../../docs/operations.md"

// docNginxConfig returns the ```nginx block of docs/operations.md that
// follows the line naming conf.d/switchboard.conf.
func docNginxConfig(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(operationsDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```nginx\n(# /etc/nginx/conf.d/switchboard.conf.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no nginx block for conf.d/switchboard.conf", operationsDoc)
	}
	return string(m[1])
}

// startNginx runs nginx in the foreground, unprivileged-style (-p dir), with
// the http-level config conf, and returns its base URL.
func startNginx(t *testing.T, conf string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("nginx not installed; make deps installs it")
			}
			t.Skip("nginx not installed (make deps installs it)")
		}
	}
	dir := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log warn;
events { worker_connections 256; }
http {
    access_log %[2]s/logs/access.log;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
%[3]s
}
`, user, dir, conf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	listen := regexp.MustCompile(`listen\s+(127\.0\.0\.1:\d+)`).FindStringSubmatch(conf)
	if listen == nil {
		t.Fatalf("no listen directive in\n%s", conf)
	}
	base := "http://" + listen[1]
	waitFor(t, "nginx serving", 10*time.Second, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return base
}

// TestNginxInFrontOfTwoNodes runs the nginx configuration of
// docs/operations.md in front of two nodes: connections are spread over
// both, users on different nodes talk, and when a node drains new
// connections go to the other.
func TestNginxInFrontOfTwoNodes(t *testing.T) {
	rs := startRedis(t)
	n1 := startNode(t, rs.URL(), "n1")
	n2 := startNode(t, rs.URL(), "n2")
	conf := docNginxConfig(t)
	port := strconv.Itoa(redistest.FreePort(t))
	conf = strings.NewReplacer(
		"127.0.0.1:18080", strings.TrimPrefix(n1.url, "http://"),
		"127.0.0.1:18081", strings.TrimPrefix(n2.url, "http://"),
		"listen 127.0.0.1:8090", "listen 127.0.0.1:"+port,
	).Replace(conf)
	base := startNginx(t, conf)
	ws := "ws" + strings.TrimPrefix(base, "http")

	dial := func(id string) (*wsclient.Client, string) {
		c, err := wsclient.Dial(ws+"/ws?client_id="+id, wsclient.Options{})
		if err != nil {
			t.Fatalf("dial %s through nginx: %v", id, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		ev := expect(t, c, "welcome", isEvent("welcome"))
		return c, ev.Node
	}
	clients := map[string]*wsclient.Client{}
	on := map[string]int{}
	for i := range 4 {
		id := fmt.Sprintf("u%d", i)
		c, node := dial(id)
		clients[id] = c
		on[node]++
	}
	if on["n1"] == 0 || on["n2"] == 0 {
		t.Fatalf("nginx sent every connection to one node: %v", on)
	}
	for _, c := range clients {
		join(t, c, "through-nginx")
	}
	rs.WaitNumSub(roomChannel("through-nginx"), 2, 5*time.Second)
	_ = clients["u0"].SendJSON(map[string]any{"type": "room_message", "room": "through-nginx", "content": "hello all"})
	for id, c := range clients {
		if _, err := c.WaitFor(5*time.Second, roomChat("u0", "through-nginx", "hello all")); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}

	// A node that drains answers 503: nginx takes it out, new connections
	// land on the other node.
	n1.stop()
	for i := range 4 {
		_, node := dial(fmt.Sprintf("late%d", i))
		if node != "n2" {
			t.Fatalf("connection %d after n1 stopped landed on %s", i, node)
		}
	}
}
