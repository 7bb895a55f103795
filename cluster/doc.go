// Package cluster implements the actors.Broker port: the fabric that joins
// Switchboard nodes.
//
//   - InProc: an in-process broker. One node alone (the default of `make run`),
//     or several nodes in one process sharing a Fabric (tests, embedding).
//   - Redis: Redis pub/sub, wire-compatible with the FastAPI tutorial's nodes
//     (PROTOCOL.md section 5), for any number of nodes behind a load balancer.
//     Every channel a node needs is a subscription actor; the channels share
//     a few pub/sub connections, each an actor restarted with backoff after a
//     fault that re-subscribes what the node needs at that moment and probes
//     itself when idle. Publishing goes through a bounded, pipelined outbox
//     that holds (never drops) what it has while the broker is down, and a
//     presence directory in Redis routes direct messages to the nodes that
//     hold the user. docs/operations.md describes its behaviour under faults
//     and its metrics.
//
// Inbound traffic is decoded once per node (actors.NewInbound) and handed to
// the subscribed actors as one immutable *actors.Inbound.
//
// The redistest sub-package runs a real redis-server for tests.
package cluster
