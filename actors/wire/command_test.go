package wire_test

import (
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// badCode returns the error code of a *BadFrame, or "" for a valid command.
func badCode(c wire.Command) wire.ErrorCode {
	if b, ok := c.(*wire.BadFrame); ok {
		return b.Code
	}
	return ""
}

func TestDecodeCommandValid(t *testing.T) {
	cases := []struct {
		frame string
		check func(wire.Command) bool
	}{
		{`{"type":"chat","content":"hi"}`, func(c wire.Command) bool {
			m, ok := c.(*wire.ChatCmd)
			return ok && m.Content == "hi" && m.ID == nil
		}},
		{`  {"type":"chat","content":""}` + "\n", func(c wire.Command) bool {
			m, ok := c.(*wire.ChatCmd)
			return ok && m.Content == ""
		}},
		{`{"type":"join_room","room":"a-Z_0.9:@x"}`, func(c wire.Command) bool {
			m, ok := c.(*wire.JoinRoomCmd)
			return ok && m.Room == "a-Z_0.9:@x"
		}},
		{`{"type":"leave_room","room":"r1","id":7}`, func(c wire.Command) bool {
			m, ok := c.(*wire.LeaveRoomCmd)
			return ok && m.Room == "r1" && string(m.ID) == "7"
		}},
		{`{"type":"room_message","room":"r1","content":"x\u00e9"}`, func(c wire.Command) bool {
			m, ok := c.(*wire.RoomMessageCmd)
			return ok && m.Room == "r1" && m.Content == "xé"
		}},
		{`{"type":"direct_message","target_user":"bob","content":"psst","id":"d1"}`, func(c wire.Command) bool {
			m, ok := c.(*wire.DirectMessageCmd)
			return ok && m.Target == "bob" && m.Content == "psst" && string(m.ID) == `"d1"`
		}},
		{`{"type":"ping","id":-1.5e3}`, func(c wire.Command) bool {
			m, ok := c.(*wire.PingCmd)
			return ok && string(m.ID) == "-1.5e3"
		}},
		{`{"type":"pong"}`, func(c wire.Command) bool { _, ok := c.(*wire.PongCmd); return ok }},
		{`{"type":"stats","id":7}`, func(c wire.Command) bool {
			m, ok := c.(*wire.StatsCmd)
			return ok && string(m.ID) == "7"
		}},
		// Unknown fields are ignored, a null id is no id.
		{`{"type":"ping","id":null,"extra":{"a":[1,2]}}`, func(c wire.Command) bool {
			m, ok := c.(*wire.PingCmd)
			return ok && m.ID == nil
		}},
		// A string id is re-encoded canonically.
		{`{"type":"ping","id":"a\u0062\/c"}`, func(c wire.Command) bool {
			m, ok := c.(*wire.PingCmd)
			return ok && string(m.ID) == `"ab/c"`
		}},
		// Member names are matched exactly: a case variant is another,
		// unknown member, and does not override the real one.
		{`{"type":"chat","content":"a","Content":"b","CONTENT":"c","ID":1}`, func(c wire.Command) bool {
			m, ok := c.(*wire.ChatCmd)
			return ok && m.Content == "a" && m.ID == nil
		}},
		{`{"type":"ping","Type":"chat"}`, func(c wire.Command) bool { _, ok := c.(*wire.PingCmd); return ok }},
		// Of duplicate members, the last wins.
		{`{"type":"chat","type":"ping"}`, func(c wire.Command) bool { _, ok := c.(*wire.PingCmd); return ok }},
		// 64 characters is the limit, counted in characters, not bytes.
		{`{"type":"ping","id":"` + strings.Repeat("é", 64) + `"}`, func(c wire.Command) bool {
			_, ok := c.(*wire.PingCmd)
			return ok
		}},
		{`{"type":"ping","id":` + strings.Repeat("9", 64) + `}`, func(c wire.Command) bool {
			_, ok := c.(*wire.PingCmd)
			return ok
		}},
		{`{"type":"join_room","room":"` + strings.Repeat("r", 128) + `"}`, func(c wire.Command) bool {
			_, ok := c.(*wire.JoinRoomCmd)
			return ok
		}},
	}
	for _, tc := range cases {
		c := wire.DecodeCommand([]byte(tc.frame))
		if !tc.check(c) {
			t.Errorf("%s: got %#v", tc.frame, c)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	long := strings.Repeat("x", 65)
	cases := []struct {
		frame string
		code  wire.ErrorCode
		id    string // the id the error must carry, "" for none
	}{
		{`{bad`, wire.CodeInvalidJSON, ""},
		{``, wire.CodeInvalidJSON, ""},
		{`   `, wire.CodeInvalidJSON, ""},
		{`{"type":"chat","content":"x"} trailing`, wire.CodeInvalidJSON, ""},
		{`{"type":"chat","content":"x"}{}`, wire.CodeInvalidJSON, ""},
		{"{\"type\":\"chat\",\"content\":\"\xff\"}", wire.CodeInvalidJSON, ""},
		{`[1,2]`, wire.CodeInvalidMessage, ""},
		{`"chat"`, wire.CodeInvalidMessage, ""},
		{`42`, wire.CodeInvalidMessage, ""},
		{`null`, wire.CodeInvalidMessage, ""},
		{`true`, wire.CodeInvalidMessage, ""},
		{`{}`, wire.CodeInvalidMessage, ""},
		{`{"type":5}`, wire.CodeInvalidMessage, ""},
		{`{"type":null,"id":"n"}`, wire.CodeInvalidMessage, `"n"`},
		{`{"type":"chat"}`, wire.CodeInvalidMessage, ""},
		{`{"TYPE":"ping"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"chat","Content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"chat","content":5,"id":1}`, wire.CodeInvalidMessage, "1"},
		{`{"type":"chat","content":null}`, wire.CodeInvalidMessage, ""},
		{`{"type":"join_room"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"join_room","room":["r"]}`, wire.CodeInvalidMessage, ""},
		{`{"type":"leave_room","room":1}`, wire.CodeInvalidMessage, ""},
		{`{"type":"room_message","room":"r"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"room_message","content":"c"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"","content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"bob"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":7,"content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"` + strings.Repeat("u", wire.MaxUserIDLen+1) + `","content":"x"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":true}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":{}}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":[1]}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":"` + long + `"}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":` + strings.Repeat("9", 65) + `}`, wire.CodeInvalidMessage, ""},
		{`{"type":"ping","id":1e999}`, wire.CodeInvalidMessage, ""},
		{`{"type":"dance"}`, wire.CodeUnknownType, ""},
		{`{"type":"dance","id":"x1"}`, wire.CodeUnknownType, `"x1"`},
		{`{"type":""}`, wire.CodeUnknownType, ""},
		{`{"type":"join_room","room":""}`, wire.CodeInvalidRoom, ""},
		{`{"type":"join_room","room":"has space","id":2}`, wire.CodeInvalidRoom, "2"},
		{`{"type":"join_room","room":"` + strings.Repeat("r", 129) + `"}`, wire.CodeInvalidRoom, ""},
		{`{"type":"join_room","room":"caf\u00e9"}`, wire.CodeInvalidRoom, ""},
		{`{"type":"leave_room","room":"a/b"}`, wire.CodeInvalidRoom, ""},
		{`{"type":"room_message","room":"a#b","content":"x"}`, wire.CodeInvalidRoom, ""},
	}
	for _, tc := range cases {
		c := wire.DecodeCommand([]byte(tc.frame))
		b, ok := c.(*wire.BadFrame)
		if !ok {
			t.Errorf("%q: want %s, got %#v", tc.frame, tc.code, c)
			continue
		}
		if b.Code != tc.code || string(b.ID) != tc.id || b.Message == "" {
			t.Errorf("%q: want %s id %q, got %s id %q (%q)", tc.frame, tc.code, tc.id, b.Code, b.ID, b.Message)
		}
	}
}

// DecodeCommand promises that the command does not alias the frame: the
// transport hands it a pooled buffer that is reused right after.
func TestDecodeCommandDoesNotAlias(t *testing.T) {
	frame := []byte(`{"type":"room_message","room":"r1","content":"hello","id":12345}`)
	c := wire.DecodeCommand(frame)
	for i := range frame {
		frame[i] = 'x'
	}
	m, ok := c.(*wire.RoomMessageCmd)
	if !ok || m.Room != "r1" || m.Content != "hello" || string(m.ID) != "12345" {
		t.Fatalf("command changed with its frame: %#v", c)
	}
}

func TestValidRoomName(t *testing.T) {
	for _, ok := range []string{"a", "A-z_0.9:@", strings.Repeat("z", 128)} {
		if !wire.ValidRoomName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a/b", "é", "a\x00", strings.Repeat("z", 129)} {
		if wire.ValidRoomName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
