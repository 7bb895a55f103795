package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

func publish(s *streams, channel string, i int) *port.Inbound {
	return s.append(channel, &wire.Envelope{Type: wire.EnvRoom, Room: "r", Payload: []byte(fmt.Sprintf(`{"event":"chat","content":"%04d"}`, i))})
}

func offsets(r port.StreamRead) []uint64 {
	var out []uint64
	for _, in := range r.Pubs {
		out = append(out, in.Envelope.Pos.Offset)
	}
	return out
}

// The in-process streams keep the newest Size publications, read after an
// offset of an epoch (from 1 in any other) or the newest Limit, and start
// a new epoch once the TTL passed without a publication.
func TestStreamsKeepTrimAndExpire(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newStreams(port.HistoryConfig{Size: 5, TTL: time.Minute}, 0)
	s.now = func() time.Time { return now }
	for i := 1; i <= 12; i++ {
		if in := publish(s, "c", i); in.Envelope.Pos.Offset != uint64(i) {
			t.Fatalf("publication %d numbered %d", i, in.Envelope.Pos.Offset)
		}
	}
	epoch := s.read("c", port.StreamQuery{PositionOnly: true}).Pos.Epoch
	for _, c := range []struct {
		q    port.StreamQuery
		want string
	}{
		{port.StreamQuery{After: 9, Epoch: epoch}, "[10 11 12]"},
		{port.StreamQuery{After: 2, Epoch: epoch}, "[8 9 10 11 12]"}, // 3..7 trimmed
		{port.StreamQuery{After: 9, Epoch: "other"}, "[8 9 10 11 12]"},
		{port.StreamQuery{Limit: 2}, "[11 12]"},
		{port.StreamQuery{After: 12, Epoch: epoch}, "[]"},
		{port.StreamQuery{After: 40, Epoch: epoch}, "[]"},
	} {
		r := s.read("c", c.q)
		if got := fmt.Sprint(offsets(r)); got != c.want || r.Pos.Offset != 12 || r.Pos.Epoch != epoch {
			t.Fatalf("read %+v: %s at %+v, want %s at 12", c.q, got, r.Pos, c.want)
		}
	}
	// MaxBytes: a Limit read keeps the newest up to the one that passes
	// it; any other stops before it and says so.
	size := len(s.read("c", port.StreamQuery{Limit: 1}).Pubs[0].Event.JSON) // offset 12's; 8 and 9 are a byte shorter
	for _, c := range []struct {
		q         port.StreamQuery
		want      string
		truncated bool
	}{
		{port.StreamQuery{Limit: 5, MaxBytes: 2 * size}, "[10 11 12]", false},
		{port.StreamQuery{Limit: 5, MaxBytes: 10 * size}, "[8 9 10 11 12]", false},
		{port.StreamQuery{After: 7, Epoch: epoch, MaxBytes: 2 * size}, "[]", true},
		{port.StreamQuery{After: 7, Epoch: epoch, MaxBytes: 5 * size}, "[8 9 10 11 12]", false},
	} {
		r := s.read("c", c.q)
		if got := fmt.Sprint(offsets(r)); got != c.want || r.Truncated != c.truncated {
			t.Fatalf("read %+v: %s truncated %v, want %s truncated %v", c.q, got, r.Truncated, c.want, c.truncated)
		}
	}
	if got := string(s.read("c", port.StreamQuery{Limit: 1}).Pubs[0].Event.JSON); got != `{"event":"chat","content":"0012","offset":12,"epoch":"`+epoch+`"}` {
		t.Fatalf("a kept publication reads as %s", got)
	}
	now = now.Add(61 * time.Second)
	r := s.read("c", port.StreamQuery{})
	if r.Pos.Epoch == epoch || r.Pos.Offset != 0 || len(r.Pubs) != 0 {
		t.Fatalf("after the TTL: %+v with %d publications, want a new epoch at 0", r.Pos, len(r.Pubs))
	}
	if in := publish(s, "c", 1); in.Envelope.Pos.Offset != 1 || in.Envelope.Pos.Epoch != r.Pos.Epoch {
		t.Fatalf("first publication of the new epoch: %+v", in.Envelope.Pos)
	}
}

// The streams' memory is bounded whatever clients publish: past the bound
// the streams published to least recently are forgotten first.
func TestStreamsStayWithinTheirMemoryBound(t *testing.T) {
	const bound = 64 << 10
	s := newStreams(port.HistoryConfig{Size: 100, TTL: time.Hour}, bound)
	for room := 0; room < 200; room++ {
		for i := 0; i < 20; i++ {
			publish(s, fmt.Sprint("room-", room), i)
		}
		if s.bytes > bound {
			t.Fatalf("%d bytes kept after room %d, bound %d", s.bytes, room, bound)
		}
	}
	if _, ok := s.byName["room-0"]; ok {
		t.Fatal("the least recently published stream was kept past the bound")
	}
	if r := s.read("room-199", port.StreamQuery{}); len(r.Pubs) != 20 {
		t.Fatalf("the latest stream lost publications: %d kept", len(r.Pubs))
	}
	kept := 0
	for el := s.lru.Front(); el != nil; el = el.Next() {
		kept++
	}
	if kept != len(s.byName) || kept < 10 {
		t.Fatalf("%d streams in the list, %d by name", kept, len(s.byName))
	}
	s.sweep()
	if len(s.byName) != kept {
		t.Fatal("sweep forgot streams within their TTL")
	}
}
