package transport_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Hostile queries: a history query costs one small frame and makes the node
// read up to --history-size publications of up to --max-message-bytes from
// Redis. Attackers flooding history queries of a room of big messages must
// not take the node's stream reads from the rooms: joins elsewhere are
// answered with their position, and recoveries are served, during the
// flood. Every query is answered (history or an error).
func TestHistoryFloodStarvesNoJoin(t *testing.T) {
	if _, err := redistest.Binary(); err != nil {
		t.Skip("needs redis-server:", err)
	}
	a, b, _ := historyNodes(t, "redis")
	// A room of 100 publications of 60 KiB: each history query of it
	// would read 6 MB.
	big := strings.Repeat("x", 60<<10)
	feeder := b.dial("feeder")
	joinAt(t, feeder, "big", nil)
	for i := 1; i <= 100; i++ {
		_ = feeder.SendJSON(map[string]any{"type": "room_message", "room": "big", "content": fmt.Sprint(i, big), "id": fmt.Sprint("f", i)})
		if i%50 == 0 {
			expect(t, feeder, "the feeder's ack", isAck(fmt.Sprintf(`"f%d"`, i)))
		}
	}
	// The victim's recovery point in a busy room.
	victim := a.dial("victim")
	_, ack := joinAt(t, victim, "r", nil)
	say(t, victim, "r", "m", 5)
	_ = victim.SendJSON(map[string]any{"type": "leave_room", "room": "r", "id": "leave"})
	expect(t, victim, "the leave's ack", isAck(`"leave"`))

	const attackers, queries = 8, 150
	var answered, refused, other, tooBig atomic.Int64
	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := range attackers {
		c, err := wsclient.Dial(a.wsURL(fmt.Sprint("/ws?client_id=attacker", i)), wsclient.Options{OnEvent: func(e *wsclient.Event) {
			switch {
			case e.Event == "history":
				answered.Add(1)
				if len(e.Raw) > 1<<20 || len(e.Publications) == 0 {
					tooBig.Add(1)
				}
			case e.Event == "error":
				refused.Add(1)
				mu.Lock()
				codes[e.Code]++
				mu.Unlock()
			case e.Event != "welcome" && e.Event != "user_connected" && e.Event != "user_disconnected":
				other.Add(1)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Abort)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range queries {
				if c.SendJSON(map[string]any{"type": "history", "room": "big", "id": q}) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	// During the flood: ten joins of fresh rooms (each needs its stream's
	// position) and a recovery.
	for i := range 10 {
		_, ack := joinAt(t, victim, fmt.Sprint("fresh-", i), nil)
		if ack.Epoch == "" {
			t.Errorf("a join during the flood was answered without its position: %s", ack.Raw)
		}
	}
	missed, got := joinAt(t, victim, "r", map[string]any{"offset": 2, "epoch": ack.Epoch})
	if len(missed) != 3 || got.Recovered == nil || !*got.Recovered {
		t.Errorf("a recovery during the flood: %d chats, %s", len(missed), got.Raw)
	}
	waitFor(t, "every query answered", 30*time.Second, func() bool {
		return answered.Load()+refused.Load() == attackers*queries
	})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d history answers, errors %v, %d other events", answered.Load(), codes, other.Load())
	if n := tooBig.Load(); n > 0 {
		t.Errorf("%d history answers empty or over 1 MiB", n)
	}
	if other.Load() > 0 || codes["rate_limited"]+codes["unavailable"] != int(refused.Load()) {
		t.Errorf("the attackers got %d unexpected events, errors %v", other.Load(), codes)
	}
	if answered.Load() == 0 {
		t.Error("no history query was answered during the flood")
	}
}
