package wire

import (
	"encoding/json"
	"strconv"
)

// Position is a place in a room's stream (docs/protocol.md, section 6):
// Offset counts the stream's publications from 1 within one Epoch, the
// name of one life of the stream. The zero Position is none (history off,
// or not known).
type Position struct {
	Offset uint64
	Epoch  string
}

// Known reports whether p names a stream (an epoch), at any offset.
func (p Position) Known() bool { return p.Epoch != "" }

// MaxEpochLen bounds an epoch read from a client or the broker; the node's
// own are far shorter.
const MaxEpochLen = 64

// validEpoch reports whether s can be an epoch: 1-64 bytes of printable
// ASCII other than '"' and '\', so that it is its own JSON string.
func validEpoch(s string) bool {
	if s == "" || len(s) > MaxEpochLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// parseOffset reads a JSON non-negative integer (no sign, fraction or
// exponent) that fits in 53 bits, the largest integer every JSON reader
// keeps exact.
func parseOffset(raw []byte) (uint64, bool) {
	if len(raw) == 0 || len(raw) > 16 || (raw[0] == '0' && len(raw) > 1) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil || n > 1<<53 {
		return 0, false
	}
	return n, true
}

// appendPosition appends `"offset":N,"epoch":E` (E is a valid epoch).
func appendPosition(b []byte, p Position) []byte {
	b = append(b, `"offset":`...)
	b = strconv.AppendUint(b, p.Offset, 10)
	b = append(b, `,"epoch":`...)
	return AppendJSONString(b, p.Epoch)
}

// PositionedEvent frames a room publication as every member receives it,
// and as the history query returns it: the event object payload
// (compacted, as envelopes carry it) with the stream position as its last
// members, {..., "offset":N, "epoch":E}, built in one buffer (the frame,
// whose payload is the event's JSON). A payload that has its own "offset"
// or "epoch" (a server-side publish) is outvoted: readers take the last of
// repeated members.
func PositionedEvent(payload []byte, p Position) *Event {
	// The JSON is written after room for the longest header its size may
	// need (an upper bound of it: the offset has at most 20 digits); the
	// header then goes right before it.
	bound := len(payload) + 48 + len(p.Epoch)
	room := 2
	switch {
	case bound > 0xFFFF:
		room = 10
	case bound >= 126:
		room = 4
	}
	frame := make([]byte, room, room+bound)
	frame = append(frame, payload[:len(payload)-1]...)
	if len(payload) > 2 {
		frame = append(frame, ',')
	}
	frame = appendPosition(frame, p)
	frame = append(frame, '}')
	var head [10]byte
	h := appendFrameHeader(head[:0], OpText, len(frame)-room)
	start := room - len(h)
	copy(frame[start:], h)
	return &Event{JSON: frame[room:], Frame: frame[start:]}
}

// appendFrameHeader appends the header of an unmasked, final frame of
// size payload bytes.
func appendFrameHeader(dst []byte, opcode byte, n int) []byte {
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xFFFF:
		return append(dst, 126, byte(n>>8), byte(n))
	}
	return append(dst, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// JoinAckEvent is the ack of a join_room when history is on:
// {"event":"ack","id":ID,"room":R,"offset":TOP,"epoch":E}, with
// "recovered" when the join asked to recover (recovered non-nil).
func JoinAckEvent(id json.RawMessage, room string, p Position, recovered *bool) *Event {
	b := append(make([]byte, 0, 80+len(id)+len(room)+len(p.Epoch)), `{"event":"ack","id":`...)
	b = append(b, id...)
	b = append(b, `,"room":`...)
	b = AppendJSONString(b, room)
	b = append(b, ',')
	b = appendPosition(b, p)
	if recovered != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, *recovered)
	}
	return NewEvent(append(b, '}'))
}

// HistoryEvent answers a history query:
// {"event":"history","id":ID,"room":R,"offset":TOP,"epoch":E,"publications":[...]},
// each publication the exact event object that members received.
func HistoryEvent(id json.RawMessage, room string, p Position, pubs [][]byte) *Event {
	size := 96 + len(id) + len(room) + len(p.Epoch)
	for _, e := range pubs {
		size += len(e) + 1
	}
	b := append(make([]byte, 0, size), `{"event":"history","id":`...)
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	b = append(b, id...)
	b = append(b, `,"room":`...)
	b = AppendJSONString(b, room)
	b = append(b, ',')
	b = appendPosition(b, p)
	b = append(b, `,"publications":[`...)
	for i, e := range pubs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return NewEvent(append(b, "]}"...))
}
