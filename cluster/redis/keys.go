package redis

import (
	"fmt"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// keyspace are the channel and key names, computed once. On a Redis
// Cluster (partition.go) the names that are not a room's carry the hub's
// tag, and a room's carry its partition's.
type keyspace struct {
	prefix string
	// hub is what the names that are not a room's start with: PREFIX on
	// one Redis, {PREFIX} (one hash slot) on a cluster.
	hub       string
	cluster   bool
	parts     []string // cluster: each partition's hash tag, "{TAG}"
	node      string
	broadcast string // PREFIX:broadcast
	nodeChan  string // PREFIX:node:ID (this node's direct channel)
	origin    string // ID~INCARNATION: the origin of this life's message ids (msgid.go)

	nodes     string // HUB:presence:nodes: set of registered node ids
	alive     string // HUB:presence:alive:ID: this node's liveness key (TTL)
	nodeUsers string // HUB:presence:node:ID: users with a session on this node
	reaped    string // HUB:presence:reaped:ID: tombstone left when this node was reaped
}

// newKeyspace names the keys of node under prefix; partitions > 0 selects
// the cluster's names.
func newKeyspace(prefix, node string, partitions int) keyspace {
	hub := prefix
	if partitions > 0 {
		hub = "{" + prefix + "}"
	}
	k := keyspace{
		prefix:    prefix,
		hub:       hub,
		cluster:   partitions > 0,
		node:      node,
		broadcast: port.BroadcastChannel(prefix),
		nodeChan:  port.NodeChannel(prefix, node),
		origin:    node + "~" + randomID(6),
		nodes:     hub + ":presence:nodes",
		alive:     hub + ":presence:alive:" + node,
		nodeUsers: hub + ":presence:node:" + node,
		reaped:    hub + ":presence:reaped:" + node,
	}
	if k.cluster {
		k.parts = partitionTags(partitions)
	}
	return k
}

// userKey is HUB:presence:user:USER, the set of nodes holding user.
func (k *keyspace) userKey(user string) string { return k.hub + ":presence:user:" + user }

// aliveKey is HUB:presence:alive:NODE.
func (k *keyspace) aliveKey(node string) string { return k.hub + ":presence:alive:" + node }

// probeChannel is PREFIX:probe:NODE:INDEX: connection index subscribes to it
// and publishes probes to itself on it. On a cluster it is in the slot of
// the channels the connection carries: HUB:probe:NODE:0 for the hub's
// connection, PREFIX:probe:NODE:{TAG} for partition index-1's.
func (k *keyspace) probeChannel(index int) string {
	switch {
	case !k.cluster:
		return fmt.Sprintf("%s:probe:%s:%d", k.prefix, k.node, index)
	case index == 0:
		return k.hub + ":probe:" + k.node + ":0"
	default:
		return k.prefix + ":probe:" + k.node + ":" + k.parts[index-1]
	}
}
