// Package cluster implements the actors.Broker port: the fabric that joins
// Switchboard nodes.
//
//   - InProc: an in-process broker. One node alone (the default of `make run`),
//     or several nodes in one process sharing a Fabric (tests, embedding).
//   - Redis: Redis pub/sub, wire-compatible with the FastAPI tutorial's nodes
//     (PROTOCOL.md section 5), for any number of nodes behind a load balancer.
//
// Inbound traffic is decoded once per node (actors.NewInbound) and handed to
// the subscribed actors as one immutable *actors.Inbound.
package cluster
