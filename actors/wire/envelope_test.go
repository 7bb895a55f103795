package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

func TestDecodeEnvelopeTutorialShapes(t *testing.T) {
	cases := []struct {
		in   string
		want wire.Envelope
	}{
		// Exactly what the FastAPI tutorial publishes: no node, no msg_id.
		{`{"type": "broadcast", "sender_id": "alice", "payload": {"event": "chat", "from": "alice", "content": "hi"}}`,
			wire.Envelope{Type: wire.EnvBroadcast, SenderID: "alice", Payload: []byte(`{"event":"chat","from":"alice","content":"hi"}`)}},
		{`{"type":"room_message","room":"r1","payload":{"event":"chat","room":"r1"}}`,
			wire.Envelope{Type: wire.EnvRoom, Room: "r1", Payload: []byte(`{"event":"chat","room":"r1"}`)}},
		{`{"type":"direct_message","target":"bob","payload":{"event":"direct_message"}}`,
			wire.Envelope{Type: wire.EnvDirect, Target: "bob", Payload: []byte(`{"event":"direct_message"}`)}},
		// A numeric sender id (tutorial clients may use numbers) is kept as text.
		{`{"type":"broadcast","sender_id":42,"payload":{"event":"user_connected","user_id":"42"}}`,
			wire.Envelope{Type: wire.EnvBroadcast, SenderID: "42", Payload: []byte(`{"event":"user_connected","user_id":"42"}`)}},
		// Switchboard's additions and unknown fields.
		{`{"type":"broadcast","sender_id":"a","node":"n1","msg_id":"m","ts":1,"x":[1],"payload":{"event":"x","y":{"z":null}}}`,
			wire.Envelope{Type: wire.EnvBroadcast, SenderID: "a", Node: "n1", Payload: []byte(`{"event":"x","y":{"z":null}}`)}},
		// Member names are exact: every node sharing the broker must agree on
		// where an envelope goes, whatever decoder it uses.
		{`{"type":"room_message","room":"r1","ROOM":"r2","Room":"r3","payload":{"event":"x"},"PAYLOAD":{"event":"y"}}`,
			wire.Envelope{Type: wire.EnvRoom, Room: "r1", Payload: []byte(`{"event":"x"}`)}},
	}
	for _, tc := range cases {
		env, err := wire.DecodeEnvelope([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if env.Type != tc.want.Type || env.SenderID != tc.want.SenderID || env.Room != tc.want.Room ||
			env.Target != tc.want.Target || env.Node != tc.want.Node || !bytes.Equal(env.Payload, tc.want.Payload) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.in, env, tc.want)
		}
	}
}

func TestDecodeEnvelopeRejects(t *testing.T) {
	for _, in := range []string{
		``, `{`, `[]`, `null`, `"broadcast"`,
		`{"payload":{"event":"x"}}`,
		`{"type":"party","payload":{"event":"x"}}`,
		`{"TYPE":"broadcast","payload":{"event":"x"}}`,
		`{"type":"direct_message","Target":"bob","payload":{"event":"x"}}`,
		`{"type":1,"payload":{"event":"x"}}`,
		`{"type":"broadcast"}`,
		`{"type":"broadcast","payload":null}`,
		`{"type":"broadcast","payload":[1]}`,
		`{"type":"broadcast","payload":"{\"event\":\"x\"}"}`,
		`{"type":"broadcast","payload":{}}`,
		`{"type":"broadcast","payload":{"event":7}}`,
		`{"type":"broadcast","sender_id":true,"payload":{"event":"x"}}`,
		`{"type":"broadcast","sender_id":{},"payload":{"event":"x"}}`,
		`{"type":"room_message","payload":{"event":"x"}}`,
		`{"type":"room_message","room":"bad room","payload":{"event":"x"}}`,
		`{"type":"room_message","room":7,"payload":{"event":"x"}}`,
		`{"type":"direct_message","payload":{"event":"x"}}`,
		`{"type":"direct_message","target":"","payload":{"event":"x"}}`,
		// Events go to clients as text frames: a payload that is not valid
		// UTF-8 would make every browser in the room drop its connection.
		"{\"type\":\"broadcast\",\"payload\":{\"event\":\"chat\",\"content\":\"\xff\"}}",
	} {
		if env, err := wire.DecodeEnvelope([]byte(in)); !errors.Is(err, wire.ErrEnvelopeInvalid) {
			t.Errorf("%q: got %+v, %v", in, env, err)
		}
	}
	big := `{"type":"broadcast","payload":{"event":"x","p":"` + strings.Repeat("a", wire.MaxEnvelopeBytes) + `"}}`
	if _, err := wire.DecodeEnvelope([]byte(big)); !errors.Is(err, wire.ErrEnvelopeTooBig) {
		t.Errorf("oversized envelope: %v", err)
	}
}

func TestEnvelopeEncodeRoundTrip(t *testing.T) {
	for _, env := range []*wire.Envelope{
		{Type: wire.EnvBroadcast, SenderID: "a\"b", Node: "n", Payload: []byte(`{"event":"chat"}`)},
		{Type: wire.EnvBroadcast, Payload: []byte(`{"event":"chat"}`)},
		{Type: wire.EnvRoom, Room: "r:1", Payload: []byte(`{"event":"user_left","room":"r:1"}`)},
		{Type: wire.EnvDirect, Target: "bob", SenderID: "alice", Payload: []byte(`{"event":"direct_message"}`)},
	} {
		got, err := wire.DecodeEnvelope(env.Encode())
		if err != nil {
			t.Fatalf("%s: %v", env.Encode(), err)
		}
		if !bytes.Equal(got.Encode(), env.Encode()) {
			t.Fatalf("round trip:\n got %s\nwant %s", got.Encode(), env.Encode())
		}
	}
}

func TestValidateEventPayload(t *testing.T) {
	p, err := wire.ValidateEventPayload([]byte(" {\"event\": \"notice\",\n \"n\": 1 } "))
	if err != nil || string(p) != `{"event":"notice","n":1}` {
		t.Fatalf("got %s, %v", p, err)
	}
	for _, bad := range []string{``, `{}`, `[]`, `{"event":1}`, `{"event":"x"`, "{\"event\":\"\xfe\"}"} {
		if _, err := wire.ValidateEventPayload([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
