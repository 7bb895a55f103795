package actors

import (
	"encoding/json"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Messages exchanged by the actors. All are immutable once sent.

// CloseSession asks a session to close its connection with Code and stop.
type CloseSession struct {
	Code   wire.CloseCode
	Reason string
}

// IgnoreDeadLetterLogging: the session may already be gone.
func (*CloseSession) IgnoreDeadLetterLogging() {}

// session -> session: write what the mailbox held so far.
type flushNow struct{}

// Node.Connect -> session: the first message of a session spawned with the
// node's shared Props: its connection and options.
type sessionInit struct {
	conn Conn
	opts SessionOptions
}

// hub -> sessions (scheduled): send a ping. seq numbers the ticks, so that
// a check finds the ping of its own tick.
type heartbeatTick struct{ seq uint32 }

func (heartbeatTick) IgnoreDeadLetterLogging() {}

// hub -> sessions (scheduled, PongTimeout after a tick): drop the peer if
// nothing came from it since that tick (seq), whose ping went out a whole
// PongTimeout ago.
type heartbeatCheck struct {
	since time.Time
	seq   uint32
	// due is set on a check a session scheduled itself (silentSincePing):
	// the monoNow from which a peer still silent since since is dropped,
	// judged without looking at the pings again, so that the check ends.
	due int64
}

func (*heartbeatCheck) IgnoreDeadLetterLogging() {}

// session -> hub: a new session is live.
type registerSession struct {
	pid   *actor.PID
	user  string
	quiet bool // no connection events for it
}

// session -> hub: the session has stopped (sent from its *actor.Stopped,
// which protoactor runs however it ended: close, write error, panic, Stop
// from outside). It follows the session's registerSession from the same
// sender, so the hub never sees it first. The hub learns of a session's end
// from it instead of a watch: a watch cost every idle session ~0.55 KiB
// (protoactor's watcher set, a map, and the context extras that hold it).
type sessionEnded struct{ pid *actor.PID }

// IgnoreDeadLetterLogging: a session that stops while the node shuts down
// finds the hub gone, which is not worth a log line.
func (*sessionEnded) IgnoreDeadLetterLogging() {}

// session -> hub: join (or silently re-join) a room. The hub forwards it to
// the room, spawning the room if needed.
type joinRoom struct {
	room    string
	session *actor.PID
	user    string
	silent  bool           // re-join after the room actor died: no user_joined
	since   *wire.Position // a join with since: recover what came after it
	budget  int            // a join with since: the most bytes it may be sent at once
}

// hub -> room: the forwarded joinRoom.
type roomJoin struct {
	joinRoom
}

// room -> session: the join took effect. With history on, pos is where
// the member starts in the room's stream (zero when the room could not
// read it), and recovered, for a join with since, whether it was sent
// everything it missed.
type roomJoined struct {
	room      string
	pid       *actor.PID
	pos       wire.Position
	recovered *bool
}

func (*roomJoined) IgnoreDeadLetterLogging() {}

// session -> room: a member joins again; answer with the room's position
// (roomPosition). since: the join asked to recover (it recovered:
// a member missed nothing).
type roomPositionQuery struct {
	id      json.RawMessage
	session *actor.PID
	since   bool
}

// room -> session: the answer to roomPositionQuery.
type roomPosition struct {
	id        json.RawMessage
	room      string
	pos       wire.Position
	recovered *bool
}

func (*roomPosition) IgnoreDeadLetterLogging() {}

// room -> session: the join did not take effect; the broker did not
// confirm the room's channel in time.
type roomRefused struct{ room string }

func (*roomRefused) IgnoreDeadLetterLogging() {}

// session -> room: leave (a leave_room, or the session has stopped: its
// Stopped sends one to every room it is in). Rooms do not watch their
// members: this is how a room learns that a member has gone, whatever
// ended the session (see sessionEnded for why not a watch).
type roomLeave struct {
	session *actor.PID
	user    string
}

func (*roomLeave) IgnoreDeadLetterLogging() {}

// teardown: a leave waits behind other work on the worker pool (pool.go).
func (*roomLeave) teardown() {}

// session -> hub -> room: a stopping session leaves a room whose join it
// sent but whose answer it has not had: the hub forwards it as a roomLeave
// to the room it forwarded the join to, after the join.
type leaveRoom struct {
	room    string
	session *actor.PID
	user    string
}

func (*leaveRoom) IgnoreDeadLetterLogging() {}

// room -> member sessions: the room has stopped with them still in it
// (killed, or stopped after repeated panics). Sessions do not watch their
// rooms: the room's Stopped tells each member, which re-joins.
type roomGone struct {
	room string
	pid  *actor.PID
	// since is the last publication of the room's stream the member was
	// sent (nil: history off, or the room never knew its position): the
	// re-join recovers what came after it, which the room's next actor
	// may have been too late to fan out.
	since *wire.Position
}

func (*roomGone) IgnoreDeadLetterLogging() {}

// hub -> room: you are idle and forgotten; stop. A room that stops
// otherwise tells the hub (roomEnded).
type roomRetired struct{}

func (roomRetired) IgnoreDeadLetterLogging() {}

// teardown: waits behind other work on the worker pool (pool.go).
func (roomRetired) teardown() {}

// room -> hub: the room has stopped without being retired (killed, or
// after repeated panics). Rooms are not the hub's children (their
// supervisor is a guardian): this is how the hub learns it.
type roomEnded struct{ pid *actor.PID }

func (*roomEnded) IgnoreDeadLetterLogging() {}

// session or hub -> room: deliver event to every local member. A non-zero
// tag (an API publish) asks the room to report its count (roomCastDone).
type roomCast struct {
	event *wire.Event
	tag   uint64
}

// room -> sessions: events to deliver in order, shared by every member (a
// busy room's fan-outs, see room.fanoutPending).
type eventBatch struct{ events []*wire.Event }

func (*eventBatch) IgnoreDeadLetterLogging() {}

// room -> hub: the API publish tag reached local recipients.
type roomCastDone struct {
	tag   uint64
	local int
}

func (*roomCast) IgnoreDeadLetterLogging() {}

// room -> hub: I have no members; joins is how many joins I processed.
type roomIdle struct {
	name  string
	pid   *actor.PID
	joins int
}

// session -> hub: deliver event to every local session except those of user.
type broadcastLocal struct {
	event   *wire.Event
	exclude string
}

// session -> hub: deliver event to every local session of target, reply
// with directCount{seq}.
type directLocal struct {
	target  string
	event   *wire.Event
	replyTo *actor.PID
	seq     uint64
}

// hub -> session: how many local sessions a direct message reached.
type directCount struct {
	seq uint64
	n   int
}

func (*directCount) IgnoreDeadLetterLogging() {}

// broker callback -> session: how many other nodes a direct message reached.
type directRemote struct {
	seq uint64
	n   int
	err error
}

func (*directRemote) IgnoreDeadLetterLogging() {}

// session -> session (scheduled): answer the direct messages the broker
// has not answered in time.
type directSweep struct{}

func (*directSweep) IgnoreDeadLetterLogging() {}

// session -> session (scheduled): a join got no reply in time.
type joinTimeout struct{ room string }

func (*joinTimeout) IgnoreDeadLetterLogging() {}

// Node.Drain -> hub: close every session.
type closeAll struct {
	code   wire.CloseCode
	reason string
}

// Node API -> hub: deliver a server-side publish locally.
type apiPublish struct {
	kind   string
	target string
	event  *wire.Event
}

type apiPublished struct{ local int }

// Directory queries, for tests, chaos checks and operators.

// DirectoryQuery asks the hub for a snapshot of the node's directory; the
// reply is *Directory.
type DirectoryQuery struct{}

// Directory is the hub's view: users to session ids, rooms to room actor ids.
type Directory struct {
	Sessions map[string]string `json:"sessions"` // session actor id -> user
	Rooms    map[string]string `json:"rooms"`    // room name -> room actor id
}

// RoomQuery asks a room actor for its members; the reply is *RoomMembers.
type RoomQuery struct{}

// RoomMembers lists a room's local member session ids.
type RoomMembers struct {
	Room    string   `json:"room"`
	Members []string `json:"members"`
}

// helper for tests and tools: render as JSON.
func (d *Directory) String() string { b, _ := json.Marshal(d); return string(b) }
