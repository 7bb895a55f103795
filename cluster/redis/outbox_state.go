package redis

import "time"

// outState is what the outbox writer knows of its audience: whether what it
// publishes now can be heard by the nodes that should hear it. Before each
// round trip the writer reads the health of this node's pub/sub
// connections (every one up or not, and the recovery epoch, bumped each
// time they are all up again) and feeds the reading to transition; it
// sends only in Open and Verifying.
//
//	state      what the writer has seen                  the queue
//	Starting   no reading with every connection up yet   held: nobody would hear it
//	Open       every connection up, no recovery pending  leaves at once, MaxBatch commands a round trip
//	Down       a connection down                         held: the other nodes' are most likely down
//	                                                     too (a Redis restart, CLIENT KILL TYPE
//	                                                     pubsub), and lose what is sent before they
//	                                                     are back
//	Held       a publish heard by nobody on a channel    held, the unheard publishes back at its head
//	           that had an audience, and this node's
//	           probe channels without their subscriber
//	Verifying  every connection up again after a fault   a publish (or room publication) leaves once
//	                                                     its channel has the audience it had before
//	                                                     (PUBSUB NUMSUB), a
//	                                                     direct message once the nodes alive before
//	                                                     are registered again; presence always; the
//	                                                     first that must wait holds those behind it
//
//	from       event                                           to
//	Starting   up at epoch 1 (this node's first subscriptions) Open: nobody heard it before
//	Starting   up at a later epoch                             Verifying
//	Open       down                                            Down *
//	Open       up at a newer epoch (a fault missed while busy) Verifying *
//	Open       unheard                                         Held
//	Down       up                                              Verifying
//	Held       up at an epoch no newer than the unheard batch  Held (* if newer than the last reading)
//	Held       up at a newer epoch                             Verifying *
//	Held       down                                            Down *
//	Verifying  FlushWait over since the recovery was seen      Open
//	Verifying  down                                            Down *
//	Verifying  up at a newer epoch                             Verifying *, a new window
//	Verifying  unheard                                         Held
//	any        anything else                                   unchanged
//
// A transition marked * is the writer's first sight of an outage: in Open,
// Verifying or Held, a reading of a connection down, or of an epoch newer
// than the last reading's. The publishes Redis confirmed within
// ResendWindow before it may have been lost with the subscriber
// connections Redis closed: they are queued again (resendRecent; receivers
// drop the copies, see msgid.go). Leaving Down needs no resend: nothing is
// sent while it lasts.
//
// When Close has asked the writer to stop, it returns at once in Starting,
// Down and Held (Redis is not there to flush to); in Open and Verifying it
// sends what it holds first. The writer's own connection is not part of
// this state: a failed round trip delays the next by a backoff, whatever
// the state (and a writer stopping gives up after three in a row).
type outState uint8

const (
	stateStarting outState = iota
	stateOpen
	stateDown
	stateHeld
	stateVerifying
)

var outStateNames = [...]string{
	stateStarting:  "starting",
	stateOpen:      "open",
	stateDown:      "down",
	stateHeld:      "held",
	stateVerifying: "verifying",
}

func (s outState) String() string {
	if int(s) < len(outStateNames) {
		return outStateNames[s]
	}
	return "unknown"
}

// sends reports whether commands may leave in state s.
func (s outState) sends() bool { return s == stateOpen || s == stateVerifying }

// believedUp reports whether, in state s, the writer last saw every
// connection up: a reading that says otherwise is news of an outage.
func (s outState) believedUp() bool { return s == stateOpen || s == stateVerifying || s == stateHeld }

// outEventKind is what happened, for transition.
type outEventKind uint8

const (
	// evDown is a reading of the connections' health: one is down.
	evDown outEventKind = iota
	// evUp is a reading of the connections' health: every one is up.
	evUp
	// evUnheard: a batch sent at epoch was heard by nobody where it had an
	// audience, and this node's probe channels have lost their subscriber
	// (checkSuspects).
	evUnheard
	// evWindowOver: FlushWait has passed since the recovery.
	evWindowOver
)

// outEvent is one input of transition.
type outEvent struct {
	kind  outEventKind
	epoch uint64    // evDown, evUp: the connections' recovery epoch; evUnheard: the batch's
	at    time.Time // evUp: when it was read (a recovery window starts then)
	peers []string  // evUp: the other nodes alive as of the last heartbeat
}

// recovery is the window that follows a recovery, in Verifying.
type recovery struct {
	epoch     uint64              // the recovery it follows
	since     time.Time           // when the writer saw it: FlushWait counts from here
	peers     []string            // the other nodes alive before it
	verified  map[string]struct{} // channels seen with their audience back since
	peersBack bool                // the peers are registered again since
	held      bool                // a command had to wait for its audience
}

// gate is the writer's state machine (see outState). Only the writer
// goroutine touches it.
type gate struct {
	state outState
	seen  uint64   // the recovery epoch of the last reading
	hold  uint64   // Held: until a recovery newer than this epoch
	rec   recovery // Verifying: the current window
}

// transition applies ev to the gate. It returns true when ev is the
// writer's first sight of an outage, and the publishes confirmed within
// ResendWindow must be sent again.
func (g *gate) transition(ev outEvent) (resend bool) {
	switch ev.kind {
	case evDown, evUp:
		resend = g.state.believedUp() && (ev.kind == evDown || ev.epoch != g.seen)
		g.seen = ev.epoch
		switch {
		case ev.kind == evDown:
			if g.state != stateStarting {
				g.state = stateDown
			}
		case g.state == stateStarting && ev.epoch == 1:
			g.state = stateOpen
		case g.state == stateHeld && ev.epoch <= g.hold:
			// Not recovered since the unheard batch yet.
		case g.state == stateStarting, g.state == stateDown, g.state == stateHeld, resend:
			g.state = stateVerifying
			g.rec = recovery{epoch: ev.epoch, since: ev.at, peers: ev.peers, verified: make(map[string]struct{})}
		}
	case evUnheard:
		if g.state.sends() {
			g.state, g.hold = stateHeld, ev.epoch
		}
	case evWindowOver:
		if g.state == stateVerifying {
			g.state = stateOpen
		}
	}
	return resend
}
