package actors_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/internal/wiretest"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// TestStatsCommand: {"type":"stats"} is answered over the same connection
// with the node's own stats (its id, its connections and rooms, the
// broker's state), then the ack.
func TestStatsCommand(t *testing.T) {
	n := newNode(t)
	ada := connect(t, n, "ada")
	bob := connect(t, n, "bob")
	bob.send(`{"type":"join_room","room":"lobby","id":1}`)
	bob.conn.waitEvent(t, "bob joined", ackOf("1"))

	var got wire.Stats
	ask := 0
	waitFor(t, "a stats event that counts both connections and the room", func() bool {
		ask++
		id := strconv.Quote("s" + strconv.Itoa(ask))
		from := len(textPayloads(t, ada.conn))
		ada.send(`{"type":"stats","id":` + id + `}`)
		ada.conn.waitEvent(t, "ack of stats", ackOf(id))
		// Connection events (bob's user_connected) may still arrive
		// meanwhile: they are not part of the answer.
		var answer [][]byte
		for _, p := range textPayloads(t, ada.conn)[from:] {
			if !strings.Contains(string(p), `"event":"user_`) {
				answer = append(answer, p)
			}
		}
		if len(answer) != 2 {
			t.Fatalf("answer to stats: %q, want the stats event and the ack", answer)
		}
		if err := json.Unmarshal(answer[0], &got); err != nil || got.Event != "stats" {
			t.Fatalf("stats event %s: %v", answer[0], err)
		}
		if strings.Contains(string(answer[0]), `"detail"`) {
			t.Fatalf("stats event %s: the broker's detail is not for clients", answer[0])
		}
		return got.LocalConnections == 2 && got.Rooms == 1
	})
	if got.Node != "n1" || got.Users != 2 || got.Broker.Kind != "inproc" || !got.Broker.Connected ||
		got.MessagesIn < 2 || got.HeapBytes == 0 || got.UptimeSeconds <= 0 {
		t.Errorf("stats event: %+v", got)
	}
}

// textPayloads returns the payloads of the text frames enqueued so far.
func textPayloads(t *testing.T, c *fakeConn) [][]byte {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, f := range c.frames {
		fr, _, bad := wiretest.ReadFrame(f)
		if bad != "" {
			t.Fatalf("bad frame %q: %s", f, bad)
		}
		if fr.Opcode == wire.OpText {
			out = append(out, fr.Payload)
		}
	}
	return out
}

// TestStatsCommandDisabled: with DisableStatsCommand the node answers
// stats as a node without the extension: unknown_type.
func TestStatsCommandDisabled(t *testing.T) {
	n := newNode(t, func(c *actors.Config) { c.DisableStatsCommand = true })
	ada := connect(t, n, "ada")
	ada.send(`{"type":"stats","id":"s"}`)
	ada.conn.waitEvent(t, "stats refused", func(e event) bool {
		return e.Event == "error" && e.Code == string(wire.CodeUnknownType) && string(e.ID) == `"s"`
	})
	if got := ada.conn.count(t, is("stats")); got != 0 {
		t.Errorf("%d stats events from a node with the command off", got)
	}
}
