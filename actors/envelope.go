package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Envelope types on the broker (PROTOCOL.md section 5).
const (
	EnvBroadcast = "broadcast"
	EnvRoom      = "room_message"
	EnvDirect    = "direct_message"
)

// MaxEnvelopeBytes bounds an envelope accepted from the broker.
const MaxEnvelopeBytes = 1 << 20

// Envelope errors.
var (
	ErrEnvelopeInvalid = errors.New("actors: invalid envelope")
	ErrEnvelopeTooBig  = errors.New("actors: envelope too large")
)

// Envelope is one message between nodes:
//
//	{"type":"broadcast","sender_id":ID,"payload":{...}}
//	{"type":"room_message","room":R,"payload":{...}}
//	{"type":"direct_message","target":ID,"payload":{...}}
//
// Node, MsgID and TS are Switchboard additions that other nodes ignore; an
// envelope without them (a tutorial node, a backend's PUBLISH) is valid.
type Envelope struct {
	Type     string
	SenderID string
	Room     string
	Target   string
	Node     string
	Payload  json.RawMessage // the exact client event object
}

// Encode builds the envelope's JSON around the already encoded payload: the
// payload is copied, never re-marshalled.
func (e *Envelope) Encode() []byte {
	b := make([]byte, 0, 64+len(e.SenderID)+len(e.Room)+len(e.Target)+len(e.Node)+len(e.Payload))
	b = append(b, `{"type":`...)
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
	if e.Node != "" {
		b = append(b, `,"node":`...)
		b = AppendJSONString(b, e.Node)
	}
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, '}')
}

type rawEnvelope struct {
	Type, SenderID, Room, Target, Node, Payload json.RawMessage
}

// DecodeEnvelope parses and validates an envelope from the broker. The payload
// must be a JSON object with a string "event" field; room envelopes need a
// valid room name and direct envelopes a target. Unknown fields are ignored.
func DecodeEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, ErrEnvelopeTooBig
	}
	// Members by exact name (decodeMembers): nodes of every kind sharing a
	// broker must agree on where an envelope goes.
	members, err := decodeMembers(data, "type", "sender_id", "room", "target", "node", "payload")
	if err != nil {
		return nil, ErrEnvelopeInvalid
	}
	raw := rawEnvelope{Type: members[0], SenderID: members[1], Room: members[2], Target: members[3], Node: members[4], Payload: members[5]}
	typ, ok := jsonString(raw.Type)
	if !ok {
		return nil, ErrEnvelopeInvalid
	}
	env := &Envelope{Type: typ}
	if env.SenderID, ok = optString(raw.SenderID); !ok {
		return nil, ErrEnvelopeInvalid
	}
	if env.Node, ok = optString(raw.Node); !ok {
		return nil, ErrEnvelopeInvalid
	}
	switch typ {
	case EnvBroadcast:
	case EnvRoom:
		if env.Room, ok = jsonString(raw.Room); !ok || !ValidRoomName(env.Room) {
			return nil, ErrEnvelopeInvalid
		}
	case EnvDirect:
		if env.Target, ok = jsonString(raw.Target); !ok || env.Target == "" {
			return nil, ErrEnvelopeInvalid
		}
	default:
		return nil, ErrEnvelopeInvalid
	}
	payload, err := compactEventObject(raw.Payload)
	if err != nil {
		return nil, err
	}
	env.Payload = payload
	return env, nil
}

// compactEventObject checks that raw is an object with a string "event" and
// returns it compacted into a fresh slice (never aliasing the input). The
// payload is sent to clients as is, in text frames, so it must be valid
// UTF-8: a client that checks (every browser) fails the connection otherwise.
func compactEventObject(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || raw[0] != '{' || !utf8.Valid(raw) {
		return nil, ErrEnvelopeInvalid
	}
	var probe struct {
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, ErrEnvelopeInvalid
	}
	if _, ok := jsonString(probe.Event); !ok {
		return nil, ErrEnvelopeInvalid
	}
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return nil, ErrEnvelopeInvalid
	}
	return buf.Bytes(), nil
}

// ValidateEventPayload checks a server-side payload the same way envelopes from
// the broker are checked, and returns a compacted private copy.
func ValidateEventPayload(raw []byte) (json.RawMessage, error) {
	return compactEventObject(bytes.TrimLeft(raw, " \t\r\n"))
}

func optString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || isNull(raw) {
		return "", true
	}
	if raw[0] != '"' {
		// A number sender id (a tutorial client may use numeric ids) is kept as text.
		if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return string(raw), true
		}
		return "", false
	}
	return jsonString(raw)
}
