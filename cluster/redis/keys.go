package redis

import (
	"fmt"
	"strings"

	"github.com/switchboard-rt/switchboard/actors"
)

// keyspace are the channel and key names, computed once.
type keyspace struct {
	prefix    string
	node      string
	broadcast string // PREFIX:broadcast
	nodeChan  string // PREFIX:node:ID (this node's direct channel)
	ownMarker string // `,"node":"ID","payload":` (see ownEnvelope)
	msgID     string // `,"msg_id":"ID~INCARNATION:` (see withMsgID)

	nodes     string // PREFIX:presence:nodes: set of registered node ids
	alive     string // PREFIX:presence:alive:ID: this node's liveness key (TTL)
	nodeUsers string // PREFIX:presence:node:ID: users with a session on this node
	reaped    string // PREFIX:presence:reaped:ID: tombstone left when this node was reaped
}

func newKeyspace(prefix, node string) keyspace {
	id := string(actors.AppendJSONString(nil, node))
	return keyspace{
		prefix:    prefix,
		node:      node,
		broadcast: actors.BroadcastChannel(prefix),
		nodeChan:  actors.NodeChannel(prefix, node),
		ownMarker: `,"node":` + id + `,"payload":`,
		msgID:     msgIDPrefix(node + "~" + actors.RandomID(6)),
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

// ownEnvelope reports whether data is an envelope this node encoded itself
// (actors.Envelope.Encode writes "node" right before "payload"). The read
// loop skips those before they cost a decode: the hub and the rooms would
// drop them anyway, having delivered them locally. The test is exact for
// Encode's output: `,"payload":` cannot occur inside a JSON string, so its
// first occurrence in an object that starts with "type" is the top-level key.
func ownEnvelope(data, marker string) bool {
	if !strings.HasPrefix(data, `{"type":"`) {
		return false
	}
	i := strings.Index(data, `,"payload":`)
	return i >= 0 && strings.HasSuffix(data[:i+len(`,"payload":`)], marker)
}
