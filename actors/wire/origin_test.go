package wire_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// Own-envelope detection must not depend on who encoded the envelope or in
// which order its members come: node n1 owns exactly the envelopes whose
// "node" member is "n1".
func TestEncodedFrom(t *testing.T) {
	own := &wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: "n1", Payload: []byte(`{"event":"chat","node":"n2"}`)}
	withID := *own
	withID.MsgID = wire.MsgID{Origin: "n1~abc", Seq: 42}
	numbered := withID
	numbered.Pos = wire.Position{Offset: 7, Epoch: "k3f9Qz"}
	cases := []struct {
		name, data, node string
		want             bool
	}{
		{"own, as encoded", string(own.Encode()), "n1", true},
		{"own, with msg_id", string(withID.Encode()), "n1", true},
		{"own, node last", `{"type":"room_message","room":"r","payload":{"event":"chat"},"node":"n1"}`, "n1", true},
		{"own, node between", `{"type":"broadcast","sender_id":"u","node":"n1","payload":{"event":"chat"},"msg_id":"n1~x:7"}`, "n1", true},
		{"own, spaced", ` { "node" : "n1" , "type":"broadcast","payload":{"event":"x"}}`, "n1", true},
		{"own, escaped key", `{"type":"broadcast","no\u0064e":"n1","payload":{"event":"x"}}`, "n1", true},
		{"own, escaped value", `{"node":"n\u0031","type":"broadcast","payload":{"event":"x"}}`, "n1", true},
		{"own, numeric id", `{"type":"broadcast","node":5,"payload":{"event":"x"}}`, "5", true},
		{"own id with a quote", string((&wire.Envelope{Type: wire.EnvBroadcast, Node: `n"1`, Payload: []byte(`{"event":"x"}`)}).Encode()), `n"1`, true},
		{"another node", string((&wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: "n2", Payload: []byte(`{"event":"chat"}`)}).Encode()), "n1", false},
		{"a longer id", string((&wire.Envelope{Type: wire.EnvRoom, Room: "r", Node: "n10", Payload: []byte(`{"event":"chat"}`)}).Encode()), "n1", false},
		{"a tutorial node", `{"type": "broadcast", "sender_id": "n1", "payload": {"event": "chat", "from": "n1", "node": "n1"}}`, "n1", false},
		{"a tutorial node, escapes", `{"type":"room_message","room":"r","payload":{"event":"chat","content":"\"n1\""}}`, "n1", false},
		{"node inside the payload only", `{"type":"broadcast","payload":{"event":"x","node":"n1"}}`, "n1", false},
		{"null node", `{"type":"broadcast","node":null,"payload":{"event":"x"}}`, "n1", false},
		{"no node id", string(own.Encode()), "", false},
		{"not JSON", `{"type":"broadcast","node":"n1"`, "n1", false},
		{"own, numbered by the broker", string(numbered.Encode()), "n1", false},
		{"own, numbered, node first", `{"node":"n1","type":"room_message","room":"r","payload":{"event":"chat"},"offset":3,"epoch":"e1"}`, "n1", false},
		{"own, numbered, spaced", `{ "epoch" : "e1", "offset" : 3, "node":"n1","type":"room_message","room":"r","payload":{"event":"chat"}}`, "n1", false},
		{"own, offset without epoch", `{"offset":3,"node":"n1","type":"room_message","room":"r","payload":{"event":"chat"}}`, "n1", true},
		{"own, offset zero", `{"offset":0,"epoch":"e1","node":"n1","type":"room_message","room":"r","payload":{"event":"chat"}}`, "n1", true},
		{"own, offset a string", `{"node":"n1","offset":"3","epoch":"e1","type":"room_message","room":"r","payload":{"event":"chat"}}`, "n1", true},
	}
	for _, c := range cases {
		if got := wire.EncodedFrom(c.data, c.node); got != c.want {
			t.Errorf("%s: EncodedFrom(%s, %q) = %v, want %v", c.name, c.data, c.node, got, c.want)
		}
		if env, err := wire.DecodeEnvelope([]byte(c.data)); err == nil && env.From(c.node) != c.want {
			t.Errorf("%s: From(%q) = %v on the decoded envelope, want %v", c.name, c.node, !c.want, c.want)
		}
	}
}

var originSeeds = []struct{ data, node string }{
	{`{"node":"n1","type":"room_message","room":"r","payload":{"event":"chat"},"msg_id":"n1~a:1"}`, "n1"},
	{`{"type":"broadcast","sender_id":"u","payload":{"event":"x"},"node":"n1"}`, "n1"},
	{`{"type":"broadcast","no\u0064e":"n\u0031","payload":{"event":"x"}}`, "n1"},
	{`{"node":"n2","type":"broadcast","payload":{"event":"x"},"node":"n1"}`, "n1"},
	{`{"type":"broadcast","node":7,"payload":{"event":"x"}}`, "7"},
	{"{\"node\":\"\xff\",\"type\":\"broadcast\",\"payload\":{\"event\":\"x\"}}", "\ufffd"},
	{`{"type":"broadcast","payload":{"event":"x"}}`, "n1"},
	{`{"offset":3,"epoch":"e1","node":"n1","type":"room_message","room":"r","payload":{"event":"chat"}}`, "n1"},
	{`{"node":"n1","type":"room_message","room":"r","payload":{"event":"chat"},"offset":3,"epoch":"e1"}`, "n1"},
}

// FuzzEncodedFrom holds EncodedFrom to the decoder: for every envelope that
// decodes (and does not repeat a leading "node"), the raw answer is the
// decoded one; and every envelope Encode writes is its node's own.
func FuzzEncodedFrom(f *testing.F) {
	for _, s := range originSeeds {
		f.Add([]byte(s.data), s.node)
	}
	f.Fuzz(func(t *testing.T, data []byte, node string) {
		got := wire.EncodedFrom(string(data), node)
		env, err := wire.DecodeEnvelope(data)
		if err != nil {
			return
		}
		if want := env.From(node); got != want && !exception(data) {
			t.Fatalf("EncodedFrom(%q, %q) = %v; the decoded envelope (node %q) says %v", data, node, got, env.Node, want)
		}
		if env.Node != "" && env.Pos.Offset == 0 {
			enc := string(env.Encode())
			if !wire.EncodedFrom(enc, env.Node) || wire.EncodedFrom(enc, env.Node+"x") {
				t.Fatalf("%s: not recognised as %q's own", enc, env.Node)
			}
		}
	})
}

// exception reports whether data is one of the envelopes EncodedFrom
// documents as judged from its first bytes: one that starts with a member
// of the origin (node, offset, epoch) and repeats one of them later, or
// starts with "node" and names "offset" with escapes.
func exception(data []byte) bool {
	counts := memberCounts(data)
	lead := bytes.HasPrefix(data, []byte(`{"node":`)) || bytes.HasPrefix(data, []byte(`{"offset":`))
	if lead && (counts["node"] > 1 || counts["offset"] > 1 || counts["epoch"] > 1) {
		return true
	}
	return bytes.HasPrefix(data, []byte(`{"node":`)) && counts["offset"] > 0 && !bytes.Contains(data, []byte(`"offset"`))
}

// memberCounts counts the top-level members of a JSON object by name, as
// encoding/json reads the names.
func memberCounts(data []byte) map[string]int {
	n := map[string]int{}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return n
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return n
		}
		if name, ok := k.(string); ok {
			n[name]++
		}
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return n
		}
	}
	return n
}
