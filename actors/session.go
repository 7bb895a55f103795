package actors

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/scheduler"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// session is the actor of one client connection. It owns the connection's
// outbound side (conn), the user id, the rooms it is in and its rate limiter.
// Every field is touched only by Receive, on the actor's goroutine; the
// read side reaches it only by sending Commands.
type session struct {
	node *Node
	conn Conn
	opts SessionOptions
	self *actor.PID
	// log is the node's logger with this session's id and user: every line
	// about the session carries both. Made on first use (logger).
	log *slog.Logger

	// rooms holds the rooms this session is in: the source of truth for
	// membership. A nil PID means a join is in flight.
	rooms map[string]*actor.PID
	// joining counts joins in flight; while it is not zero, client commands
	// are stashed so that they take effect in the order they were sent.
	joining int
	stash   []stashed
	// joinCmd is the room of the client's join_room in flight, "" if none
	// (commands wait behind it, so there is at most one): the join a
	// room's refusal fails.
	joinCmd string
	// joinsOut counts, per room, the joinRooms sent and not answered yet
	// (roomJoined, roomRefused). A stopping session leaves such a room
	// through the hub too: a late join (a retry) can make it a member of a
	// room it no longer names in rooms. Nil when none is out.
	joinsOut map[string]int

	flushQueued bool
	closed      bool
	// queries are the history and presence queries waiting for the
	// broker's answer (MaxQueriesOut).
	queries uint8
	// inStash is true while drainStash handles a stashed command (stash[0]
	// is then its free slot).
	inStash bool

	bucket  TokenBucket
	strikes int

	// pings are the session's two latest heartbeat pings, oldest first:
	// a check finds its own while PongTimeout is at most twice
	// PingInterval, and a bound on it otherwise (silentSincePing).
	pings [2]ping

	timedOut uint64 // timed events queued to this client: the latency sample's clock

	seq     uint64
	directs map[uint64]*pendingDirect
	// sweeping is true while a directSweep is scheduled.
	sweeping bool

	cancelExpiry scheduler.CancelFunc
}

func (s *session) Receive(ctx actor.Context) {
	defer s.logPanics()
	switch m := ctx.Message().(type) {
	case *wire.Event:
		s.send(ctx, m)
	case *eventBatch:
		for _, ev := range m.events {
			if s.closed {
				break
			}
			s.send(ctx, ev)
		}
	case *flushNow:
		s.flushQueued = false
		if !s.closed {
			s.conn.Flush()
		}
	case wire.Command:
		s.node.metrics.MessagesIn.Add(1)
		// The rate limit is charged on arrival, before a command may wait in
		// the stash: nobody can queue an unmetered flood behind a join.
		if !s.admit(ctx, m) {
			return
		}
		// A direct message's answer is due within the join retry of its
		// arrival (sweepDirects), even if it waits behind a join.
		var arrived time.Time
		if _, ok := m.(*wire.DirectMessageCmd); ok {
			arrived = time.Now()
		}
		if s.joining > 0 {
			s.stash = append(s.stash, stashed{cmd: m, arrived: arrived})
			return
		}
		s.handle(ctx, m, arrived)
	case *roomJoined:
		s.onJoined(ctx, m)
	case *historyRead:
		s.onHistory(ctx, m)
	case *presenceRead:
		s.queryBack()
		if m.err != nil {
			s.node.metrics.Unavailable.Add(1)
			s.fail(ctx, wire.CodeUnavailable, "message broker unavailable; try again", m.id)
		} else {
			s.send(ctx, wire.PresenceAnswer(m.id, m.room, m.p))
		}
	case *roomPosition:
		if m.pos.Known() {
			s.send(ctx, wire.JoinAckEvent(m.id, m.room, m.pos, m.recovered))
		} else {
			s.ack(ctx, m.id)
		}
	case *roomRefused:
		s.onRefused(ctx, m)
	case *joinTimeout:
		if pid, ok := s.rooms[m.room]; ok && pid == nil {
			s.joinSent(m.room)
			s.node.root.Send(s.node.hub, &joinRoom{room: m.room, session: s.self, user: s.opts.User, silent: true})
			s.node.timers.SendOnce(s.node.cfg.JoinRetry, s.self, &joinTimeout{room: m.room})
		}
	case *directCount:
		if p := s.directs[m.seq]; p != nil {
			p.local = m.n
			s.finishDirect(ctx, m.seq, p)
		}
	case *directRemote:
		if p := s.directs[m.seq]; p != nil {
			p.remote, p.remoteErr = m.n, m.err
			s.finishDirect(ctx, m.seq, p)
		}
	case *directSweep:
		s.sweepDirects(ctx)
	case heartbeatTick:
		if !s.closed {
			s.conn.Enqueue(wire.PingFrame)
			s.queueFlush(ctx)
			s.pings[0], s.pings[1] = s.pings[1], ping{seq: m.seq, at: monoNow()}
		}
	case *heartbeatCheck:
		hc, ok := s.conn.(HeardConn)
		if !ok || s.closed {
			break
		}
		switch silent, wait := s.silentSincePing(hc, m); {
		case silent:
			s.node.metrics.SilentClosed.Add(1)
			s.logger().Info("silent peer dropped", "since", m.since)
			s.closed = true
			hc.DropSilent()
			ctx.Stop(s.self)
		case wait > 0:
			// Only a peer silent since the tick gets here, so only those
			// cost a timer, one per check at most.
			again := m
			if m.due == 0 {
				again = &heartbeatCheck{since: m.since, seq: m.seq, due: monoNow() + int64(wait)}
			}
			s.node.timers.SendOnce(wait, s.self, again)
		}
	case *CloseSession:
		s.close(m.Code, m.Reason)
		ctx.Stop(s.self)
	case *SocketClosed:
		s.closed = true
		ctx.Stop(s.self)
	case *roomGone:
		s.onRoomGone(ctx, m)
	case *Crash:
		panic(crashError{m.Reason})
	case *sessionInit:
		if s.conn == nil {
			s.conn, s.opts = m.conn, m.opts
			s.started(ctx)
		}
	case *actor.Started:
		s.self = ctx.Self()
		if s.conn != nil {
			s.started(ctx)
		}
	case *actor.Stopped:
		if s.conn != nil {
			// First, so that nothing that follows can keep the hub from
			// knowing (it registered the session in started).
			ctx.Send(s.node.hub, &sessionEnded{pid: s.self})
		}
		s.stopped()
		s.leaveAll(ctx)
		releaseSelf(ctx) // nothing of the session stays behind its PID (release.go)
	}
}

func (s *session) started(ctx actor.Context) {
	if s.node.log.Enabled(context.Background(), slog.LevelDebug) {
		s.logger().Debug("session opened", "remote", s.opts.Remote)
	}
	cfg := &s.node.cfg
	s.bucket = NewTokenBucket(cfg.RatePerSecond, cfg.RateBurst, time.Now())
	s.node.metrics.Sessions.Add(1)
	s.node.metrics.Connections.Add(1)
	s.send(ctx, wire.WelcomeEvent(s.opts.User, s.node.cfg.NodeID))
	ctx.Send(s.node.hub, &registerSession{pid: s.self, user: s.opts.User, quiet: s.opts.NoConnectionEvents || s.node.cfg.NoConnectionEvents})
	if !s.opts.Expires.IsZero() {
		s.cancelExpiry = s.node.timers.SendOnce(time.Until(s.opts.Expires), s.self, &CloseSession{Code: wire.CloseTokenExpired, Reason: "token expired"})
	}
}

// stopped runs once, whatever ended the session: a close, a write error, a
// panic (stopSessionOnPanic) or a Stop from outside. The hub learns of it
// through sessionEnded, rooms through leaveAll; here only the connection
// is released.
func (s *session) stopped() {
	if s.conn == nil {
		return // stopped before its sessionInit: it never started
	}
	s.node.metrics.Sessions.Add(-1)
	if s.node.log.Enabled(context.Background(), slog.LevelDebug) {
		s.logger().Debug("session closed")
	}
	if s.cancelExpiry != nil {
		s.cancelExpiry()
	}
	if !s.closed {
		s.closed = true
		s.conn.Abort(wire.CloseInternal, "session ended")
	}
}

func (s *session) close(code wire.CloseCode, reason string) {
	if s.closed {
		return
	}
	s.closed = true
	if code == wire.CloseTryAgainLater {
		s.conn.Abort(code, reason)
		return
	}
	s.conn.Close(code, reason)
}

// send queues an event's frame and schedules one flush for everything queued
// before it is handled: frames waiting in the mailbox leave in one write.
func (s *session) send(ctx actor.Context, ev *wire.Event) {
	if s.closed {
		return
	}
	if !s.conn.Enqueue(ev.Frame) {
		s.node.metrics.SlowClosed.Add(1)
		s.logger().Info("slow consumer closed")
		s.close(wire.CloseTryAgainLater, "slow consumer")
		ctx.Stop(s.self)
		return
	}
	s.node.metrics.MessagesOut.Add(1)
	s.node.metrics.BytesOut.Add(int64(len(ev.Frame)))
	if !ev.Born.IsZero() {
		s.timedOut++
		if s.timedOut%LatencySampleEvery == 1 {
			s.node.metrics.DeliveryLatency.ObserveSince(ev.Born)
		}
	}
	s.queueFlush(ctx)
}

func (s *session) queueFlush(ctx actor.Context) {
	if !s.flushQueued {
		s.flushQueued = true
		ctx.Send(s.self, &flushNow{})
	}
}

func (s *session) fail(ctx actor.Context, code wire.ErrorCode, msg string, id json.RawMessage) {
	s.node.metrics.Errors.Add(1)
	s.node.metrics.ErrorsByCode.Add(code)
	s.send(ctx, wire.ErrorEvent(code, msg, id))
}

func (s *session) ack(ctx actor.Context, id json.RawMessage) {
	if len(id) > 0 {
		s.send(ctx, wire.AckEvent(id))
	}
}

// admit spends a rate-limit token for a client command. Without one the
// client gets rate_limited, and after RateStrikes refusals in a row the
// connection is closed with 1008. Every command counts, heartbeat replies
// included: a flood of {"type":"pong"} costs the node as much as any other.
func (s *session) admit(ctx actor.Context, c wire.Command) bool {
	if s.closed {
		return false
	}
	if !s.bucket.Allow(time.Now()) {
		s.node.metrics.RateLimited.Add(1)
		s.strikes++
		if s.strikes >= s.node.cfg.RateStrikes {
			s.node.metrics.PolicyClosed.Add(1)
			s.close(wire.ClosePolicy, "rate limit exceeded")
			ctx.Stop(s.self)
			return false
		}
		s.fail(ctx, wire.CodeRateLimited, "too many messages; slow down", c.CommandID())
		return false
	}
	s.strikes = 0
	return true
}

// handle executes one client command, already admitted by the rate limit;
// arrived is when a direct message reached the session.
func (s *session) handle(ctx actor.Context, c wire.Command, arrived time.Time) {
	if s.closed {
		return
	}
	prefix := s.node.cfg.ChannelPrefix
	switch m := c.(type) {
	case *wire.BadFrame:
		s.fail(ctx, m.Code, m.Message, m.ID)
	case *wire.PingCmd:
		s.send(ctx, wire.PongEvent)
		s.ack(ctx, m.ID)
	case *wire.PongCmd:
		s.ack(ctx, m.ID)
	case *wire.StatsCmd:
		if s.node.cfg.DisableStatsCommand {
			s.fail(ctx, wire.CodeUnknownType, "unknown message type", m.ID)
			return
		}
		s.send(ctx, s.node.statsEvent())
		s.ack(ctx, m.ID)
	case *wire.ChatCmd:
		ev := wire.ChatEvent(s.opts.User, "", m.Content)
		env := &wire.Envelope{Type: wire.EnvBroadcast, SenderID: s.opts.User, Node: s.node.cfg.NodeID, Payload: ev.JSON}
		if !s.publish(ctx, BroadcastChannel(prefix), env, m.ID) {
			return
		}
		ctx.Send(s.node.hub, &broadcastLocal{event: ev, exclude: s.opts.User})
		s.ack(ctx, m.ID)
	case *wire.JoinRoomCmd:
		s.join(ctx, m)
	case *wire.LeaveRoomCmd:
		pid, in := s.rooms[m.Room]
		if !in {
			s.fail(ctx, wire.CodeNotMember, "you are not in this room", m.ID)
			return
		}
		delete(s.rooms, m.Room)
		if pid != nil {
			ctx.Send(pid, &roomLeave{session: s.self, user: s.opts.User})
		}
		s.ack(ctx, m.ID)
	case *wire.RoomMessageCmd:
		// Authorization first: a room the token does not grant is forbidden,
		// whether or not the session could have joined it.
		if !s.allowed(m.Room) {
			s.fail(ctx, wire.CodeForbidden, "you may not send to this room", m.ID)
			return
		}
		pid, in := s.rooms[m.Room]
		if !in || pid == nil {
			s.fail(ctx, wire.CodeNotMember, "join the room before sending to it", m.ID)
			return
		}
		if s.node.history.Size > 0 {
			// The broker numbers it and brings it back to this node's
			// room too, in the stream's order (room_stream.go).
			env := &wire.Envelope{Type: wire.EnvRoom, Room: m.Room, Node: s.node.cfg.NodeID, Payload: wire.ChatJSON(s.opts.User, m.Room, m.Content)}
			s.appendToStream(ctx, RoomChannel(prefix, m.Room), env, m.ID)
			return
		}
		ev := wire.ChatEvent(s.opts.User, m.Room, m.Content)
		env := &wire.Envelope{Type: wire.EnvRoom, Room: m.Room, Node: s.node.cfg.NodeID, Payload: ev.JSON}
		if !s.publish(ctx, RoomChannel(prefix, m.Room), env, m.ID) {
			return
		}
		ctx.Send(pid, &roomCast{event: ev})
		s.ack(ctx, m.ID)
	case *wire.HistoryCmd:
		s.history(ctx, m)
	case *wire.PresenceCmd:
		s.presence(ctx, m)
	case *wire.DirectMessageCmd:
		ev := wire.DirectEvent(s.opts.User, m.Content)
		env := &wire.Envelope{Type: wire.EnvDirect, Target: m.Target, Node: s.node.cfg.NodeID, Payload: ev.JSON}
		s.seq++
		seq := s.seq
		if s.directs == nil {
			s.directs = make(map[uint64]*pendingDirect)
		}
		p := &pendingDirect{id: m.ID, local: -1, remote: -1, received: arrived}
		if p.received.IsZero() {
			p.received = time.Now()
		}
		s.directs[seq] = p
		if !s.sweeping {
			s.sweeping = true
			s.node.timers.SendOnce(time.Until(p.received.Add(s.directWait())), s.self, &directSweep{})
		}
		ctx.Send(s.node.hub, &directLocal{target: m.Target, event: ev, replyTo: s.self, seq: seq})
		self, root := s.self, s.node.root
		s.node.cfg.Broker.SendDirect(m.Target, env, func(n int, err error) {
			root.Send(self, &directRemote{seq: seq, n: n, err: err})
		})
	}
}

// logPanics is logPanics with the session's logger, made only if it panicked.
func (s *session) logPanics() {
	if r := recover(); r != nil {
		repanic(s.logger(), "session", r)
	}
}

// logger is the node's logger with this session's id and user, made on
// first use: most sessions never log a line, and a logger of their own
// costs about 0.2 KiB each.
func (s *session) logger() *slog.Logger {
	if s.log == nil {
		if s.conn == nil {
			return s.node.log // not started yet
		}
		s.log = s.node.log.With(KeySession, s.self.Id, KeyUser, s.opts.User)
	}
	return s.log
}
