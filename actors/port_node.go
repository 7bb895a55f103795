package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// A Node is what the transport serves: the transport holds a port.Node and
// session handles, never a PID.
var _ port.Node = (*Node)(nil)

// Broker is the node's broker (Config.Broker), for the optional interfaces
// a transport looks for, such as a prometheus.Collector.
func (n *Node) Broker() any { return n.cfg.Broker }

// CommandRate is the normalised Config.RatePerSecond and Config.RateBurst:
// each session's budget of client commands.
func (n *Node) CommandRate() (perSecond float64, burst int) {
	return n.cfg.RatePerSecond, n.cfg.RateBurst
}

// hubMailboxProducer makes the hub's mailbox: protoactor's unbounded
// mailbox with priorities (joins first, see joinRoom.GetPriority),
// remembered for tests and read by Metrics.HubMailboxDepth.
func (n *Node) hubMailboxProducer() actor.Mailbox {
	mb := actor.UnboundedPriority()()
	n.hubMailbox.Store(&mb)
	n.metrics.TrackHubMailbox(mb.UserMessageCount)
	return mb
}
