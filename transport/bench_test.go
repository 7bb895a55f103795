package transport_test

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

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport"
)

// End-to-end benchmarks over loopback: a real node, real gws clients, every
// frame through the kernel. Clients and node share the process (and the two
// cores), so these measure the whole path, not the node alone; the load tool
// (cmd/switchboard-bench --spawn) separates them.

// benchCounter counts the chat frames every client of a benchmark receives.
type benchCounter struct {
	gws.BuiltinEventHandler
	chats *atomic.Int64
	acks  chan struct{}
}

var benchChatPrefix = []byte(`{"event":"chat",`)

func (h *benchCounter) OnMessage(_ *gws.Conn, m *gws.Message) {
	b := m.Bytes()
	switch {
	case bytes.HasPrefix(b, benchChatPrefix):
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

// benchRoom is a node with members clients in one room.
type benchRoom struct {
	node    *testNode
	clients []*gws.Conn
	chats   atomic.Int64
}

func newBenchRoom(b *testing.B, members int) *benchRoom {
	b.Helper()
	n := startNode(b, nil, func(a *actors.Config, _ *transport.Config) {
		a.RatePerSecond = -1
		a.PingInterval = time.Hour
	})
	br := &benchRoom{node: n}
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, members)
	for i := 0; i < members; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &benchCounter{chats: &br.chats, acks: make(chan struct{}, 1)}
			// One user for every client: distinct users would first cost a
			// user_connected to every connection for each of them.
			c, _, err := gws.NewClient(h, &gws.ClientOption{Addr: n.wsURL("/ws?client_id=bench")})
			if err != nil {
				errs <- err
				return
			}
			go c.ReadLoop()
			if err := c.WriteString(`{"type":"join_room","room":"lobby","id":1}`); err != nil {
				errs <- err
				return
			}
			select {
			case <-h.acks:
			case <-time.After(30 * time.Second):
				errs <- errTimeout("join ack")
				return
			}
			mu.Lock()
			br.clients = append(br.clients, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		for _, c := range br.clients {
			_ = c.NetConn().Close()
		}
	})
	return br
}

// processCPU is the CPU time (user + system) this process has used, in
// nanoseconds: clients and node together.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type errTimeout string

func (e errTimeout) Error() string { return "timed out waiting for " + string(e) }

// run sends n room messages from the first client, at most window of them
// in flight (sent but not yet delivered to every member), and returns when
// every member has received every one.
func (br *benchRoom) run(b *testing.B, n, window int) {
	members := int64(len(br.clients))
	frame := []byte(`{"type":"room_message","room":"lobby","content":"` + strings.Repeat("x", 64) + `"}`)
	base := br.chats.Load()
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < n; i++ {
		for int64(i)*members-(br.chats.Load()-base) >= int64(window)*members {
			if time.Now().After(deadline) {
				b.Fatalf("stalled: %d of %d delivered", br.chats.Load()-base, int64(i)*members)
			}
			time.Sleep(20 * time.Microsecond)
		}
		if err := br.clients[0].WriteMessage(gws.OpcodeText, frame); err != nil {
			b.Fatal(err)
		}
	}
	for br.chats.Load()-base < int64(n)*members {
		if time.Now().After(deadline) {
			b.Fatalf("stalled: %d of %d delivered", br.chats.Load()-base, int64(n)*members)
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// BenchmarkEndToEndRoom: one publisher, members clients in its room, a
// window of 64 messages in flight. One op is one message delivered to every
// member.
func BenchmarkEndToEndRoom(b *testing.B) {
	for _, members := range []int{10, 100, 1000} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) {
			br := newBenchRoom(b, members)
			br.run(b, 10, 64) // warm up
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

// BenchmarkEndToEndRoundTrip: one client alone in a room sends a message and
// waits for it to come back before sending the next: the latency of the
// whole path (decode, session, room, session, writer, kernel, client).
func BenchmarkEndToEndRoundTrip(b *testing.B) {
	br := newBenchRoom(b, 1)
	br.run(b, 10, 1)
	b.ReportAllocs()
	b.ResetTimer()
	br.run(b, b.N, 1)
}
