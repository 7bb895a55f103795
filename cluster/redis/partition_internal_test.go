package redis

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/actors/port"
)

// cliSplit is how redis-cli --cluster create splits the slots over n
// primaries: contiguous ranges, each starting where the last ended
// (redis-cli.c, clusterManagerCommandCreate). It returns each range's
// last slot.
func cliSplit(n int) []int {
	per := float64(slots) / float64(n)
	var lasts []int
	first, cursor := 0, 0.0
	for i := range n {
		last := int(math.Round(cursor + per - 1))
		if last > slots || i == n-1 {
			last = slots - 1
		}
		last = max(last, first)
		lasts = append(lasts, last)
		first, cursor = last+1, cursor+per
	}
	return lasts
}

func shardOf(lasts []int, slot int) int {
	for i, l := range lasts {
		if slot <= l {
			return i
		}
	}
	return len(lasts) - 1
}

// TestPartitionSpread: the default partitions' tags spread over 3 to 16
// shards split as redis-cli splits them with at most 1.2 times the mean on
// any shard, and so do 10,000 rooms.
func TestPartitionSpread(t *testing.T) {
	k := newKeyspace("websocket", "n1", defaultPartitions)
	for i, tag := range k.parts {
		if want := (2*i + 1) * slots / (2 * defaultPartitions); keySlot(tag) != want {
			t.Fatalf("partition %d: tag %s in slot %d, want %d", i, tag, keySlot(tag), want)
		}
	}
	worstP, worstR := 0.0, 0.0
	defer func() { t.Logf("worst max/mean over 3-16 shards: partitions %.3f, rooms %.3f", worstP, worstR) }()
	for shards := 3; shards <= 16; shards++ {
		lasts := cliSplit(shards)
		parts := make([]int, shards)
		for _, tag := range k.parts {
			parts[shardOf(lasts, keySlot(tag))]++
		}
		rooms := make([]int, shards)
		const n = 10000
		for i := range n {
			room := fmt.Sprintf("room-%d", i)
			meta, _ := k.streamKeys(k.prefix + ":room:" + room)
			s := shardOf(lasts, keySlot(meta))
			if keySlot(meta) != keySlot(k.wireChannel(k.prefix+":room:"+room)) || keySlot(meta) != keySlot(k.roomNodes(room)) {
				t.Fatalf("%s: its stream, channel and presence keys are in different slots", room)
			}
			rooms[s]++
		}
		pm, rm := float64(defaultPartitions)/float64(shards), float64(n)/float64(shards)
		pmax, rmax := float64(maxOf(parts))/pm, float64(maxOf(rooms))/rm
		worstP, worstR = max(worstP, pmax), max(worstR, rmax)
		if pmax > 1.2 || rmax > 1.2 {
			t.Errorf("%d shards: partitions %v (max/mean %.2f), rooms %v (max/mean %.2f)", shards, parts, pmax, rooms, rmax)
		}
	}
}

func maxOf(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// TestKeySlotMatchesRedis checks keySlot against values CLUSTER KEYSLOT
// gives (Redis's cluster specification's examples).
func TestKeySlotMatchesRedis(t *testing.T) {
	for key, want := range map[string]int{
		"123456789": 12739, "foo": 12182, "{user1000}.following": 3443, "{user1000}.followers": 3443,
		"{}x": int(crc16("{}x") % slots), "a{b}c": keySlot("b"), "a{b": int(crc16("a{b") % slots),
	} {
		if got := keySlot(key); got != want {
			t.Errorf("keySlot(%q) = %d, want %d", key, got, want)
		}
	}
}

// The hub's names share one slot; a room's names share its partition's.
func TestClusterNamesShareSlots(t *testing.T) {
	k := newKeyspace("ws", "n1", 16)
	hub := keySlot(k.nodes)
	for _, name := range []string{k.alive, k.nodeUsers, k.reaped, k.userKey("u"), k.aliveKey("n2"), k.nodeRooms(),
		k.wireChannel(k.broadcast), k.wireChannel(k.nodeChan), k.wireChannel("ws:node:n2"), k.probeChannel(0)} {
		if keySlot(name) != hub {
			t.Errorf("%s: slot %d, not the hub's %d", name, keySlot(name), hub)
		}
	}
	for i := range 16 {
		if keySlot(k.probeChannel(1+i)) != keySlot(k.partChannel(i)) {
			t.Errorf("partition %d: its probe is in another slot than its channel", i)
		}
	}
	if k.brokerChannel(k.wireChannel(k.broadcast)) != k.broadcast || k.brokerChannel(k.wireChannel(k.nodeChan)) != k.nodeChan {
		t.Error("the hub's channels do not map back")
	}
}

// Cluster mode's configuration: credentials from the URL, the default
// partitions and one connection each, and one precise error per mistake.
func TestClusterConfig(t *testing.T) {
	c := Config{URL: "rediss://user:pw@ignored:1/0", ClusterAddrs: []string{"a:1", "b:2"}}
	opts, err := c.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if c.Partitions != defaultPartitions || c.PubSubConnections != 1+defaultPartitions || opts.Username != "user" || opts.TLSConfig == nil {
		t.Fatalf("config %+v, options %+v", c, opts)
	}
	if c := (Config{ClusterAddrs: []string{"a:1"}}); func() error { _, err := c.normalize(); return err }() != nil {
		t.Fatal("a cluster without URL refused: the URL gives only credentials there")
	}
	for name, bad := range map[string]Config{
		"sentinel too":   {ClusterAddrs: []string{"a:1"}, SentinelMaster: "m", Sentinels: []string{"s:1"}},
		"no cluster":     {URL: "redis://x:1/0", Partitions: 8},
		"database":       {URL: "redis://x:1/3", ClusterAddrs: []string{"a:1"}},
		"too many parts": {ClusterAddrs: []string{"a:1"}, Partitions: slots + 1},
		"negative parts": {ClusterAddrs: []string{"a:1"}, Partitions: -1},
	} {
		if _, err := bad.normalize(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// On a cluster a brace in the prefix or the node id would put a room's
// names in different slots: the node refuses to start, saying which.
func TestClusterRefusesBracesInNames(t *testing.T) {
	for _, host := range []port.BrokerHost{{Prefix: "a{b", NodeID: "n1"}, {Prefix: "websocket", NodeID: "n{1}"}} {
		r, err := New(Config{ClusterAddrs: []string{"127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		err = r.Start(host)
		if err == nil || !strings.Contains(err.Error(), "may not contain { or }") {
			t.Errorf("prefix %q, node %q: Start: %v", host.Prefix, host.NodeID, err)
		}
		_ = r.Close(context.Background())
	}
}
