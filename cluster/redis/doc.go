// Package redis is the broker (port.Broker) that joins Switchboard nodes through
// Redis (pub/sub, and a presence directory in keys), wire-compatible
// with the FastAPI tutorial's nodes (PROTOCOL.md section 5), for any number
// of nodes behind a load balancer. The in-process broker is in the parent
// package, cluster.
//
// A node uses it as its broker:
//
//	b, err := redis.New(redis.Config{URL: "redis://127.0.0.1:6379/0"})
//	if err != nil {
//		return err // each bad field named, with its value
//	}
//	node, err := actors.NewNode(actors.Config{NodeID: "node-a", Broker: b})
//
// Every field of Config but URL has a documented default. The node starts
// and closes the broker (port.Broker's Start and Close); Stats and the
// prometheus.Collector methods report its counters, which
// docs/operations.md describes with its behaviour under faults.
//
// Its parts, each with one owner:
//
//   - the bus actor (bus.go) owns the registry of which local actors need
//     which channel: the source of truth every re-subscription is rebuilt
//     from;
//   - one pubsubConn actor per pub/sub connection (conn.go, link.go) owns a
//     go-redis PubSub, its read loop (which skips the node's own
//     envelopes before they cost a decode: wire.EncodedFrom) and its
//     liveness probe, and is
//     restarted with backoff by the bus when the connection fails
//     (supervision.go); after a fault it re-subscribes what the node needs
//     at that moment, and it probes itself when idle;
//   - one subscription actor per channel (subscription.go) decodes each
//     envelope once (port.NewInbound) and hands the same immutable
//     *port.Inbound to the channel's local targets, dropping the copies a
//     resend brings (msgid.go);
//   - the outbox (outbox*.go) owns publishing: it numbers each envelope
//     (msg_id) and encodes it once as it queues it, in a bounded FIFO
//     drained by one writer goroutine in pipelined batches, which holds
//     (never drops) what
//     it has while Redis or the subscriptions are down; what it may send
//     after a fault is decided by a state machine (outbox_state.go);
//   - the presence heartbeat (presence.go) keeps this node in the directory
//     that routes direct messages, and reaps nodes that stopped
//     heart-beating.
//
// Every method of the port.Broker interface may be called from any
// goroutine and returns without waiting on the network.
//
// Its actors are built on the actor API of package actors/port, which the
// node hands over in BrokerHost.Actors: the package never imports the actor
// runtime (protoactor) nor package actors, and holds the rooms and the hub
// it delivers to as port.Ref handles.
//
// With Config.ClusterAddrs it runs on a Redis Cluster instead (partition.go):
// rooms in partitions spread evenly over the slots, on sharded pub/sub, one
// pub/sub connection per partition.
//
// The sibling package cluster/redistest runs a real redis-server, a Sentinel
// set-up or a Redis Cluster for tests.
package redis
