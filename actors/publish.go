package actors

import (
	"context"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// PublishRoom delivers payload (an event object with an "event" field) to
// every member of room on every node.
func (n *Node) PublishRoom(ctx context.Context, room string, payload []byte) (PublishResult, error) {
	if !wire.ValidRoomName(room) {
		return PublishResult{}, ErrInvalidRoom
	}
	return n.publish(ctx, &apiPublish{kind: wire.EnvRoom, target: room}, payload)
}

// PublishUser delivers payload to every connection of user on every node.
func (n *Node) PublishUser(ctx context.Context, user string, payload []byte) (PublishResult, error) {
	if user == "" {
		return PublishResult{}, ErrInvalidUser
	}
	return n.publish(ctx, &apiPublish{kind: wire.EnvDirect, target: user}, payload)
}

// Broadcast delivers payload to every connection on every node.
func (n *Node) Broadcast(ctx context.Context, payload []byte) (PublishResult, error) {
	return n.publish(ctx, &apiPublish{kind: wire.EnvBroadcast}, payload)
}

func (n *Node) publish(ctx context.Context, req *apiPublish, payload []byte) (PublishResult, error) {
	p, err := wire.ValidateEventPayload(payload)
	if err != nil {
		return PublishResult{}, ErrInvalidPayload
	}
	req.event = wire.NewEvent(p).Timed()
	env := &wire.Envelope{Type: req.kind, Node: n.cfg.NodeID, Payload: p}
	switch req.kind {
	case wire.EnvRoom:
		env.Room = req.target
	case wire.EnvDirect:
		env.Target = req.target
	}
	res := PublishResult{}
	var berr error
	var numbered chan wire.Position
	if req.kind == wire.EnvRoom && n.history.Size > 0 {
		// The broker numbers it and delivers it here too, in the
		// stream's order: the hub only counts the room's members.
		numbered = make(chan wire.Position, 1)
		berr = n.cfg.Broker.Append(RoomChannel(n.cfg.ChannelPrefix, req.target), env, func(p wire.Position, err error) {
			if err == nil {
				numbered <- p
			}
		})
		req.event = nil
	} else if req.kind == wire.EnvDirect {
		done := make(chan error, 1)
		n.cfg.Broker.SendDirect(req.target, env, func(_ int, err error) { done <- err })
		select {
		case berr = <-done:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	} else {
		ch := BroadcastChannel(n.cfg.ChannelPrefix)
		if req.kind == wire.EnvRoom {
			ch = RoomChannel(n.cfg.ChannelPrefix, req.target)
		}
		berr = n.cfg.Broker.Publish(ch, env)
	}
	if berr == nil {
		n.metrics.BrokerOut.Add(1)
	} else {
		n.metrics.Unavailable.Add(1)
	}
	res.Broker = berr == nil
	f := n.root.RequestFuture(n.hub, req, requestTimeout(ctx))
	v, err := f.Result()
	if err != nil {
		return res, err
	}
	res.Local = v.(*apiPublished).local
	if numbered != nil && berr == nil {
		select {
		case p := <-numbered:
			res.Offset, res.Epoch = p.Offset, p.Epoch
		case <-ctx.Done():
		case <-time.After(requestTimeout(ctx)):
		}
	}
	return res, nil
}

func requestTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return 5 * time.Second
}
