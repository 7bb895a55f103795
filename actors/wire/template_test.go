package wire_test

import (
	"bytes"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A filled template is exactly what Encode writes for the same values: the
// broker script that fills it writes no JSON structure of its own.
func TestTemplateFill(t *testing.T) {
	for _, v := range []struct{ user, node string }{
		{"ada", "n1"}, {`q"u\o`, "n/2"}, {"é \u2028", "n3"}, {"", "n"},
	} {
		got := wire.UserGoneTemplate().Fill(map[string]string{"user": v.user, "node": v.node})
		ev := wire.PresenceEvent("user_disconnected", v.user)
		want := (&wire.Envelope{Type: wire.EnvBroadcast, SenderID: v.user, Node: v.node, Payload: ev.JSON}).Encode()
		if !bytes.Equal(got, want) {
			t.Errorf("filled %s\n  encoded %s", got, want)
		}
		env, err := wire.DecodeEnvelope(got)
		if err != nil || env.SenderID != v.user || env.Node != v.node || !bytes.Equal(env.Payload, ev.JSON) {
			t.Errorf("%s decodes to %+v, %v", got, env, err)
		}
	}
}

func TestTemplateParts(t *testing.T) {
	tpl := wire.UserGoneTemplate()
	if len(tpl.Parts)%2 != 1 {
		t.Fatalf("%d parts: literals and holes must alternate", len(tpl.Parts))
	}
	holes := map[string]int{}
	for i := 1; i < len(tpl.Parts); i += 2 {
		holes[tpl.Parts[i]]++
	}
	if holes["user"] != 2 || holes["node"] != 1 || len(holes) != 2 {
		t.Fatalf("holes %v, want user twice and node once", holes)
	}
	for i := 0; i < len(tpl.Parts); i += 2 {
		if bytes.Contains([]byte(tpl.Parts[i]), []byte("hole:")) {
			t.Fatalf("a placeholder left in literal %q", tpl.Parts[i])
		}
	}
}

// The stream script's envelope is Encode's, whatever the envelope holds.
func TestStreamTemplateIsEncode(t *testing.T) {
	for _, env := range []*wire.Envelope{
		{Type: wire.EnvRoom, Room: "lobby", Node: "n1", MsgID: wire.MsgID{Origin: "n1~x", Seq: 9}, Payload: []byte(`{"event":"chat","content":"\"hi\""}`)},
		{Type: wire.EnvRoom, Room: "r", Payload: []byte(`{"event":"headline"}`)},
		{Type: wire.EnvRoom, Room: "r", Node: `odd"node`, Payload: []byte(`{"event":"x","offset":"theirs"}`)},
	} {
		pos := wire.Position{Offset: 9007199254740992, Epoch: "k3f9Qz"}
		got := wire.StreamTemplate(env).Fill(map[string]string{"#offset": "9007199254740992", "epoch": pos.Epoch})
		numbered := *env
		numbered.Pos = pos
		if want := numbered.Encode(); string(got) != string(want) {
			t.Fatalf("template fills to\n%s\nEncode writes\n%s", got, want)
		}
		back, err := wire.DecodeEnvelope(got)
		if err != nil || back.Pos != pos || back.From(env.Node) {
			t.Fatalf("%s decodes to %+v, %v", got, back, err)
		}
	}
}
