package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// On a Redis Cluster a dead node's room presence shares live in other
// slots than the script that reaps it, so a node clears them after the
// reap (clearShares). When that clear fails (a shard unreachable at that
// moment), a later reap, on any node, returns them again until they are
// gone: before, the dead node was no longer registered, and its shares
// and index stayed in Redis for good unless a node with its id started
// again.
func TestReapTakesUpAFailedClearOfSharesAgain(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	c := cl.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	k := newKeyspace("websocket", "survivor", 16)
	dead := newKeyspace("websocket", "dead", 16)
	rooms := make([]string, 12) // over every shard
	for i := range rooms {
		rooms[i] = fmt.Sprint("room-", i)
		if err := c.HSet(ctx, dead.roomShare(rooms[i], "dead"), "ada", 1).Err(); err != nil {
			t.Fatal(err)
		}
		c.SAdd(ctx, dead.roomNodes(rooms[i]), "dead")
		c.SAdd(ctx, dead.nodeRooms(), rooms[i])
	}
	c.SAdd(ctx, k.nodes, "dead") // registered, its alive key gone
	reap := func() []string {
		t.Helper()
		_, _, pairs, err := reapResult(reapScript.Run(ctx, c, []string{k.nodes}, reapArgs(&k, time.Second, "")...))
		if err != nil {
			t.Fatal(err)
		}
		return pairs
	}

	// The first reap returns the rooms; their clear fails (it is not run).
	if pairs := reap(); len(pairs) != 2*len(rooms) {
		t.Fatalf("first reap returned %d node, room pairs, want %d", len(pairs)/2, len(rooms))
	}
	// A later reap returns them again, and this time they are cleared.
	pairs := reap()
	if len(pairs) != 2*len(rooms) {
		t.Fatalf("the next reap returned %d node, room pairs, want the %d not cleared yet", len(pairs)/2, len(rooms))
	}
	if err := clearShares(ctx, c, &k, pairs); err != nil {
		t.Fatal(err)
	}
	for _, room := range rooms {
		if n, err := c.Exists(ctx, dead.roomShare(room, "dead")).Result(); err != nil || n != 0 {
			t.Fatalf("%s: the dead node's share is still there (%d, %v)", room, n, err)
		}
		if in, err := c.SIsMember(ctx, dead.roomNodes(room), "dead").Result(); err != nil || in {
			t.Fatalf("%s: the dead node is still among the room's nodes (%v, %v)", room, in, err)
		}
	}
	if n, err := c.Exists(ctx, dead.nodeRooms(), k.hub+":presence:clearing").Result(); err != nil || n != 0 {
		t.Fatalf("the dead node's index or the clearing set is left (%d keys, %v)", n, err)
	}
	// Once cleared, nothing is returned again.
	if pairs := reap(); len(pairs) != 0 {
		t.Fatalf("a reap after the clear returned %d pairs", len(pairs)/2)
	}
}
