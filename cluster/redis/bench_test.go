package redis_test

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// Benchmarks of a room that spans two nodes joined by a real redis-server:
// every message goes from the publisher's node through Redis to the other
// node. Nodes, Redis and clients share the machine; the load tool
// (cmd/switchboard-bench --inprocess 2 --redis URL) gives the same figures
// with the nodes in their own process.

// benchCounter counts the load frames a benchmark's clients receive.
type benchCounter struct {
	gws.BuiltinEventHandler
	chats *atomic.Int64
	acks  chan struct{}
}

func (h *benchCounter) OnMessage(_ *gws.Conn, m *gws.Message) {
	b := m.Bytes()
	switch {
	case bytes.HasPrefix(b, []byte(`{"event":"chat",`)):
		h.chats.Add(1)
	case bytes.HasPrefix(b, []byte(`{"event":"ack"`)):
		select {
		case h.acks <- struct{}{}:
		default:
		}
	}
	m.Close()
}

func (h *benchCounter) OnPing(c *gws.Conn, p []byte) { _ = c.WritePong(p) }

// benchCrossRoom is a room with members spread over two nodes.
type benchCrossRoom struct {
	clients []*gws.Conn // clients[0] is on the first node and publishes
	chats   atomic.Int64
}

func newBenchCrossRoom(b *testing.B, members int) *benchCrossRoom {
	b.Helper()
	srv := redistest.Start(b)
	nodes := []*testNode{startNode(b, srv.URL(), "bench-a"), startNode(b, srv.URL(), "bench-b")}
	br := &benchCrossRoom{clients: make([]*gws.Conn, members)}
	var wg sync.WaitGroup
	errs := make(chan error, members)
	for i := 0; i < members; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &benchCounter{chats: &br.chats, acks: make(chan struct{}, 1)}
			// One user for every client: distinct users would first cost a
			// user_connected to every connection for each of them.
			c, _, err := gws.NewClient(h, &gws.ClientOption{Addr: nodes[i%2].wsURL("/ws?client_id=bench")})
			if err != nil {
				errs <- err
				return
			}
			go c.ReadLoop()
			br.clients[i] = c
			if err := c.WriteString(`{"type":"join_room","room":"lobby","id":1}`); err != nil {
				errs <- err
				return
			}
			select {
			case <-h.acks:
			case <-time.After(30 * time.Second):
				errs <- errTimeout("join ack")
			}
		}()
	}
	wg.Wait()
	close(errs)
	b.Cleanup(func() {
		for _, c := range br.clients {
			if c != nil {
				_ = c.NetConn().Close()
			}
		}
	})
	for err := range errs {
		b.Fatal(err)
	}
	// A join is acknowledged once the room has it locally; the other node
	// hears of the member's room through Redis. Warm up until a message
	// reaches every member.
	br.run(b, 1, 1)
	return br
}

type errTimeout string

func (e errTimeout) Error() string { return "timed out waiting for " + string(e) }

// run sends n room messages from the first client, at most window in flight,
// and returns when every member has received every one.
func (br *benchCrossRoom) run(b *testing.B, n, window int) {
	members := int64(len(br.clients))
	frame := []byte(`{"type":"room_message","room":"lobby","content":"` + strings.Repeat("x", 64) + `"}`)
	base := br.chats.Load()
	deadline := time.Now().Add(5 * time.Minute)
	wait := func(target int64) {
		for br.chats.Load()-base < target {
			if time.Now().After(deadline) {
				b.Fatalf("stalled: %d of %d delivered", br.chats.Load()-base, target)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}
	for i := 0; i < n; i++ {
		wait((int64(i) - int64(window) + 1) * members)
		if err := br.clients[0].WriteMessage(gws.OpcodeText, frame); err != nil {
			b.Fatal(err)
		}
	}
	wait(int64(n) * members)
}

func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkRedisRoomTwoNodes: one publisher, members clients in its room,
// half of them on the other node, 64 messages in flight. One op is one
// message delivered to every member.
func BenchmarkRedisRoomTwoNodes(b *testing.B) {
	for _, members := range []int{10, 100, 1000} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) {
			br := newBenchCrossRoom(b, members)
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu0 := time.Now(), processCPU()
			br.run(b, b.N, 64)
			b.StopTimer()
			d := float64(b.N) * float64(members)
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/d, "ns/delivery")
			b.ReportMetric(float64(processCPU()-cpu0)/d, "cpu-ns/delivery")
			b.ReportMetric(d/time.Since(start).Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkRedisRoundTrip: two members, one per node; a message is sent and
// received by both before the next: the latency of a hop through Redis.
func BenchmarkRedisRoundTrip(b *testing.B) {
	br := newBenchCrossRoom(b, 2)
	b.ReportAllocs()
	b.ResetTimer()
	br.run(b, b.N, 1)
}
