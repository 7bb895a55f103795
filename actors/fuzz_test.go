package actors_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-rt/switchboard/actors"
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
func checkCommand(t *testing.T, data []byte) actors.Command {
	t.Helper()
	scratch := append([]byte(nil), data...)
	c := actors.DecodeCommand(scratch)
	if c == nil {
		t.Fatalf("nil command for %q", data)
	}
	// The command must not alias its input: the transport recycles it.
	for i := range scratch {
		scratch[i] ^= 0xFF
	}
	again := actors.DecodeCommand(data)
	if !reflect.DeepEqual(c, again) {
		t.Fatalf("command aliases its frame or is not deterministic: %#v vs %#v", c, again)
	}

	isObject := len(bytes.TrimLeft(data, " \t\r\n")) > 0 && bytes.TrimLeft(data, " \t\r\n")[0] == '{'
	code := badCode(c)
	switch {
	case !utf8.Valid(data) || !json.Valid(data):
		if code != actors.CodeInvalidJSON {
			t.Fatalf("%q: want invalid_json, got %#v", data, c)
		}
		return c
	case !isObject:
		if code != actors.CodeInvalidMessage {
			t.Fatalf("%q: want invalid_message for a non-object, got %#v", data, c)
		}
		return c
	case code == actors.CodeInvalidJSON:
		t.Fatalf("%q: a valid JSON object reported as invalid_json", data)
	}
	if code != "" {
		b := c.(*actors.BadFrame)
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
		if err := json.Unmarshal(id, &s); err != nil || utf8.RuneCountInString(s) > actors.MaxIDLen || !utf8.Valid(id) {
			t.Fatalf("%q: bad echoed id %s", data, id)
		}
		return
	}
	if _, err := strconv.ParseFloat(string(id), 64); err != nil || len(id) > actors.MaxIDLen || !json.Valid(id) {
		t.Fatalf("%q: bad echoed id %s", data, id)
	}
}

// roundTrip re-encodes a valid command as a client would and decodes it
// again: the two must be equal, and every field must be within its limits.
func roundTrip(t *testing.T, data []byte, c actors.Command) {
	t.Helper()
	m := map[string]any{}
	var id json.RawMessage
	switch v := c.(type) {
	case *actors.ChatCmd:
		m["type"], m["content"], id = "chat", v.Content, v.ID
	case *actors.JoinRoomCmd:
		m["type"], m["room"], id = "join_room", v.Room, v.ID
		checkRoom(t, data, v.Room)
	case *actors.LeaveRoomCmd:
		m["type"], m["room"], id = "leave_room", v.Room, v.ID
		checkRoom(t, data, v.Room)
	case *actors.RoomMessageCmd:
		m["type"], m["room"], m["content"], id = "room_message", v.Room, v.Content, v.ID
		checkRoom(t, data, v.Room)
	case *actors.DirectMessageCmd:
		m["type"], m["target_user"], m["content"], id = "direct_message", v.Target, v.Content, v.ID
		if v.Target == "" {
			t.Fatalf("%q: empty target accepted", data)
		}
	case *actors.PingCmd:
		m["type"], id = "ping", v.ID
	case *actors.PongCmd:
		m["type"], id = "pong", v.ID
	case *actors.StatsCmd:
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
	if again := actors.DecodeCommand(enc); !reflect.DeepEqual(c, again) {
		t.Fatalf("%q: re-encoded as %s decodes to %#v, not %#v", data, enc, again, c)
	}
}

func checkRoom(t *testing.T, data []byte, room string) {
	t.Helper()
	if !actors.ValidRoomName(room) {
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
func checkEnvelope(t *testing.T, data []byte) *actors.Envelope {
	t.Helper()
	scratch := append([]byte(nil), data...)
	env, err := actors.DecodeEnvelope(scratch)
	if err != nil {
		if !errors.Is(err, actors.ErrEnvelopeInvalid) && !errors.Is(err, actors.ErrEnvelopeTooBig) {
			t.Fatalf("%q: unexpected error %v", data, err)
		}
		if env != nil {
			t.Fatalf("%q: envelope with an error", data)
		}
		if _, ierr := actors.NewInbound(data); ierr == nil {
			t.Fatalf("%q: NewInbound accepted what DecodeEnvelope refused", data)
		}
		return nil
	}
	for i := range scratch {
		scratch[i] ^= 0xFF
	}
	if again, _ := actors.DecodeEnvelope(data); !reflect.DeepEqual(env, again) {
		t.Fatalf("%q: envelope aliases its input or is not deterministic", data)
	}
	switch env.Type {
	case actors.EnvBroadcast:
	case actors.EnvRoom:
		checkRoom(t, data, env.Room)
	case actors.EnvDirect:
		if env.Target == "" {
			t.Fatalf("%q: direct envelope without target", data)
		}
	default:
		t.Fatalf("%q: type %q accepted", data, env.Type)
	}
	var probe struct {
		Event *string `json:"event"`
	}
	if !utf8.Valid(env.Payload) || json.Unmarshal(env.Payload, &probe) != nil || probe.Event == nil || env.Payload[0] != '{' {
		t.Fatalf("%q: payload %q is not an event object", data, env.Payload)
	}
	var compact bytes.Buffer
	if json.Compact(&compact, env.Payload) != nil || !bytes.Equal(compact.Bytes(), env.Payload) {
		t.Fatalf("%q: payload %q is not compact", data, env.Payload)
	}
	back, err := actors.DecodeEnvelope(env.Encode())
	if err != nil || !reflect.DeepEqual(env, back) {
		t.Fatalf("%q: Encode round trip gave %+v, %v (encoded %s)", data, back, err, env.Encode())
	}
	in, err := actors.NewInbound(data)
	if err != nil || !bytes.Equal(in.Event.JSON, env.Payload) {
		t.Fatalf("%q: NewInbound disagrees with DecodeEnvelope: %v", data, err)
	}
	return env
}
