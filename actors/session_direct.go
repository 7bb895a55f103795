package actors

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// pendingDirect is a direct message waiting for its answer: the session
// answers once both the hub (local recipients) and the broker (other
// nodes) have reported, or once the broker is late (sweepDirects).
type pendingDirect struct {
	id            json.RawMessage
	local, remote int // -1 until known
	remoteErr     error
	received      time.Time // when the session got it from the client
}

// errBrokerLate is a direct message's broker result when the broker has
// not answered within directWait.
var errBrokerLate = errors.New("actors: broker did not answer in time")

// finishDirect answers a direct message once its results are in.
func (s *session) finishDirect(ctx actor.Context, seq uint64, p *pendingDirect) {
	if p.local < 0 || p.remote < 0 && p.remoteErr == nil {
		return
	}
	delete(s.directs, seq)
	switch {
	case p.local+max(p.remote, 0) > 0:
		s.ack(ctx, p.id)
	case errors.Is(p.remoteErr, errBrokerLate):
		s.node.metrics.Unavailable.Add(1)
		s.fail(ctx, wire.CodeUnavailable, "message broker did not answer in time; try again", p.id)
	case p.remoteErr != nil:
		s.node.metrics.Unavailable.Add(1)
		s.fail(ctx, wire.CodeUnavailable, "message broker unavailable; try again", p.id)
	default:
		s.fail(ctx, wire.CodeUserOffline, "user is not connected", p.id)
	}
}

// directWait bounds how long after its arrival a direct message waits for
// the broker's result: the join retry (see Config.JoinRetry), counted from
// when the session got it, so that one sent behind a join is answered in
// time too, whatever the broker does. The broker itself gives up on a
// message it could not send within half of that (BrokerHost.DirectWait),
// and answers first: a message answered unavailable was not sent, unless
// its round trip to Redis was under way (Redis stalled mid-command for
// longer than the join retry).
func (s *session) directWait() time.Duration { return s.node.cfg.JoinRetry }

// sweepDirects answers, in the order they were sent, the direct messages
// whose broker result is later than directWait: the broker's part counts
// as unavailable (a local recipient still makes it an ack). A message
// whose broker round trip was under way may yet be delivered. The sweep
// is scheduled again for the next one due.
func (s *session) sweepDirects(ctx actor.Context) {
	s.sweeping = false
	now, wait := time.Now(), s.directWait()
	var late []uint64
	var next time.Time
	for seq, p := range s.directs {
		if p.remote >= 0 || p.remoteErr != nil {
			continue // waiting for the hub only: it always answers
		}
		if due := p.received.Add(wait); now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		late = append(late, seq)
	}
	slices.Sort(late)
	for _, seq := range late {
		p := s.directs[seq]
		p.remoteErr = errBrokerLate
		s.finishDirect(ctx, seq, p)
	}
	if !next.IsZero() {
		s.sweeping = true
		s.node.timers.SendOnce(next.Sub(now), s.self, &directSweep{})
	}
}
