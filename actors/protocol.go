package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrorCode is a protocol error code sent in {"event":"error","code":...}.
// The values match docs/protocol.md, section 3.
type ErrorCode string

// Protocol error codes.
const (
	CodeInvalidJSON    ErrorCode = "invalid_json"
	CodeInvalidMessage ErrorCode = "invalid_message"
	CodeUnknownType    ErrorCode = "unknown_type"
	CodeInvalidRoom    ErrorCode = "invalid_room"
	CodeNotMember      ErrorCode = "not_member"
	CodeUserOffline    ErrorCode = "user_offline"
	CodeForbidden      ErrorCode = "forbidden"
	CodeRateLimited    ErrorCode = "rate_limited"
	CodeTooManyRooms   ErrorCode = "too_many_rooms"
	CodeUnavailable    ErrorCode = "unavailable"
)

// CloseCode is a WebSocket close code the node sends (docs/protocol.md, section 4).
type CloseCode uint16

// Close codes.
const (
	CloseNormal        CloseCode = 1000
	CloseGoingAway     CloseCode = 1001
	ClosePolicy        CloseCode = 1008
	CloseTooBig        CloseCode = 1009
	CloseInternal      CloseCode = 1011
	CloseTryAgainLater CloseCode = 1013
	CloseTokenExpired  CloseCode = 4001
)

// SilentReason is the close reason (code 1000) of a peer dropped by the
// heartbeat: nothing came from it within PongTimeout of a ping.
const SilentReason = "no frame within ping interval + pong timeout"

// Limits of the wire format.
const (
	MaxRoomNameLen = 128
	MaxIDLen       = 64
	// MaxUserIDLen bounds a user id (the transport's client_id or token
	// sub); a direct message to a longer target can reach nobody.
	MaxUserIDLen = 128
)

// Command is a decoded, validated client frame. Exactly one of the concrete
// command types below; the read side hands it to the session actor.
type Command interface{ commandID() json.RawMessage }

// cmdBase carries the optional client-chosen "id" (raw JSON: a string or number).
type cmdBase struct{ ID json.RawMessage }

func (c cmdBase) commandID() json.RawMessage { return c.ID }

// ChatCmd is {"type":"chat","content":C}.
type ChatCmd struct {
	cmdBase
	Content string
}

// JoinRoomCmd is {"type":"join_room","room":R}.
type JoinRoomCmd struct {
	cmdBase
	Room string
}

// LeaveRoomCmd is {"type":"leave_room","room":R}.
type LeaveRoomCmd struct {
	cmdBase
	Room string
}

// RoomMessageCmd is {"type":"room_message","room":R,"content":C}.
type RoomMessageCmd struct {
	cmdBase
	Room    string
	Content string
}

// DirectMessageCmd is {"type":"direct_message","target_user":U,"content":C}.
type DirectMessageCmd struct {
	cmdBase
	Target  string
	Content string
	// received is when the session got it: its answer is due within the
	// join retry of that (sweepDirects), even if it waited behind a join.
	received time.Time
}

// PingCmd is {"type":"ping"}; the node answers {"event":"pong"}.
type PingCmd struct{ cmdBase }

// PongCmd is {"type":"pong"}, a heartbeat reply accepted silently.
type PongCmd struct{ cmdBase }

// BadFrame is a client frame that failed decoding or validation. The session
// answers it with an error event and changes nothing else.
type BadFrame struct {
	cmdBase
	Code    ErrorCode
	Message string
}

// rawFrame is the client frame as first decoded; fields stay raw so that a
// wrong type yields invalid_message rather than a generic decode error.
type rawFrame struct {
	Type, ID, Room, Content, TargetUser json.RawMessage
}

// errNotObject: the bytes are not one valid JSON object.
var errNotObject = errors.New("actors: not a JSON object")

// decodeMembers returns the raw values of the members called names in the
// JSON object data, in the order of names; an absent member is nil. Names
// match exactly: encoding/json matches struct fields case-insensitively, so
// "TYPE", or a "Content" after "content", would be read as "type" and
// "content", and the node would disagree with anything else that reads the
// same bytes (a tutorial node, a proxy that inspects frames) on what they
// say. Of duplicate members the last wins, as in most decoders. The values
// are copies: they never alias data.
//
// It validates data with json.Valid and then walks the object's top level
// itself: unmarshalling into a map built a string and a copy for every
// member, and was most of the cost of decoding a frame (FuzzDecodeMembers
// checks it against that reference).
func decodeMembers(data []byte, names ...string) ([]json.RawMessage, error) {
	if !json.Valid(data) {
		return nil, errNotObject
	}
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, errNotObject
	}
	out := make([]json.RawMessage, len(names))
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return out, nil
	}
	for {
		end := stringEnd(data, i)
		key := data[i+1 : end-1]
		i = skipSpace(data, end) // at ':'
		i = skipSpace(data, i+1)
		vend := valueEnd(data, i)
		if k := memberIndex(key, names); k >= 0 {
			out[k] = append(json.RawMessage(nil), data[i:vend]...)
		}
		i = skipSpace(data, vend)
		if data[i] != ',' {
			return out, nil // '}'
		}
		i = skipSpace(data, i+1)
	}
}

// The helpers below walk JSON that json.Valid accepted.

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index just past the string that starts at i.
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// valueEnd returns the index just past the value that starts at i.
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = stringEnd(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	default: // number, true, false, null
		j := i
		for j < len(data) {
			switch data[j] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return j
			}
			j++
		}
		return j
	}
}

// memberIndex returns the index in names of the member key (the bytes
// between the quotes, escapes and all), or -1.
func memberIndex(key []byte, names []string) int {
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		quoted := make([]byte, 0, len(key)+2)
		quoted = append(append(append(quoted, '"'), key...), '"')
		if json.Unmarshal(quoted, &s) != nil {
			return -1
		}
		key = []byte(s)
	}
	for k, name := range names {
		if string(key) == name {
			return k
		}
	}
	return -1
}

// DecodeCommand parses one client text frame. It never fails: a frame that is
// not a valid command comes back as a *BadFrame with its error code. The
// returned command does not alias data.
func DecodeCommand(data []byte) Command {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if !utf8.Valid(data) {
		return &BadFrame{Code: CodeInvalidJSON, Message: "frame is not valid UTF-8"}
	}
	members, err := decodeMembers(data, "type", "id", "room", "content", "target_user")
	if err != nil {
		if len(trimmed) > 0 && trimmed[0] != '{' && json.Valid(data) {
			return &BadFrame{Code: CodeInvalidMessage, Message: "frame must be a JSON object"}
		}
		return &BadFrame{Code: CodeInvalidJSON, Message: "frame is not valid JSON"}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &BadFrame{Code: CodeInvalidMessage, Message: "frame must be a JSON object"}
	}
	rf := rawFrame{Type: members[0], ID: members[1], Room: members[2], Content: members[3], TargetUser: members[4]}
	base := cmdBase{}
	if len(rf.ID) > 0 && !isNull(rf.ID) {
		id, ok := validID(rf.ID)
		if !ok {
			return &BadFrame{Code: CodeInvalidMessage, Message: "id must be a string or number of at most 64 characters"}
		}
		base.ID = id
	}
	typ, ok := jsonString(rf.Type)
	if !ok {
		return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field type must be a string"}
	}
	switch typ {
	case "chat":
		content, ok := jsonString(rf.Content)
		if !ok {
			return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field content must be a string"}
		}
		return &ChatCmd{cmdBase: base, Content: content}
	case "join_room", "leave_room":
		room, bad := decodeRoom(base, rf.Room)
		if bad != nil {
			return bad
		}
		if typ == "join_room" {
			return &JoinRoomCmd{cmdBase: base, Room: room}
		}
		return &LeaveRoomCmd{cmdBase: base, Room: room}
	case "room_message":
		room, bad := decodeRoom(base, rf.Room)
		if bad != nil {
			return bad
		}
		content, ok := jsonString(rf.Content)
		if !ok {
			return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field content must be a string"}
		}
		return &RoomMessageCmd{cmdBase: base, Room: room, Content: content}
	case "direct_message":
		target, ok := jsonString(rf.TargetUser)
		if !ok || target == "" || len(target) > MaxUserIDLen {
			return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field target_user must be a user id (a string of 1-128 bytes)"}
		}
		content, ok := jsonString(rf.Content)
		if !ok {
			return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field content must be a string"}
		}
		return &DirectMessageCmd{cmdBase: base, Target: target, Content: content}
	case "ping":
		return &PingCmd{cmdBase: base}
	case "pong":
		return &PongCmd{cmdBase: base}
	case "stats":
		return &StatsCmd{cmdBase: base}
	default:
		return &BadFrame{cmdBase: base, Code: CodeUnknownType, Message: "unknown message type"}
	}
}

func decodeRoom(base cmdBase, raw json.RawMessage) (string, *BadFrame) {
	room, ok := jsonString(raw)
	if !ok {
		return "", &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field room must be a string"}
	}
	if !ValidRoomName(room) {
		return "", &BadFrame{cmdBase: base, Code: CodeInvalidRoom, Message: "room names are 1-128 characters of A-Z a-z 0-9 _ - . : @"}
	}
	return room, nil
}

// ValidRoomName reports whether name is 1-128 characters of A-Z a-z 0-9 _ - . : @.
func ValidRoomName(name string) bool {
	if len(name) == 0 || len(name) > MaxRoomNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '_', c == '-', c == '.', c == ':', c == '@':
		default:
			return false
		}
	}
	return true
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// jsonString decodes raw as a JSON string; absent or another type is not ok.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if s, ok := plainString(raw); ok {
		return s, true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// validID checks a client id (a string or a number, at most 64 characters)
// and returns a private copy of its raw JSON.
func validID(raw json.RawMessage) (json.RawMessage, bool) {
	switch {
	case raw[0] == '"':
		s, ok := jsonString(raw)
		if !ok || utf8.RuneCountInString(s) > MaxIDLen {
			return nil, false
		}
		// Re-encode so the echoed id is canonical and cannot carry odd escapes.
		return AppendJSONString(nil, s), true
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		if len(raw) > MaxIDLen {
			return nil, false
		}
		if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
			return nil, false
		}
		return bytes.Clone(raw), true
	}
	return nil, false
}

// plainString is jsonString's fast path: a string literal with no escape, no
// control character and valid UTF-8 decodes to its own bytes, so it is
// copied as is instead of going through encoding/json (which gives the same
// result for it, at several allocations).
func plainString(raw []byte) (string, bool) {
	n := len(raw)
	if n < 2 || raw[n-1] != '"' {
		return "", false
	}
	inner := raw[1 : n-1]
	for _, c := range inner {
		if c < 0x20 || c == '"' || c == '\\' {
			return "", false
		}
	}
	if !utf8.Valid(inner) {
		return "", false
	}
	return string(inner), true
}
