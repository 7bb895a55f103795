package transport_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// An idle connection holds no read buffer and a read loop stack of 2 KiB,
// whatever commands it sent before: in bursts (one write holding several
// frames), larger than the read buffer, with a payload that comes in a
// later write. Each command is answered, in order. (A WebSocket ping from
// the client is left out: its pong is written on the read loop, which
// grows that stack to 4 KiB, with or without the lent read buffers.)
func TestIdleConnectionsHoldNoReadBuffer(t *testing.T) {
	const conns = 200
	n := startNode(t, nil, withTransport(func(c *transport.Config) { c.ReadBufferSize = 1024 }))
	rcs := make([]*rawConn, conns)
	for i := range rcs {
		rc, resp := rawUpgrade(t, n, fmt.Sprintf("/ws?client_id=idle-%d&connection_events=off", i), nil)
		if rc == nil {
			t.Fatalf("connection %d: status %d", i, resp.StatusCode)
		}
		if ev, err := rc.event(5 * time.Second); err != nil || ev.Event != "welcome" {
			t.Fatalf("connection %d: welcome: %v %+v", i, err, ev)
		}
		rcs[i] = rc
	}
	// The stacks of read loops that have only waited, to compare with
	// after they have read.
	before := stackInuse()
	pad := func(id string, size int) []byte {
		head := `{"type":"pong","id":"` + id + `","pad":"`
		return frame(true, 0x1, []byte(head+strings.Repeat("x", max(0, size-len(head)-2))+`"}`))
	}
	for i, rc := range rcs {
		var burst []byte
		burst = append(burst, pad("a", 40)...)
		burst = append(burst, pad("b", 300)...)
		burst = append(burst, pad("c", 3000)...) // larger than the read buffer
		burst = append(burst, pad("d", 900)...)
		late := pad("e", 500)
		burst = append(burst, late[:7]...) // its payload comes later
		if err := rc.write(burst); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if err := rc.write(late[7:]); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	for i, rc := range rcs {
		for _, id := range []string{"a", "b", "c", "d", "e"} {
			ev, err := rc.event(5 * time.Second)
			if err != nil || ev.Event != "ack" || !strings.Contains(string(ev.Raw), `"`+id+`"`) {
				t.Fatalf("connection %d: want the ack of %s, got %v %s", i, id, err, evRaw(ev))
			}
		}
	}

	waitFor(t, "idle connections to give their read buffers back", 5*time.Second, func() bool {
		return transport.ReadBuffersLent(n.srv) == 0
	})
	if raceEnabled {
		return
	}
	grown := float64(stackInuse()-before) / conns
	t.Logf("stack per connection grown by reading: %.0f bytes", grown)
	// A read loop parks with a 2 KiB stack; anything on the read path that
	// grows it doubles it to 4 KiB for good (docs/benchmarks.md). The
	// margin is for the node's own goroutines that come and go.
	if grown > 1<<10 {
		t.Errorf("stack per idle connection grew by %.0f bytes after reading: a read loop grew past 2 KiB", grown)
	}
}

// stackInuse is the memory of live goroutines' stacks: after two
// collections, the second freeing the stacks of goroutines that ended
// before the first.
func stackInuse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.StackInuse)
}

func evRaw(ev *wsclient.Event) string {
	if ev == nil {
		return "<nil>"
	}
	return string(ev.Raw)
}
