package actors

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A room's stream (docs/protocol.md, section 6). With history on, every
// publication to the room is numbered by the broker and comes back to
// every node, this one included, in offset order; the room fans each out
// once, in order, and keeps pos, the last one it fanned out. That makes
// pos the position a joiner is told: every publication after it reaches
// the joiner, none before it does.
//
// The room reads the stream (Broker.Read) in three cases, one at a time:
//   - readPos: once the broker confirmed the channel, the stream's top,
//     so that the first joiners are told where they start;
//   - readGap: a publication came whose offset skips some (the
//     subscription lost messages while Redis was failing over, or the room
//     came back after a resubscription): the missing ones are read and fanned
//     out first, so that members see no gap;
//   - a join with since (recovery): the joiner is sent what it missed.
// While a position or gap read is in flight, publications wait in early
// and joins in held; recoveries run beside live traffic (see recovery).
//
// A gap read's answer may begin past the next offset: then the room waits
// for the missing publications before it jumps past them (readWait,
// room_wait.go).
//
// States (reading) and their transitions:
//
//	readNone  -> readPos   the broker confirmed the channel; pos unknown
//	readNone  -> readGap   resubscribed, or a publication skips some
//	readPos   -> readNone  the top came, or the deadline passed
//	readGap   -> readNone  the answer follows pos, or the deadline passed
//	readGap   -> readWait  the answer begins past the next offset
//	readWait  -> readNone  nothing missing before what is held, or the
//	                       deadline passed (a gap)
//
// Recoveries (readRecover) are not a state: they run beside all of these.

// streamState is the room's part of the stream; see above.
type streamState struct {
	pos      wire.Position // the last publication fanned out, or the top read
	posKnown bool
	reading  readKind // the position or gap read in flight, if any
	readSeq  uint64   // numbers reads, so that a late reply is recognised
	early    []*Inbound
	// During readWait: the epoch waited in, and its publications held
	// past the next offset, in offset order, without repeats.
	waitEpoch string
	waiting   []*Inbound
	// recovering holds the joins with since whose read is in flight, by
	// session id; every publication fanned out meanwhile is kept for them.
	recovering map[string]*recovery
	// pendingPos is the offset of each event in pending (0: not numbered),
	// for members that skip what they were sent elsewhere (member.skip).
	pendingPos []uint64
}

type readKind uint8

const (
	readNone readKind = iota
	readPos
	readGap
	readRecover
	readWait // not a read: publications the answer lacked may come live
)

// recovery is a join with since waiting for its read.
type recovery struct {
	join  *roomJoin
	since wire.Position
	seen  []*Inbound // fanned out since the read was asked for
}

// room -> room: what Broker.Read found (the callback sends it).
type streamRead struct {
	seq     uint64
	kind    readKind
	session string // readRecover: whose
	res     StreamRead
	err     error
}

func (*streamRead) IgnoreDeadLetterLogging() {}

// room -> room (scheduled): a position or gap read is late.
type streamReadTimeout struct{ seq uint64 }

func (*streamReadTimeout) IgnoreDeadLetterLogging() {}

func (r *room) historyOn() bool { return r.node.history.Size > 0 }

// read asks the broker for the stream; the answer comes as *streamRead.
func (r *room) read(kind readKind, q StreamQuery, session string) {
	r.st.readSeq++
	seq, self, root := r.st.readSeq, r.self, r.node.root
	if kind != readRecover {
		r.st.reading = kind
		r.node.timers.SendOnce(r.subscribeWait(), self, &streamReadTimeout{seq: seq})
	}
	r.node.cfg.Broker.Read(r.channel, q, func(res StreamRead, err error) {
		root.Send(self, &streamRead{seq: seq, kind: kind, session: session, res: res, err: err})
	})
}

// streamSubscribed starts what the stream needs once the broker carries the
// channel: the position at first, a catch-up read after a
// resubscription (what was published while the subscription was down).
// It reports whether a read now holds the joins.
func (r *room) streamSubscribed() bool {
	switch {
	case r.st.reading != readNone:
		return true
	case !r.st.posKnown:
		r.read(readPos, StreamQuery{PositionOnly: true}, "")
		return true
	default:
		r.read(readGap, StreamQuery{After: r.st.pos.Offset, Epoch: r.st.pos.Epoch}, "")
		return true
	}
}

// onPublication takes a numbered publication from the broker.
func (r *room) onPublication(ctx actor.Context, in *Inbound) {
	switch r.st.reading {
	case readNone:
		r.accept(ctx, in, true)
	case readWait:
		r.waitTake(ctx, in, true)
		r.endWaitIfDone(ctx)
	default:
		r.st.early = append(r.st.early, in)
	}
}

// next is the offset that follows pos in epoch: 1 in another epoch (the
// stream's history was lost and numbering started again).
func (r *room) next(epoch string) uint64 {
	if r.st.posKnown && epoch == r.st.pos.Epoch {
		return r.st.pos.Offset + 1
	}
	return 1
}

// accept fans in out if it is the next of the stream, drops it if it was
// fanned out already, and reads what is missing before it otherwise (or,
// when mayRead is false, counts the gap and goes on: history no longer has
// the missing ones).
func (r *room) accept(ctx actor.Context, in *Inbound, mayRead bool) {
	p := in.Envelope.Pos
	next := r.next(p.Epoch)
	switch {
	case !r.st.posKnown || p.Offset == next:
	case p.Offset < next:
		return // a copy of one fanned out already
	case mayRead:
		r.st.early = append(r.st.early, in)
		r.read(readGap, StreamQuery{After: r.st.pos.Offset, Epoch: r.st.pos.Epoch}, "")
		return
	default:
		r.node.metrics.HistoryGaps.Add(int64(p.Offset - next))
	}
	r.st.pos, r.st.posKnown = p, true
	r.enqueueAt(ctx, in.Event, p.Offset)
	for _, rec := range r.st.recovering {
		rec.seen = append(rec.seen, in)
	}
}

// onStreamRead handles the broker's answer to a read.
func (r *room) onStreamRead(ctx actor.Context, m *streamRead) {
	if m.kind == readRecover {
		r.finishRecovery(ctx, m)
		return
	}
	if m.seq != r.st.readSeq || r.st.reading == readNone {
		return // given up already (streamReadTimeout)
	}
	if m.err == nil {
		if m.kind == readPos {
			r.st.pos, r.st.posKnown = m.res.Pos, true
		}
		if r.beginWait(ctx, m.res.Pubs) {
			return
		}
		r.st.reading = readNone
		for _, in := range m.res.Pubs {
			r.accept(ctx, in, false)
		}
	}
	r.endRead(ctx)
}

// endRead ends a position or gap read, or a wait: what came meanwhile is
// fanned out in offset order (past a gap if some are still missing), and
// the held joins go in.
func (r *room) endRead(ctx actor.Context) {
	r.st.reading = readNone
	early := append(r.st.waiting, r.st.early...)
	r.st.early, r.st.waiting, r.st.waitEpoch = nil, nil, ""
	sortStream(early)
	for _, in := range early {
		r.accept(ctx, in, false)
	}
	r.releaseHeld(ctx)
}

// sortStream puts publications in stream order: by offset within an
// epoch, the epochs in the order their first publication came.
func sortStream(pubs []*Inbound) {
	rank := make(map[string]int, 1)
	for _, in := range pubs {
		if _, ok := rank[in.Envelope.Pos.Epoch]; !ok {
			rank[in.Envelope.Pos.Epoch] = len(rank)
		}
	}
	slices.SortStableFunc(pubs, func(a, b *Inbound) int {
		if ea, eb := rank[a.Envelope.Pos.Epoch], rank[b.Envelope.Pos.Epoch]; ea != eb {
			return ea - eb
		}
		return compareOffsets(a.Envelope.Pos.Offset, b.Envelope.Pos.Offset)
	})
}

func compareOffsets(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// onReadTimeout gives up a position or gap read that is late, or a wait
// whose publications did not all come: the room goes on with what it
// knows (a joiner is then told no position, or a gap stays), rather than
// keep joins waiting. A wait's end is a gap, not a late read: accept
// counts it.
func (r *room) onReadTimeout(ctx actor.Context, m *streamReadTimeout) {
	if m.seq == r.st.readSeq && r.st.reading != readNone {
		if r.st.reading != readWait {
			r.node.metrics.HistoryReadTimeouts.Add(1)
		}
		r.endRead(ctx)
	}
}

// joinSince starts a join that recovers from since.
func (r *room) joinSince(ctx actor.Context, m *roomJoin) {
	id := m.session.Id
	if _, member := r.members.get(id); member {
		r.join(ctx, m) // a retry of a join that took effect
		return
	}
	if _, ok := r.st.recovering[id]; ok {
		// A retry, or the same session's join again after a leave: the
		// read in flight answers it. It is handled all the same: the hub
		// retires the room only once every join it forwarded is counted.
		r.joins++
		return
	}
	since := *m.since
	switch {
	case !r.st.posKnown:
		// The stream cannot be read (the broker is down): the joiner is
		// told to try again rather than given a position nobody knows.
		r.refuse(ctx, m)
		return
	case since.Epoch != r.st.pos.Epoch:
		r.joinAt(ctx, m, false, 0)
		return
	case since.Offset == r.st.pos.Offset:
		r.joinAt(ctx, m, true, 0)
		return
	}
	if r.st.recovering == nil {
		r.st.recovering = make(map[string]*recovery)
	}
	r.st.recovering[id] = &recovery{join: m, since: since}
	r.read(readRecover, StreamQuery{After: since.Offset, Epoch: since.Epoch, MaxBytes: m.budget, Client: true}, id)
}

// finishRecovery answers a join with since once its read is back.
func (r *room) finishRecovery(ctx actor.Context, m *streamRead) {
	rec, ok := r.st.recovering[m.session]
	if !ok {
		return
	}
	delete(r.st.recovering, m.session)
	if m.err != nil {
		r.refuse(ctx, rec.join)
		return
	}
	since := rec.since
	top := r.st.pos
	switch {
	case m.res.Pos.Epoch != since.Epoch || top.Epoch != since.Epoch || since.Offset > m.res.Pos.Offset:
		// Another life of the stream, or a since past its top (a client
		// that names what was never published).
		r.node.metrics.RecoveriesFailed.Add(1)
		r.joinAt(ctx, rec.join, false, 0)
		return
	case since.Offset >= top.Offset:
		// The joiner was sent more than this room has fanned out yet (on
		// another node, ahead of this one): it misses nothing, and is not
		// sent those again.
		r.joinAt(ctx, rec.join, true, since.Offset)
		return
	}
	if m.res.Truncated {
		// More than the joiner's budget was missed: the broker stopped
		// reading at it.
		r.node.metrics.RecoveriesTooBig.Add(1)
		r.node.metrics.RecoveriesFailed.Add(1)
		r.joinAt(ctx, rec.join, false, 0)
		return
	}
	// Everything in (since, pos]: what the read found, and what was fanned
	// out while it was in flight. Later ones reach the joiner live.
	missed := make([]*wire.Event, 0, len(m.res.Pubs)+len(rec.seen))
	next := since.Offset + 1
	take := func(in *Inbound) {
		if p := in.Envelope.Pos; p.Epoch == since.Epoch && p.Offset == next && p.Offset <= top.Offset {
			missed = append(missed, in.Event)
			next++
		}
	}
	for _, in := range m.res.Pubs {
		take(in)
	}
	for _, in := range rec.seen {
		take(in)
	}
	if next != top.Offset+1 {
		r.node.metrics.RecoveriesFailed.Add(1)
		r.joinAt(ctx, rec.join, false, 0)
		return
	}
	size := 0
	for _, ev := range missed {
		size += len(ev.Frame)
	}
	if size > rec.join.budget {
		r.node.metrics.RecoveriesTooBig.Add(1)
		r.node.metrics.RecoveriesFailed.Add(1)
		r.joinAt(ctx, rec.join, false, 0)
		return
	}
	r.fanoutPending(ctx)
	if len(missed) > 0 {
		ctx.Send(rec.join.session, &eventBatch{events: missed})
	}
	r.node.metrics.Recovered.Add(int64(len(missed)))
	r.joinAt(ctx, rec.join, true, 0)
}

// joinAt makes the joiner a member and answers it with the room's
// position and whether it recovered; skip > pos means the joiner was sent
// the publications up to skip elsewhere, and gets only the later ones.
func (r *room) joinAt(ctx actor.Context, m *roomJoin, recovered bool, skip uint64) {
	r.addMember(ctx, m)
	if mem, ok := r.members.get(m.session.Id); ok && skip > r.st.pos.Offset && mem.skip == 0 {
		mem.skip = skip
		r.skipping++
	} else {
		skip = 0
	}
	r.answerJoined(ctx, m, &recovered, skip)
}
