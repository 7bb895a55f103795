package actors_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rt/switchboard/actors"
)

// wsFrame is one decoded server frame.
type wsFrame struct {
	fin     bool
	opcode  byte
	payload []byte
}

// readFrame decodes the server frame at the start of b (RFC 6455 section
// 5.2) and returns it with the number of bytes it took. Server frames are
// never masked; a masked one is reported as an error.
func readFrame(b []byte) (wsFrame, int, string) {
	if len(b) < 2 {
		return wsFrame{}, 0, "short header"
	}
	f := wsFrame{fin: b[0]&0x80 != 0, opcode: b[0] & 0x0F}
	if b[0]&0x70 != 0 {
		return f, 0, "reserved bits set"
	}
	if b[1]&0x80 != 0 {
		return f, 0, "server frame is masked"
	}
	n, off := uint64(b[1]&0x7F), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return f, 0, "short length"
		}
		n, off = uint64(binary.BigEndian.Uint16(b[2:])), 4
		if n < 126 {
			return f, 0, "non-minimal length"
		}
	case 127:
		if len(b) < 10 {
			return f, 0, "short length"
		}
		n, off = binary.BigEndian.Uint64(b[2:]), 10
		if n <= 0xFFFF {
			return f, 0, "non-minimal length"
		}
	}
	if uint64(len(b)-off) < n {
		return f, 0, "short payload"
	}
	f.payload = b[off : off+int(n)]
	return f, off + int(n), ""
}

func TestAppendFrameLengths(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70000} {
		payload := bytes.Repeat([]byte{'a'}, n)
		b := actors.AppendFrame([]byte("prefix"), actors.OpText, payload)
		if !bytes.HasPrefix(b, []byte("prefix")) {
			t.Fatalf("%d: prefix lost", n)
		}
		f, used, bad := readFrame(b[6:])
		if bad != "" || used != len(b)-6 || !f.fin || f.opcode != actors.OpText || !bytes.Equal(f.payload, payload) {
			t.Fatalf("%d bytes: %s (used %d of %d)", n, bad, used, len(b)-6)
		}
	}
}

func TestControlFrames(t *testing.T) {
	f, _, bad := readFrame(actors.PingFrame)
	if bad != "" || f.opcode != actors.OpPing || len(f.payload) != 0 || !f.fin {
		t.Fatalf("ping frame: %s %+v", bad, f)
	}
	f, _, bad = readFrame(actors.CloseFrame(actors.CloseTryAgainLater, "slow consumer"))
	if bad != "" || f.opcode != actors.OpClose || binary.BigEndian.Uint16(f.payload) != 1013 || string(f.payload[2:]) != "slow consumer" {
		t.Fatalf("close frame: %s %+v", bad, f)
	}
	// A control frame's payload is at most 125 bytes: the reason is cut to 123.
	f, _, _ = readFrame(actors.CloseFrame(actors.CloseNormal, strings.Repeat("r", 300)))
	if len(f.payload) != 125 {
		t.Fatalf("close payload %d bytes", len(f.payload))
	}
	// Cutting never splits a character: the reason stays valid UTF-8.
	f, _, _ = readFrame(actors.CloseFrame(actors.CloseNormal, strings.Repeat("é", 100)))
	if len(f.payload) > 125 || !utf8.Valid(f.payload[2:]) {
		t.Fatalf("close reason cut inside a character: %q", f.payload[2:])
	}
}

// eventOf checks that ev is framed once around its JSON and decodes it.
func eventOf(t *testing.T, ev *actors.Event) map[string]any {
	t.Helper()
	f, used, bad := readFrame(ev.Frame)
	if bad != "" || used != len(ev.Frame) || f.opcode != actors.OpText || !bytes.Equal(f.payload, ev.JSON) {
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
		ev   *actors.Event
		want map[string]any
	}{
		{actors.WelcomeEvent(tricky, "n1"), map[string]any{"event": "welcome", "client_id": tricky, "node": "n1"}},
		{actors.PresenceEvent("user_connected", tricky), map[string]any{"event": "user_connected", "user_id": tricky}},
		{actors.RoomPresenceEvent("user_left", "u", "r"), map[string]any{"event": "user_left", "user_id": "u", "room": "r"}},
		{actors.ChatEvent("a", "", tricky), map[string]any{"event": "chat", "from": "a", "content": tricky}},
		{actors.ChatEvent("a", "r1", "c"), map[string]any{"event": "chat", "from": "a", "room": "r1", "content": "c"}},
		{actors.DirectEvent(tricky, "c"), map[string]any{"event": "direct_message", "from": tricky, "content": "c"}},
		{actors.AckEvent([]byte(`"x"`)), map[string]any{"event": "ack", "id": "x"}},
		{actors.AckEvent([]byte(`12`)), map[string]any{"event": "ack", "id": float64(12)}},
		{actors.PongEvent, map[string]any{"event": "pong"}},
		{actors.ErrorEvent(actors.CodeNotMember, tricky, nil), map[string]any{"event": "error", "code": "not_member", "message": tricky}},
		{actors.ErrorEvent(actors.CodeUnknownType, "m", []byte(`"i"`)), map[string]any{"event": "error", "code": "unknown_type", "message": "m", "id": "i"}},
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
	enc := actors.AppendJSONString(nil, s)
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
