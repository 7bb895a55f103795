package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// The decoders face untrusted bytes: client frames and broker envelopes.
// As nats-server's parser fuzz does, each input is also fed in two halves:
// every piece must decode without panicking, and decoding the halves joined
// again must agree with decoding the whole.

var commandSeeds = []string{
	`{"type":"chat","content":"hello"}`,
	`{"type":"join_room","room":"lobby","id":1}`,
	`{"type":"leave_room","room":"lobby","id":"x"}`,
	`{"type":"room_message","room":"r:1","content":"hi \u00e9","id":-2.5e3}`,
	`{"type":"direct_message","target_user":"bob","content":"psst"}`,
	`{"type":"ping","id":null}`,
	`{"type":"pong"}`,
	`{"type":"stats","id":"s1"}`,
	`{"type":"dance"}`,
	`{"type":"join_room","room":"bad room"}`,
	`[1,"a"]`, `null`, `"x"`, `{bad`, "\xff{}", ``,
	`{"type":"chat","content":"a","Type":"ping","TYPE":"pong"}`,
	`{"type":"join_room","room":"r","id":1,"since":{"offset":42,"epoch":"k3f9Qz"}}`,
	`{"type":"join_room","room":"r","since":{"offset":0,"epoch":""}}`,
	`{"type":"join_room","room":"r","id":"a","since":{"offset":-1,"epoch":"e"}}`,
	`{"type":"join_room","room":"r","id":"a","since":{"offset":1.5,"epoch":"e"}}`,
	`{"type":"history","room":"r","limit":10,"id":2}`,
	`{"type":"history","room":"r","limit":0}`,
}

func FuzzDecodeCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := checkCommand(t, data)
		half := len(data) / 2
		a := append([]byte(nil), data[:half]...)
		b := append([]byte(nil), data[half:]...)
		checkCommand(t, a)
		checkCommand(t, b)
		joined := checkCommand(t, append(a, b...))
		if !reflect.DeepEqual(whole, joined) {
			t.Fatalf("decode(a+b) = %#v, decode(whole) = %#v", joined, whole)
		}
	})
}

// checkCommand decodes data and checks every property DecodeCommand
// promises, returning the command.
func checkCommand(t *testing.T, data []byte) wire.Command {
	t.Helper()
	scratch := append([]byte(nil), data...)
	c := wire.DecodeCommand(scratch)
	if c == nil {
		t.Fatalf("nil command for %q", data)
	}
	// The command must not alias its input: the transport recycles it.
	for i := range scratch {
		scratch[i] ^= 0xFF
	}
	again := wire.DecodeCommand(data)
	if !reflect.DeepEqual(c, again) {
		t.Fatalf("command aliases its frame or is not deterministic: %#v vs %#v", c, again)
	}

	isObject := len(bytes.TrimLeft(data, " \t\r\n")) > 0 && bytes.TrimLeft(data, " \t\r\n")[0] == '{'
	code := badCode(c)
	switch {
	case !utf8.Valid(data) || !json.Valid(data):
		if code != wire.CodeInvalidJSON {
			t.Fatalf("%q: want invalid_json, got %#v", data, c)
		}
		return c
	case !isObject:
		if code != wire.CodeInvalidMessage {
			t.Fatalf("%q: want invalid_message for a non-object, got %#v", data, c)
		}
		return c
	case code == wire.CodeInvalidJSON:
		t.Fatalf("%q: a valid JSON object reported as invalid_json", data)
	}
	if code != "" {
		b := c.(*wire.BadFrame)
		if b.Message == "" {
			t.Fatalf("%q: error without a message", data)
		}
		checkID(t, data, b.ID)
		return c
	}
	roundTrip(t, data, c)
	return c
}

// checkID: an echoed id is a JSON string or number of at most 64 characters.
func checkID(t *testing.T, data []byte, id json.RawMessage) {
	t.Helper()
	if len(id) == 0 {
		return
	}
	if id[0] == '"' {
		var s string
		if err := json.Unmarshal(id, &s); err != nil || utf8.RuneCountInString(s) > wire.MaxIDLen || !utf8.Valid(id) {
			t.Fatalf("%q: bad echoed id %s", data, id)
		}
		return
	}
	if _, err := strconv.ParseFloat(string(id), 64); err != nil || len(id) > wire.MaxIDLen || !json.Valid(id) {
		t.Fatalf("%q: bad echoed id %s", data, id)
	}
}

// roundTrip re-encodes a valid command as a client would and decodes it
// again: the two must be equal, and every field must be within its limits.
func roundTrip(t *testing.T, data []byte, c wire.Command) {
	t.Helper()
	m := map[string]any{}
	var id json.RawMessage
	switch v := c.(type) {
	case *wire.ChatCmd:
		m["type"], m["content"], id = "chat", v.Content, v.ID
	case *wire.JoinRoomCmd:
		m["type"], m["room"], id = "join_room", v.Room, v.ID
		checkRoom(t, data, v.Room)
		if v.Since != nil {
			m["since"] = map[string]any{"offset": v.Since.Offset, "epoch": v.Since.Epoch}
			if len(v.ID) == 0 || v.Since.Offset > 1<<53 {
				t.Fatalf("%q: since accepted as %+v with id %s", data, v.Since, v.ID)
			}
		}
	case *wire.HistoryCmd:
		m["type"], m["room"], id = "history", v.Room, v.ID
		checkRoom(t, data, v.Room)
		if v.Limit != 0 {
			m["limit"] = v.Limit
		}
		if v.Limit < 0 || v.Limit > wire.MaxHistoryLimit {
			t.Fatalf("%q: limit %d accepted", data, v.Limit)
		}
	case *wire.LeaveRoomCmd:
		m["type"], m["room"], id = "leave_room", v.Room, v.ID
		checkRoom(t, data, v.Room)
	case *wire.RoomMessageCmd:
		m["type"], m["room"], m["content"], id = "room_message", v.Room, v.Content, v.ID
		checkRoom(t, data, v.Room)
	case *wire.DirectMessageCmd:
		m["type"], m["target_user"], m["content"], id = "direct_message", v.Target, v.Content, v.ID
		if v.Target == "" {
			t.Fatalf("%q: empty target accepted", data)
		}
	case *wire.PresenceCmd:
		m["type"], m["room"], id = "presence", v.Room, v.ID
		checkRoom(t, data, v.Room)
	case *wire.PingCmd:
		m["type"], id = "ping", v.ID
	case *wire.PongCmd:
		m["type"], id = "pong", v.ID
	case *wire.StatsCmd:
		m["type"], id = "stats", v.ID
	default:
		t.Fatalf("%q: unexpected command %T", data, c)
	}
	checkID(t, data, id)
	if len(id) > 0 {
		m["id"] = id
	}
	enc, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if again := wire.DecodeCommand(enc); !reflect.DeepEqual(c, again) {
		t.Fatalf("%q: re-encoded as %s decodes to %#v, not %#v", data, enc, again, c)
	}
}

func checkRoom(t *testing.T, data []byte, room string) {
	t.Helper()
	if !wire.ValidRoomName(room) {
		t.Fatalf("%q: invalid room %q accepted", data, room)
	}
}

var envelopeSeeds = []string{
	`{"type":"broadcast","sender_id":"alice","payload":{"event":"chat","from":"alice","content":"hi"}}`,
	`{"type":"room_message","room":"r1","node":"n1","payload":{"event":"chat","room":"r1","content":"x"}}`,
	`{"type":"direct_message","target":"bob","payload":{"event":"direct_message","from":"a","content":"c"}}`,
	`{"type":"broadcast","sender_id":7,"msg_id":"m","ts":1,"payload":{"event":"user_connected","user_id":"7"}}`,
	`{"type":"room_message","room":"bad room","payload":{"event":"x"}}`,
	`{"type":"broadcast","payload":{"event":1}}`,
	`{"type":"broadcast","payload":[]}`,
	`{"node":"n1","type":"room_message","room":"r","payload":{"event":"chat"},"msg_id":"n1~ab:7"}`,
	`{"msg_id":"a:b:18446744073709551615","payload":{"event":"x","Event":1},"type":"broadcast","no\u0064e":"n\"2"}`,
	`{"type":"broadcast","node":5,"msg_id":7,"payload":{"EVENT":"x"}}`,
	`{"offset":3,"epoch":"k3f9Qz","node":"n1","type":"room_message","room":"r","payload":{"event":"chat"},"msg_id":"n1~ab:7"}`,
	`{"type":"room_message","room":"r","payload":{"event":"chat"},"offset":9007199254740993,"epoch":"e"}`,
	`{"type":"room_message","room":"r","payload":{"event":"chat"},"offset":1e3,"epoch":"e"}`,
	`{}`, `[]`, `{`, ``,
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole := checkEnvelope(t, data)
		half := len(data) / 2
		a := append([]byte(nil), data[:half]...)
		b := append([]byte(nil), data[half:]...)
		checkEnvelope(t, a)
		checkEnvelope(t, b)
		joined := checkEnvelope(t, append(a, b...))
		if !reflect.DeepEqual(whole, joined) {
			t.Fatalf("decode(a+b) = %+v, decode(whole) = %+v", joined, whole)
		}
	})
}

// checkEnvelope decodes data and checks what DecodeEnvelope promises: an
// error or a well-formed envelope that survives Encode, never a panic.
func checkEnvelope(t *testing.T, data []byte) *wire.Envelope {
	t.Helper()
	scratch := append([]byte(nil), data...)
	env, err := wire.DecodeEnvelope(scratch)
	if err != nil {
		if !errors.Is(err, wire.ErrEnvelopeInvalid) && !errors.Is(err, wire.ErrEnvelopeTooBig) {
			t.Fatalf("%q: unexpected error %v", data, err)
		}
		if env != nil {
			t.Fatalf("%q: envelope with an error", data)
		}
		return nil
	}
	for i := range scratch {
		scratch[i] ^= 0xFF
	}
	if again, _ := wire.DecodeEnvelope(data); !reflect.DeepEqual(env, again) {
		t.Fatalf("%q: envelope aliases its input or is not deterministic", data)
	}
	switch env.Type {
	case wire.EnvBroadcast:
	case wire.EnvRoom:
		checkRoom(t, data, env.Room)
	case wire.EnvDirect:
		if env.Target == "" {
			t.Fatalf("%q: direct envelope without target", data)
		}
	default:
		t.Fatalf("%q: type %q accepted", data, env.Type)
	}
	// The payload's "event" is found by its exact name, as encoding/json
	// does with a map (and not with a struct field, which it matches
	// case-insensitively).
	var probe map[string]json.RawMessage
	var event string
	if !utf8.Valid(env.Payload) || env.Payload[0] != '{' || json.Unmarshal(env.Payload, &probe) != nil ||
		json.Unmarshal(probe["event"], &event) != nil || probe["event"][0] != '"' {
		t.Fatalf("%q: payload %q is not an event object", data, env.Payload)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, env.Payload) != nil || !bytes.Equal(compact.Bytes(), env.Payload) {
		t.Fatalf("%q: payload %q is not compact", data, env.Payload)
	}
	back, err := wire.DecodeEnvelope(env.Encode())
	if err != nil || !reflect.DeepEqual(env, back) {
		t.Fatalf("%q: Encode round trip gave %+v, %v (encoded %s)", data, back, err, env.Encode())
	}
	checkEnvelopeMembers(t, data, env)
	return env
}

// checkEnvelopeMembers holds a decoded envelope to what encoding/json reads
// in the same bytes (into a map: exact member names, the last of
// duplicates wins).
func checkEnvelopeMembers(t *testing.T, data []byte, env *wire.Envelope) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%q: decoded, but encoding/json says %v", data, err)
	}
	text := func(name string) string {
		raw, ok := m[name]
		if !ok || string(raw) == "null" {
			return ""
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return string(raw) // a number, kept as its text
		}
		return s
	}
	if env.Type != text("type") || env.SenderID != text("sender_id") || env.Node != text("node") {
		t.Fatalf("%q: decoded %+v; encoding/json reads type %q sender_id %q node %q", data, env, text("type"), text("sender_id"), text("node"))
	}
	if (env.Type == wire.EnvRoom && env.Room != text("room")) || (env.Type == wire.EnvDirect && env.Target != text("target")) {
		t.Fatalf("%q: decoded %+v; encoding/json reads room %q target %q", data, env, text("room"), text("target"))
	}
	var want wire.MsgID
	var id string
	if raw := m["msg_id"]; len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &id) == nil {
		if i := strings.LastIndexByte(id, ':'); i > 0 {
			if seq, err := strconv.ParseUint(id[i+1:], 10, 64); err == nil {
				want = wire.MsgID{Origin: id[:i], Seq: seq}
			}
		}
	}
	if env.MsgID != want {
		t.Fatalf("%q: msg_id %+v, want %+v", data, env.MsgID, want)
	}
	// A position is an integer offset of 1..2^53 with an epoch of 1-64
	// printable ASCII bytes (no quote or backslash); anything else is none.
	var pos wire.Position
	var off uint64
	var epoch string
	if raw := m["offset"]; len(raw) > 0 && raw[0] >= '1' && raw[0] <= '9' && json.Unmarshal(raw, &off) == nil &&
		off >= 1 && off <= 1<<53 && !bytes.ContainsAny(raw, ".eE") &&
		json.Unmarshal(m["epoch"], &epoch) == nil && len(m["epoch"]) > 0 && m["epoch"][0] == '"' &&
		len(epoch) >= 1 && len(epoch) <= wire.MaxEpochLen && !strings.ContainsFunc(epoch, func(r rune) bool { return r < 0x21 || r > 0x7e || r == '"' || r == '\\' }) {
		pos = wire.Position{Offset: off, Epoch: epoch}
	}
	if env.Pos != pos {
		t.Fatalf("%q: position %+v, want %+v", data, env.Pos, pos)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, m["payload"]) != nil || !bytes.Equal(compact.Bytes(), env.Payload) {
		t.Fatalf("%q: payload %s, encoding/json reads %s", data, env.Payload, m["payload"])
	}
}
