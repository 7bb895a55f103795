package redis_test

import (
	"net"
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

// readmeQuickStart returns the code blocks of the README's cluster quick
// start, in order, each with its language.
func readmeQuickStart(t *testing.T) [][2]string {
	t.Helper()
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)\n## Cluster quick start.*?\n## ").Find(doc)
	if m == nil {
		t.Fatal("README.md has no cluster quick start section")
	}
	var blocks [][2]string
	for _, b := range regexp.MustCompile("(?s)```(\\w+)\n(.*?)```").FindAllSubmatch(m, -1) {
		blocks = append(blocks, [2]string{string(b[1]), string(b[2])})
	}
	return blocks
}

// TestReadmeClusterQuickStart runs the README's cluster quick start as
// written, on ports of its own: the shell block that starts Redis and two
// nodes, the nginx block (which must listen on loopback only), a client
// through nginx, and the block that stops Redis and the nodes again, after
// which none of them is left running.
func TestReadmeClusterQuickStart(t *testing.T) {
	if _, err := redistest.Binary(); err != nil {
		t.Skip(err)
	}
	blocks := readmeQuickStart(t)
	var sh []string
	var nginxConf string
	for _, b := range blocks {
		switch b[0] {
		case "sh":
			sh = append(sh, b[1])
		case "nginx":
			nginxConf = b[1]
		}
	}
	if len(sh) < 3 || nginxConf == "" {
		t.Fatalf("the quick start has %d shell blocks and nginx %v: want start, look, stop and an nginx block", len(sh), nginxConf != "")
	}
	start, stop := sh[0], sh[len(sh)-1]

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "switchboard")
	ports := map[string]string{}
	for _, p := range []string{"6379", "18080", "18081", "8090"} {
		ports[p] = strconv.Itoa(redistest.FreePort(t))
	}
	rewrite := strings.NewReplacer(
		"make build", "go build -o "+bin+" ./cmd/switchboard",
		"./bin/switchboard", bin,
		"/tmp/", dir+"/",
		"6379", ports["6379"], "18080", ports["18080"], "18081", ports["18081"], "8090", ports["8090"],
	).Replace
	if !strings.Contains(stop, "kill") || !strings.Contains(stop, "redis-cli") {
		t.Fatalf("the last shell block does not stop what the first one started:\n%s", stop)
	}

	// Whatever happens, nothing the quick start started outlives the test.
	t.Cleanup(func() {
		for _, name := range []string{"switchboard-node-a.pid", "switchboard-node-b.pid"} {
			if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		_ = exec.Command("redis-cli", "-p", ports["6379"], "shutdown", "nosave").Run()
	})
	runShell(t, dir, rewrite(start))
	for _, p := range []string{ports["18080"], ports["18081"]} {
		waitFor(t, "node on "+p+" ready", 60*time.Second, func() bool {
			resp, err := http.Get("http://127.0.0.1:" + p + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	if !regexp.MustCompile(`(?m)^\s*listen\s+127\.0\.0\.1:8090;`).MatchString(nginxConf) {
		t.Fatalf("the nginx block does not listen on loopback only (listen 127.0.0.1:8090):\n%s", nginxConf)
	}
	base := startNginx(t, rewrite(nginxConf))
	c, err := wsclient.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws?client_id=quick", wsclient.Options{})
	if err != nil {
		t.Fatalf("through nginx: %v", err)
	}
	ev := expect(t, c, "welcome through nginx", isEvent("welcome"))
	if ev.Node != "node-a" && ev.Node != "node-b" {
		t.Fatalf("welcome from %q", ev.Node)
	}
	_ = c.Close()

	runShell(t, dir, rewrite(stop))
	for _, p := range []string{ports["6379"], ports["18080"], ports["18081"]} {
		waitFor(t, "nothing listening on "+p+" after the stop block", 15*time.Second, func() bool {
			conn, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second)
			if err != nil {
				return true
			}
			conn.Close()
			return false
		})
	}
}

// runShell runs script with bash -e from the repository's root. Its output
// goes to a file: a process it leaves running (a node started with &)
// must not hold a pipe the test waits on.
func runShell(t *testing.T, dir, script string) {
	t.Helper()
	out, err := os.CreateTemp(dir, "sh-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir = "../.."
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("%v\n%s\noutput:\n%s", err, script, b)
	}
}
