package transport

import (
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// socketState is the per-connection value gws carries (its SessionStorage):
// the session's handle (port.SessionHandle), set once by the HTTP handler
// before the read loop starts, then only read by the read loop.
//
// ip names the connection slot that OnClose gives back; pings is the budget
// of WebSocket ping frames. Both are set by the handler before the read loop
// starts; from then on pings belongs to the read loop (OnPing).
type socketState struct {
	session port.SessionHandle // set by the handler before the read loop starts
	wire    *wireConn
	ip      string
	pings   port.TokenBucket
	shard   uint32 // the inbox shard of its frames
	// inboxBytes is what its frames waiting in the inbox weigh; guarded by
	// the mutex of its inbox shard.
	inboxBytes int
	heard      atomic.Int64 // when the peer's latest frame came, as nanoseconds since clockBase
	silent     atomic.Bool  // the session dropped the peer for silence
	gate       *frameGate   // the read loop's; set before it starts
	ended      atomic.Bool  // OnClose has run
}

// hear records a frame from the peer: one clock read and one store, so
// that the read loop's stack stays small.
func (s *socketState) hear() { s.heard.Store(int64(time.Since(clockBase))) }

// hearControl records a ping or pong, except in the middle of a fragmented
// message: a client must not hold a half-sent message (and the frame
// budget it was charged) open by answering pings.
func (s *socketState) hearControl() {
	if s.gate == nil || !s.gate.midMessage() {
		s.hear()
	}
}

// clockBase anchors the heard times on the monotonic clock, so that a jump
// of the wall clock neither drops live peers nor keeps silent ones.
var clockBase = time.Now()

// SessionStorage is satisfied with no map: the state has fixed fields.
func (s *socketState) Len() int                { return 0 }
func (s *socketState) Load(string) (any, bool) { return nil, false }
func (s *socketState) Delete(string)           {}
func (s *socketState) Store(string, any)       {}
func (s *socketState) Range(func(string, any) bool) {
}

func stateOf(c *gws.Conn) *socketState { return c.Session().(*socketState) }

// sessionConn is the port.Conn of one WebSocket: data frames go straight
// into the wire queue; close frames go through gws so that its state
// machine knows the connection is closing.
type sessionConn struct {
	socket *gws.Conn
	wire   *wireConn
	st     *socketState
}

var (
	_ port.HeardConn    = (*sessionConn)(nil)
	_ port.BudgetedConn = (*sessionConn)(nil)
)

func (c *sessionConn) LastHeard() time.Time {
	return clockBase.Add(time.Duration(c.st.heard.Load()))
}

func (c *sessionConn) Enqueue(frame []byte) bool { return c.wire.Enqueue(frame) }
func (c *sessionConn) PendingBudget() int        { return c.wire.maxPending }
func (c *sessionConn) Flush()                    { c.wire.Flush() }
func (c *sessionConn) DropSilent() {
	c.st.silent.Store(true)
	c.Close(wire.CloseNormal, wire.SilentReason)
}
func (c *sessionConn) Close(code wire.CloseCode, reason string) {
	_ = c.socket.WriteClose(uint16(code), []byte(reason))
}
func (c *sessionConn) Abort(code wire.CloseCode, reason string) {
	c.wire.Discard()
	_ = c.socket.WriteClose(uint16(code), []byte(reason))
}

// events is the gws event handler shared by every connection. Its callbacks
// run on each connection's read loop goroutine (gws ParallelEnabled is off,
// so frames arrive in order). They record signs of life, answer pings and
// append frames to the inbox; the only wait is putFrame's, while the
// connection's own frames exceed its inbox budget (TCP backpressure).
type events struct {
	srv *Server
}

func (e *events) OnOpen(*gws.Conn) {}

func (e *events) OnClose(c *gws.Conn, err error) {
	defer e.recoverCallback("OnClose")
	if stateOf(c).ended.Swap(true) {
		return
	}
	e.srv.slots.give(stateOf(c).ip)
	e.srv.countClose(err, stateOf(c).silent.Load())
	if st := stateOf(c); st.session.Valid() {
		e.srv.inbox.putEnd(st, st.session, err)
	}
}

func (e *events) OnPing(c *gws.Conn, payload []byte) {
	defer e.recoverCallback("OnPing")
	// Each ping costs the node a pong write; a client pinging faster than it
	// may send messages is flooding, and is cut like a message flood.
	if !stateOf(c).pings.Allow(time.Now()) {
		e.srv.node.Metrics().PolicyClosed.Add(1)
		_ = c.WriteClose(uint16(wire.ClosePolicy), []byte("ping flood"))
		return
	}
	stateOf(c).hearControl()
	_ = c.WritePong(payload)
}

func (e *events) OnPong(c *gws.Conn, _ []byte) {
	stateOf(c).hearControl()
}

func (e *events) OnMessage(c *gws.Conn, m *gws.Message) {
	st := stateOf(c)
	st.hear()
	session := st.session
	if !session.Valid() {
		m.Close()
		return
	}
	if m.Opcode != gws.OpcodeText && !e.srv.cfg.AllowBinary {
		m.Close()
		e.srv.node.Metrics().PolicyClosed.Add(1)
		_ = c.WriteClose(uint16(wire.ClosePolicy), []byte("binary frames are not accepted"))
		return
	}
	e.srv.inbox.putFrame(st, session, m)
}

// recoverCallback keeps a panic in a control-frame callback (which gws v1.8.9
// does not recover) from taking the process down.
func (e *events) recoverCallback(where string) {
	if r := recover(); r != nil {
		e.srv.log.Error("panic in websocket callback", "callback", where, "panic", r)
	}
}
