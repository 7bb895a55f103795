package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rt/switchboard/actors/internal/wiretest"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70000} {
		payload := bytes.Repeat([]byte{'a'}, n)
		b := wire.AppendFrame([]byte("prefix"), wire.OpText, payload)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("%d: prefix lost", n)
		}
		f, used, bad := wiretest.ReadFrame(b[6:])
		if bad != "" || used != len(b)-6 || !f.Fin || f.Opcode != wire.OpText || !bytes.Equal(f.Payload, payload) {
			t.Fatalf("%d bytes: %s (used %d of %d)", n, bad, used, len(b)-6)
		}
	}
}

func TestControlFrames(t *testing.T) {
	f, _, bad := wiretest.ReadFrame(wire.PingFrame)
	if bad != "" || f.Opcode != wire.OpPing || len(f.Payload) != 0 || !f.Fin {
		t.Fatalf("ping frame: %s %+v", bad, f)
	}
	f, _, bad = wiretest.ReadFrame(wire.CloseFrame(wire.CloseTryAgainLater, "slow consumer"))
	if bad != "" || f.Opcode != wire.OpClose || binary.BigEndian.Uint16(f.Payload) != 1013 || string(f.Payload[2:]) != "slow consumer" {
		t.Fatalf("close frame: %s %+v", bad, f)
	}
	// A control frame's payload is at most 125 bytes: the reason is cut to 123.
	f, _, _ = wiretest.ReadFrame(wire.CloseFrame(wire.CloseNormal, strings.Repeat("r", 300)))
	if len(f.Payload) != 125 {
		t.Fatalf("close payload %d bytes", len(f.Payload))
	}
	// Cutting never splits a character: the reason stays valid UTF-8.
	f, _, _ = wiretest.ReadFrame(wire.CloseFrame(wire.CloseNormal, strings.Repeat("é", 100)))
	if len(f.Payload) > 125 || !utf8.Valid(f.Payload[2:]) {
		t.Fatalf("close reason cut inside a character: %q", f.Payload[2:])
	}
}

// eventOf checks that ev is framed once around its JSON and decodes it.
func eventOf(t *testing.T, ev *wire.Event) map[string]any {
	t.Helper()
	f, used, bad := wiretest.ReadFrame(ev.Frame)
	if bad != "" || used != len(ev.Frame) || f.Opcode != wire.OpText || !bytes.Equal(f.Payload, ev.JSON) {
		t.Fatalf("frame of %s: %s", ev.JSON, bad)
	}
	if !utf8.Valid(ev.JSON) {
		t.Fatalf("event is not valid UTF-8: %q", ev.JSON)
	}
	var m map[string]any
	if err := json.Unmarshal(ev.JSON, &m); err != nil {
		t.Fatalf("event %s: %v", ev.JSON, err)
	}
	return m
}

func TestEventConstructors(t *testing.T) {
	tricky := "q\"b\\s/\n\r\t\x00\x1f\x7f é \u2028\u2029 😀 <script>"
	cases := []struct {
		ev   *wire.Event
		want map[string]any
	}{
		{wire.WelcomeEvent(tricky, "n1"), map[string]any{"event": "welcome", "client_id": tricky, "node": "n1"}},
		{wire.PresenceEvent("user_connected", tricky), map[string]any{"event": "user_connected", "user_id": tricky}},
		{wire.RoomPresenceEvent("user_left", "u", "r"), map[string]any{"event": "user_left", "user_id": "u", "room": "r"}},
		{wire.ChatEvent("a", "", tricky), map[string]any{"event": "chat", "from": "a", "content": tricky}},
		{wire.ChatEvent("a", "r1", "c"), map[string]any{"event": "chat", "from": "a", "room": "r1", "content": "c"}},
		{wire.DirectEvent(tricky, "c"), map[string]any{"event": "direct_message", "from": tricky, "content": "c"}},
		{wire.AckEvent([]byte(`"x"`)), map[string]any{"event": "ack", "id": "x"}},
		{wire.AckEvent([]byte(`12`)), map[string]any{"event": "ack", "id": float64(12)}},
		{wire.PongEvent, map[string]any{"event": "pong"}},
		{wire.ErrorEvent(wire.CodeNotMember, tricky, nil), map[string]any{"event": "error", "code": "not_member", "message": tricky}},
		{wire.ErrorEvent(wire.CodeUnknownType, "m", []byte(`"i"`)), map[string]any{"event": "error", "code": "unknown_type", "message": "m", "id": "i"}},
	}
	for _, tc := range cases {
		got := eventOf(t, tc.ev)
		if len(got) != len(tc.want) {
			t.Errorf("%s: fields %v, want %v", tc.ev.JSON, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", tc.ev.JSON, k, got[k], v)
			}
		}
	}
}

// AppendJSONString must agree with encoding/json on every string, invalid
// UTF-8 included (both replace each bad byte with U+FFFD).
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "\xff", "a\xc3", "\xed\xa0\x80", "\u2028x\u2029", "\x00\x01\x1f\x7f", `"\/`, "日本語"} {
		checkJSONString(t, s)
	}
}

func checkJSONString(t *testing.T, s string) {
	t.Helper()
	enc := wire.AppendJSONString(nil, s)
	if !utf8.Valid(enc) {
		t.Fatalf("%q encodes to invalid UTF-8 %q", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatalf("%q encodes to bad JSON %q: %v", s, enc, err)
	}
	ref, _ := json.Marshal(s)
	var want string
	_ = json.Unmarshal(ref, &want)
	if got != want {
		t.Fatalf("%q: got %q, encoding/json gives %q", s, got, want)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("hello")
	f.Add("\xff\u2028\"")
	f.Fuzz(func(t *testing.T, s string) { checkJSONString(t, s) })
}

func TestIsConnectionEvent(t *testing.T) {
	for payload, want := range map[string]bool{
		`{"event":"user_connected","user_id":"a"}`:               true,
		`{"event":"user_disconnected","user_id":"a"}`:            true,
		`{"user_id":"a","event":"user_connected"}`:               true,
		`{"event":"user_connected_x","user_id":"a"}`:             false,
		`{"event":"chat","from":"a","content":"user_connected"}`: false,
		`{"event":"chat","event":"user_connected"}`:              true,
		`{"event":"user_\u0063onnected"}`:                        true,
		`{"event":"user_joined","user_id":"a","room":"r"}`:       false,
	} {
		if got := wire.IsConnectionEvent([]byte(payload)); got != want {
			t.Errorf("IsConnectionEvent(%s) = %v, want %v", payload, got, want)
		}
	}
}
