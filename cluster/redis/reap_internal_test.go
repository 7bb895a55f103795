package redis

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/switchboard-rt/switchboard/actors/wire"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// TestReapScriptPublishesWireEnvelopes runs the reap script in a real
// redis-server: for each user of a dead node it publishes the envelope
// wire.UserGoneTemplate describes, filled in by Lua, and a node decodes
// it, whatever characters the ids hold. (Lua's cjson escapes a few
// characters differently, "/" as "\/" for one: the bytes may differ from
// Go's, the values do not.)
func TestReapScriptPublishesWireEnvelopes(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k := newKeyspace("websocket", "survivor", 0)
	dead, users := `dead "node"/é`, []string{"ada", `q"u\o/te`, "ünï \u2028"}
	sub := c.Subscribe(ctx, k.broadcast)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		c.SAdd(ctx, "websocket:presence:node:"+dead, u)
	}
	c.SAdd(ctx, k.nodes, dead)
	reaped, gone, rooms, err := reapResult(reapScript.Run(ctx, c, []string{k.nodes}, reapArgs(&k, time.Second, "")...))
	if err != nil || reaped != 1 || gone != int64(len(users)) || len(rooms) != 0 {
		t.Fatalf("reap: %d %d %v, %v", reaped, gone, rooms, err)
	}
	announced := map[string]bool{}
	for range users {
		m, err := sub.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		data := m.(*goredis.Message).Payload
		env, err := wire.DecodeEnvelope([]byte(data))
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		var ev struct {
			Event  string `json:"event"`
			UserID string `json:"user_id"`
		}
		if json.Unmarshal(env.Payload, &ev) != nil || ev.Event != "user_disconnected" || ev.UserID != env.SenderID ||
			env.Type != wire.EnvBroadcast || env.Node != dead || !wire.EncodedFrom(data, dead) {
			t.Fatalf("%s decodes to %+v; want a broadcast from %q, user_disconnected of its sender", data, env, dead)
		}
		announced[env.SenderID] = true
	}
	for _, u := range users {
		if !announced[u] {
			t.Errorf("no user_disconnected for %q (got %v)", u, announced)
		}
	}
}
