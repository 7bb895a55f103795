package redis

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

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

// The outbox numbers each envelope as it queues it and encodes it then,
// once, id included: a resend sends the same bytes, and a subscription
// drops the copies by that id.
func TestOutboxNumbersEnvelopesInQueueOrder(t *testing.T) {
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", `n"1`, 0)}
	o := newOutbox(r)
	payload := wire.ChatEvent("u", "r", "x").JSON
	for range 2 {
		if err := o.publish("websocket:room:r", &wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: `n"1`, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	o.direct("bob", &wire.Envelope{Type: wire.EnvDirect, Target: "bob", Node: `n"1`, Payload: payload}, func(int, error) {})
	var seq uint64
	for _, it := range o.items {
		if it.kind != outPublish && it.kind != outDirect {
			continue
		}
		seq++
		env, err := wire.DecodeEnvelope(it.data)
		if err != nil {
			t.Fatalf("%s: %v", it.data, err)
		}
		if env.MsgID != (wire.MsgID{Origin: r.keys.origin, Seq: seq}) || !strings.HasPrefix(r.keys.origin, `n"1~`) {
			t.Fatalf("%s: msg_id %+v, want origin %q seq %d", it.data, env.MsgID, r.keys.origin, seq)
		}
		if !wire.EncodedFrom(string(it.data), `n"1`) {
			t.Fatalf("%s: not recognised as the node's own", it.data)
		}
	}
	if seq != 3 {
		t.Fatalf("%d envelopes numbered, want 3", seq)
	}
}
