package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Redis topologies the suite runs the nodes on (-redis-topology):
//
//	standalone  one redis-server (the default)
//	sentinel    a primary, a replica and three sentinels (sentinel.go)
//	cluster     Redis Cluster, 3 primaries + 3 replicas (cluster.go)
//
// A topology starts its servers, gives the node flags that point a node at
// it, and answers the suite's questions about what Redis holds
// (subscriptions, channels, keys) wherever the nodes' data is now. Faults
// that act on one server (pause, CLIENT KILL) act on its primary: on a
// cluster, the primary of the hub's shard. The cluster topology answers
// the same questions by asking every primary (PUBSUB
// SHARDCHANNELS/SHARDNUMSUB, SCAN); faults that cannot run on a topology
// say why in their skipOn.
type redisTopology interface {
	// kind is the -redis-topology name.
	kind() string
	// start runs the servers and waits until the nodes can use them.
	start(ctx context.Context) error
	// nodeArgs are the node flags that point a node at this Redis.
	nodeArgs() []string
	// primary is the server the nodes write to and subscribe on now.
	primary(ctx context.Context) (*redisProc, error)
	// subscriptions returns every channel with the prefix and its
	// subscriber count, sharded channels as "shard:CHANNEL".
	subscriptions(ctx context.Context, prefix string) (map[string]int64, error)
	// channels lists the channels with subscribers that match pattern.
	channels(ctx context.Context, pattern string) ([]string, error)
	// keys lists the keys that match pattern.
	keys(ctx context.Context, pattern string) ([]string, error)
	// roomChannel is the key of subscriptions' map that carries room's
	// traffic: its own channel, or on a cluster its partition's.
	roomChannel(prefix, room string) string
	// close kills every server.
	close()
}

// Topology names.
const (
	topoStandalone = "standalone"
	topoSentinel   = "sentinel"
	topoCluster    = "cluster"
)

var topologyNames = []string{topoStandalone, topoSentinel, topoCluster}

// errClusterUnsupported is returned for -redis-topology cluster while the
// node binary has no --redis-cluster flag.
var errClusterUnsupported = errors.New("redis topology cluster is not supported yet: the node binary has no --redis-cluster flag")

// newTopology makes the topology kind, with its files in dir, for the
// run's channel prefix; nodeBin is the node binary it will run behind
// (asked whether it supports it).
func newTopology(ctx context.Context, kind, dir, prefix, nodeBin string) (redisTopology, error) {
	switch kind {
	case topoStandalone:
		r, err := newRedisProc(dir, "redis")
		if err != nil {
			return nil, err
		}
		return &standalone{r: r}, nil
	case topoSentinel:
		return newSentinelTopology(dir)
	case topoCluster:
		ok, err := nodeHasFlag(ctx, nodeBin, "redis-cluster")
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errClusterUnsupported
		}
		return newClusterTopology(dir, prefix)
	}
	return nil, fmt.Errorf("unknown redis topology %q (known: %s)", kind, strings.Join(topologyNames, ", "))
}

// nodeHasFlag reports whether the node binary's --help lists -name.
func nodeHasFlag(ctx context.Context, bin, name string) (bool, error) {
	out, _ := exec.CommandContext(ctx, bin, "--help").CombinedOutput() // --help exits 0 or 2 by flag package
	if len(out) == 0 {
		return false, fmt.Errorf("%s --help printed nothing", bin)
	}
	help := string(out)
	return strings.Contains(help, "  -"+name+" ") || strings.Contains(help, "  -"+name+"\n"), nil
}

// standalone is one redis-server, stopped and started again on its port by
// the Redis faults.
type standalone struct{ r *redisProc }

func (t *standalone) kind() string                    { return topoStandalone }
func (t *standalone) start(ctx context.Context) error { return t.r.start(ctx) }
func (t *standalone) nodeArgs() []string              { return []string{"--redis", t.r.url()} }
func (t *standalone) close()                          { t.r.close() }

func (t *standalone) roomChannel(prefix, room string) string { return prefix + ":room:" + room }

func (t *standalone) primary(context.Context) (*redisProc, error) { return t.r, nil }

func (t *standalone) subscriptions(ctx context.Context, prefix string) (map[string]int64, error) {
	return t.r.subscriptions(ctx, prefix)
}

func (t *standalone) channels(ctx context.Context, pattern string) ([]string, error) {
	return t.r.channels(ctx, pattern)
}

func (t *standalone) keys(ctx context.Context, pattern string) ([]string, error) {
	return t.r.keys(ctx, pattern)
}

// onPrimary runs fn on the topology's current primary.
func onPrimary[T any](ctx context.Context, t redisTopology, fn func(*redisProc) (T, error)) (T, error) {
	p, err := t.primary(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(p)
}
