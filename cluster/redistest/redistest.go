// Package redistest runs a real redis-server for tests: on a free loopback
// port, in a temporary directory, stopped when the test ends. It also offers
// the faults the cluster tests inject: stop and restart on the same port,
// SIGKILL, CLIENT KILL TYPE pubsub, CLIENT PAUSE, and (proxy.go) a TCP proxy
// that silences subscriber connections without closing them.
//
// Nothing here is a mock: every helper drives the real server with the real
// go-redis client.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a redis-server gets to answer PING.
const startTimeout = 10 * time.Second

// Server is one redis-server process owned by a test. Its methods may be
// called from any goroutine of the test.
type Server struct {
	t    testing.TB
	bin  string
	port int
	dir  string
	args []string
	// password is sent as AUTH by the harness's own clients (waitPing,
	// Client); set by StartCluster when the nodes run with requirepass.
	password string

	mu     sync.Mutex // guards proc, exited, admin
	proc   *exec.Cmd
	exited chan struct{} // closed when proc has been waited for
	admin  *redis.Client
}

// Binary returns the path of redis-server, or an error that says how to
// install it.
func Binary() (string, error) {
	for _, p := range []string{os.Getenv("REDIS_SERVER"), "redis-server", "/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path, nil
		}
	}
	return "", errors.New("redistest: redis-server not found (apt-get install redis-server; make deps installs it)")
}

// Start runs a redis-server on a free 127.0.0.1 port with no persistence and
// waits until it answers PING. extra are more redis-server arguments
// ("--maxmemory", "10mb", ...). The server is stopped in t.Cleanup.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, bin: bin, port: FreePort(t), dir: t.TempDir()}
	s.args = append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
	}, extra...)
	t.Cleanup(s.cleanup)
	s.spawn()
	return s
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is redis://127.0.0.1:PORT/0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Port is the server's port; it stays the same across Restart.
func (s *Server) Port() int { return s.port }

// Log returns the server's log file contents (for failure messages).
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

func (s *Server) spawn() {
	s.t.Helper()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("redistest: start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.proc, s.exited = cmd, exited
	s.mu.Unlock()
	if err := s.waitPing(startTimeout); err != nil {
		s.t.Fatalf("redistest: redis-server on port %d did not answer: %v\n%s", s.port, err, s.Log())
	}
}

func (s *Server) waitPing(d time.Duration) error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: s.password, MaxRetries: -1, DialTimeout: time.Second, DisableIdentity: true, Protocol: 2})
	defer c.Close()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-s.exitedCh():
			return errors.New("redis-server exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Server) exitedCh() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exited
}

// Client returns an admin client for the test (shared, closed at cleanup).
// It does not retry: a command sent while the server is down fails.
func (s *Server) Client() *redis.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		s.admin = redis.NewClient(&redis.Options{
			Addr: s.Addr(), Password: s.password, MaxRetries: -1, DialTimeout: 2 * time.Second,
			ReadTimeout: 5 * time.Second, DisableIdentity: true, Protocol: 2,
		})
	}
	return s.admin
}

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	select {
	case <-s.exitedCh():
		return false
	default:
		return true
	}
}

// Stop shuts the server down with SIGTERM (no save) and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = proc.Process.Kill()
		<-exited
	}
}

// Restart starts the server again on the same port (after Stop or Kill) and
// waits for PING. The data set starts empty.
func (s *Server) Restart() {
	s.t.Helper()
	if s.Running() {
		s.Stop()
	}
	s.spawn()
}

// KillPubSub runs CLIENT KILL TYPE pubsub: every subscriber connection is
// closed by the server. It returns how many were killed.
func (s *Server) KillPubSub() int64 {
	s.t.Helper()
	n, err := s.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Int64()
	if err != nil {
		s.t.Fatalf("redistest: CLIENT KILL TYPE pubsub: %v", err)
	}
	return n
}

// Pause runs CLIENT PAUSE d ALL: the server stops serving every client for d.
func (s *Server) Pause(d time.Duration) {
	s.t.Helper()
	if err := s.Client().Do(context.Background(), "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err(); err != nil {
		s.t.Fatalf("redistest: CLIENT PAUSE: %v", err)
	}
}

// NumSub returns PUBSUB NUMSUB for channels.
func (s *Server) NumSub(channels ...string) map[string]int64 {
	s.t.Helper()
	m, err := s.Client().PubSubNumSub(context.Background(), channels...).Result()
	if err != nil {
		s.t.Fatalf("redistest: PUBSUB NUMSUB: %v", err)
	}
	return m
}

// Channels returns PUBSUB CHANNELS pattern.
func (s *Server) Channels(pattern string) []string {
	s.t.Helper()
	chs, err := s.Client().PubSubChannels(context.Background(), pattern).Result()
	if err != nil {
		s.t.Fatalf("redistest: PUBSUB CHANNELS: %v", err)
	}
	return chs
}

// WaitNumSub waits until channel has exactly n subscribers.
func (s *Server) WaitNumSub(channel string, n int64, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := s.NumSub(channel)[channel]
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redistest: %s has %d subscribers, want %d", channel, got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Publish publishes payload on channel as any backend would.
func (s *Server) Publish(channel, payload string) int64 {
	s.t.Helper()
	n, err := s.Client().Publish(context.Background(), channel, payload).Result()
	if err != nil {
		s.t.Fatalf("redistest: PUBLISH: %v", err)
	}
	return n
}

// Info returns one field of INFO (e.g. "connected_clients").
func (s *Server) Info(section, field string) string {
	s.t.Helper()
	txt, err := s.Client().Info(context.Background(), section).Result()
	if err != nil {
		s.t.Fatalf("redistest: INFO: %v", err)
	}
	for _, line := range strings.Split(txt, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == field {
			return v
		}
	}
	return ""
}

func (s *Server) cleanup() {
	s.mu.Lock()
	admin := s.admin
	s.admin = nil
	s.mu.Unlock()
	if admin != nil {
		_ = admin.Close()
	}
	if s.Running() {
		s.Kill()
	}
}

// String names the server in test logs.
func (s *Server) String() string { return fmt.Sprintf("redis-server@%s", s.Addr()) }
