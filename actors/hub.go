package actors

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// hub is the node's directory: which sessions are live and whose they are,
// and which room actor serves each room name. It spawns the rooms (under
// the node's room guardian, not as its children: a child's end costs its
// parent a system message and a search of its children set, which a mass
// exit pays 100,000 times) and retires them when idle (roomRetired); a
// room that ends otherwise tells it (roomEnded), as a session does
// (sessionEnded). Its fields are touched only by Receive.
type hub struct {
	node     *Node
	sessions map[string]*sessionEntry // session actor id -> entry
	// loud are the sessions that get connection events (user_connected,
	// user_disconnected): every session unless it or the node opted out.
	// A connect costs one frame per loud session, none for the others.
	loud    map[string]*sessionEntry
	users   map[string][]*actor.PID // user -> that user's local sessions
	rooms   map[string]*roomEntry   // room name -> live room actor
	roomOf  map[string]string       // room actor id -> room name
	casts   map[uint64]pendingCast  // API publishes to rooms, waiting for the room's count
	castSeq uint64
	// Broadcasts waiting for the fan-out (hub_broadcast.go).
	pendingB    []pendingBroadcast
	flushQueued bool
	// The largest sizes of the maps above since they were last rebuilt
	// (see compact).
	roomsPeak, roomOfPeak, sessionsPeak, usersPeak, loudPeak int
}

// pendingCast is an API publish handed to a room: who gets the count.
type pendingCast struct {
	room    string // room actor id
	replyTo *actor.PID
}

type sessionEntry struct {
	pid  *actor.PID
	user string
}

type roomEntry struct {
	pid   *actor.PID
	joins int // joins forwarded; the room may stop only once it saw them all
}

func newHub(n *Node) *hub {
	return &hub{
		node:     n,
		sessions: make(map[string]*sessionEntry),
		loud:     make(map[string]*sessionEntry),
		users:    make(map[string][]*actor.PID),
		rooms:    make(map[string]*roomEntry),
		roomOf:   make(map[string]string),
		casts:    make(map[uint64]pendingCast),
	}
}

// joinPriority puts joins ahead of everything else waiting in the hub's
// mailbox. After a mass exit the hub holds a backlog of rooms going idle
// and stopping (two messages per room: 200,000 after 1,000 connections in
// 100 rooms each left), and a join behind it waited over a second. A join
// may overtake safely: a roomIdle it overtakes sees the join count changed
// and keeps the room, a room's roomEnded it overtakes finds the room
// replaced (live), and it needs nothing from the session's registration.
// Nothing a session sends after its join (a leaveRoom) may overtake it,
// and nothing does: only joins go ahead.
const joinPriority = actor.DefaultPriority + 1

func (*joinRoom) GetPriority() int8 { return joinPriority }

func (h *hub) Receive(ctx actor.Context) {
	defer logPanics(h.node.log, "hub")
	if len(h.pendingB) > 0 {
		switch m := ctx.Message().(type) {
		case *broadcastLocal, hubFlush, *joinRoom, *roomIdle, heartbeatTick, *heartbeatCheck:
			// Nothing of these reaches a client before the broadcasts.
		case *Inbound:
			if m.Envelope.Type != wire.EnvBroadcast || wire.IsConnectionEvent(m.Envelope.Payload) {
				h.flushBroadcasts(ctx)
			}
		default:
			h.flushBroadcasts(ctx)
		}
	}
	switch m := ctx.Message().(type) {
	case *broadcastLocal:
		h.queueBroadcast(ctx, m.event, m.exclude)
	case hubFlush:
		h.flushQueued = false
		h.flushBroadcasts(ctx)
	case *directLocal:
		n := h.direct(ctx, m.target, m.event)
		ctx.Send(m.replyTo, &directCount{seq: m.seq, n: n})
	case *Inbound:
		h.inbound(ctx, m)
	case *joinRoom:
		h.join(ctx, m)
		h.compact()
	case *roomIdle:
		if e, ok := h.rooms[m.name]; ok && e.pid.Equal(m.pid) && e.joins == m.joins {
			delete(h.rooms, m.name)
			delete(h.roomOf, m.pid.Id)
			ctx.Send(m.pid, roomRetired{})
			h.compact()
		}
	case *roomEnded:
		h.terminated(ctx, m.pid)
		h.compact()
	case *leaveRoom:
		if e, ok := h.rooms[m.room]; ok {
			ctx.Send(e.pid, &roomLeave{session: m.session, user: m.user})
		}
	case *registerSession:
		h.register(ctx, m)
		h.compact()
	case *actor.Stopping:
		// The rooms are not its children: they stop with it explicitly.
		for _, e := range h.rooms {
			ctx.Stop(e.pid)
		}
	case *sessionEnded:
		h.terminated(ctx, m.pid)
		h.compact()
	case heartbeatTick:
		for _, e := range h.sessions {
			ctx.Send(e.pid, m)
		}
	case *heartbeatCheck:
		for _, e := range h.sessions {
			ctx.Send(e.pid, m)
		}
	case *closeAll:
		for _, e := range h.sessions {
			ctx.Send(e.pid, &CloseSession{Code: m.code, Reason: m.reason})
		}
	case *apiPublish:
		n := 0
		switch m.kind {
		case wire.EnvBroadcast:
			n = h.broadcast(ctx, m.event, "")
		case wire.EnvDirect:
			n = h.direct(ctx, m.target, m.event)
		case wire.EnvRoom:
			if e, ok := h.rooms[m.target]; ok && h.node.live(e.pid) {
				// The room counts its members and answers through the hub;
				// if it stops first, terminated answers 0 for it.
				h.castSeq++
				h.casts[h.castSeq] = pendingCast{room: e.pid.Id, replyTo: ctx.Sender()}
				ctx.Send(e.pid, &roomCast{event: m.event, tag: h.castSeq})
				return
			}
		}
		ctx.Respond(&apiPublished{local: n})
	case *roomCastDone:
		if p, ok := h.casts[m.tag]; ok {
			delete(h.casts, m.tag)
			ctx.Send(p.replyTo, &apiPublished{local: m.local})
		}
	case *DirectoryQuery:
		d := &Directory{Sessions: make(map[string]string, len(h.sessions)), Rooms: make(map[string]string, len(h.rooms))}
		for id, e := range h.sessions {
			d.Sessions[id] = e.user
		}
		for name, e := range h.rooms {
			d.Rooms[name] = e.pid.Id
		}
		ctx.Respond(d)
	case *Crash:
		panic(crashError{m.Reason})
	}
}

// compact rebuilds the directory's maps that have shrunk well below their
// peak: a Go map keeps the memory of its largest size, and after 200,000
// rooms had come and gone the room maps alone held 17 MB.
func (h *hub) compact() {
	h.rooms = compacted(h.rooms, &h.roomsPeak)
	h.roomOf = compacted(h.roomOf, &h.roomOfPeak)
	h.sessions = compacted(h.sessions, &h.sessionsPeak)
	h.loud = compacted(h.loud, &h.loudPeak)
	h.users = compacted(h.users, &h.usersPeak)
}

func (h *hub) register(ctx actor.Context, m *registerSession) {
	if _, dup := h.sessions[m.pid.Id]; dup {
		return
	}
	e := &sessionEntry{pid: m.pid, user: m.user}
	h.sessions[m.pid.Id] = e
	if !m.quiet {
		h.loud[m.pid.Id] = e
	}
	first := len(h.users[m.user]) == 0
	h.users[m.user] = append(h.users[m.user], m.pid)
	if first {
		h.node.metrics.Users.Add(1)
		h.node.cfg.Broker.UserOnline(m.user)
		h.presence(ctx, "user_connected", m.user)
	}
}

func (h *hub) terminated(ctx actor.Context, who *actor.PID) {
	if name, isRoom := h.roomOf[who.Id]; isRoom {
		delete(h.roomOf, who.Id)
		for tag, p := range h.casts {
			if p.room == who.Id {
				delete(h.casts, tag)
				ctx.Send(p.replyTo, &apiPublished{})
			}
		}
		if e, ok := h.rooms[name]; ok && e.pid.Equal(who) {
			delete(h.rooms, name)
		}
		return
	}
	e, ok := h.sessions[who.Id]
	if !ok {
		return
	}
	delete(h.sessions, who.Id)
	delete(h.loud, who.Id)
	list := h.users[e.user]
	for i, p := range list {
		if p.Equal(who) {
			// slices.Delete clears the slot it vacates: the stopped
			// session's PID does not stay in the backing array.
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	if len(list) > 0 {
		h.users[e.user] = list
		return
	}
	delete(h.users, e.user)
	h.node.metrics.Users.Add(-1)
	h.node.cfg.Broker.UserOffline(e.user)
	h.presence(ctx, "user_disconnected", e.user)
}

// presence tells every local session and every other node that a user came
// or went. The user's own connections are excluded, as for chat.
func (h *hub) presence(ctx actor.Context, event, user string) {
	ev := wire.PresenceEvent(event, user)
	h.fanout(ctx, h.loud, ev, user)
	env := &wire.Envelope{Type: wire.EnvBroadcast, SenderID: user, Node: h.node.cfg.NodeID, Payload: ev.JSON}
	if err := h.node.publishPresence(BroadcastChannel(h.node.cfg.ChannelPrefix), env); err != nil {
		h.node.metrics.Unavailable.Add(1)
		return
	}
	h.node.metrics.BrokerOut.Add(1)
}

func (h *hub) join(ctx actor.Context, m *joinRoom) {
	e, ok := h.rooms[m.room]
	if ok {
		if !h.node.live(e.pid) {
			// The room has stopped (killed, or after repeated panics) and its
			// roomEnded is still on the way: its members, told by the room
			// (roomGone), hear first and re-join at once. Replace it now
			// rather than forward the join to a dead actor, which would
			// leave the member out until its JoinRetry. terminated still
			// cleans up roomOf when roomEnded comes.
			delete(h.rooms, m.room)
			ok = false
		}
	}
	if !ok {
		pid := h.spawnRoom(m.room)
		e = &roomEntry{pid: pid}
		h.rooms[m.room] = e
		h.roomOf[pid.Id] = m.room
	}
	e.joins++
	ctx.Send(e.pid, &roomJoin{joinRoom: *m})
}

// spawnRoom starts the room actor of name, under the node's room guardian
// (rooms are not the hub's children; see hub).
func (h *hub) spawnRoom(name string) *actor.PID {
	n := h.node
	n.nextRoom = newRoom(n, name)
	n.roomsLive.Add(1) // Done in the room's Stopped
	return n.root.SpawnPrefix(n.roomProps, "room-")
}

// broadcast hands ev to every local session except those of user exclude.
func (h *hub) broadcast(ctx actor.Context, ev *wire.Event, exclude string) int {
	return h.fanout(ctx, h.sessions, ev, exclude)
}

// fanout hands ev to the sessions of set except those of user exclude.
func (h *hub) fanout(ctx actor.Context, set map[string]*sessionEntry, ev *wire.Event, exclude string) int {
	n := 0
	for _, e := range set {
		if exclude != "" && e.user == exclude {
			continue
		}
		ctx.Send(e.pid, ev)
		n++
	}
	h.node.metrics.Fanouts.Add(1)
	h.node.metrics.FanoutSizes.Add(int64(n))
	h.node.metrics.FanoutSize.Observe(int64(n))
	return n
}

func (h *hub) direct(ctx actor.Context, user string, ev *wire.Event) int {
	list := h.users[user]
	for _, pid := range list {
		ctx.Send(pid, ev)
	}
	return len(list)
}

// inbound delivers an envelope from another node (or a backend's PUBLISH);
// the broker keeps this node's own from it (see Broker.Subscribe).
func (h *hub) inbound(ctx actor.Context, m *Inbound) {
	env := m.Envelope
	h.node.metrics.BrokerIn.Add(1)
	switch env.Type {
	case wire.EnvBroadcast:
		if wire.IsConnectionEvent(env.Payload) {
			h.fanout(ctx, h.loud, m.Event, env.SenderID)
			return
		}
		h.queueBroadcast(ctx, m.Event, env.SenderID)
	case wire.EnvDirect:
		h.direct(ctx, env.Target, m.Event)
	case wire.EnvRoom:
		if e, ok := h.rooms[env.Room]; ok {
			ctx.Send(e.pid, m)
		}
	}
}
