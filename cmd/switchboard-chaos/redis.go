package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisProc is one redis-server of the topology (topology.go): a real
// process on a fixed loopback port, which the suite stops, kills, pauses
// and starts again on the same port. admin is a separate connection for the
// suite's own commands (faults and subscription counts); it reconnects by
// itself. The controller sets extra between starts (a server restarted as
// a replica); the rest below mu is shared with the goroutine that waits for
// the process.
type redisProc struct {
	name  string // names its logs: redis, redis-a, sentinel-1
	port  int
	dir   string
	admin *redis.Client
	// extra are more redis-server arguments (--replicaof HOST PORT, ...).
	extra []string
	// sentinelConf, when set, runs the process as a sentinel with this
	// configuration file (which names its own log).
	sentinelConf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func newRedisProc(dir, name string) (*redisProc, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server not found (apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r := &redisProc{name: name, port: port, dir: dir}
	r.admin = redis.NewClient(&redis.Options{
		Addr: r.addr(), DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second,
		PoolSize: 2, MaxRetries: -1, Protocol: 2, DisableIdentity: true,
	})
	return r, nil
}

func (r *redisProc) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }
func (r *redisProc) url() string  { return "redis://" + r.addr() + "/0" }

// start runs redis-server (no persistence) and waits for PING.
func (r *redisProc) start(ctx context.Context) error {
	r.mu.Lock()
	r.starts++
	logPath := filepath.Join(r.dir, fmt.Sprintf("%s.%d.log", r.name, r.starts))
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", logPath}, r.extra...)
	if r.sentinelConf != "" {
		logPath = r.sentinelConf
		args = []string{r.sentinelConf, "--sentinel"}
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	r.cmd, r.exited = cmd, exited
	r.mu.Unlock()
	go func() { _ = cmd.Wait(); close(exited) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := r.admin.Ping(pctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start (see %s)", r.name, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not answering PING within 5 s: %v", r.name, err)
		}
	}
}

// stop ends the server: SIGKILL when hard (a crash), else SIGTERM (it exits
// at once without persistence). It waits until the process is gone.
func (r *redisProc) stop(hard bool) {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	sig := syscall.SIGTERM
	if hard {
		sig = syscall.SIGKILL
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (r *redisProc) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

// role reports whether INFO replication says role (master, slave) and, if
// want is not empty, contains want (master_link_status:up).
func (r *redisProc) role(ctx context.Context, role, want string) bool {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := r.admin.Info(cctx, "replication").Result()
	return err == nil && strings.Contains(info, "role:"+role+"\r\n") && strings.Contains(info, want)
}

// pause suspends every client's commands for d (CLIENT PAUSE d ALL).
func (r *redisProc) pause(ctx context.Context, d time.Duration) error {
	return r.admin.Do(ctx, "CLIENT", "PAUSE", d.Milliseconds(), "ALL").Err()
}

// killPubSub drops every pub/sub connection (CLIENT KILL TYPE pubsub) and
// returns how many there were.
func (r *redisProc) killPubSub(ctx context.Context) (int64, error) {
	return r.admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
}

// subscriptions returns every channel with the prefix and its subscriber
// count (PUBSUB CHANNELS + NUMSUB), plus sharded channels if any.
func (r *redisProc) subscriptions(ctx context.Context, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	chans, err := r.admin.PubSubChannels(ctx, prefix+":*").Result()
	if err != nil {
		return nil, err
	}
	if len(chans) > 0 {
		num, err := r.admin.PubSubNumSub(ctx, chans...).Result()
		if err != nil {
			return nil, err
		}
		for c, n := range num {
			if n > 0 {
				out[c] = n
			}
		}
	}
	shard, err := r.admin.PubSubShardChannels(ctx, prefix+":*").Result()
	if err == nil && len(shard) > 0 {
		num, err := r.admin.PubSubShardNumSub(ctx, shard...).Result()
		if err != nil {
			return nil, err
		}
		for c, n := range num {
			if n > 0 {
				out["shard:"+c] = n
			}
		}
	}
	return out, nil
}

// channels lists the channels with subscribers that match pattern
// (PUBSUB CHANNELS).
func (r *redisProc) channels(ctx context.Context, pattern string) ([]string, error) {
	return r.admin.PubSubChannels(ctx, pattern).Result()
}

// keys lists the keys that match pattern (SCAN, bounded).
func (r *redisProc) keys(ctx context.Context, pattern string) ([]string, error) {
	var out []string
	var cursor uint64
	for i := 0; i < 1000; i++ {
		ks, next, err := r.admin.Scan(ctx, cursor, pattern, 500).Result()
		if err != nil {
			return nil, err
		}
		out = append(out, ks...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	sort.Strings(out)
	return out, nil
}

func (r *redisProc) close() {
	r.stop(true)
	_ = r.admin.Close()
	_ = os.RemoveAll(filepath.Join(r.dir, "dump.rdb"))
}
