package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-rt/switchboard/transport"
)

// buildNode compiles ./cmd/switchboard into dir. With race, the node runs
// under the race detector, and a data race found under fire is reported as a
// violation (the node logs "WARNING: DATA RACE").
func buildNode(ctx context.Context, dir string, race bool) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run inside the switchboard module (go env GOMOD is empty)")
	}
	bin := filepath.Join(dir, "switchboard")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/switchboard")...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// freePort returns a loopback port nobody listens on at the moment.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// nodeProc is one node of the cluster under test: a real switchboard process
// on fixed loopback ports, one public and one for its admin listener (the
// /debug/ endpoints the suite aims with). A SIGKILLed or drained node is started again on
// the same port as a new incarnation with a new node id. Fields below mu are
// shared by the controller and the goroutine that waits for the process.
type nodeProc struct {
	idx    int
	addr   string
	admin  string // --admin-addr
	bin    string
	args   []string // flags common to every incarnation
	logDir string
	http   *http.Client

	mu      sync.Mutex
	inc     int    // incarnation, from 1
	id      string // node id of the current incarnation
	cmd     *exec.Cmd
	up      bool          // started and not yet killed or terminated
	open    bool          // clients may connect (set once the suite has measured it empty)
	exited  chan struct{} // closed when the current process has exited
	exitErr error
	logPath string
	logSeen int64 // bytes of the log already scanned
}

func newNodeProc(idx int, bin, logDir string, args []string) (*nodeProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	return &nodeProc{
		idx: idx, addr: fmt.Sprintf("127.0.0.1:%d", port), admin: fmt.Sprintf("127.0.0.1:%d", adminPort),
		bin: bin, args: args, logDir: logDir,
		http: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}},
	}, nil
}

func (n *nodeProc) base() string { return "http://" + n.addr }

// adminBase is the admin listener's URL: /debug/ is served there only.
func (n *nodeProc) adminBase() string { return "http://" + n.admin }

// wsURL is the WebSocket URL of client user on this node.
func (n *nodeProc) wsURL(user string) string {
	return "ws://" + n.addr + "/ws?client_id=" + url.QueryEscape(user)
}

// start launches a new incarnation and waits until it is ready.
func (n *nodeProc) start(ctx context.Context, readyWithin time.Duration) error {
	n.mu.Lock()
	n.inc++
	n.id = fmt.Sprintf("n%d.%d", n.idx, n.inc)
	n.logPath = filepath.Join(n.logDir, n.id+".log")
	n.logSeen = 0
	logf, err := os.Create(n.logPath)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	args := append([]string{"--addr", n.addr, "--admin-addr", n.admin, "--node-id", n.id}, n.args...)
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0 exitcode=66")
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		logf.Close()
		return fmt.Errorf("start %s: %w", n.id, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.up, n.exitErr = cmd, exited, true, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	return n.waitReady(ctx, readyWithin)
}

// waitReady polls /readyz until 200.
func (n *nodeProc) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if n.ready() {
			return nil
		}
		n.mu.Lock()
		exited := n.exited
		n.mu.Unlock()
		select {
		case <-exited:
			return fmt.Errorf("node %s exited: %v", n.nodeID(), n.exitError())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s not ready within %v", n.nodeID(), within)
		}
	}
}

func (n *nodeProc) ready() bool {
	resp, err := n.http.Get(n.base() + "/readyz")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (n *nodeProc) isUp() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up
}

// alive reports whether the current incarnation's process is still
// running: a node the suite did not stop but that exited (a crash) is up
// and not alive.
func (n *nodeProc) alive() bool {
	n.mu.Lock()
	exited, up := n.exited, n.up
	n.mu.Unlock()
	if !up || exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// accepting reports whether clients may connect to the node.
func (n *nodeProc) accepting() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.up && n.open
}

func (n *nodeProc) setOpen(open bool) {
	n.mu.Lock()
	n.open = open
	n.mu.Unlock()
}

func (n *nodeProc) nodeID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.id
}

func (n *nodeProc) exitError() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exitErr
}

// kill SIGKILLs the process and waits for it to be gone.
func (n *nodeProc) kill() {
	n.mu.Lock()
	cmd, exited, up := n.cmd, n.exited, n.up
	n.up, n.open = false, false
	n.mu.Unlock()
	if cmd == nil || !up {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// terminate sends SIGTERM and waits up to limit for the drain to finish. It
// returns the exit code (-1 if the process had to be killed) and how long
// the exit took.
func (n *nodeProc) terminate(limit time.Duration) (code int, took time.Duration) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.up, n.open = false, false
	n.mu.Unlock()
	t0 := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(limit):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return -1, time.Since(t0)
	}
	took = time.Since(t0)
	var ee *exec.ExitError
	if err := n.exitError(); errors.As(err, &ee) {
		return ee.ExitCode(), took
	} else if err != nil {
		return -1, took
	}
	return 0, took
}

// stats reads /stats.
func (n *nodeProc) stats() (transport.Stats, error) {
	var st transport.Stats
	err := n.getJSON(n.base(), "/stats", &st)
	return st, err
}

// debugActors mirrors the node's GET /debug/actors document.
type debugActors struct {
	Node     string `json:"node"`
	Hub      string `json:"hub"`
	Sessions []struct {
		ID   string `json:"id"`
		User string `json:"user"`
	} `json:"sessions"`
	Rooms []struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Members []string `json:"members"`
		Error   string   `json:"error"`
	} `json:"rooms"`
	Actors map[string][]string `json:"actors"` // every live actor by kind
	Counts map[string]int      `json:"counts"`
}

// sessionUsers maps session id to user.
func (d *debugActors) sessionUsers() map[string]string {
	m := make(map[string]string, len(d.Sessions))
	for _, s := range d.Sessions {
		m[s.ID] = s.User
	}
	return m
}

func (n *nodeProc) actors() (*debugActors, error) {
	var d debugActors
	if err := n.getJSON(n.adminBase(), "/debug/actors", &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// killActor asks the node to stop (or crash) one actor.
func (n *nodeProc) killActor(id string, panicMode bool) error {
	mode := "stop"
	if panicMode {
		mode = "panic"
	}
	q := url.Values{"id": {id}, "mode": {mode}}
	resp, err := n.http.Post(n.adminBase()+"/debug/kill?"+q.Encode(), "", nil)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kill %s (%s) on %s: %d %s", id, mode, n.nodeID(), resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

func (n *nodeProc) getJSON(base, path string, v any) error {
	resp, err := n.http.Get(base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d", path, n.nodeID(), resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// metric reads one unlabelled series from /metrics (0 when absent).
func (n *nodeProc) metric(name string) (float64, error) {
	resp, err := n.http.Get(n.base() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscanf(v, "%g", &f)
			return f, err
		}
	}
	return 0, nil
}

// logProblems scans what the current incarnation logged since the last call
// for what must never happen: a data race, an unexpected actor panic (the
// node does not log injected ones), a crash of the process.
func (n *nodeProc) logProblems() []string {
	n.mu.Lock()
	path, seen, id := n.logPath, n.logSeen, n.id
	n.mu.Unlock()
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return []string{fmt.Sprintf("%s: log: %v", id, err)}
	}
	defer f.Close()
	if _, err := f.Seek(seen, io.SeekStart); err != nil {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(f, 64<<20))
	n.mu.Lock()
	if n.logPath == path {
		n.logSeen = seen + int64(len(b))
	}
	n.mu.Unlock()
	var out []string
	for _, pat := range []string{"WARNING: DATA RACE", "actor panic", "panic in websocket callback", "fatal error:", "goroutine 1 [running]", "panic: "} {
		if c := bytes.Count(b, []byte(pat)); c > 0 {
			out = append(out, fmt.Sprintf("%s logged %q %d times (see %s)", id, pat, c, path))
		}
	}
	return out
}
