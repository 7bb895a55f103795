package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// readScript bounds what one read costs by its max bytes: a limit read
// (a history query) stops at the newest entry that passes the bound, that
// one included; a read after an offset (a recovery) that would pass it
// returns nothing and says it was truncated. Without a bound, or within it, it reads what was
// asked for, oldest first, across its chunks.
func TestReadScriptStopsAtMaxBytes(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
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
		vals, err := readScript.Run(ctx, c, []string{meta, stream}, "fresh", 60000, tc.after, tc.limit, "0", tc.epoch, tc.max).Slice()
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
