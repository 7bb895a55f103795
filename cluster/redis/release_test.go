package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// channelWatcher stands in for the rooms at the broker port: one actor,
// the target of every channel the test subscribes, that counts the
// channels confirmed (actors.Subscribed) and signals the ones it watches.
type channelWatcher struct {
	ref       port.Ref
	confirmed atomic.Int64

	mu    sync.Mutex
	live  map[string]chan struct{} // closed on the channel's first Subscribed
	heard map[string]chan struct{} // closed on the channel's first Inbound
	seen  map[string]bool          // channels confirmed at least once
}

func newChannelWatcher(t testing.TB, n *testNode) *channelWatcher {
	t.Helper()
	w := &channelWatcher{live: make(map[string]chan struct{}), heard: make(map[string]chan struct{}), seen: make(map[string]bool)}
	host := n.node.Actors()
	ref, err := host.Spawn(port.Spec{New: func() port.Behavior { return port.BehaviorFunc(w.receive) }})
	if err != nil {
		t.Fatal(err)
	}
	w.ref = ref
	t.Cleanup(func() { _ = host.Stop(context.Background(), w.ref) })
	return w
}

func (w *channelWatcher) receive(ctx port.Context) {
	switch m := ctx.Message().(type) {
	case *actors.Subscribed:
		w.mu.Lock()
		if !w.seen[m.Channel] {
			w.seen[m.Channel] = true
			w.confirmed.Add(1)
		}
		if c := w.live[m.Channel]; c != nil {
			close(c)
			delete(w.live, m.Channel)
		}
		w.mu.Unlock()
	case *actors.Inbound:
		ch := actors.RoomChannel("websocket", m.Envelope.Room)
		w.mu.Lock()
		if c := w.heard[ch]; c != nil {
			close(c)
			delete(w.heard, ch)
		}
		w.mu.Unlock()
	}
}

// watch returns channels closed when channel is confirmed and when an
// envelope on it arrives. Call it before subscribing channel.
func (w *channelWatcher) watch(channel string) (live, heard <-chan struct{}) {
	l, h := make(chan struct{}), make(chan struct{})
	w.mu.Lock()
	w.live[channel], w.heard[channel] = l, h
	w.mu.Unlock()
	return l, h
}

// countChannels is pubsubChannels for goroutines other than the test's.
func countChannels(rs *redistest.Server) (int, error) {
	txt, err := rs.Client().Info(context.Background(), "stats").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(txt, "\r\n") {
		if v, ok := strings.CutPrefix(line, "pubsub_channels:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("no pubsub_channels in INFO")
}

func await(t testing.TB, what string, c <-chan struct{}, d time.Duration) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// TestRedisSubscribeDuringReleaseOf100kChannels: the broker holds 100,000
// channels (30,000 under the race detector), and all of them are
// unsubscribed at once, as when every room of a node empties. Channels
// subscribed meanwhile are confirmed while the release goes on, not after
// it, and what is published on them after the confirmation arrives; the
// whole release ends. The release time and each confirmation's latency
// are logged.
func TestRedisSubscribeDuringReleaseOf100kChannels(t *testing.T) {
	bulk, fresh := 100_000, 10
	if raceDetector {
		bulk = 30_000
	}
	rs := startRedis(t)
	defaults := withBroker(func(c *redis.Config) { c.ProbeIdle, c.ProbeTimeout = 0, 0 })
	n1 := startNode(t, rs.URL(), "n1", defaults)
	base := pubsubChannels(t, rs)
	w := newChannelWatcher(t, n1)
	bulkChannel := func(i int) string { return roomChannel(fmt.Sprint("bulk-", i)) }

	start := time.Now()
	for i := range bulk {
		n1.broker.Subscribe(bulkChannel(i), w.ref)
	}
	waitFor(t, "the bulk channels confirmed", 60*time.Second, func() bool { return w.confirmed.Load() == int64(bulk) })
	if got := pubsubChannels(t, rs); got != base+bulk {
		t.Fatalf("Redis holds %d channels, want %d", got, base+bulk)
	}
	t.Logf("%d channels subscribed and confirmed in %v", bulk, time.Since(start))

	start = time.Now()
	for i := range bulk {
		n1.broker.Unsubscribe(bulkChannel(i), w.ref)
	}
	// Polled on a goroutine of its own, so that the subscriptions below
	// do not delay the measurement.
	released := make(chan time.Duration, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			if n, err := countChannels(rs); err == nil && n <= base+fresh {
				released <- time.Since(start)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	if left := pubsubChannels(t, rs) - base; left < bulk/2 {
		t.Fatalf("the release was nearly over (%d channels left) before the first subscription: the test proves nothing", left)
	}
	env := &wire.Envelope{Type: wire.EnvRoom, Node: "elsewhere"}
	for i := range fresh {
		room := fmt.Sprint("fresh-", i)
		ch := roomChannel(room)
		live, heard := w.watch(ch)
		t0 := time.Now()
		n1.broker.Subscribe(ch, w.ref)
		await(t, "the confirmation of "+ch, live, 10*time.Second)
		lat := time.Since(t0)
		left := pubsubChannels(t, rs) - base - (i + 1)
		if i == 0 && left == 0 {
			t.Fatalf("%s was confirmed only once every bulk channel was released: its subscription waited behind the unsubscriptions", ch)
		}
		env.Room, env.Payload = room, wire.ChatEvent("someone", room, "after the confirmation").JSON
		rs.Publish(ch, string(env.Encode()))
		await(t, "what was published on "+ch+" after its confirmation", heard, 5*time.Second)
		t.Logf("%s confirmed after %v, %d bulk channels left", ch, lat, left)
	}
	select {
	case d := <-released:
		t.Logf("%d channels released in %v", bulk, d)
	case <-time.After(60 * time.Second):
		t.Fatalf("the release did not end: %d channels left", pubsubChannels(t, rs)-base-fresh)
	}
}
