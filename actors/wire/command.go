package wire

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Command is a decoded, validated client frame: exactly one of the
// concrete command types below (the set is closed). The transport decodes
// it on the connection's read side and hands it to the session actor.
type Command interface {
	// CommandID is the client's "id" as raw JSON (a string or a number),
	// nil without one: what an ack or an error echoes.
	CommandID() json.RawMessage
	command()
}

// cmdBase carries the optional client-chosen "id" (raw JSON: a string or number).
type cmdBase struct{ ID json.RawMessage }

func (c cmdBase) CommandID() json.RawMessage { return c.ID }
func (cmdBase) command()                     {}

// ChatCmd is {"type":"chat","content":C}.
type ChatCmd struct {
	cmdBase
	Content string
}

// JoinRoomCmd is {"type":"join_room","room":R}, and with
// "since":{"offset":N,"epoch":E} a join that recovers what the room's
// stream holds after N (docs/protocol.md, section 6).
type JoinRoomCmd struct {
	cmdBase
	Room  string
	Since *Position // nil: a plain join
}

// HistoryCmd is {"type":"history","room":R,"limit":L}: the newest L
// publications of the room's stream (Limit 0: all that are kept).
type HistoryCmd struct {
	cmdBase
	Room  string
	Limit int
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
}

// PingCmd is {"type":"ping"}; the node answers {"event":"pong"}.
type PingCmd struct{ cmdBase }

// PongCmd is {"type":"pong"}, a heartbeat reply accepted silently.
type PongCmd struct{ cmdBase }

// StatsCmd is {"type":"stats"}: the node answers with a stats event about
// itself, over the connection that asked. Behind a load balancer, GET
// /stats reaches whichever node the balancer picks; this reaches the node
// the client's socket is on (the demo page's node panel uses it).
type StatsCmd struct{ cmdBase }

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
	Type, ID, Room, Content, TargetUser, Since, Limit json.RawMessage
}

// DecodeCommand parses one client text frame. It never fails: a frame that is
// not a valid command comes back as a *BadFrame with its error code. The
// returned command does not alias data.
func DecodeCommand(data []byte) Command {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if !utf8.Valid(data) {
		return &BadFrame{Code: CodeInvalidJSON, Message: "frame is not valid UTF-8"}
	}
	members, err := decodeMembers(data, "type", "id", "room", "content", "target_user", "since", "limit")
	if err != nil {
		if len(trimmed) > 0 && trimmed[0] != '{' && json.Valid(data) {
			return &BadFrame{Code: CodeInvalidMessage, Message: "frame must be a JSON object"}
		}
		return &BadFrame{Code: CodeInvalidJSON, Message: "frame is not valid JSON"}
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &BadFrame{Code: CodeInvalidMessage, Message: "frame must be a JSON object"}
	}
	rf := rawFrame{Type: members[0], ID: members[1], Room: members[2], Content: members[3], TargetUser: members[4], Since: members[5], Limit: members[6]}
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
			cmd := &JoinRoomCmd{cmdBase: base, Room: room}
			if len(rf.Since) > 0 && !isNull(rf.Since) {
				since, ok := decodeSince(rf.Since)
				if !ok {
					return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field since must be {\"offset\":N,\"epoch\":E} with N a non-negative integer and E a string"}
				}
				if base.ID == nil {
					return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "a join with since needs an id"}
				}
				cmd.Since = &since
			}
			return cmd
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
	case "history":
		room, bad := decodeRoom(base, rf.Room)
		if bad != nil {
			return bad
		}
		cmd := &HistoryCmd{cmdBase: base, Room: room}
		if len(rf.Limit) > 0 && !isNull(rf.Limit) {
			n, ok := parseOffset(rf.Limit)
			if !ok || n == 0 || n > MaxHistoryLimit {
				return &BadFrame{cmdBase: base, Code: CodeInvalidMessage, Message: "field limit must be an integer from 1 to the node's history size"}
			}
			cmd.Limit = int(n)
		}
		return cmd
	case "presence":
		room, bad := decodeRoom(base, rf.Room)
		if bad != nil {
			return bad
		}
		return &PresenceCmd{cmdBase: base, Room: room}
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

// decodeSince reads a join's since: an object with a non-negative integer
// "offset" and a string "epoch". An epoch the node never gives out (too
// long, or not printable ASCII) is accepted as a string: it names no life
// of the stream, so the join does not recover.
func decodeSince(raw []byte) (Position, bool) {
	var m [2][]byte
	if walkMembers(raw, positionMembers, m[:]) != nil {
		return Position{}, false
	}
	n, ok := parseOffset(m[0])
	if !ok {
		return Position{}, false
	}
	e, ok := jsonString(m[1])
	if !ok {
		return Position{}, false
	}
	if !validEpoch(e) {
		e = ""
	}
	return Position{Offset: n, Epoch: e}, true
}

var positionMembers = []string{"offset", "epoch"}

// PresenceCmd is {"type":"presence","room":R}: who is in the room, across
// the cluster (docs/protocol.md, section 7).
type PresenceCmd struct {
	cmdBase
	Room string
}
