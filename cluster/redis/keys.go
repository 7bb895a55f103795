package redis

import (
	"fmt"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// keyspace are the channel and key names, computed once.
type keyspace struct {
	prefix    string
	node      string
	broadcast string // PREFIX:broadcast
	nodeChan  string // PREFIX:node:ID (this node's direct channel)
	origin    string // ID~INCARNATION: the origin of this life's message ids (msgid.go)

	nodes     string // PREFIX:presence:nodes: set of registered node ids
	alive     string // PREFIX:presence:alive:ID: this node's liveness key (TTL)
	nodeUsers string // PREFIX:presence:node:ID: users with a session on this node
	reaped    string // PREFIX:presence:reaped:ID: tombstone left when this node was reaped
}

func newKeyspace(prefix, node string) keyspace {
	return keyspace{
		prefix:    prefix,
		node:      node,
		broadcast: port.BroadcastChannel(prefix),
		nodeChan:  port.NodeChannel(prefix, node),
		origin:    node + "~" + randomID(6),
		nodes:     prefix + ":presence:nodes",
		alive:     prefix + ":presence:alive:" + node,
		nodeUsers: prefix + ":presence:node:" + node,
		reaped:    prefix + ":presence:reaped:" + node,
	}
}

// userKey is PREFIX:presence:user:USER, the set of nodes holding user.
func (k *keyspace) userKey(user string) string { return k.prefix + ":presence:user:" + user }

// probeChannel is PREFIX:probe:NODE:INDEX: connection index subscribes to it
// and publishes probes to itself on it.
func (k *keyspace) probeChannel(index int) string {
	return fmt.Sprintf("%s:probe:%s:%d", k.prefix, k.node, index)
}
