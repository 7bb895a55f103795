package main

import (
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildNode compiles this command into the test's temporary directory. Tests
// that need a real process (signals, exit codes) use it; the rest run run()
// in-process.
func buildNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "switchboard")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procNode is the node binary running as a child process on a loopback port.
type procNode struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	logs   *syncBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before exited is closed
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startProc starts the binary with args and waits until /healthz answers.
// The process is killed when the test ends if it is still running.
func startProc(t *testing.T, bin string, args ...string) *procNode {
	t.Helper()
	addr := freeAddr(t)
	p := &procNode{t: t, base: "http://" + addr, logs: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--addr", addr}, args...)...)
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	p.cmd.Env = []string{"PATH=/usr/bin:/bin"} // no SWITCHBOARD_* from the caller's environment
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start node: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("node exited at start: %v\n%s", p.err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not healthy within 10 s\n%s", p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *procNode) ws(id string) string {
	return "ws" + strings.TrimPrefix(p.base, "http") + "/ws?client_id=" + id
}

func (p *procNode) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// waitExit waits up to d for the process to exit and returns its exit code.
func (p *procNode) waitExit(d time.Duration) (int, error) {
	select {
	case <-p.exited:
	case <-time.After(d):
		return -1, errors.New("still running")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, p.err
}

// readyStatus is GET /readyz's status code, or 0 when nothing answers.
func readyStatus(base string) int {
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// readyProbe polls /readyz from its own goroutine and records every answer
// in order, so a test can check that 200 never follows a 503.
type readyProbe struct {
	mu    sync.Mutex
	codes []int
	stop  chan struct{}
	done  chan struct{}
}

func probeReady(base string) *readyProbe {
	p := &readyProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for i := 0; i < 10000; i++ {
			code := readyStatus(base)
			p.mu.Lock()
			p.codes = append(p.codes, code)
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return p
}

// finish stops the probe and returns what it saw.
func (p *readyProbe) finish() []int {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.codes...)
}
