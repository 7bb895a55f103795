package redis

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// A room publication's audience (how many subscribers heard it) is what
// later publications wait for after a recovery (sendable). An append that
// reaches fewer, during a fault not noticed yet or while nodes come back,
// must not lower it: the next publications would go out before the other
// nodes are subscribed again, past what their catch-up read can recover.
func TestAppendNeverLowersTheAudienceDuringAFault(t *testing.T) {
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0), reads: make(chan struct{}, maxReads)}
	r.health.init(2)
	o := newOutbox(r)
	appended := func(heard int64) {
		t.Helper()
		cmd := goredis.NewCmd(context.Background())
		cmd.SetVal([]any{"E", int64(1), int64(0), heard})
		it := &outItem{kind: outAppend, channel: "room"}
		if st := o.result(it, []goredis.Cmder{cmd}); st != itemDone {
			t.Fatalf("status %v", st)
		}
	}
	for _, c := range []struct {
		unsettled bool
		heard     int64
		want      int64
	}{
		{false, 3, 3}, // settled: heard by 3
		{false, 0, 3}, // heard by nobody: a fault, keep 3
		{true, 2, 3},  // nodes coming back: keep the larger audience
		{true, 4, 4},  // more than before: take it
		{false, 2, 2}, // settled and smaller: a node left
	} {
		o.unsettled = c.unsettled
		appended(c.heard)
		if got := o.receivers["room"]; got != c.want {
			t.Fatalf("unsettled %v, heard %d: audience %d, want %d", c.unsettled, c.heard, got, c.want)
		}
	}
}
