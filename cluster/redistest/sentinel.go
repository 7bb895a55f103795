package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel is a Redis Sentinel set-up owned by a test: a primary, a
// replica of it, and three sentinels watching them under Name, all real
// redis-server processes on free loopback ports, stopped at cleanup.
type Sentinel struct {
	t         testing.TB
	Name      string
	Servers   [2]*Server // the primary and the replica, as started
	sentinels []*Server
}

// StartSentinel starts the set-up and waits until every sentinel knows
// the primary and its replica.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{t: t, Name: "switchboard"}
	primary := Start(t)
	replica := Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port()))
	s.Servers = [2]*Server{primary, replica}
	waitRole(t, replica, "slave", "master_link_status:up")
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		port := FreePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\n"+
			"sentinel parallel-syncs %s 1\n",
			port, dir, filepath.Join(dir, "redis.log"), s.Name, primary.Port(), s.Name, s.Name, s.Name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		sn := &Server{t: t, bin: bin, port: port, dir: dir, args: []string{conf, "--sentinel"}}
		t.Cleanup(sn.cleanup)
		sn.spawn()
		s.sentinels = append(s.sentinels, sn)
	}
	s.waitKnown(primary.Addr(), 1)
	return s
}

// Addrs are the sentinels' host:port.
func (s *Sentinel) Addrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// Primary is the address the sentinels give for the primary now.
func (s *Sentinel) Primary() string {
	s.t.Helper()
	addr, err := s.sentinels[0].Client().Do(context.Background(), "SENTINEL", "get-master-addr-by-name", s.Name).StringSlice()
	if err != nil || len(addr) != 2 {
		s.t.Fatalf("redistest: SENTINEL get-master-addr-by-name: %v %v", addr, err)
	}
	return net.JoinHostPort(addr[0], addr[1])
}

// Server returns the server listening at addr.
func (s *Sentinel) Server(addr string) *Server {
	for _, sv := range s.Servers {
		if sv.Addr() == addr {
			return sv
		}
	}
	s.t.Fatalf("redistest: no server at %s", addr)
	return nil
}

// Failover makes the sentinels promote the replica (SENTINEL FAILOVER) and
// waits until they all name it and it serves as primary; it returns the
// new primary.
func (s *Sentinel) Failover() *Server {
	s.t.Helper()
	old := s.Primary()
	if err := s.sentinels[0].Client().Do(context.Background(), "SENTINEL", "FAILOVER", s.Name).Err(); err != nil {
		s.t.Fatalf("redistest: SENTINEL FAILOVER: %v", err)
	}
	return s.waitNewPrimary(old)
}

// KillPrimary SIGKILLs the primary and waits until the sentinels have
// promoted the replica (after down-after-milliseconds, 1 s); it returns
// the new primary.
func (s *Sentinel) KillPrimary() *Server {
	s.t.Helper()
	old := s.Primary()
	s.Server(old).Kill()
	return s.waitNewPrimary(old)
}

// waitNewPrimary waits until every sentinel names a primary other than old
// and that server says it is one.
func (s *Sentinel) waitNewPrimary(old string) *Server {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		addr := s.Primary()
		if addr != old {
			p := s.Server(addr)
			waitRole(s.t, p, "master", "")
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("redistest: the sentinels still name %s as primary", old)
	return nil
}

// waitKnown waits until every sentinel names addr as the primary and
// knows at least replicas replicas of it.
func (s *Sentinel) waitKnown(addr string, replicas int) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, sn := range s.sentinels {
		for {
			c := sn.Client()
			got, err := c.Do(context.Background(), "SENTINEL", "get-master-addr-by-name", s.Name).StringSlice()
			n := 0
			if reps, rerr := c.Do(context.Background(), "SENTINEL", "replicas", s.Name).Slice(); rerr == nil {
				n = len(reps)
			}
			if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == addr && n >= replicas {
				break
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("redistest: sentinel %s does not know primary %s with %d replicas (%v, %v)", sn.Addr(), addr, replicas, got, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitRole waits until INFO replication of s reports role and, if not
// empty, contains want.
func waitRole(t testing.TB, s *Server, role, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := s.Client().Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "role:"+role) && strings.Contains(info, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: %s is not %s (%s): %v\n%s", s.Addr(), role, want, err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
