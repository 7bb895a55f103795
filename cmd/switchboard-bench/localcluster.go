package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// localCluster is a Redis Cluster this tool started (--start-redis-cluster):
// redis-server processes with cluster-enabled yes on free loopback ports,
// without replicas, persistence or password, in a temporary directory,
// joined by `redis-cli --cluster create`. What a lead starts by hand to
// measure Switchboard on a cluster, made reproducible:
//
//	for p in 7001 7002 7003; do
//	  mkdir -p /tmp/rc/$p && redis-server --port $p --bind 127.0.0.1 \
//	    --cluster-enabled yes --cluster-config-file /tmp/rc/$p/nodes.conf \
//	    --dir /tmp/rc/$p --save '' --appendonly no --daemonize yes
//	done
//	redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 \
//	  --cluster-replicas 0 --cluster-yes
type localCluster struct {
	dir   string
	addrs []string
	procs []*exec.Cmd
}

// clusterStartWait bounds each step of starting a local cluster.
const clusterStartWait = 30 * time.Second

// startLocalCluster starts a cluster of n primaries and waits until every
// node serves all 16384 slots. On error, what was started is stopped.
func startLocalCluster(ctx context.Context, n int) (*localCluster, error) {
	bin, err := exec.LookPath(cmp.Or(os.Getenv("REDIS_SERVER"), "redis-server"))
	if err != nil {
		return nil, fmt.Errorf("--start-redis-cluster: %w (apt-get install redis-server)", err)
	}
	cli, err := exec.LookPath(cmp.Or(os.Getenv("REDIS_CLI"), "redis-cli"))
	if err != nil {
		return nil, fmt.Errorf("--start-redis-cluster: %w (apt-get install redis-tools)", err)
	}
	dir, err := os.MkdirTemp("", "switchboard-bench-cluster-")
	if err != nil {
		return nil, err
	}
	lc := &localCluster{dir: dir}
	for i := range n {
		if err := lc.startNode(bin, i); err != nil {
			lc.stop()
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, clusterStartWait)
	defer cancel()
	for _, a := range lc.addrs {
		if err := waitRedis(ctx, a, func(c *goredis.Client) error { return c.Ping(ctx).Err() }); err != nil {
			lc.stop()
			return nil, fmt.Errorf("--start-redis-cluster: %s did not answer: %w\n%s", a, err, lc.logs())
		}
	}
	args := append(append([]string{"--cluster", "create"}, lc.addrs...), "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		lc.stop()
		return nil, fmt.Errorf("--start-redis-cluster: redis-cli --cluster create: %w\n%s", err, out)
	}
	for _, a := range lc.addrs {
		err := waitRedis(ctx, a, func(c *goredis.Client) error {
			info, err := c.ClusterInfo(ctx).Result()
			if err == nil && !(strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_slots_ok:16384")) {
				err = errors.New("cluster not ok yet")
			}
			return err
		})
		if err != nil {
			lc.stop()
			return nil, fmt.Errorf("--start-redis-cluster: %s: %w\n%s", a, err, lc.logs())
		}
	}
	return lc, nil
}

// startNode starts node i on a free port whose cluster bus port (+10000)
// is free too.
func (lc *localCluster) startNode(bin string, i int) error {
	port, err := freeClusterPort()
	if err != nil {
		return err
	}
	d := filepath.Join(lc.dir, strconv.Itoa(i))
	if err := os.Mkdir(d, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", d,
		"--logfile", filepath.Join(d, "redis.log"),
		"--daemonize", "no",
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(d, "nodes.conf"))
	// The node dies with this process even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("--start-redis-cluster: %w", err)
	}
	lc.procs = append(lc.procs, cmd)
	lc.addrs = append(lc.addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	return nil
}

// freeClusterPort finds a loopback port p such that p and p+10000 (the
// cluster bus) are both free now.
func freeClusterPort() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		if p+10000 > 65535 {
			ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+10000)))
		ln.Close()
		if err == nil {
			bus.Close()
			return p, nil
		}
	}
	return 0, errors.New("--start-redis-cluster: no free port pair (p, p+10000) on 127.0.0.1")
}

// waitRedis runs check against addr every 50 ms until it succeeds or ctx
// ends.
func waitRedis(ctx context.Context, addr string, check func(*goredis.Client) error) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	for {
		err := check(c)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop kills the nodes, waits for them and removes the directory.
func (lc *localCluster) stop() {
	for _, p := range lc.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
	lc.procs = nil
	_ = os.RemoveAll(lc.dir)
}

// logs is the tail of each node's log, for errors.
func (lc *localCluster) logs() string {
	var b strings.Builder
	for i, a := range lc.addrs {
		data, _ := os.ReadFile(filepath.Join(lc.dir, strconv.Itoa(i), "redis.log"))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "--- %s\n%s\n", a, strings.Join(lines[max(0, len(lines)-10):], "\n"))
	}
	return b.String()
}
