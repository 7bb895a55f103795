package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterOptions configures StartCluster. The zero value is the usual test
// cluster: 3 primaries, 1 replica each, no password.
type ClusterOptions struct {
	// Primaries is the number of shards. Zero means 3; redis-cli needs at
	// least 3.
	Primaries int
	// Replicas is the number of replicas per primary. Zero means 1;
	// negative means none.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a silent node takes to
	// be flagged as failing. Zero means 1500 ms, so a SIGKILLed primary is
	// replaced within about 3 s.
	NodeTimeout time.Duration
	// Password is requirepass (and masterauth) of every node; the clients
	// of the harness and redis-cli authenticate with it.
	Password string
	// Extra are more redis-server arguments for every node.
	Extra []string
}

// clusterWait bounds every wait for the cluster to settle.
const clusterWait = 30 * time.Second

// Cluster is a Redis Cluster owned by a test: real redis-server processes
// with cluster-enabled yes on free loopback ports, joined by
// `redis-cli --cluster create`, killed at cleanup.
//
// Shard i is the primary created for the i-th slot range together with its
// replicas; the index stays with the shard across failovers (its primary
// may change, its members do not). Methods may be called from any
// goroutine of the test, but faults (Failover, KillPrimary, Restart,
// MigrateSlot, PauseShard) should not run concurrently with each other.
type Cluster struct {
	t      testing.TB
	opts   ClusterOptions
	nodes  []*Server
	shards [][]*Server        // members of each shard, fixed at creation
	ids    map[*Server]string // cluster node ID of each node (kept across restarts)

	mu      sync.Mutex // guards paused, acl, clients
	paused  map[*Server]bool
	acl     [][]any // ACL SETUSER rules, applied again after Restart
	clients []*redis.ClusterClient
}

// StartCluster starts the nodes, creates the cluster and waits until every
// node reports cluster_state:ok with all 16384 slots served, every node
// agrees on the primaries, and every replica is connected to its primary.
// Without redis-server or redis-cli the test is skipped, or fails when
// CI is set (CI=true must not skip).
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	bin, cli := clusterTools(t)
	if opts.Primaries == 0 {
		opts.Primaries = 3
	}
	if opts.Primaries < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 primaries, got %d", opts.Primaries)
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	opts.Replicas = max(opts.Replicas, 0)
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = 1500 * time.Millisecond
	}
	c := &Cluster{t: t, opts: opts, ids: map[*Server]string{}, paused: map[*Server]bool{}}
	n := opts.Primaries * (1 + opts.Replicas)
	for range n {
		c.nodes = append(c.nodes, c.startNode(bin))
	}
	// Registered after the nodes' temporary directories, so it runs before
	// they are removed and can still read the logs.
	t.Cleanup(c.cleanup)
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if opts.Password != "" {
		args = append(args, "-a", opts.Password, "--no-auth-warning")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s\n%s", err, out, c.logs())
	}
	c.learnShards()
	c.WaitHealthy()
	return c
}

// clusterTools finds redis-server and redis-cli.
func clusterTools(t testing.TB) (server, cli string) {
	t.Helper()
	server, err := Binary()
	if err == nil {
		cli, err = exec.LookPath(cmpOr(os.Getenv("REDIS_CLI"), "redis-cli"))
		if err != nil {
			err = fmt.Errorf("redistest: redis-cli not found (apt-get install redis-tools; make deps installs it): %w", err)
		}
	}
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatalf("%v (CI=%s, so this fails instead of skipping)", err, ci)
		}
		t.Skip(err)
	}
	return server, cli
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *Cluster) startNode(bin string) *Server {
	t := c.t
	s := &Server{t: t, bin: bin, port: FreePort(t), dir: t.TempDir(), password: c.opts.Password}
	s.args = []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no",
		"--cluster-enabled", "yes",
		// The cluster bus on a port found free too: by default it is the
		// client port + 10000, which another test's server may hold.
		"--cluster-port", strconv.Itoa(FreePort(t)),
		"--cluster-config-file", filepath.Join(s.dir, "nodes.conf"),
		"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
		// A replica may always take over: its data's age is irrelevant in tests.
		"--cluster-replica-validity-factor", "0",
		// Shards keep their members, so shard i means the same processes.
		"--cluster-allow-replica-migration", "no",
		// The default waits 5 s before a diskless full sync.
		"--repl-diskless-sync-delay", "0",
	}
	if c.opts.Password != "" {
		s.args = append(s.args, "--requirepass", c.opts.Password, "--masterauth", c.opts.Password)
	}
	s.args = append(s.args, c.opts.Extra...)
	t.Cleanup(s.cleanup)
	s.spawn()
	return s
}

// Addrs are the host:port of every node, usable as ClusterOptions.Addrs.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		out[i] = s.Addr()
	}
	return out
}

// Nodes are all nodes, in start order.
func (c *Cluster) Nodes() []*Server { return slices.Clone(c.nodes) }

// Shards is the number of shards (primaries).
func (c *Cluster) Shards() int { return len(c.shards) }

// ID is the cluster node ID of s.
func (c *Cluster) ID(s *Server) string { return c.ids[s] }

// ClientOptions are go-redis options for the cluster (seed addresses and
// password); tests may change them before redis.NewClusterClient.
func (c *Cluster) ClientOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: c.Addrs(), Password: c.opts.Password}
}

// Client returns a new ClusterClient on the cluster, closed at cleanup.
func (c *Cluster) Client() *redis.ClusterClient {
	cl := redis.NewClusterClient(c.ClientOptions())
	c.mu.Lock()
	c.clients = append(c.clients, cl)
	c.mu.Unlock()
	return cl
}

// Primary is the current primary of shard i.
func (c *Cluster) Primary(i int) *Server {
	c.t.Helper()
	for _, s := range c.shards[i] {
		if c.live(s) && c.role(s) == "master" {
			return s
		}
	}
	c.t.Fatalf("redistest: shard %d has no primary\n%s", i, c.logs())
	return nil
}

// Primaries are the current primaries, one per shard, in shard order.
func (c *Cluster) Primaries() []*Server {
	out := make([]*Server, len(c.shards))
	for i := range c.shards {
		out[i] = c.Primary(i)
	}
	return out
}

// ShardOf is the shard s belongs to.
func (c *Cluster) ShardOf(s *Server) int {
	for i, members := range c.shards {
		if slices.Contains(members, s) {
			return i
		}
	}
	c.t.Fatalf("redistest: %s is not a node of the cluster", s.Addr())
	return -1
}

// Replicas are the running replicas of shard i now.
func (c *Cluster) Replicas(i int) []*Server {
	var out []*Server
	for _, s := range c.shards[i] {
		if c.live(s) && c.role(s) == "slave" {
			out = append(out, s)
		}
	}
	return out
}

// ReplicaOf is a running replica of primary's shard (nil if none).
func (c *Cluster) ReplicaOf(primary *Server) *Server {
	if r := c.Replicas(c.ShardOf(primary)); len(r) > 0 {
		return r[0]
	}
	return nil
}

// KeySlot is the cluster slot of key (CLUSTER KEYSLOT).
func (c *Cluster) KeySlot(key string) int {
	c.t.Helper()
	n, err := c.anyLive().Client().ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		c.t.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	return int(n)
}

// ShardForSlot is the shard whose primary serves slot now.
func (c *Cluster) ShardForSlot(slot int) int {
	return c.ShardOf(c.PrimaryForSlot(slot))
}

// PrimaryForSlot is the primary that serves slot, as a running node sees it.
func (c *Cluster) PrimaryForSlot(slot int) *Server {
	c.t.Helper()
	for _, ln := range c.view(c.anyLive()) {
		if ln.has("master") && !ln.failing() && ln.serves(slot) {
			return c.byID(ln.id)
		}
	}
	c.t.Fatalf("redistest: no primary serves slot %d\n%s", slot, c.nodesText(c.anyLive()))
	return nil
}

// PrimaryForKey is the primary that serves key's slot.
func (c *Cluster) PrimaryForKey(key string) *Server { return c.PrimaryForSlot(c.KeySlot(key)) }

// ShardNumSub is PUBSUB SHARDNUMSUB channel on every running node, by
// address (nodes with no subscriber are left out).
func (c *Cluster) ShardNumSub(channel string) map[string]int64 {
	out := map[string]int64{}
	for _, s := range c.nodes {
		if !c.live(s) {
			continue
		}
		res, err := s.Client().Do(context.Background(), "PUBSUB", "SHARDNUMSUB", channel).Slice()
		if err == nil && len(res) == 2 {
			if n, _ := res[1].(int64); n > 0 {
				out[s.Addr()] = n
			}
		}
	}
	return out
}

// ACLSetUser runs ACL SETUSER rule... on every running node (the cluster
// does not propagate ACLs) and again on nodes that Restart.
func (c *Cluster) ACLSetUser(rule ...any) {
	c.t.Helper()
	c.mu.Lock()
	c.acl = append(c.acl, rule)
	c.mu.Unlock()
	for _, s := range c.nodes {
		if c.live(s) {
			c.applyACL(s, rule)
		}
	}
}

func (c *Cluster) applyACL(s *Server, rule []any) {
	c.t.Helper()
	if err := s.Client().Do(context.Background(), append([]any{"ACL", "SETUSER"}, rule...)...).Err(); err != nil {
		c.t.Fatalf("redistest: ACL SETUSER on %s: %v", s.Addr(), err)
	}
}

// live reports whether s is running and not paused (safe to query).
func (c *Cluster) live(s *Server) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return s.Running() && !c.paused[s]
}

func (c *Cluster) anyLive() *Server {
	c.t.Helper()
	for _, s := range c.nodes {
		if c.live(s) {
			return s
		}
	}
	c.t.Fatal("redistest: no running cluster node")
	return nil
}

func (c *Cluster) byID(id string) *Server {
	for s, sid := range c.ids {
		if sid == id {
			return s
		}
	}
	c.t.Fatalf("redistest: unknown node ID %s", id)
	return nil
}

// role is the first element of ROLE ("master", "slave") or "" on error.
func (c *Cluster) role(s *Server) string {
	r, err := s.Client().Do(context.Background(), "ROLE").Slice()
	if err != nil || len(r) == 0 {
		return ""
	}
	str, _ := r[0].(string)
	return str
}

// Stop kills every node and waits for the processes to exit; the cluster
// is unusable afterwards. Cleanup does the same.
func (c *Cluster) Stop() {
	c.mu.Lock()
	clients := c.clients
	c.clients = nil
	c.mu.Unlock()
	for _, cl := range clients {
		_ = cl.Close()
	}
	for _, s := range c.nodes {
		s.cleanup()
	}
}

func (c *Cluster) cleanup() {
	if c.t.Failed() {
		c.t.Logf("redistest: cluster logs:\n%s", c.logs())
	}
	c.Stop()
}

// logs is the tail of every node's log, for failure messages.
func (c *Cluster) logs() string {
	var b strings.Builder
	for i, s := range c.nodes {
		lines := strings.Split(strings.TrimSpace(s.Log()), "\n")
		lines = lines[max(0, len(lines)-25):]
		fmt.Fprintf(&b, "--- node %d %s (%s)\n%s\n", i, s.Addr(), c.ids[s], strings.Join(lines, "\n"))
	}
	return b.String()
}

// signalNoWait sends sig without waiting for an exit (SIGSTOP, SIGCONT).
func signalNoWait(s *Server, sig syscall.Signal) {
	s.mu.Lock()
	proc := s.proc
	s.mu.Unlock()
	if proc != nil {
		_ = proc.Process.Signal(sig)
	}
}
