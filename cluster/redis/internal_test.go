package redis

import (
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
)

func TestOwnEnvelope(t *testing.T) {
	k := newKeyspace("websocket", `n"1`)
	own := (&actors.Envelope{Type: actors.EnvRoom, Room: "r", Node: `n"1`, Payload: []byte(`{"event":"chat"}`)}).Encode()
	other := (&actors.Envelope{Type: actors.EnvRoom, Room: "r", Node: "n2", Payload: []byte(`{"event":"chat"}`)}).Encode()
	none := (&actors.Envelope{Type: actors.EnvBroadcast, SenderID: "u", Payload: []byte(`{"event":"chat"}`)}).Encode()
	for _, c := range []struct {
		data string
		want bool
	}{
		{string(own), true},
		{string(other), false},
		{string(none), false},
		// The node appears only inside the payload, or inside a string.
		{`{"type":"broadcast","sender_id":"u","payload":{"event":"x","node":"n\"1","payload":1}}`, false},
		{`{"type":"broadcast","sender_id":",\"node\":\"n\\\"1\",\"payload\":","payload":{"event":"x"}}`, false},
		// Not Encode's layout: decoded normally.
		{`{"node":"n\"1","type":"broadcast","payload":{"event":"x"}}`, false},
		{``, false},
	} {
		if got := ownEnvelope(c.data, k.ownMarker); got != c.want {
			t.Errorf("ownEnvelope(%s) = %v, want %v", c.data, got, c.want)
		}
	}
}

func TestBackoffDoublesWithJitterAndCap(t *testing.T) {
	min, max := 50*time.Millisecond, time.Second
	for failures, want := range map[int]time.Duration{1: 50 * time.Millisecond, 2: 100 * time.Millisecond, 3: 200 * time.Millisecond, 5: 800 * time.Millisecond, 6: time.Second, 40: time.Second} {
		for range 20 {
			d := backoff(failures, min, max)
			if d < want*8/10 || d > want*12/10 {
				t.Fatalf("backoff(%d) = %v, want %v +-20%%", failures, d, want)
			}
		}
	}
}

func TestRedisConfigDefaults(t *testing.T) {
	c := Config{URL: "rediss://user:pw@example.com:6380/2"}
	opts, err := c.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if opts.TLSConfig == nil || opts.Username != "user" || opts.DB != 2 || opts.MaxRetries != -1 || opts.Protocol != 2 {
		t.Fatalf("options %+v", opts)
	}
	if c.PubSubConnections != 2 || c.OutboxLimit != 10000 || c.ProbeIdle != 5*time.Second || c.PresenceTTL != 15*time.Second {
		t.Fatalf("defaults %+v", c)
	}
	bad := Config{URL: "redis://x", ProbeIdle: -1}
	if _, err := bad.normalize(); err == nil {
		t.Fatal("negative duration accepted")
	}
}

func TestMsgIDRoundTrip(t *testing.T) {
	prefix := msgIDPrefix(`n"1~abc`)
	env := (&actors.Envelope{Type: actors.EnvBroadcast, SenderID: "u", Node: `n"1`, Payload: []byte(`{"event":"chat","content":"x"}`)}).Encode()
	data := withMsgID(env, prefix, 42)
	got, err := actors.DecodeEnvelope(data)
	if err != nil || got.SenderID != "u" || string(got.Payload) != `{"event":"chat","content":"x"}` {
		t.Fatalf("decode with msg_id: %v %+v", err, got)
	}
	// An id with a quote is not trusted for deduplication, but still decodes.
	if _, _, ok := parseMsgID(string(data)); ok {
		t.Fatal("id with an escaped quote parsed")
	}
	data = withMsgID(env, msgIDPrefix("n1~abc"), 42)
	origin, seq, ok := parseMsgID(string(data))
	if !ok || origin != "n1~abc" || seq != 42 {
		t.Fatalf("parseMsgID = %q %d %v", origin, seq, ok)
	}
	for _, foreign := range []string{
		`{"type":"broadcast","payload":{"event":"x","msg_id":"a:1"}}`,
		`{"type":"broadcast","payload":{"event":"x"},"msg_id":"a:b"}`,
		`{"type":"broadcast","payload":{"event":"x"},"msg_id":"nocolon"}`,
		`{"type":"broadcast","payload":{"event":"x"}}`,
		``,
	} {
		if _, _, ok := parseMsgID(foreign); ok {
			t.Errorf("parseMsgID(%s) ok", foreign)
		}
	}
	if !ownEnvelope(string(withMsgID(env, prefix, 1)), newKeyspace("websocket", `n"1`).ownMarker) {
		t.Fatal("own envelope with msg_id not recognised")
	}
}
