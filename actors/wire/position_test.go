package wire_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A member receives the room publication's event object with its place in
// the stream as its last members, whatever the payload held.
func TestPositionedEventJSON(t *testing.T) {
	pos := wire.Position{Offset: 42, Epoch: "k3f9Qz"}
	for _, c := range []struct{ payload, want string }{
		{`{"event":"chat","from":"ada","room":"lobby","content":"hi"}`, `{"event":"chat","from":"ada","room":"lobby","content":"hi","offset":42,"epoch":"k3f9Qz"}`},
		{`{"event":"headline","offset":"theirs"}`, `{"event":"headline","offset":"theirs","offset":42,"epoch":"k3f9Qz"}`},
	} {
		got := wire.PositionedEvent([]byte(c.payload), pos).JSON
		if string(got) != c.want {
			t.Fatalf("PositionedEvent(%s) = %s, want %s", c.payload, got, c.want)
		}
		var m map[string]any // the last of repeated members wins, as in JSON.parse
		if err := json.Unmarshal(got, &m); err != nil || m["offset"] != 42.0 || m["epoch"] != "k3f9Qz" {
			t.Fatalf("%s reads as %+v, %v", got, m, err)
		}
	}
}

func TestJoinAckAndHistoryEvents(t *testing.T) {
	pos := wire.Position{Offset: 7, Epoch: "e1"}
	yes, no := true, false
	for _, c := range []struct {
		ev   *wire.Event
		want string
	}{
		{wire.JoinAckEvent(json.RawMessage(`"j1"`), "lobby", pos, nil), `{"event":"ack","id":"j1","room":"lobby","offset":7,"epoch":"e1"}`},
		{wire.JoinAckEvent(json.RawMessage(`3`), "lobby", pos, &yes), `{"event":"ack","id":3,"room":"lobby","offset":7,"epoch":"e1","recovered":true}`},
		{wire.JoinAckEvent(json.RawMessage(`3`), "lobby", pos, &no), `{"event":"ack","id":3,"room":"lobby","offset":7,"epoch":"e1","recovered":false}`},
		{wire.HistoryEvent(json.RawMessage(`"h"`), "r", wire.Position{Epoch: "e1"}, nil), `{"event":"history","id":"h","room":"r","offset":0,"epoch":"e1","publications":[]}`},
		{wire.HistoryEvent(json.RawMessage(`"h"`), "r", pos, [][]byte{[]byte(`{"event":"chat","offset":6,"epoch":"e1"}`), []byte(`{"event":"chat","offset":7,"epoch":"e1"}`)}),
			`{"event":"history","id":"h","room":"r","offset":7,"epoch":"e1","publications":[{"event":"chat","offset":6,"epoch":"e1"},{"event":"chat","offset":7,"epoch":"e1"}]}`},
	} {
		if string(c.ev.JSON) != c.want {
			t.Fatalf("got %s, want %s", c.ev.JSON, c.want)
		}
		if !json.Valid(c.ev.JSON) {
			t.Fatalf("%s is not JSON", c.ev.JSON)
		}
	}
}

// since and limit: what the protocol accepts, and the error for the rest.
func TestDecodeSinceAndHistory(t *testing.T) {
	for _, c := range []struct {
		frame string
		want  wire.Command
	}{
		{`{"type":"join_room","room":"r","id":1,"since":{"offset":42,"epoch":"k3f9Qz"}}`, &wire.JoinRoomCmd{Room: "r", Since: &wire.Position{Offset: 42, Epoch: "k3f9Qz"}}},
		{`{"type":"join_room","room":"r","id":1,"since":{"epoch":"e","offset":0}}`, &wire.JoinRoomCmd{Room: "r", Since: &wire.Position{Epoch: "e"}}},
		{`{"type":"join_room","room":"r","id":1,"since":null}`, &wire.JoinRoomCmd{Room: "r"}},
		{`{"type":"join_room","room":"r","id":1,"since":{"offset":1,"epoch":"not an epoch"}}`, &wire.JoinRoomCmd{Room: "r", Since: &wire.Position{Offset: 1}}},
		{`{"type":"history","room":"r","id":1}`, &wire.HistoryCmd{Room: "r"}},
		{`{"type":"history","room":"r","id":1,"limit":5}`, &wire.HistoryCmd{Room: "r", Limit: 5}},
	} {
		got := wire.DecodeCommand([]byte(c.frame))
		switch g := got.(type) {
		case *wire.JoinRoomCmd:
			w, ok := c.want.(*wire.JoinRoomCmd)
			if !ok || g.Room != w.Room || !reflect.DeepEqual(g.Since, w.Since) {
				t.Fatalf("%s: got %#v (since %+v)", c.frame, got, g.Since)
			}
		case *wire.HistoryCmd:
			w, ok := c.want.(*wire.HistoryCmd)
			if !ok || g.Room != w.Room || g.Limit != w.Limit {
				t.Fatalf("%s: got %#v", c.frame, got)
			}
		default:
			t.Fatalf("%s: got %#v", c.frame, got)
		}
	}
	for _, frame := range []string{
		`{"type":"join_room","room":"r","since":{"offset":1,"epoch":"e"}}`,
		`{"type":"join_room","room":"r","id":1,"since":{"offset":-1,"epoch":"e"}}`,
		`{"type":"join_room","room":"r","id":1,"since":{"offset":1.5,"epoch":"e"}}`,
		`{"type":"join_room","room":"r","id":1,"since":{"offset":"1","epoch":"e"}}`,
		`{"type":"join_room","room":"r","id":1,"since":{"offset":1}}`,
		`{"type":"join_room","room":"r","id":1,"since":{"offset":1,"epoch":5}}`,
		`{"type":"join_room","room":"r","id":1,"since":[1,"e"]}`,
		`{"type":"join_room","room":"r","id":1,"since":{"offset":9007199254740993,"epoch":"e"}}`,
		`{"type":"history","room":"r","limit":0}`,
		`{"type":"history","room":"r","limit":-3}`,
		`{"type":"history","room":"r","limit":"5"}`,
		`{"type":"history","room":"r","limit":10001}`,
	} {
		bad, ok := wire.DecodeCommand([]byte(frame)).(*wire.BadFrame)
		if !ok || bad.Code != wire.CodeInvalidMessage {
			t.Fatalf("%s: want invalid_message, got %#v", frame, wire.DecodeCommand([]byte(frame)))
		}
	}
}

// PositionedEvent's frame is NewEvent of its JSON (the payload spliced
// with its position), at every frame-header size.
func TestPositionedEvent(t *testing.T) {
	for _, size := range []int{0, 60, 70, 80, 100, 125, 126, 200, 65400, 65480, 65535, 65536, 70000} {
		payload := []byte(`{"event":"chat","content":"` + string(make([]byte, 0)) + strings.Repeat("x", size) + `"}`)
		for _, pos := range []wire.Position{{Offset: 1, Epoch: "e"}, {Offset: 1 << 53, Epoch: strings.Repeat("E", 64)}} {
			got := wire.PositionedEvent(payload, pos)
			spliced := fmt.Sprintf(`%s,"offset":%d,"epoch":%q}`, payload[:len(payload)-1], pos.Offset, pos.Epoch)
			want := wire.NewEvent([]byte(spliced))
			if !bytes.Equal(got.Frame, want.Frame) || !bytes.Equal(got.JSON, want.JSON) {
				t.Fatalf("size %d, %+v: frame differs from NewEvent of the spliced payload", size, pos)
			}
		}
	}
}
