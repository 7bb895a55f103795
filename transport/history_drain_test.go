package transport_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// member is a client that follows one room across reconnects, as a real
// client does: it remembers the last position it received, and when its
// node closes it (a drain's 1001) it reconnects to the other node and
// rejoins with since.
type member struct {
	name    string
	room    string
	mu      sync.Mutex
	offsets []uint64 // every room chat received, in arrival order
	epochs  map[string]bool
	rejoins int
	gaps    int // rejoins answered recovered:false
}

func (m *member) record(e *wsclient.Event) {
	if e.Event != "chat" || e.Room != m.room {
		return
	}
	m.mu.Lock()
	m.offsets = append(m.offsets, e.Offset)
	m.epochs[e.Epoch] = true
	m.mu.Unlock()
}

func (m *member) last() (uint64, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.offsets) == 0 {
		return 0, 0
	}
	return m.offsets[len(m.offsets)-1], len(m.offsets)
}

// follow reads c until stop; when c is closed by the node it reconnects
// to next() and rejoins with since.
func (m *member) follow(t *testing.T, c *wsclient.Client, epoch string, next func() *testNode, stop <-chan struct{}) {
	for {
		ev, err := c.Next(50 * time.Millisecond)
		switch {
		case err == nil:
			m.record(ev)
			continue
		case err == wsclient.ErrTimeout:
			select {
			case <-stop:
				return
			default:
				continue
			}
		}
		// Closed by the node: come back on another and recover.
		n := next()
		nc, err := wsclient.Dial(n.wsURL("/ws?client_id="+m.name), wsclient.Options{})
		if err != nil {
			t.Errorf("%s: reconnect: %v", m.name, err)
			return
		}
		t.Cleanup(func() { _ = nc.Close() })
		if _, err := nc.Next(5 * time.Second); err != nil {
			t.Errorf("%s: welcome after reconnect: %v", m.name, err)
			return
		}
		off, _ := m.last()
		id := fmt.Sprint("rejoin-", m.name)
		_ = nc.SendJSON(map[string]any{"type": "join_room", "room": m.room, "id": id, "since": map[string]any{"offset": off, "epoch": epoch}})
		ack, err := nc.WaitFor(5*time.Second, func(e *wsclient.Event) bool {
			if e.Event == "ack" && string(e.ID) == `"`+id+`"` {
				return true
			}
			m.record(e)
			return false
		})
		if err != nil {
			t.Errorf("%s: rejoin: %v", m.name, err)
			return
		}
		m.mu.Lock()
		m.rejoins++
		if ack.Recovered == nil || !*ack.Recovered {
			m.gaps++
		}
		m.mu.Unlock()
		c = nc
	}
}

// A drain under traffic loses no room message: node A closes its clients
// with 1001, they reconnect to node B with since, and every member has
// every publication exactly once, in order (docs/protocol.md, section 6).
func TestDrainUnderTrafficLosesNoRoomMessage(t *testing.T) {
	for _, kind := range clusterKinds(t) {
		t.Run(kind, func(t *testing.T) {
			a, b, _ := historyNodes(t, kind, withActors(func(c *actors.Config) { c.RatePerSecond, c.HistorySize = -1, 1000 }))
			sender := b.dial("sender")
			_, ack := joinAt(t, sender, "live", nil)
			epoch := ack.Epoch

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var members []*member
			for i, n := range []*testNode{a, a, a, b} {
				m := &member{name: fmt.Sprint("m", i), room: "live", epochs: map[string]bool{}}
				c := n.dial(m.name)
				if _, ack := joinAt(t, c, "live", nil); ack.Epoch != epoch {
					t.Fatalf("%s joined epoch %s, want %s", m.name, ack.Epoch, epoch)
				}
				members = append(members, m)
				wg.Add(1)
				go func() {
					defer wg.Done()
					m.follow(t, c, epoch, func() *testNode { return b }, stop)
				}()
			}

			// Traffic from node B, bounded: 600 messages, one every ms.
			const total = 600
			sent := make(chan struct{})
			go func() {
				defer close(sent)
				for i := 1; i <= total; i++ {
					_ = sender.SendJSON(map[string]any{"type": "room_message", "room": "live", "content": fmt.Sprint(i), "id": i})
					time.Sleep(time.Millisecond)
				}
			}()
			waitFor(t, "traffic under way", 5*time.Second, func() bool { off, _ := members[0].last(); return off >= 100 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.srv.Drain(ctx); err != nil {
				t.Fatalf("drain: %v", err)
			}
			<-sent
			for _, m := range members {
				waitFor(t, m.name+" has every message", 10*time.Second, func() bool { off, _ := m.last(); return off >= total })
			}
			close(stop)
			wg.Wait()
			for i, m := range members {
				m.mu.Lock()
				if i < 3 && m.rejoins != 1 {
					t.Errorf("%s rejoined %d times, want once (its node drained)", m.name, m.rejoins)
				}
				if m.gaps != 0 || len(m.epochs) != 1 {
					t.Errorf("%s: %d rejoins answered recovered:false, epochs %v", m.name, m.gaps, m.epochs)
				}
				for k, off := range m.offsets {
					if off != uint64(k+1) {
						t.Fatalf("%s: chat %d has offset %d: lost, repeated or reordered (%d received)", m.name, k, off, len(m.offsets))
					}
				}
				if len(m.offsets) != total {
					t.Errorf("%s received %d, want %d", m.name, len(m.offsets), total)
				}
				m.mu.Unlock()
			}
		})
	}
}
