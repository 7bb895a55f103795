package redis_test

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// fanoutReceiver counts the room messages one member receives and records
// each one's latency (the content is the send time in unix ns).
type fanoutReceiver struct {
	got  atomic.Int64
	mu   sync.Mutex
	lats []time.Duration
}

func (r *fanoutReceiver) onEvent(e *wsclient.Event) {
	if e.Event != "chat" || e.Room == "" {
		return
	}
	sent, err := strconv.ParseInt(e.Content, 10, 64)
	if err != nil {
		return
	}
	lat := e.At.Sub(time.Unix(0, sent))
	r.mu.Lock()
	r.lats = append(r.lats, lat)
	r.mu.Unlock()
	r.got.Add(1)
}

// benchRoomFanout measures a room spread over two nodes: members per node
// on each, one sender on the first. It sends b.N room messages (every pace,
// or as fast as the socket takes them when pace is 0) and waits until every
// member on the second node has them all: those are the cross-node
// deliveries reported, with their latency from send to receipt.
func benchRoomFanout(b *testing.B, members int, pace time.Duration) {
	rs := redistest.Start(b)
	// Production probe settings: the tests' short ones would take a
	// saturated machine's slowness for a dead connection.
	defaults := withBroker(func(c *redis.Config) { c.ProbeIdle, c.ProbeTimeout = 0, 0 })
	n1 := startNode(b, rs.URL(), "n1", defaults)
	n2 := startNode(b, rs.URL(), "n2", defaults)
	room := "bench"
	var remote []*fanoutReceiver
	for i := range members {
		for ni, n := range []*testNode{n1, n2} {
			r := &fanoutReceiver{}
			c, err := wsclient.Dial(n.wsURL(fmt.Sprintf("/ws?client_id=m%d-%d", ni, i)), wsclient.Options{OnEvent: r.onEvent})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = c.Close() })
			_ = c.SendJSON(map[string]any{"type": "join_room", "room": room})
			if ni == 1 {
				remote = append(remote, r)
			}
		}
	}
	sender := n1.dial("sender")
	join(b, sender, room)
	waitFor(b, "both nodes subscribed", 10*time.Second, func() bool { return rs.NumSub(roomChannel(room))[roomChannel(room)] == 2 })
	waitFor(b, "every member joined", 10*time.Second, func() bool {
		return n1.node.Metrics().Sessions.Load() == int64(members+1) && n2.node.Metrics().Sessions.Load() == int64(members)
	})
	time.Sleep(200 * time.Millisecond) // let the joins' presence traffic settle before the clock starts

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var tick *time.Ticker
	if pace > 0 {
		tick = time.NewTicker(pace)
		defer tick.Stop()
	}
	for range b.N {
		if tick != nil {
			<-tick.C
		}
		msg := map[string]any{"type": "room_message", "room": room, "content": strconv.FormatInt(time.Now().UnixNano(), 10)}
		if err := sender.SendJSON(msg); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, r := range remote {
		for r.got.Load() < int64(b.N) {
			if time.Now().After(deadline) {
				b.Fatalf("a member on the other node got %d of %d messages; sender node %+v; receiving node %+v, %d sessions, %d slow consumers closed",
					r.got.Load(), b.N, n1.broker.Stats(), n2.broker.Stats(), n2.node.Metrics().Sessions.Load(), n2.node.Metrics().SlowClosed.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()

	var lats []time.Duration
	for _, r := range remote {
		r.mu.Lock()
		lats = append(lats, r.lats...)
		r.mu.Unlock()
	}
	slices.Sort(lats)
	pct := func(p float64) float64 { return float64(lats[int(float64(len(lats)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lats))/elapsed.Seconds(), "remote-deliveries/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(n1.broker.Stats().Published)/float64(max(n1.broker.Stats().RoundTrips, 1)), "publishes/round-trip")
	if d := n2.broker.Stats().Dropped; d != 0 {
		b.Fatalf("%d messages dropped by the receiving node", d)
	}
}

// BenchmarkRedisRoomFanout: 1 sender, 50 members on each of two nodes, sent
// as fast as possible. Run with -benchtime 2000x.
func BenchmarkRedisRoomFanout(b *testing.B) { benchRoomFanout(b, 50, 0) }

// BenchmarkRedisRoomFanoutPaced: the same room at 200 messages/s, for the
// latency of a cluster that is not saturated.
func BenchmarkRedisRoomFanoutPaced(b *testing.B) { benchRoomFanout(b, 50, 5*time.Millisecond) }
