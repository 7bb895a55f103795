package wire

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Event is one server->client event, encoded once: JSON holds the event
// object and Frame the complete WebSocket text frame carrying it. Every
// recipient is handed the same *Event; it is immutable once built.
type Event struct {
	JSON  []byte
	Frame []byte
	// Born is when the message this event carries reached the node (a
	// client's chat or direct message, a server-side publish, an envelope
	// from the broker), for the node's delivery latency. Zero: not timed
	// (replies, presence, static events). Set by Timed, before the event is
	// shared.
	Born time.Time
}

// Timed stamps a freshly built event with the current time and returns
// it; it is called before the event is shared, never after.
func (e *Event) Timed() *Event {
	e.Born = time.Now()
	return e
}

// IgnoreDeadLetterLogging marks events as expected dead letters for the
// actor runtime (protoactor-go looks for this method): a fan-out racing
// with a closing session is normal operation, not worth a log line.
func (*Event) IgnoreDeadLetterLogging() {}

// NewEvent frames an already encoded event object. It keeps payload.
func NewEvent(payload []byte) *Event {
	return &Event{JSON: payload, Frame: AppendFrame(make([]byte, 0, len(payload)+10), OpText, payload)}
}

// WebSocket opcodes used in server frames.
const (
	OpText  byte = 0x1
	OpClose byte = 0x8
	OpPing  byte = 0x9
)

// AppendFrame appends an unmasked, final WebSocket frame (server to client,
// RFC 6455 section 5.2) to dst. Server frames are never masked, so the same
// bytes are valid for every recipient: this is what lets a fan-out encode and
// frame a message once.
func AppendFrame(dst []byte, opcode byte, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x80|opcode)
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}

// CloseFrame builds a close frame with code and reason, cut to 123 bytes at a
// character boundary: a control frame carries at most 125 bytes, and a reason
// that is not valid UTF-8 makes clients fail the connection.
func CloseFrame(code CloseCode, reason string) []byte {
	if len(reason) > 123 {
		cut := 123
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	p := make([]byte, 0, 2+len(reason))
	p = append(p, byte(code>>8), byte(code))
	p = append(p, reason...)
	return AppendFrame(make([]byte, 0, len(p)+2), OpClose, p)
}

// PingFrame is the empty ping the node sends as a heartbeat.
var PingFrame = AppendFrame(nil, OpPing, nil)

// Event constructors. Each encodes its JSON exactly once.

// WelcomeEvent is {"event":"welcome","client_id":ID,"node":NODE}.
func WelcomeEvent(clientID, node string) *Event {
	b := append(make([]byte, 0, 64+len(clientID)+len(node)), `{"event":"welcome","client_id":`...)
	b = AppendJSONString(b, clientID)
	b = append(b, `,"node":`...)
	b = AppendJSONString(b, node)
	return NewEvent(append(b, '}'))
}

// PresenceEvent is {"event":"user_connected"|"user_disconnected","user_id":U}.
func PresenceEvent(event, user string) *Event {
	b := append(make([]byte, 0, 48+len(user)), `{"event":`...)
	b = AppendJSONString(b, event)
	b = append(b, `,"user_id":`...)
	b = AppendJSONString(b, user)
	return NewEvent(append(b, '}'))
}

// RoomPresenceEvent is {"event":"user_joined"|"user_left","user_id":U,"room":R}.
func RoomPresenceEvent(event, user, room string) *Event {
	return NewEvent(RoomPresenceJSON(event, user, room))
}

// RoomPresenceJSON is RoomPresenceEvent's JSON alone: what a room with no
// local member left publishes to the other nodes, with no frame to build.
func RoomPresenceJSON(event, user, room string) []byte {
	b := append(make([]byte, 0, 48+len(user)+len(room)), `{"event":`...)
	b = AppendJSONString(b, event)
	b = append(b, `,"user_id":`...)
	b = AppendJSONString(b, user)
	b = append(b, `,"room":`...)
	b = AppendJSONString(b, room)
	return append(b, '}')
}

// ChatEvent is {"event":"chat","from":F,"content":C}, with "room" when room != "".
func ChatEvent(from, room, content string) *Event {
	return NewEvent(ChatJSON(from, room, content)).Timed()
}

// ChatJSON is ChatEvent's JSON alone: a room publication's payload, which
// the broker numbers before it is framed (PositionedEvent).
func ChatJSON(from, room, content string) []byte {
	b := append(make([]byte, 0, 48+len(from)+len(room)+len(content)), `{"event":"chat","from":`...)
	b = AppendJSONString(b, from)
	if room != "" {
		b = append(b, `,"room":`...)
		b = AppendJSONString(b, room)
	}
	b = append(b, `,"content":`...)
	b = AppendJSONString(b, content)
	return append(b, '}')
}

// DirectEvent is {"event":"direct_message","from":F,"content":C}.
func DirectEvent(from, content string) *Event {
	b := append(make([]byte, 0, 56+len(from)+len(content)), `{"event":"direct_message","from":`...)
	b = AppendJSONString(b, from)
	b = append(b, `,"content":`...)
	b = AppendJSONString(b, content)
	return NewEvent(append(b, '}')).Timed()
}

// AckEvent is {"event":"ack","id":ID}; id is raw JSON validated by DecodeCommand.
func AckEvent(id json.RawMessage) *Event {
	b := append(make([]byte, 0, 24+len(id)), `{"event":"ack","id":`...)
	b = append(b, id...)
	return NewEvent(append(b, '}'))
}

// PongEvent is {"event":"pong"}, shared by every session.
var PongEvent = NewEvent([]byte(`{"event":"pong"}`))

// ErrorEvent is {"event":"error","code":C,"message":M[,"id":ID]}.
func ErrorEvent(code ErrorCode, message string, id json.RawMessage) *Event {
	b := append(make([]byte, 0, 64+len(message)+len(id)), `{"event":"error","code":`...)
	b = AppendJSONString(b, string(code))
	b = append(b, `,"message":`...)
	b = AppendJSONString(b, message)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	return NewEvent(append(b, '}'))
}

// IsConnectionEvent reports whether payload, an event object from the
// broker, is user_connected or user_disconnected: what a client or a node
// may opt out of (docs/protocol.md, section 8). It reads the "event"
// member wherever it is; Switchboard writes it first.
func IsConnectionEvent(payload []byte) bool {
	const c, d = `{"event":"user_connected"`, `{"event":"user_disconnected"`
	s := string(payload)
	plain := strings.Count(s, `"event"`) == 1 && !strings.Contains(s, `\`)
	if plain && (strings.HasPrefix(s, c) || strings.HasPrefix(s, d)) {
		return true
	}
	if plain && strings.HasPrefix(s, `{"event":"`) {
		return false // another event, named first, once and plainly
	}
	var name [1][]byte
	if walkMembers(payload, eventMember, name[:]) != nil {
		return false
	}
	v, ok := jsonString(name[0])
	return ok && (v == "user_connected" || v == "user_disconnected")
}
