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

// Reads of rooms nobody published to cost the history nothing it keeps
// past a short while, and never push real rooms' history out: a client's
// read (a history query, a recovery) creates no stream; a room's position
// read creates an empty one, kept apart for at most port.EmptyStreamTTL
// and evicted before any stream with publications. (Before, history
// queries of made-up names filled the bound with empty streams counted at
// a third of their cost, and evicted real rooms' history.)
func TestReadsOfUnpublishedRoomsKeepNothingForLong(t *testing.T) {
	const bound = 64 << 10
	now := time.Unix(1000, 0)
	s := newStreams(port.HistoryConfig{Size: 100, TTL: time.Hour}, bound)
	s.now = func() time.Time { return now }
	for i := 1; i <= 5; i++ {
		publish(s, "real", i)
	}
	real := s.read("real", port.StreamQuery{PositionOnly: true}).Pos

	// A client's read of a made-up name: an epoch at 0, and nothing kept.
	for i := range 10_000 {
		r := s.read(fmt.Sprint("made-up-", i), port.StreamQuery{Limit: 1, Client: true})
		if r.Pos.Offset != 0 || r.Pos.Epoch == "" || len(r.Pubs) != 0 {
			t.Fatalf("a client's read of a made-up room: %+v", r)
		}
	}
	if len(s.byName) != 1 {
		t.Fatalf("%d streams after client reads of made-up rooms, want the real one alone", len(s.byName))
	}

	// Position reads (joins) of made-up names: empty streams, evicted
	// first, within the bound.
	var first wire.Position
	for i := range 10_000 {
		p := s.read(fmt.Sprint("joined-", i), port.StreamQuery{PositionOnly: true}).Pos
		if i == 0 {
			first = p
		}
		if s.bytes > bound+streamOverhead+64 {
			t.Fatalf("%d bytes kept after %d empty streams, bound %d", s.bytes, i+1, bound)
		}
	}
	if r := s.read("real", port.StreamQuery{}); r.Pos != real || len(r.Pubs) != 5 {
		t.Fatalf("the real room after 10,000 empty streams: %+v with %d publications, want %+v with 5", r.Pos, len(r.Pubs), real)
	}
	// An empty stream that is still kept answers the epoch its joiners
	// were told, to a client's read too; once gone, a new one.
	last := s.read("joined-9999", port.StreamQuery{PositionOnly: true}).Pos
	if again := s.read("joined-9999", port.StreamQuery{Client: true}).Pos; again != last {
		t.Fatalf("a client's read of a kept empty stream: %+v, want %+v", again, last)
	}
	if again := s.read("joined-0", port.StreamQuery{Client: true}).Pos; again == first {
		t.Fatal("an evicted empty stream still answers its epoch")
	}
	// Empty streams last port.EmptyStreamTTL; published ones their TTL.
	now = now.Add(port.EmptyStreamTTL + time.Second)
	s.sweep()
	if len(s.byName) != 1 || s.empty.Len() != 0 {
		t.Fatalf("%d streams (%d empty) after the empty streams' TTL, want the real one alone", len(s.byName), s.empty.Len())
	}
	if got := s.bytes; got != s.byName["real"].Value.(*stream).cost() {
		t.Fatalf("%d bytes counted for the real stream alone, want %d", got, s.byName["real"].Value.(*stream).cost())
	}
}
