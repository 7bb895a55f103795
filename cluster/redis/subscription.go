package redis

import (
	"context"
	"log/slog"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// subscription is the actor of one broker channel on this node. Its
// connection actor hands it every message read on the channel; it decodes
// each envelope once (port.NewInbound) and sends the same *port.Inbound
// to every local target (the room of that name, or the hub). Its fields are
// touched only by Receive.
//
// It is a child of the bus, restarted with backoff if it panics; a new
// incarnation asks the bus for its targets and holds deliveries until they
// arrive. It is stopped (with a PoisonPill, after every message routed to it)
// by its connection actor once the last target has unsubscribed.
type subscription struct {
	r       *Broker
	channel string
	bus     port.Ref
	targets []port.Ref        // shared with the bus, never mutated
	known   bool              // targets are current
	live    bool              // Redis confirmed the channel on the current link
	stash   []*delivery       // deliveries waiting for the targets
	last    map[string]uint64 // origin -> highest msg_id sequence delivered (see msgid.go)
}

// maxOrigins bounds the origins a subscription remembers; one is added each
// time a node (re)starts.
const maxOrigins = 1024

// read loop -> connection -> subscription: one message read on channel. It
// holds len(payload) bytes of the inbound budget (Broker.inflight) until
// handled; the connection forwards the same value to the subscription.
// connection -> subscription: Redis confirmed the channel's SUBSCRIBE.
type confirmed struct{}

func (confirmed) IgnoreDeadLetterLogging() {}

type delivery struct {
	channel string
	payload string
}

func (*delivery) IgnoreDeadLetterLogging() {}

func newSubscription(r *Broker, channel string, bus port.Ref, targets []port.Ref) *subscription {
	return &subscription{r: r, channel: channel, bus: bus, targets: targets, known: targets != nil}
}

func (s *subscription) Receive(ctx port.Context) {
	defer logPanics(s.r.log, "redis-subscription")
	switch m := ctx.Message().(type) {
	case *delivery:
		if !s.known {
			s.stash = append(s.stash, m)
			return
		}
		s.deliver(ctx, m)
	case confirmed:
		s.live = true
		s.tellSubscribed(ctx)
	case *targetsUpdate:
		s.targets, s.known = m.targets, true
		stash := s.stash
		s.stash = nil
		for _, d := range stash {
			s.deliver(ctx, d)
		}
		// A target added to a live channel hears at once; the others
		// ignore a repeat.
		s.tellSubscribed(ctx)
	case *port.Started:
		if !s.known {
			ctx.Request(s.bus, &targetsQuery{channel: s.channel})
		}
	case *port.Stopped:
		// Deliveries still held (the bus no longer knew the channel) give
		// their budget back.
		for _, d := range s.stash {
			s.r.inflight.Add(-int64(len(d.payload)))
		}
		s.stash = nil
	case *port.Crash:
		panic(crashError(m.Reason))
	}
}

// tellSubscribed lets the targets know that the channel is live (see
// port.Subscribed).
func (s *subscription) tellSubscribed(ctx port.Context) {
	if !s.live || !s.known {
		return
	}
	for _, t := range s.targets {
		ctx.Send(t, &port.Subscribed{Channel: s.channel})
	}
}

// deliver releases the message's budget first (so that a panic below
// cannot leak it), then decodes and fans out.
func (s *subscription) deliver(ctx port.Context, d *delivery) {
	s.r.inflight.Add(-int64(len(d.payload)))
	if len(s.targets) == 0 {
		s.r.stats.unrouted.Add(1)
		return
	}
	in, err := port.NewInbound([]byte(d.payload))
	if err != nil {
		s.r.stats.invalid.Add(1)
		if s.r.log.Enabled(context.Background(), slog.LevelDebug) {
			s.r.log.Debug("invalid envelope ignored", "channel", s.channel, keyErr, err, "bytes", len(d.payload))
		}
		return
	}
	if id := in.Envelope.MsgID; !id.IsZero() {
		if id.Seq <= s.last[id.Origin] {
			s.r.stats.duplicates.Add(1)
			return
		}
		if s.last == nil {
			s.last = make(map[string]uint64)
		}
		if _, known := s.last[id.Origin]; !known && len(s.last) >= maxOrigins {
			for o := range s.last {
				delete(s.last, o)
				break
			}
		}
		s.last[id.Origin] = id.Seq
	}
	s.r.stats.delivered.Add(1)
	for _, t := range s.targets {
		ctx.Send(t, in)
	}
}

// crashError is the panic value of an injected port.Crash.
type crashError string

func (c crashError) Error() string { return "injected crash: " + string(c) }
