package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// readScript bounds what one read costs by its max bytes: a limit read
// (a history query) stops at the newest entry that passes the bound, that
// one included; a read after an offset (a recovery) that would pass it
// returns nothing and says it was truncated. Without a bound, or within it, it reads what was
// asked for, oldest first, across its chunks.
func TestReadScriptStopsAtMaxBytes(t *testing.T) {
	c, ctx := scriptRedis(t)
	const meta, stream, epoch, top = "m{r}", "s{r}", "E1", 20
	entry := func(off int) string { return fmt.Sprintf("%04d%s", off, strings.Repeat("x", 996)) } // 1,000 bytes
	c.HSet(ctx, meta, "epoch", epoch, "top", top)
	for off := 1; off <= top; off++ {
		if err := c.Do(ctx, "XADD", stream, fmt.Sprint("0-", off), "d", entry(off)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name          string
		after         int
		epoch         string
		limit, max    int
		from, to      int
		wantTruncated bool
	}{
		{"newest 20, no bound", 0, "", 20, 0, 1, 20, false},
		{"newest 3, no bound", 0, "", 3, 0, 18, 20, false},
		{"newest 20 within 2,500 bytes", 0, "", 20, 2500, 18, 20, false},
		{"newest 20 within 12,500 bytes (two chunks)", 0, "", 20, 12500, 8, 20, false},
		{"newest 20 after 15", 15, epoch, 20, 0, 16, 20, false},
		{"after 5, no bound", 5, epoch, 0, 0, 6, 20, false},
		{"after 5 within 2,500 bytes: nothing", 5, epoch, 0, 2500, 0, -1, true},
		{"after 5 within 10,500 bytes (two chunks): nothing", 5, epoch, 0, 10500, 0, -1, true},
		{"after 5 within 15,000 bytes: all of them", 5, epoch, 0, 15000, 6, 20, false},
		{"after 5 of another epoch", 5, "E0", 0, 0, 1, 20, false},
		{"after the top", 20, epoch, 0, 10, 0, -1, false},
	} {
		vals, err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, tc.after, tc.limit, "0", tc.epoch, tc.max, "0").Slice()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(vals) != 4 || vals[0] != epoch || vals[1] != int64(top) {
			t.Fatalf("%s: reply %v", tc.name, vals[:min(2, len(vals))])
		}
		var got []string
		for _, e := range vals[2].([]any) {
			got = append(got, e.(string)[:4])
		}
		var want []string
		for off := tc.from; off <= tc.to && tc.from > 0; off++ {
			want = append(want, fmt.Sprintf("%04d", off))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || (vals[3] == int64(1)) != tc.wantTruncated {
			t.Errorf("%s: read %v truncated %v, want %v truncated %v", tc.name, got, vals[3], want, tc.wantTruncated)
		}
	}
}

// A read of a stream with no metadata: a room's position read creates it
// (its joiners are told the epoch) for the short TTL it is given, a
// client's read (a history query, a recovery) writes nothing, so that
// queries of made-up room names cannot fill Redis with keys (150,000
// keys kept 10 minutes each from 50 connections in 30 s, before).
func TestReadScriptWritesNothingForAClient(t *testing.T) {
	c, ctx := scriptRedis(t)
	for i := range 100 {
		meta, stream := fmt.Sprintf("m{made-up-%d}", i), fmt.Sprintf("s{made-up-%d}", i)
		vals, err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, 0, 100, "0", "", 1<<20, "1").Slice()
		if err != nil || len(vals) != 4 || vals[0] != "fresh" || vals[1] != int64(0) {
			t.Fatalf("a client's read of a made-up room: %v %v", vals, err)
		}
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("%d keys after clients' reads of made-up rooms (%v), want 0", n, err)
	}
	vals, err := readScript.Run(ctx, c, []string{"m{joined}", "s{joined}"}, "E1", 60000, 0, 0, "1", "", 0, "0").Slice()
	if err != nil || vals[0] != "E1" {
		t.Fatalf("a room's position read: %v %v", vals, err)
	}
	if ttl, err := c.PTTL(ctx, "m{joined}").Result(); err != nil || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the empty stream's metadata expires in %v (%v), want within a minute", ttl, err)
	}
	// A client's read now answers the epoch the room's joiners were told.
	vals, err = readScript.Run(ctx, c, []string{"m{joined}", "s{joined}"}, "other", 60000, 0, 0, "1", "", 0, "1").Slice()
	if err != nil || vals[0] != "E1" {
		t.Fatalf("a client's read of the joined room: %v %v, want epoch E1", vals, err)
	}
}

// A recovery that would pass its max bytes is known to, from the running
// totals appendScript stores with each entry, without reading the entries:
// a flood of too-big recoveries costs Redis one lookup each, not a copy of
// up to the bound. One that fits reads what it needs, and the totals
// start again with a new life of the stream.
func TestReadScriptKnowsATooBigRecoveryWithoutReadingIt(t *testing.T) {
	c, ctx := scriptRedis(t)
	const meta, stream = "m{r}", "s{r}"
	rest := wire.StreamTemplate(&wire.Envelope{Type: wire.EnvRoom, Room: "r", Payload: []byte(`{"event":"chat","content":"` + strings.Repeat("x", 1000) + `"}`)}).Parts[4]
	appendOne := func(seq int, epoch string) {
		t.Helper()
		if err := appendScript.Run(ctx, c, []string{meta, stream}, "websocket:room:r", 100, 60000, epoch, "origin", seq,
			streamParts[0], streamParts[2], rest, "PUBLISH", "").Err(); err != nil {
			t.Fatal(err)
		}
	}
	for seq := 1; seq <= 20; seq++ {
		appendOne(seq, "E1")
	}
	xranges := func() int64 {
		t.Helper()
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		var calls int64
		for _, line := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(line, "cmdstat_xrange:") {
				_, _ = fmt.Sscanf(line, "cmdstat_xrange:calls=%d", &calls)
			}
		}
		return calls
	}
	read := func(after, maxBytes int) ([]any, int64) {
		t.Helper()
		before := xranges()
		vals, err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, after, 0, "0", "E1", maxBytes, "1").Slice()
		if err != nil {
			t.Fatal(err)
		}
		return vals, xranges() - before
	}
	// 15 entries of over 1,000 bytes after offset 5: over 10,500 bytes.
	vals, calls := read(5, 10500)
	if vals[3] != int64(1) || len(vals[2].([]any)) != 0 || calls != 1 {
		t.Fatalf("a recovery past its bound: truncated %v, %d entries, %d XRANGE calls; want truncated, none, the one lookup", vals[3], len(vals[2].([]any)), calls)
	}
	if vals, _ = read(0, 10500); vals[3] != int64(1) {
		t.Fatal("a recovery of the whole stream past its bound was not refused")
	}
	if vals, _ = read(15, 10500); vals[3] != int64(0) || len(vals[2].([]any)) != 5 {
		t.Fatalf("a recovery within its bound: truncated %v, %d entries, want the 5", vals[3], len(vals[2].([]any)))
	}
	// A new life (another primary) starts the totals again.
	c.HSet(ctx, meta, "replid", "another primary's")
	appendOne(21, "E2")
	vals, err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, 0, 0, "0", "E2", 2000, "1").Slice()
	if err != nil || vals[0] != "E2" || vals[3] != int64(0) || len(vals[2].([]any)) != 1 {
		t.Fatalf("the new life's one entry within 2,000 bytes: %v %v", vals, err)
	}
}

// scriptRedis starts a redis-server for a script's test, and a context
// that bounds the test's commands.
func scriptRedis(t *testing.T) (*goredis.Client, context.Context) {
	t.Helper()
	rs := redistest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return rs.Client(), ctx
}

// A since offset of 15 digits or more (the protocol allows up to 2^53) is
// read as maxScriptOffset: Lua would write it as "0-1e+14", which Redis
// refuses as a stream id, and the client got unavailable (and retried
// for ever) instead of recovered:false.
func TestReadOfAHugeSinceOffset(t *testing.T) {
	c, ctx := scriptRedis(t)
	const meta, stream = "m{r}", "s{r}"
	c.HSet(ctx, meta, "epoch", "E1", "top", 3)
	for off := 1; off <= 3; off++ {
		c.Do(ctx, "XADD", stream, fmt.Sprint("0-", off), "d", "x")
	}
	for _, after := range []uint64{1e14, 1 << 53} {
		vals, err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, min(after, maxScriptOffset), 0, "0", "E1", 1<<20, "1").Slice()
		if err != nil || vals[1] != int64(3) || len(vals[2].([]any)) != 0 {
			t.Fatalf("a read after %d: %v %v, want the top (3) and nothing", after, vals, err)
		}
	}
	if err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, uint64(1e14), 0, "0", "E1", 1<<20, "1").Err(); err == nil {
		t.Fatal("the script took an offset Lua writes in exponent form: maxScriptOffset is not needed")
	}
}
