package actors_test

import (
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
)

// badCode returns the error code of a *BadFrame, or "" for a valid command.
func badCode(c actors.Command) actors.ErrorCode {
	if b, ok := c.(*actors.BadFrame); ok {
		return b.Code
	}
	return ""
}

func TestDecodeCommandValid(t *testing.T) {
	cases := []struct {
		frame string
		check func(actors.Command) bool
	}{
		{`{"type":"chat","content":"hi"}`, func(c actors.Command) bool {
			m, ok := c.(*actors.ChatCmd)
			return ok && m.Content == "hi" && m.ID == nil
		}},
		{`  {"type":"chat","content":""}` + "\n", func(c actors.Command) bool {
			m, ok := c.(*actors.ChatCmd)
			return ok && m.Content == ""
		}},
		{`{"type":"join_room","room":"a-Z_0.9:@x"}`, func(c actors.Command) bool {
			m, ok := c.(*actors.JoinRoomCmd)
			return ok && m.Room == "a-Z_0.9:@x"
		}},
		{`{"type":"leave_room","room":"r1","id":7}`, func(c actors.Command) bool {
			m, ok := c.(*actors.LeaveRoomCmd)
			return ok && m.Room == "r1" && string(m.ID) == "7"
		}},
		{`{"type":"room_message","room":"r1","content":"x\u00e9"}`, func(c actors.Command) bool {
			m, ok := c.(*actors.RoomMessageCmd)
			return ok && m.Room == "r1" && m.Content == "xé"
		}},
		{`{"type":"direct_message","target_user":"bob","content":"psst","id":"d1"}`, func(c actors.Command) bool {
			m, ok := c.(*actors.DirectMessageCmd)
			return ok && m.Target == "bob" && m.Content == "psst" && string(m.ID) == `"d1"`
		}},
		{`{"type":"ping","id":-1.5e3}`, func(c actors.Command) bool {
			m, ok := c.(*actors.PingCmd)
			return ok && string(m.ID) == "-1.5e3"
		}},
		{`{"type":"pong"}`, func(c actors.Command) bool { _, ok := c.(*actors.PongCmd); return ok }},
		{`{"type":"stats","id":7}`, func(c actors.Command) bool {
			m, ok := c.(*actors.StatsCmd)
			return ok && string(m.ID) == "7"
		}},
		// Unknown fields are ignored, a null id is no id.
		{`{"type":"ping","id":null,"extra":{"a":[1,2]}}`, func(c actors.Command) bool {
			m, ok := c.(*actors.PingCmd)
			return ok && m.ID == nil
		}},
		// A string id is re-encoded canonically.
		{`{"type":"ping","id":"a\u0062\/c"}`, func(c actors.Command) bool {
			m, ok := c.(*actors.PingCmd)
			return ok && string(m.ID) == `"ab/c"`
		}},
		// Member names are matched exactly: a case variant is another,
		// unknown member, and does not override the real one.
		{`{"type":"chat","content":"a","Content":"b","CONTENT":"c","ID":1}`, func(c actors.Command) bool {
			m, ok := c.(*actors.ChatCmd)
			return ok && m.Content == "a" && m.ID == nil
		}},
		{`{"type":"ping","Type":"chat"}`, func(c actors.Command) bool { _, ok := c.(*actors.PingCmd); return ok }},
		// Of duplicate members, the last wins.
		{`{"type":"chat","type":"ping"}`, func(c actors.Command) bool { _, ok := c.(*actors.PingCmd); return ok }},
		// 64 characters is the limit, counted in characters, not bytes.
		{`{"type":"ping","id":"` + strings.Repeat("é", 64) + `"}`, func(c actors.Command) bool {
			_, ok := c.(*actors.PingCmd)
			return ok
		}},
		{`{"type":"ping","id":` + strings.Repeat("9", 64) + `}`, func(c actors.Command) bool {
			_, ok := c.(*actors.PingCmd)
			return ok
		}},
		{`{"type":"join_room","room":"` + strings.Repeat("r", 128) + `"}`, func(c actors.Command) bool {
			_, ok := c.(*actors.JoinRoomCmd)
			return ok
		}},
	}
	for _, tc := range cases {
		c := actors.DecodeCommand([]byte(tc.frame))
		if !tc.check(c) {
			t.Errorf("%s: got %#v", tc.frame, c)
		}
	}
}

func TestDecodeCommandErrors(t *testing.T) {
	long := strings.Repeat("x", 65)
	cases := []struct {
		frame string
		code  actors.ErrorCode
		id    string // the id the error must carry, "" for none
	}{
		{`{bad`, actors.CodeInvalidJSON, ""},
		{``, actors.CodeInvalidJSON, ""},
		{`   `, actors.CodeInvalidJSON, ""},
		{`{"type":"chat","content":"x"} trailing`, actors.CodeInvalidJSON, ""},
		{`{"type":"chat","content":"x"}{}`, actors.CodeInvalidJSON, ""},
		{"{\"type\":\"chat\",\"content\":\"\xff\"}", actors.CodeInvalidJSON, ""},
		{`[1,2]`, actors.CodeInvalidMessage, ""},
		{`"chat"`, actors.CodeInvalidMessage, ""},
		{`42`, actors.CodeInvalidMessage, ""},
		{`null`, actors.CodeInvalidMessage, ""},
		{`true`, actors.CodeInvalidMessage, ""},
		{`{}`, actors.CodeInvalidMessage, ""},
		{`{"type":5}`, actors.CodeInvalidMessage, ""},
		{`{"type":null,"id":"n"}`, actors.CodeInvalidMessage, `"n"`},
		{`{"type":"chat"}`, actors.CodeInvalidMessage, ""},
		{`{"TYPE":"ping"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"chat","Content":"x"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"chat","content":5,"id":1}`, actors.CodeInvalidMessage, "1"},
		{`{"type":"chat","content":null}`, actors.CodeInvalidMessage, ""},
		{`{"type":"join_room"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"join_room","room":["r"]}`, actors.CodeInvalidMessage, ""},
		{`{"type":"leave_room","room":1}`, actors.CodeInvalidMessage, ""},
		{`{"type":"room_message","room":"r"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"room_message","content":"c"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"direct_message","content":"x"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"","content":"x"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"bob"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":7,"content":"x"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"direct_message","target_user":"` + strings.Repeat("u", actors.MaxUserIDLen+1) + `","content":"x"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"ping","id":true}`, actors.CodeInvalidMessage, ""},
		{`{"type":"ping","id":{}}`, actors.CodeInvalidMessage, ""},
		{`{"type":"ping","id":[1]}`, actors.CodeInvalidMessage, ""},
		{`{"type":"ping","id":"` + long + `"}`, actors.CodeInvalidMessage, ""},
		{`{"type":"ping","id":` + strings.Repeat("9", 65) + `}`, actors.CodeInvalidMessage, ""},
		{`{"type":"ping","id":1e999}`, actors.CodeInvalidMessage, ""},
		{`{"type":"dance"}`, actors.CodeUnknownType, ""},
		{`{"type":"dance","id":"x1"}`, actors.CodeUnknownType, `"x1"`},
		{`{"type":""}`, actors.CodeUnknownType, ""},
		{`{"type":"join_room","room":""}`, actors.CodeInvalidRoom, ""},
		{`{"type":"join_room","room":"has space","id":2}`, actors.CodeInvalidRoom, "2"},
		{`{"type":"join_room","room":"` + strings.Repeat("r", 129) + `"}`, actors.CodeInvalidRoom, ""},
		{`{"type":"join_room","room":"caf\u00e9"}`, actors.CodeInvalidRoom, ""},
		{`{"type":"leave_room","room":"a/b"}`, actors.CodeInvalidRoom, ""},
		{`{"type":"room_message","room":"a#b","content":"x"}`, actors.CodeInvalidRoom, ""},
	}
	for _, tc := range cases {
		c := actors.DecodeCommand([]byte(tc.frame))
		b, ok := c.(*actors.BadFrame)
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
	c := actors.DecodeCommand(frame)
	for i := range frame {
		frame[i] = 'x'
	}
	m, ok := c.(*actors.RoomMessageCmd)
	if !ok || m.Room != "r1" || m.Content != "hello" || string(m.ID) != "12345" {
		t.Fatalf("command changed with its frame: %#v", c)
	}
}

func TestValidRoomName(t *testing.T) {
	for _, ok := range []string{"a", "A-z_0.9:@", strings.Repeat("z", 128)} {
		if !actors.ValidRoomName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", " ", "a b", "a/b", "é", "a\x00", strings.Repeat("z", 129)} {
		if actors.ValidRoomName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}
