package redis_test

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// member is a connection that joins many rooms at once and counts the
// acks, without queueing the events it receives.
type member struct {
	c      *wsclient.Client
	acks   atomic.Int64
	errors atomic.Int64
}

// dialMember connects id to n; maxRooms must allow the rooms it will join.
func dialMember(t testing.TB, n *testNode, id string) *member {
	t.Helper()
	m := &member{}
	c, err := wsclient.Dial(n.wsURL("/ws?client_id="+id), wsclient.Options{OnEvent: func(e *wsclient.Event) {
		switch e.Event {
		case "ack":
			m.acks.Add(1)
		case "error":
			m.errors.Add(1)
		}
	}})
	if err != nil {
		t.Fatalf("dial %s: %v", id, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	m.c = c
	return m
}

// joinAll sends one join_room per room without waiting in between.
func (m *member) joinAll(t testing.TB, rooms []string) {
	t.Helper()
	for i, room := range rooms {
		if err := m.c.SendJSON(map[string]any{"type": "join_room", "room": room, "id": i}); err != nil {
			t.Fatal(err)
		}
	}
}

// massRooms returns the names of conns x perConn rooms, one list per
// connection: every membership has a room, and a channel, of its own.
func massRooms(prefix string, conns, perConn int) [][]string {
	out := make([][]string, conns)
	for i := range out {
		out[i] = make([]string, perConn)
		for j := range out[i] {
			out[i][j] = fmt.Sprintf("%s-%d-%d", prefix, i, j)
		}
	}
	return out
}

// pubsubChannels is INFO's count of the channels Redis holds (every node's).
func pubsubChannels(t testing.TB, rs *redistest.Server) int {
	t.Helper()
	n, err := strconv.Atoi(rs.Info("stats", "pubsub_channels"))
	if err != nil {
		t.Fatalf("pubsub_channels: %v", err)
	}
	return n
}

// TestRedisJoinDuringMassExitIsHeard: connections in 20,000 rooms of
// their own (10,000 under the race detector) leave at once, and while their node releases those channels a
// client of that node joins fresh rooms. Each join is acknowledged, and
// what the other node publishes to the room right after the ack arrives:
// the SUBSCRIBE of a new room does not wait behind the unsubscriptions.
// Before the fix, the release ran at about a hundred channels per second
// (the registry looked for each ended subscription actor among all of
// them) and every join was acknowledged deaf after its 1 s wait.
func TestRedisJoinDuringMassExitIsHeard(t *testing.T) {
	conns, perConn, fresh := 20, 1000, 10
	if raceDetector {
		conns = 10
	}
	rs := startRedis(t)
	many := func(_ *redis.Config, c *actors.Config) { c.MaxRoomsPerSession = perConn }
	// Production probe settings: the tests' short ones would take a
	// saturated machine's slowness for a dead connection.
	defaults := withBroker(func(c *redis.Config) { c.ProbeIdle, c.ProbeTimeout = 0, 0 })
	n1 := startNode(t, rs.URL(), "n1", many, defaults)
	n2 := startNode(t, rs.URL(), "n2", defaults)
	base := pubsubChannels(t, rs)

	pub := n2.dial("publisher")
	for i := range fresh {
		join(t, pub, fmt.Sprint("fresh-", i))
	}
	joiner := n1.dial("joiner")

	rooms := massRooms("mx", conns, perConn)
	members := make([]*member, conns)
	for i := range members {
		members[i] = dialMember(t, n1, fmt.Sprint("m", i))
		members[i].joinAll(t, rooms[i])
	}
	waitFor(t, "every mass-exit join acknowledged", 60*time.Second, func() bool {
		var acks int64
		for _, m := range members {
			if m.errors.Load() > 0 {
				t.Fatalf("a join was refused")
			}
			acks += m.acks.Load()
		}
		return acks == int64(conns*perConn)
	})
	held := pubsubChannels(t, rs)
	if want := base + fresh + conns*perConn; held != want {
		t.Fatalf("Redis holds %d channels, want %d", held, want)
	}

	// The mass exit.
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.c.Abort()
		}()
	}
	wg.Wait()
	if left := pubsubChannels(t, rs); left < held-conns*perConn/2 {
		t.Fatalf("the release was nearly over (%d of %d channels left) before the first join: the test proves nothing", left-base-fresh, conns*perConn)
	}
	for i := range fresh {
		room := fmt.Sprint("fresh-", i)
		t0 := time.Now()
		join(t, joiner, room)
		t.Logf("join %d acked after %v, %d channels left", i, time.Since(t0), pubsubChannels(t, rs)-base-fresh)
		if err := pub.SendJSON(map[string]any{"type": "room_message", "room": room, "content": "to " + room}); err != nil {
			t.Fatal(err)
		}
		expect(t, joiner, "the other node's message in "+room+", right after the join's ack", func(e *wsclient.Event) bool {
			return e.Event == "chat" && e.Room == room && e.Content == "to "+room
		})
	}
	waitFor(t, "the mass exit's channels released", 30*time.Second, func() bool {
		return pubsubChannels(t, rs) == base+fresh
	})
	if got := n1.node.Metrics().SubscribeTimeouts.Load(); got != 0 {
		t.Errorf("%d rooms let joins in without Redis's confirmation", got)
	}
}
