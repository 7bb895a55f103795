package main

import (
	"bytes"
	"sync/atomic"
)

// streamPos follows the offsets of the chat events a client receives: the
// read loop writes it, the scenario reads it (after the ack that follows the
// chats, or after waiting for the count). lastOffset is set by the scenario
// before any chat can arrive (before the join).
type streamPos struct {
	chats      atomic.Int64 // chat events with an offset
	lastOffset atomic.Int64 // offset of the latest one (or the starting point)
	gaps       atomic.Int64 // chats whose offset is not lastOffset+1: a gap, a repeat or a reorder
	epochs     atomic.Int64 // chats whose epoch differs from the previous one's
	epoch      atomic.Pointer[string]
}

var (
	markOffset    = []byte(`,"offset":`)
	markEpoch     = []byte(`,"epoch":"`)
	markRecovered = []byte(`,"recovered":`)
)

// onPosition reads the trailing "offset":N,"epoch":"E" of a chat event
// (the node appends the position as the last members).
func (p *streamPos) onPosition(b []byte) {
	i := bytes.LastIndex(b, markOffset)
	if i < 0 {
		return
	}
	off, epoch, ok := readPosition(b[i:])
	if !ok {
		return
	}
	if off != p.lastOffset.Load()+1 {
		p.gaps.Add(1)
	}
	p.lastOffset.Store(off)
	p.chats.Add(1)
	if e := p.epoch.Load(); e == nil || *e != string(epoch) {
		if e != nil {
			p.epochs.Add(1)
		}
		s := string(epoch)
		p.epoch.Store(&s)
	}
}

// readPosition parses `,"offset":N,"epoch":"E"` at the start of b.
func readPosition(b []byte) (offset int64, epoch []byte, ok bool) {
	b = b[len(markOffset):]
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		offset = offset*10 + int64(b[i]-'0')
	}
	if i == 0 || !bytes.HasPrefix(b[i:], markEpoch) {
		return 0, nil, false
	}
	b = b[i+len(markEpoch):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return 0, nil, false
	}
	return offset, b[:j], true
}

// parseAck reads the position and the recovery flag of an ack, if any.
func parseAck(b []byte, ev *ctlEvent) {
	ev.offset = -1
	if i := bytes.Index(b, markOffset); i >= 0 {
		if off, epoch, ok := readPosition(b[i:]); ok {
			ev.offset, ev.epoch = off, string(epoch)
		}
	}
	if i := bytes.Index(b, markRecovered); i >= 0 {
		ev.recovered = ackNotRecovered
		if bytes.HasPrefix(b[i+len(markRecovered):], []byte("true")) {
			ev.recovered = ackRecovered
		}
	}
}

// Prefixes of the events the read loop looks at. The node encodes each event
// with a fixed field order (actors/event.go), and the baseline server uses
// the same encoder, so a prefix test is exact.
var (
	prefixChat    = []byte(`{"event":"chat",`)
	prefixWelcome = []byte(`{"event":"welcome"`)
	prefixAck     = []byte(`{"event":"ack","id":"`)
	prefixError   = []byte(`{"event":"error","code":"`)
	markContent   = []byte(`"content":"` + contentMark)
)

// contentMark starts every load message's content: "sbb:ROOM:SEQ:UNIXNANO:" and padding.
const contentMark = "sbb:"
