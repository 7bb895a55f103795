package actors_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/internal/wiretest"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// A client that pipelines join, leave, join, leave, join of one room gets
// the answers in the order it sent the commands, each join's ack with the
// room's position: the ack of a join handled from the stash takes the
// join's own place in it. (Before, the second join's ack came after the
// second leave's, with the third join's position, and the third join's
// ack with none, which the protocol keeps for a broker that cannot be
// reached.)
func TestPipelinedJoinsAreAnsweredInOrderWithTheirPositions(t *testing.T) {
	n := newNode(t)
	alice := connect(t, n, "alice")
	for _, f := range []string{
		`{"type":"join_room","room":"t1","id":"j1"}`,
		`{"type":"leave_room","room":"t1","id":"l1"}`,
		`{"type":"join_room","room":"t1","id":"j2"}`,
		`{"type":"leave_room","room":"t1","id":"l2"}`,
		`{"type":"join_room","room":"t1","id":"j3","since":{"offset":0,"epoch":"never"}}`,
	} {
		alice.send(f)
	}
	alice.conn.waitEvent(t, "the last join's ack", ackOf(`"j3"`))
	alice.conn.mu.Lock()
	frames := alice.conn.frames
	alice.conn.mu.Unlock()
	var ids []string
	for _, f := range frames {
		fr, _, bad := wiretest.ReadFrame(f)
		if bad != "" || fr.Opcode != wire.OpText {
			continue
		}
		var ev struct {
			Event     string          `json:"event"`
			ID        json.RawMessage `json:"id"`
			Offset    *uint64         `json:"offset"`
			Epoch     string          `json:"epoch"`
			Recovered *bool           `json:"recovered"`
		}
		if err := json.Unmarshal(fr.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Event != "ack" && ev.Event != "error" {
			continue
		}
		if ev.Event == "error" {
			t.Fatalf("a pipelined command was refused: %s", fr.Payload)
		}
		var id string
		_ = json.Unmarshal(ev.ID, &id)
		ids = append(ids, id)
		isJoin := id[0] == 'j'
		if isJoin && (ev.Offset == nil || ev.Epoch == "") {
			t.Errorf("join %s acknowledged without its position: %s", id, fr.Payload)
		}
		if isJoin && (ev.Recovered != nil) != (id == "j3") {
			t.Errorf("join %s: recovered is for the join with since alone: %s", id, fr.Payload)
		}
	}
	if got, want := ids, []string{"j1", "l1", "j2", "l2", "j3"}; !slices.Equal(got, want) {
		t.Fatalf("answers in the order %v, want %v", got, want)
	}
}
