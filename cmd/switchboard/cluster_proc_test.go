package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// Two node processes on a Redis Cluster (--redis-cluster, no --redis):
// a room message crosses from one to the other, with its place in the
// room's stream, and the room's presence counts both nodes' members. The
// flag excludes Sentinel, and --redis-partitions is checked.
func TestNodesOnRedisCluster(t *testing.T) {
	bin := buildNode(t)
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	seeds := strings.Join(cl.Addrs()[:2], ",")
	a := startProc(t, bin, "--redis-cluster", seeds, "--node-id", "a", "--redis-partitions", "32")
	b := startProc(t, bin, "--redis-cluster", seeds, "--node-id", "b", "--redis-partitions", "32")
	waitUntil(t, "both nodes ready on the cluster", 15*time.Second, func() bool { return readyStatus(a.base) == 200 && readyStatus(b.base) == 200 })
	ada := dialWelcome(t, a.ws("ada"))
	bo := dialWelcome(t, b.ws("bo"))
	joinRoom(t, ada, "lobby")
	joinRoom(t, bo, "lobby")
	if got := presenceOf(t, bo, "lobby"); got != "users 2 connections 2" {
		t.Fatalf("presence on the cluster: %s", got)
	}
	_ = ada.SendJSON(map[string]any{"type": "room_message", "room": "lobby", "content": "hello"})
	ev, err := bo.WaitFor(5*time.Second, func(e *wsclient.Event) bool { return e.Event == "chat" && e.Room == "lobby" })
	if err != nil || ev.Content != "hello" || ev.From != "ada" || ev.Offset != 1 {
		t.Fatalf("bo got %+v, %v: want ada's hello at offset 1", ev, err)
	}
	for _, args := range [][]string{
		{"--redis-cluster", seeds, "--redis-sentinel-master", "m", "--redis-sentinels", "x:1"},
		{"--redis-cluster", seeds, "--redis-partitions", "0"},
	} {
		if _, err := parseOptions(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Fatalf("%v accepted", args)
		}
	}
	o, err := parseOptions(nil, func(k string) string {
		if k == "SWITCHBOARD_REDIS_CLUSTER" {
			return seeds
		}
		return ""
	}, io.Discard)
	if err != nil || o.redisCluster != seeds || o.partitions != 128 {
		t.Fatalf("SWITCHBOARD_REDIS_CLUSTER: %+v, %v", o, err)
	}
}
