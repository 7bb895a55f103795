package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Room history and recovery (docs/protocol.md, section 6), on the
// in-process fabric and on a real Redis: every test here runs with two
// nodes, so that what one node numbers the other sees the same.

// historyNodes starts two nodes on one broker of kind, with opts.
func historyNodes(t *testing.T, kind string, opts ...nodeOpt) (a, b *testNode, rs *redistest.Server) {
	t.Helper()
	var brokers [2]actors.Broker
	switch kind {
	case "fabric":
		fabric := cluster.NewFabric()
		t.Cleanup(fabric.Close)
		brokers = [2]actors.Broker{fabric.Broker(), fabric.Broker()}
	case "redis":
		rs = redistest.Start(t)
		for i := range brokers {
			br, err := redis.New(redis.Config{URL: rs.URL()})
			if err != nil {
				t.Fatal(err)
			}
			brokers[i] = br
		}
	}
	a, b = startNode(t, brokers[0], opts...), startNode(t, brokers[1], opts...)
	for _, n := range []*testNode{a, b} {
		waitFor(t, "the broker connected", 5*time.Second, func() bool { return n.node.BrokerState().Connected })
	}
	return a, b, rs
}

// joinAt joins room with since (nil: a plain join) and returns the chat
// events received before the ack, and the ack.
func joinAt(t *testing.T, c *wsclient.Client, room string, since map[string]any) (chats []*wsclient.Event, ack *wsclient.Event) {
	t.Helper()
	id := fmt.Sprintf("join-%d", time.Now().UnixNano())
	msg := map[string]any{"type": "join_room", "room": room, "id": id}
	if since != nil {
		msg["since"] = since
	}
	if err := c.SendJSON(msg); err != nil {
		t.Fatal(err)
	}
	for _, e := range collectUntil(t, c, "the join's answer", func(e *wsclient.Event) bool {
		return (e.Event == "ack" || e.Event == "error") && string(e.ID) == `"`+id+`"`
	}) {
		switch e.Event {
		case "chat":
			chats = append(chats, e)
		case "ack":
			ack = e
		case "error":
			t.Fatalf("join refused: %s", e.Raw)
		}
	}
	return chats, ack
}

// say sends n room messages "PREFIX i" and waits for their acks; the
// chats that arrive meanwhile are kept for chatsUpTo.
func say(t *testing.T, c *wsclient.Client, room, prefix string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		_ = c.SendJSON(map[string]any{"type": "room_message", "room": room, "content": fmt.Sprintf("%s %d", prefix, i), "id": fmt.Sprintf("%s-%d", prefix, i)})
	}
	last := fmt.Sprintf(`"%s-%d"`, prefix, n)
	for _, e := range collectUntil(t, c, "ack "+last, isAck(last)) {
		if e.Event == "chat" {
			keep(c, e)
		}
		if e.Event == "error" {
			t.Fatalf("a room message was refused: %s", e.Raw)
		}
	}
}

var (
	keptMu sync.Mutex
	kept   = map[*wsclient.Client][]*wsclient.Event{}
)

func keep(c *wsclient.Client, e *wsclient.Event) {
	keptMu.Lock()
	kept[c] = append(kept[c], e)
	keptMu.Unlock()
}

// chatsUpTo collects c's chats in room until the one at offset last,
// starting with those say kept.
func chatsUpTo(t *testing.T, c *wsclient.Client, room string, last uint64) []*wsclient.Event {
	t.Helper()
	keptMu.Lock()
	got := kept[c]
	delete(kept, c)
	keptMu.Unlock()
	if n := len(got); n > 0 && got[n-1].Offset >= last {
		return got
	}
	for _, e := range collectUntil(t, c, fmt.Sprintf("the chat at offset %d", last), func(e *wsclient.Event) bool {
		return e.Event == "chat" && e.Room == room && e.Offset >= last
	}) {
		if e.Event == "chat" && e.Room == room {
			got = append(got, e)
		}
	}
	return got
}

// inOrder checks that chats are exactly offsets from..to of epoch, once each.
func inOrder(t *testing.T, who string, chats []*wsclient.Event, from, to uint64, epoch string) {
	t.Helper()
	if uint64(len(chats)) != to-from+1 {
		t.Fatalf("%s got %d chats, want offsets %d..%d: %s", who, len(chats), from, to, raws(chats))
	}
	for i, e := range chats {
		if e.Offset != from+uint64(i) || e.Epoch != epoch {
			t.Fatalf("%s: chat %d is at %d/%s, want %d/%s: %s", who, i, e.Offset, e.Epoch, from+uint64(i), epoch, raws(chats))
		}
	}
}

func raws(evs []*wsclient.Event) string {
	s := ""
	for _, e := range evs {
		s += string(e.Raw) + " "
	}
	return s
}

func TestHistoryOffsetsRecoveryAndQuery(t *testing.T) {
	for _, kind := range clusterKinds(t) {
		t.Run(kind, func(t *testing.T) {
			a, b, _ := historyNodes(t, kind)
			alice, bob := a.dial("alice"), b.dial("bob")

			// A fresh stream: position 0 of a new epoch.
			_, ack := joinAt(t, alice, "r", nil)
			if ack.Offset != 0 || ack.Epoch == "" || ack.Room != "r" || ack.Recovered != nil {
				t.Fatalf("first join's ack: %s", ack.Raw)
			}
			epoch := ack.Epoch
			if _, ack := joinAt(t, bob, "r", nil); ack.Offset != 0 || ack.Epoch != epoch {
				t.Fatalf("bob's ack on the other node: %s, want offset 0 epoch %s", ack.Raw, epoch)
			}
			expect(t, alice, "bob joined", func(e *wsclient.Event) bool { return e.Event == "user_joined" && e.UserID == "bob" })

			// Every member on every node gets offsets 1..5, in order.
			say(t, alice, "r", "a", 3)
			say(t, bob, "r", "b", 2)
			for who, c := range map[string]*wsclient.Client{"alice": alice, "bob": bob} {
				inOrder(t, who, chatsUpTo(t, c, "r", 5), 1, 5, epoch)
			}

			// Bob goes away; five more are sent; he comes back on the other
			// node with since and gets exactly what he missed, then the ack.
			_ = bob.Close()
			say(t, alice, "r", "c", 5)
			chatsUpTo(t, alice, "r", 10) // node A's room has them all
			bob2 := a.dial("bob")
			missed, ack := joinAt(t, bob2, "r", map[string]any{"offset": 5, "epoch": epoch})
			inOrder(t, "bob, recovering", missed, 6, 10, epoch)
			if ack.Recovered == nil || !*ack.Recovered || ack.Offset != 10 || ack.Epoch != epoch {
				t.Fatalf("recovery ack: %s", ack.Raw)
			}
			if missed[0].Content != "c 1" || missed[0].From != "alice" {
				t.Fatalf("the recovered chat is not the one sent: %s", missed[0].Raw)
			}

			// Another epoch: nothing sent, recovered false, the position.
			carol := b.dial("carol")
			missed, ack = joinAt(t, carol, "r", map[string]any{"offset": 3, "epoch": "another"})
			if len(missed) != 0 || ack.Recovered == nil || *ack.Recovered || ack.Offset != 10 || ack.Epoch != epoch {
				t.Fatalf("a join with another epoch got %d chats and %s", len(missed), ack.Raw)
			}

			// Live traffic after the ack reaches the recovered joiner once.
			say(t, alice, "r", "d", 1)
			inOrder(t, "bob after recovery", chatsUpTo(t, bob2, "r", 11), 11, 11, epoch)

			// A member that joins again is told where it is.
			if _, ack := joinAt(t, bob2, "r", nil); ack.Offset != 11 || ack.Epoch != epoch || ack.Recovered != nil {
				t.Fatalf("a member's second join: %s", ack.Raw)
			}
			if _, ack := joinAt(t, bob2, "r", map[string]any{"offset": 2, "epoch": epoch}); ack.Offset != 11 || ack.Recovered == nil || !*ack.Recovered {
				t.Fatalf("a member's second join with since: %s", ack.Raw)
			}

			// The history query: newest L, oldest first, as members got them.
			dave := b.dial("dave") // not a member
			_ = dave.SendJSON(map[string]any{"type": "history", "room": "r", "limit": 3, "id": "h"})
			h := expect(t, dave, "history", isEvent("history"))
			if string(h.ID) != `"h"` || h.Offset != 11 || h.Epoch != epoch || len(h.Publications) != 3 {
				t.Fatalf("history: %s", h.Raw)
			}
			var first wsclient.Event
			if err := json.Unmarshal(h.Publications[0], &first); err != nil || first.Offset != 9 || first.Content != "c 4" {
				t.Fatalf("history's oldest of 3: %s", h.Publications[0])
			}
			_ = dave.SendJSON(map[string]any{"type": "history", "room": "r", "id": "all"})
			if h := expect(t, dave, "all history", isEvent("history")); len(h.Publications) != 11 {
				t.Fatalf("history without a limit has %d publications, want 11", len(h.Publications))
			}
			_ = dave.SendJSON(map[string]any{"type": "history", "room": "r", "limit": 101, "id": "big"})
			if e := expect(t, dave, "limit past the history size", isEvent("error")); e.Code != "invalid_message" || string(e.ID) != `"big"` {
				t.Fatalf("limit 101: %s", e.Raw)
			}

			// A server-side publish is numbered too, and says where.
			res, err := a.node.PublishRoom(context.Background(), "r", []byte(`{"event":"notice","text":"from the server"}`))
			if err != nil || res.Offset != 12 || res.Epoch != epoch {
				t.Fatalf("PublishRoom: %+v, %v; want offset 12 epoch %s", res, err, epoch)
			}
			for who, c := range map[string]*wsclient.Client{"alice": alice, "bob": bob2, "carol": carol} {
				if e := expect(t, c, who+"'s notice", isEvent("notice")); e.Offset != 12 || e.Epoch != epoch {
					t.Fatalf("%s got %s", who, e.Raw)
				}
			}
		})
	}
}

// Live publications that race with a recovering join are merged: the
// joiner gets every publication after since exactly once, in offset
// order, across the recovered and the live ones.
func TestRecoveryMergesLiveTraffic(t *testing.T) {
	for _, kind := range clusterKinds(t) {
		t.Run(kind, func(t *testing.T) {
			a, b, _ := historyNodes(t, kind, withActors(func(c *actors.Config) { c.RatePerSecond, c.HistorySize = -1, 1000 }))
			alice := a.dial("alice")
			_, ack := joinAt(t, alice, "r", nil)
			epoch := ack.Epoch
			say(t, alice, "r", "before", 20)
			chatsUpTo(t, alice, "r", 20) // a since names what a client was sent

			// Alice keeps sending while a joiner on each node recovers from 10.
			const total = 300
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; i <= total; i++ {
					_ = alice.SendJSON(map[string]any{"type": "room_message", "room": "r", "content": fmt.Sprint("live ", i)})
					if i%50 == 0 {
						time.Sleep(2 * time.Millisecond) // let joins fall in the middle
					}
				}
			}()
			joiners := []*wsclient.Client{a.dial("jo-a"), b.dial("jo-b")}
			type got struct {
				chats []*wsclient.Event
				ack   *wsclient.Event
			}
			results := make([]got, len(joiners))
			for i, j := range joiners {
				results[i].chats, results[i].ack = joinAt(t, j, "r", map[string]any{"offset": 10, "epoch": epoch})
			}
			wg.Wait()
			last := uint64(20 + total)
			for i, j := range joiners {
				r := results[i]
				if r.ack.Recovered == nil || !*r.ack.Recovered {
					t.Fatalf("joiner %d: %s", i, r.ack.Raw)
				}
				all := r.chats
				if r.ack.Offset < last {
					all = append(all, chatsUpTo(t, j, "r", last)...)
				}
				if r.ack.Offset > last || (len(r.chats) > 0 && r.chats[len(r.chats)-1].Offset != r.ack.Offset) {
					t.Fatalf("joiner %d: ack at %d after %d recovered chats ending at %d", i, r.ack.Offset, len(r.chats), r.chats[len(r.chats)-1].Offset)
				}
				inOrder(t, fmt.Sprintf("joiner %d", i), all, 11, last, epoch)
			}
		})
	}
}

// A since older than what history keeps is not recovered: recovered false,
// none of the kept ones sent, the current position; the client reloads
// with history.
func TestRecoveryPastHistoryIsRefused(t *testing.T) {
	a, _, _ := historyNodes(t, "fabric", withActors(func(c *actors.Config) { c.HistorySize = 3 }))
	alice := a.dial("alice")
	_, ack := joinAt(t, alice, "r", nil)
	say(t, alice, "r", "m", 10)
	chatsUpTo(t, alice, "r", 10) // the room has fanned out all ten
	bob := a.dial("bob")
	missed, got := joinAt(t, bob, "r", map[string]any{"offset": 2, "epoch": ack.Epoch})
	if len(missed) != 0 || got.Recovered == nil || *got.Recovered || got.Offset != 10 {
		t.Fatalf("since 2 with 3 kept of 10: %d chats, %s", len(missed), got.Raw)
	}
	missed, got = joinAt(t, a.dial("carol"), "r", map[string]any{"offset": 7, "epoch": ack.Epoch})
	if len(missed) != 3 || got.Recovered == nil || !*got.Recovered || missed[0].Offset != 8 {
		t.Fatalf("since 7 with 8..10 kept: %d chats, %s", len(missed), got.Raw)
	}
}

// History off: no offsets, joins answer as they always did, and the query
// is refused with history_disabled.
func TestHistoryOff(t *testing.T) {
	a, _, _ := historyNodes(t, "fabric", withActors(func(c *actors.Config) { c.HistorySize = actors.NoHistory }))
	alice := a.dial("alice")
	_, ack := joinAt(t, alice, "r", map[string]any{"offset": 0, "epoch": "e"})
	if string(ack.Raw) != `{"event":"ack","id":`+string(ack.ID)+`}` {
		t.Fatalf("join ack with history off: %s", ack.Raw)
	}
	say(t, alice, "r", "m", 1)
	if e := expect(t, alice, "chat", isEvent("chat")); e.Offset != 0 || e.Epoch != "" {
		t.Fatalf("chat with history off: %s", e.Raw)
	}
	_ = alice.SendJSON(map[string]any{"type": "history", "room": "r", "id": 1})
	if e := expect(t, alice, "refusal", isEvent("error")); e.Code != "history_disabled" || string(e.ID) != "1" {
		t.Fatalf("history with history off: %s", e.Raw)
	}
}

// Redis lost its data (a restart without persistence, FLUSHALL): the room
// gets a new epoch, and a client that recovers from the old one is told
// recovered:false, never given a silent gap.
func TestRedisLostDataStartsANewEpoch(t *testing.T) {
	if _, err := redistest.Binary(); err != nil {
		t.Skip("needs redis-server:", err)
	}
	a, b, rs := historyNodes(t, "redis")
	alice, bob := a.dial("alice"), b.dial("bob")
	_, ack := joinAt(t, alice, "r", nil)
	joinAt(t, bob, "r", nil)
	old := ack.Epoch
	say(t, alice, "r", "m", 3)
	chatsUpTo(t, bob, "r", 3)
	if err := rs.Client().FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	say(t, alice, "r", "after", 1)
	e := expect(t, bob, "the first chat after the loss", func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == "after 1" })
	if e.Offset != 1 || e.Epoch == old || e.Epoch == "" {
		t.Fatalf("after FLUSHALL: %s, want offset 1 in a new epoch (old %s)", e.Raw, old)
	}
	// Carol joins on alice's node: its room must have fanned the new
	// epoch's first publication out too, or it rightly answers its own
	// position, the old epoch's last offset (every later publication,
	// the new epoch's first included, reaches the joiner live).
	expect(t, alice, "the first chat after the loss, on alice's node", func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == "after 1" })
	missed, got := joinAt(t, a.dial("carol"), "r", map[string]any{"offset": 2, "epoch": old})
	if len(missed) != 0 || got.Recovered == nil || *got.Recovered || got.Epoch != e.Epoch || got.Offset != 1 {
		t.Fatalf("recovery from the lost epoch: %d chats, %s", len(missed), got.Raw)
	}
}

// A history answer and a recovery never make their client a slow
// consumer: the answer holds the newest publications that fit in half the
// connection's outbound budget, and a recovery that would not fit answers
// recovered:false (the client then reads history).
func TestHistoryAnswersFitTheOutboundBudget(t *testing.T) {
	a, _, _ := historyNodes(t, "fabric", withTransport(func(c *transport.Config) { c.MaxPendingBytes = 64 << 10 }),
		withActors(func(c *actors.Config) { c.RatePerSecond = -1 }))
	alice := a.dial("alice")
	_, ack := joinAt(t, alice, "r", nil)
	big := strings.Repeat("x", 4<<10)
	for i := 1; i <= 20; i++ {
		_ = alice.SendJSON(map[string]any{"type": "room_message", "room": "r", "content": fmt.Sprint(i, big)})
	}
	chatsUpTo(t, alice, "r", 20)

	bob := a.dial("bob")
	_ = bob.SendJSON(map[string]any{"type": "history", "room": "r", "id": "h"})
	h := expect(t, bob, "history", isEvent("history"))
	if len(h.Raw) > 32<<10 || len(h.Publications) < 5 || len(h.Publications) > 8 || h.Offset != 20 {
		t.Fatalf("history answer of %d bytes with %d publications (offset %d), want the newest that fit in 32 KiB", len(h.Raw), len(h.Publications), h.Offset)
	}
	var last wsclient.Event
	if err := json.Unmarshal(h.Publications[len(h.Publications)-1], &last); err != nil || last.Offset != 20 {
		t.Fatalf("the newest publication is not last: %v %d", err, last.Offset)
	}
	missed, got := joinAt(t, bob, "r", map[string]any{"offset": 0, "epoch": ack.Epoch})
	if len(missed) != 0 || got.Recovered == nil || *got.Recovered || got.Offset != 20 {
		t.Fatalf("a recovery of 80 KiB over a 32 KiB budget: %d chats, %s", len(missed), got.Raw)
	}
	carol := a.dial("carol")
	missed, got = joinAt(t, carol, "r", map[string]any{"offset": 16, "epoch": ack.Epoch})
	if len(missed) != 4 || got.Recovered == nil || !*got.Recovered {
		t.Fatalf("a recovery of 16 KiB: %d chats, %s", len(missed), got.Raw)
	}
	stillWorks(t, bob, "after")
	stillWorks(t, carol, "after")
}

// Recovery requests for a room nobody ever published to, and joins with
// an epoch the node never gave out, answer recovered:false at the room's
// position and change nothing else.
func TestRecoveryOfUnknownRoomsAndEpochs(t *testing.T) {
	a, _, _ := historyNodes(t, "fabric")
	c := a.dial("alice")
	for _, since := range []map[string]any{
		{"offset": 0, "epoch": "never"},
		{"offset": 9007199254740992, "epoch": "x"},
		{"offset": 3, "epoch": strings.Repeat("e", 200)},
	} {
		room := fmt.Sprint("empty-", len(fmt.Sprint(since)))
		missed, ack := joinAt(t, c, room, since)
		if len(missed) != 0 || ack.Recovered == nil || *ack.Recovered || ack.Offset != 0 || ack.Epoch == "" {
			t.Fatalf("since %v on a room with no publication: %d chats, %s", since, len(missed), ack.Raw)
		}
	}
	stillWorks(t, c, "after")
}

// A stream with no publication for --history-ttl is forgotten: the next
// publication starts a new epoch at offset 1, and a since of the old one
// recovers nothing (recovered:false).
func TestHistoryTTLStartsANewEpoch(t *testing.T) {
	for _, kind := range clusterKinds(t) {
		t.Run(kind, func(t *testing.T) {
			const ttl = 300 * time.Millisecond
			a, _, _ := historyNodes(t, kind, withActors(func(c *actors.Config) { c.HistoryTTL = ttl }))
			alice := a.dial("alice")
			_, ack := joinAt(t, alice, "r", nil)
			say(t, alice, "r", "m", 2)
			chatsUpTo(t, alice, "r", 2)
			time.Sleep(2 * ttl) // no publication for longer than the TTL
			say(t, alice, "r", "later", 1)
			e := chatsUpTo(t, alice, "r", 1)
			if last := e[len(e)-1]; last.Offset != 1 || last.Epoch == ack.Epoch {
				t.Fatalf("after the TTL: %s, want offset 1 of a new epoch (old %s)", last.Raw, ack.Epoch)
			}
			_ = alice.SendJSON(map[string]any{"type": "history", "room": "r", "id": "h"})
			if h := expect(t, alice, "history", isEvent("history")); len(h.Publications) != 1 || h.Epoch == ack.Epoch {
				t.Fatalf("history after the TTL: %s", h.Raw)
			}
		})
	}
}
