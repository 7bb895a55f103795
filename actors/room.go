package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// room is the actor of one room on this node: it owns the room's local
// members and its broker subscription. Its fields are touched only by
// Receive. A room lives while it has a local member; when the last one
// goes it asks the hub to stop it (roomIdle), and the hub agrees (it
// forgets the room and sends roomRetired) only if no join is in flight.
// Members tell the room when they leave, also when their session stops
// (roomLeave); a room that stops with members tells each (roomGone) and,
// unless retired, the hub (roomEnded). Nothing watches: protoactor's
// watches cost two system messages and a watcher set per membership,
// which a mass exit of 100,000 memberships paid for in full.
type room struct {
	node    *Node
	name    string
	channel string
	self    *actor.PID
	members memberSet
	joins   int  // joins processed, compared by the hub
	idle    bool // roomIdle sent, no member since
	retired bool // the hub forgot the room and stopped it

	// Until the broker confirms the room's channel, joins wait in held: a
	// member is told it joined only once what other nodes publish to the
	// room reaches it. If subscribeWait passes first, the held joins and
	// those that come until the confirmation are refused (roomRefused):
	// an acknowledged join that hears nothing from the other nodes would
	// break the ack's promise.
	subscribing bool
	refusing    bool
	held        []*roomJoin

	// Events to fan out (room messages, broker traffic) wait in pending
	// until the room has handled what its mailbox held (fanoutNow), so that
	// a member gets them in one message and writes them in one batch.
	pending      []*wire.Event
	fanoutQueued bool
	skipping     int // members with skip > 0

	st streamState // the room's stream, with history on (room_stream.go)
}

// room -> room: fan out what is pending.
type fanoutNow struct{}

func (fanoutNow) IgnoreDeadLetterLogging() {}

// subscribeWait bounds how long joins wait for the broker's confirmation:
// half the session's JoinRetry, so that the reply beats the retry. When the
// fabric is down the room does not wait at all; local traffic goes on.
func (r *room) subscribeWait() time.Duration { return r.node.cfg.JoinRetry / 2 }

// room -> room: the broker's confirmation is late; refuse the joins.
type subscribeTimeout struct{}

func (*subscribeTimeout) IgnoreDeadLetterLogging() {}

type member struct {
	pid  *actor.PID
	user string
	// skip: the member was sent the stream up to this offset elsewhere
	// (a join with since ahead of this room); it gets only later ones.
	skip uint64
}

func newRoom(n *Node, name string) *room {
	return &room{node: n, name: name, channel: RoomChannel(n.cfg.ChannelPrefix, name)}
}

func (r *room) Receive(ctx actor.Context) {
	defer logPanics(r.node.log, "room")
	switch m := ctx.Message().(type) {
	case *roomCast:
		if m.event != nil { // nil: an API publish the broker delivers (history on)
			r.enqueue(ctx, m.event)
		}
		if m.tag != 0 {
			// Membership cannot change before the event goes out: every
			// join and leave first fans out what is pending.
			ctx.Send(r.node.hub, &roomCastDone{tag: m.tag, local: r.members.len()})
		}
	case *Inbound:
		r.node.metrics.BrokerIn.Add(1)
		if m.Envelope.Pos.Offset > 0 && r.historyOn() {
			r.onPublication(ctx, m)
			return
		}
		r.enqueue(ctx, m.Event)
	case *streamRead:
		r.onStreamRead(ctx, m)
	case *streamReadTimeout:
		r.onReadTimeout(ctx, m)
	case fanoutNow:
		r.fanoutQueued = false
		r.fanoutPending(ctx)
	case *roomJoin:
		r.admit(ctx, m)
	case *Subscribed:
		r.refusing = false
		if r.historyOn() && r.streamSubscribed() {
			r.subscribing = false // the read now holds the joins
			return
		}
		r.releaseHeld(ctx)
	case *subscribeTimeout:
		if r.subscribing && !r.refusing {
			r.node.metrics.SubscribeTimeouts.Add(1)
			r.refusing = true
			held := r.held
			r.held = nil
			for _, m := range held {
				r.refuse(ctx, m)
			}
		}
	case *roomLeave:
		if _, ok := r.members.get(m.session.Id); ok {
			r.fanoutPending(ctx)
			r.remove(ctx, m.session.Id, m.user)
		}
	case roomRetired:
		r.retired = true
		ctx.Stop(r.self)
	case *roomPositionQuery:
		r.fanoutPending(ctx) // the position covers what the member was handed
		p := &roomPosition{id: m.id, room: r.name}
		if r.st.posKnown {
			p.pos = r.st.pos
			if m.since {
				yes := true
				p.recovered = &yes
			}
		}
		ctx.Send(m.session, p)
	case *RoomQuery:
		ids := make([]string, 0, r.members.len())
		for _, mem := range r.members.list {
			ids = append(ids, mem.pid.Id)
		}
		ctx.Respond(&RoomMembers{Room: r.name, Members: ids})
	case *Crash:
		panic(crashError{m.Reason})
	case *actor.Started:
		r.self = ctx.Self()
		r.node.metrics.Rooms.Add(1)
		r.node.cfg.Broker.Subscribe(r.channel, r.node.ref(r.self))
		if r.node.cfg.Broker.State().Connected {
			r.subscribing = true
			r.node.timers.SendOnce(r.subscribeWait(), r.self, &subscribeTimeout{})
		} else if r.historyOn() {
			r.streamSubscribed()
		}
	case *actor.Stopped:
		r.node.metrics.Rooms.Add(-1)
		r.node.cfg.Broker.Unsubscribe(r.channel, r.node.ref(r.self))
		if !r.retired {
			// Stopped from outside or after repeated panics: the hub
			// still names this room (rooms are not its children).
			ctx.Send(r.node.hub, &roomEnded{pid: r.self})
		}
		// Members are left only then too. They re-join the room's next
		// actor, which counts them again, from the last publication each
		// was sent: what was published while no actor of the room was
		// there reaches them as a recovery, not as a silent gap.
		r.fanoutPending(ctx)
		for _, mem := range r.members.list {
			gone := &roomGone{room: r.name, pid: r.self}
			if r.historyOn() && r.st.posKnown {
				since := r.st.pos
				since.Offset = max(since.Offset, mem.skip)
				gone.since = &since
			}
			ctx.Send(mem.pid, gone)
			r.node.cfg.Broker.RoomMember(r.channel, mem.user, -1)
		}
		r.node.roomsLive.Done()
		releaseSelf(ctx)
	}
}

// admit takes a join: refused while the broker failed to confirm the
// channel, held while the room waits for the broker, and otherwise joined
// (recovering first, for a join with since).
func (r *room) admit(ctx actor.Context, m *roomJoin) {
	switch {
	case r.refusing:
		r.refuse(ctx, m)
	case r.subscribing || r.st.reading != readNone:
		r.held = append(r.held, m)
	case m.since != nil && r.historyOn():
		r.joinSince(ctx, m)
	default:
		r.join(ctx, m)
	}
}

// releaseHeld ends the wait for the broker and lets the held joins in, in
// the order they came.
func (r *room) releaseHeld(ctx actor.Context) {
	r.subscribing = false
	held := r.held
	r.held = nil
	for _, m := range held {
		r.admit(ctx, m)
	}
}

// refuse answers a join with roomRefused (the session reports unavailable)
// and counts it, so that the hub may stop the room, which has no member
// while it waits for the broker.
func (r *room) refuse(ctx actor.Context, m *roomJoin) {
	r.joins++
	ctx.Send(m.session, &roomRefused{room: r.name})
	if r.members.len() == 0 {
		r.goIdle(ctx)
	}
}

// goIdle asks the hub to retire the room, which has no member (roomIdle):
// the hub agrees only if it forwarded no join the room has not handled.
func (r *room) goIdle(ctx actor.Context) {
	r.idle = true
	ctx.Send(r.node.hub, &roomIdle{name: r.name, pid: r.self, joins: r.joins})
}

// join makes the joiner a member and answers it.
func (r *room) join(ctx actor.Context, m *roomJoin) {
	r.addMember(ctx, m)
	r.answerJoined(ctx, m, nil, 0)
}

// answerJoined tells the joiner it is in, and where in the stream it
// starts (when history is on and the room knows): at the room's position,
// or at skip when that is further (joinAt).
func (r *room) answerJoined(ctx actor.Context, m *roomJoin, recovered *bool, skip uint64) {
	j := &roomJoined{room: r.name, pid: r.self}
	if r.historyOn() && r.st.posKnown {
		j.pos, j.recovered = r.st.pos, recovered
		j.pos.Offset = max(j.pos.Offset, skip)
	}
	ctx.Send(m.session, j)
}

func (r *room) addMember(ctx actor.Context, m *roomJoin) {
	// What was sent before this join is not for the joiner.
	r.fanoutPending(ctx)
	r.joins++
	if _, ok := r.members.get(m.session.Id); !ok {
		if !r.node.live(m.session) {
			// The joiner has stopped: its leave (sent from its Stopped,
			// after protoactor unregistered it) came first, or overtook
			// this join (a retry through the hub). Nothing will remove
			// it: it is not added.
			if r.members.len() == 0 {
				r.goIdle(ctx)
			}
			return
		}
		r.idle = false
		r.members.add(member{pid: m.session, user: m.user})
		r.node.cfg.Broker.RoomMember(r.channel, m.user, 1)
		if !m.silent {
			ev := wire.RoomPresenceEvent("user_joined", m.user, r.name)
			r.fanout(ctx, ev)
			r.publish(ev.JSON)
		}
	}
}

func (r *room) remove(ctx actor.Context, id, user string) {
	if mem, ok := r.members.get(id); ok && mem.skip > 0 {
		r.skipping--
	}
	r.members.remove(id)
	r.node.cfg.Broker.RoomMember(r.channel, user, -1)
	left := wire.RoomPresenceJSON("user_left", user, r.name)
	if r.members.len() > 0 {
		r.fanout(ctx, wire.NewEvent(left))
	} else {
		r.counted() // a fan-out to nobody: no frame to build (a mass exit)
	}
	r.publish(left)
	if r.members.len() == 0 && !r.idle {
		r.goIdle(ctx)
	}
}

// enqueue adds ev to the pending fan-out and makes sure it goes out once
// the messages already in the mailbox are handled.
func (r *room) enqueue(ctx actor.Context, ev *wire.Event) { r.enqueueAt(ctx, ev, 0) }

// enqueueAt is enqueue for the stream's publication at offset off.
func (r *room) enqueueAt(ctx actor.Context, ev *wire.Event, off uint64) {
	r.pending = append(r.pending, ev)
	if r.historyOn() {
		r.st.pendingPos = append(r.st.pendingPos, off)
	}
	if !r.fanoutQueued {
		r.fanoutQueued = true
		ctx.Send(r.self, fanoutNow{})
	}
}

// fanoutPending hands what is pending to every member, in one message per
// member: a busy room (a large one, or one that receives faster than one
// fan-out takes) gives each member several frames at once, which its
// session writes in one system call.
func (r *room) fanoutPending(ctx actor.Context) {
	if len(r.pending) == 0 {
		return
	}
	if r.skipping > 0 {
		r.fanoutSkipping(ctx) // their share; the rest below leaves them out
	}
	if len(r.pending) == 1 {
		r.fanoutTo(ctx, r.pending[0], r.skipping == 0)
		r.pending[0] = nil
		r.pending = r.pending[:0]
	} else {
		batch := &eventBatch{events: r.pending}
		r.pending = nil
		for _, mem := range r.members.list {
			if mem.skip == 0 {
				ctx.Send(mem.pid, batch)
			}
		}
		for range batch.events {
			r.counted()
		}
	}
	r.st.pendingPos = r.st.pendingPos[:0]
	if r.skipping > 0 {
		r.endSkips()
	}
}

// fanout hands the same event to every local member: one encode, one frame,
// no copy per recipient.
func (r *room) fanout(ctx actor.Context, ev *wire.Event) { r.fanoutTo(ctx, ev, true) }

// fanoutTo is fanout, to the members that skip too when all is set.
func (r *room) fanoutTo(ctx actor.Context, ev *wire.Event, all bool) {
	for _, mem := range r.members.list {
		if all || mem.skip == 0 {
			ctx.Send(mem.pid, ev)
		}
	}
	r.counted()
}

// counted records one event's fan-out in the metrics.
func (r *room) counted() {
	r.node.metrics.Fanouts.Add(1)
	r.node.metrics.FanoutSizes.Add(int64(r.members.len()))
	r.node.metrics.FanoutSize.Observe(int64(r.members.len()))
}

// publish sends room presence to the other nodes. A refusal is counted; the
// membership change itself has already happened on this node.
func (r *room) publish(payload []byte) {
	env := &wire.Envelope{Type: wire.EnvRoom, Room: r.name, Node: r.node.cfg.NodeID, Payload: payload}
	if err := r.node.publishPresence(r.channel, env); err != nil {
		r.node.metrics.Unavailable.Add(1)
		return
	}
	r.node.metrics.BrokerOut.Add(1)
}

// fanoutSkipping hands each member that skips (member.skip) what is
// pending after its skip.
func (r *room) fanoutSkipping(ctx actor.Context) {
	for _, mem := range r.members.list {
		if mem.skip == 0 {
			continue
		}
		var evs []*wire.Event
		for i, ev := range r.pending {
			if off := r.st.pendingPos[i]; off == 0 || off > mem.skip {
				evs = append(evs, ev)
			}
		}
		if len(evs) > 0 {
			ctx.Send(mem.pid, &eventBatch{events: evs})
		}
	}
}

// endSkips ends the skip of the members whose skip the room has passed.
func (r *room) endSkips() {
	for i := range r.members.list {
		if mem := &r.members.list[i]; mem.skip > 0 && r.st.pos.Offset >= mem.skip {
			mem.skip = 0
			r.skipping--
		}
	}
}
