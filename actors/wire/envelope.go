package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Envelope types on the broker (docs/protocol.md, section 5).
const (
	EnvBroadcast = "broadcast"
	EnvRoom      = "room_message"
	EnvDirect    = "direct_message"
)

// MaxEnvelopeBytes bounds an envelope accepted from the broker.
const MaxEnvelopeBytes = 1 << 20

// Envelope errors.
var (
	ErrEnvelopeInvalid = errors.New("wire: invalid envelope")
	ErrEnvelopeTooBig  = errors.New("wire: envelope too large")
)

// Envelope is one message between nodes:
//
//	{"type":"broadcast","sender_id":ID,"payload":{...}}
//	{"type":"room_message","room":R,"payload":{...}}
//	{"type":"direct_message","target":ID,"payload":{...}}
//
// Node and MsgID are Switchboard additions that other nodes ignore; an
// envelope without them (a tutorial node, a backend's PUBLISH) is valid.
// Every member is a field here, written by Encode and read by
// DecodeEnvelope, and by nothing else: no other code builds, splices or
// parses envelope bytes. A value the broker itself fills in (a Redis
// script that learns it only inside Redis, such as a room publication's
// place in the stream) goes into a Template, which Encode builds too.
type Envelope struct {
	Type     string // EnvBroadcast, EnvRoom or EnvDirect
	SenderID string // the sending user of a broadcast; optional elsewhere
	Room     string // EnvRoom: the room
	Target   string // EnvDirect: the user it is for
	// Node is the id of the node that published it; "" when another kind
	// of publisher sent it. A node's broker does not deliver the node's own
	// envelopes back to it.
	Node string
	// MsgID numbers the publisher's envelopes so that a receiver can drop
	// a copy sent again after a broker fault; zero: none.
	MsgID MsgID
	// Pos is a room publication's place in the room's stream
	// (docs/protocol.md, section 6), given by the broker that stored it;
	// zero for every other envelope, and for a room publication of a
	// publisher that keeps no history (a tutorial node, a backend). Only a
	// valid pair is read: an offset of 1..2^53 with an epoch.
	Pos Position
	// Payload is the exact client event object, encoded once.
	Payload json.RawMessage
}

// MsgID is an envelope's "msg_id", "ORIGIN:SEQ": Origin names one life of
// a publisher (a node id and an incarnation), and Seq counts that life's
// publishes in the order they are sent, from 1. The zero MsgID is none. A
// msg_id of any other shape (another publisher's scheme) reads as none:
// the envelope is delivered as it is.
type MsgID struct {
	Origin string
	Seq    uint64
}

// IsZero reports whether id is none.
func (id MsgID) IsZero() bool { return id.Origin == "" }

// parseMsgID reads "ORIGIN:SEQ"; anything else is the zero MsgID.
func parseMsgID(raw []byte) MsgID {
	s, ok := jsonString(raw)
	if !ok {
		return MsgID{}
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return MsgID{}
	}
	seq, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return MsgID{}
	}
	return MsgID{Origin: s[:i], Seq: seq}
}

// Encode builds the envelope's JSON around the already encoded payload:
// the payload is copied, never re-marshalled. Encode is the one encoder of
// envelopes; a message is encoded once, and the same bytes go to every
// node.
//
// A numbered envelope starts with its position, "offset" and "epoch";
// then "node" comes first, so that a node tells its own unnumbered
// envelopes from the first bytes (EncodedFrom), and "msg_id" last, where
// nodes of earlier versions look for it. No reader may rely on the order:
// DecodeEnvelope reads members wherever they are.
func (e *Envelope) Encode() []byte {
	b := make([]byte, 0, 120+len(e.SenderID)+len(e.Room)+len(e.Target)+len(e.Node)+len(e.MsgID.Origin)+len(e.Pos.Epoch)+len(e.Payload))
	if e.Pos.Offset > 0 && validEpoch(e.Pos.Epoch) {
		b = append(b, '{')
		b = appendPosition(b, e.Pos)
		b = append(b, ',')
		if e.Node != "" {
			b = append(b, `"node":`...)
			b = AppendJSONString(b, e.Node)
			b = append(b, ',')
		}
		b = append(b, `"type":`...)
	} else if e.Node != "" {
		b = append(b, `{"node":`...)
		b = AppendJSONString(b, e.Node)
		b = append(b, `,"type":`...)
	} else {
		b = append(b, `{"type":`...)
	}
	b = AppendJSONString(b, e.Type)
	if e.SenderID != "" || e.Type == EnvBroadcast {
		b = append(b, `,"sender_id":`...)
		b = AppendJSONString(b, e.SenderID)
	}
	if e.Room != "" {
		b = append(b, `,"room":`...)
		b = AppendJSONString(b, e.Room)
	}
	if e.Target != "" {
		b = append(b, `,"target":`...)
		b = AppendJSONString(b, e.Target)
	}
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	if !e.MsgID.IsZero() {
		b = append(b, `,"msg_id":`...)
		b = appendMsgID(b, e.MsgID)
	}
	return append(b, '}')
}

// appendMsgID appends id as the JSON string "ORIGIN:SEQ".
func appendMsgID(b []byte, id MsgID) []byte {
	b = AppendJSONString(b, id.Origin)
	b = append(b[:len(b)-1], ':')
	b = strconv.AppendUint(b, id.Seq, 10)
	return append(b, '"')
}

// envelopeMembers are the members DecodeEnvelope reads, in this order.
var envelopeMembers = []string{"type", "sender_id", "room", "target", "node", "msg_id", "payload", "offset", "epoch"}

// DecodeEnvelope parses and validates an envelope from the broker. The payload
// must be a JSON object with a string "event" member; room envelopes need a
// valid room name and direct envelopes a target. Unknown members are
// ignored. The envelope never aliases data.
func DecodeEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, ErrEnvelopeTooBig
	}
	// Members by exact name (decodeMembers): nodes of every kind sharing a
	// broker must agree on where an envelope goes.
	var m [9][]byte
	if err := walkMembers(data, envelopeMembers, m[:]); err != nil {
		return nil, ErrEnvelopeInvalid
	}
	typ, ok := jsonString(m[0])
	if !ok {
		return nil, ErrEnvelopeInvalid
	}
	env := &Envelope{Type: typ}
	if env.SenderID, ok = optString(m[1]); !ok {
		return nil, ErrEnvelopeInvalid
	}
	if env.Node, ok = optString(m[4]); !ok {
		return nil, ErrEnvelopeInvalid
	}
	switch typ {
	case EnvBroadcast:
	case EnvRoom:
		if env.Room, ok = jsonString(m[2]); !ok || !ValidRoomName(env.Room) {
			return nil, ErrEnvelopeInvalid
		}
	case EnvDirect:
		if env.Target, ok = jsonString(m[3]); !ok || env.Target == "" {
			return nil, ErrEnvelopeInvalid
		}
	default:
		return nil, ErrEnvelopeInvalid
	}
	env.MsgID = parseMsgID(m[5])
	env.Pos = parsePosition(m[7], m[8])
	payload, err := compactEventObject(m[6])
	if err != nil {
		return nil, err
	}
	env.Payload = payload
	return env, nil
}

// compactEventObject checks that raw is an object with a string "event"
// member (by its exact name, as every member) and returns it compacted
// into a fresh slice (never aliasing the input). The payload is sent to
// clients as is, in text frames, so it must be valid UTF-8: a client that
// checks (every browser) fails the connection otherwise.
func compactEventObject(raw []byte) (json.RawMessage, error) {
	if len(raw) == 0 || raw[0] != '{' || !utf8.Valid(raw) {
		return nil, ErrEnvelopeInvalid
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, ErrEnvelopeInvalid
	}
	out := buf.Bytes()
	var event [1][]byte
	walkObject(out, 0, eventMember, event[:], false)
	if _, ok := jsonString(event[0]); !ok {
		return nil, ErrEnvelopeInvalid
	}
	return out, nil
}

var eventMember = []string{"event"}

// ValidateEventPayload checks a server-side payload the same way envelopes from
// the broker are checked, and returns a compacted private copy.
func ValidateEventPayload(raw []byte) (json.RawMessage, error) {
	return compactEventObject(bytes.TrimLeft(raw, " \t\r\n"))
}

// parsePosition reads an envelope's "offset" and "epoch"; anything but a
// valid pair (an offset of 1..2^53 and an epoch) is none, as for msg_id:
// another publisher's members of those names do not number its envelope.
func parsePosition(offset, epoch []byte) Position {
	n, ok := parseOffset(offset)
	if !ok || n == 0 {
		return Position{}
	}
	e, ok := jsonString(epoch)
	if !ok || !validEpoch(e) {
		return Position{}
	}
	return Position{Offset: n, Epoch: e}
}
