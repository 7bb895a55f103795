package actors

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"
)

// A gap read's answer may begin past the next offset: the stream no longer
// has the publications right after pos. They may still be on their way
// through the subscription: a node that came back first sends its whole
// outbox backlog at once, and the stream keeps only the newest
// HistorySize of it. So the room waits for them (readWait) before it
// jumps: it holds the answer's publications and the live ones in offset
// order, fans out each run that follows pos as it completes, and ends the
// wait when nothing is missing before what it holds, or when the read's
// deadline (subscribeWait from the read's start) passes: then what is
// still missing is a gap (HistoryGaps counts its publications) and the
// room goes on from what it holds. A live publication past missing ones
// shows that those will not come (the subscription delivers in offset
// order): it goes out at once, after what is held before it, past a gap.
// Joins stay held meanwhile: a joiner is told the position after the
// wait, not one the room is about to skip.
//
// The wait is not a read of its own: its deadline is the gap read's
// (streamReadTimeout), so that a join is held no longer than during a
// read, and its end is endRead's.

// beginWait starts a wait (see above) when a read's answer begins past
// the next offset of its epoch, and reports whether it did. The answer's
// publications and those that came during the read are held, and the run
// among them that follows pos goes out at once.
func (r *room) beginWait(ctx actor.Context, pubs []*Inbound) bool {
	if len(pubs) == 0 || !r.st.posKnown {
		return false
	}
	first := pubs[0].Envelope.Pos
	if first.Offset <= r.next(first.Epoch) {
		return false
	}
	r.st.reading, r.st.waitEpoch = readWait, first.Epoch
	early := r.st.early
	r.st.early = nil
	for _, in := range pubs {
		r.waitTake(ctx, in, false)
	}
	for _, in := range early { // live, in the order they came
		r.waitTake(ctx, in, true)
	}
	r.endWaitIfDone(ctx)
	return true
}

// waitTake takes a publication during a wait: the next one is fanned out,
// with the run held after it; a later one of the wait's epoch is held in
// offset order, and if it is live, it goes out with what is held before
// it (see above); one of another epoch waits in early for the wait's end.
func (r *room) waitTake(ctx actor.Context, in *Inbound, live bool) {
	p := in.Envelope.Pos
	if p.Epoch != r.st.waitEpoch {
		r.st.early = append(r.st.early, in)
		return
	}
	var through uint64 // what is held up to this offset goes out, past gaps
	switch next := r.next(p.Epoch); {
	case p.Offset < next:
		return // a copy of one fanned out already
	case p.Offset == next:
		r.accept(ctx, in, false)
	default:
		// What is held comes in offset order (the answer's oldest
		// first): this is most often an append.
		i, held := slices.BinarySearchFunc(r.st.waiting, p.Offset, func(h *Inbound, off uint64) int {
			return compareOffsets(h.Envelope.Pos.Offset, off)
		})
		if !held {
			r.st.waiting = slices.Insert(r.st.waiting, i, in)
		}
		if !live {
			return
		}
		through = p.Offset
	}
	w := r.st.waiting
	i := 0
	for ; i < len(w); i++ {
		if off := w[i].Envelope.Pos.Offset; off > through && off != r.next(p.Epoch) {
			break
		}
		r.accept(ctx, w[i], false) // past a gap, accept counts it
	}
	clear(w[:i])
	r.st.waiting = w[i:]
}

// endWaitIfDone ends a wait that holds nothing of its epoch any more.
func (r *room) endWaitIfDone(ctx actor.Context) {
	if r.st.reading == readWait && len(r.st.waiting) == 0 {
		r.endRead(ctx)
	}
}
