package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// A tiny room run on a 3-primary cluster: every message delivered once,
// and the figures name each primary, count the messages they carried and
// find every room's stream on one of them.
func TestRoomScenarioOnRedisCluster(t *testing.T) {
	goroutinesSettle(t)
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	rep := runBench(t, "--inprocess", "2", "--redis-cluster", strings.Join(c.Addrs(), ","), "--redis-partitions", "16",
		"--rooms", "6", "--members", "3", "--messages", "10", "room")
	if len(rep.Runs) != 1 || rep.Params["broker"] != "redis-cluster" || rep.Params["redis_partitions"] != 16 {
		t.Fatalf("runs %+v params %v", rep.Runs, rep.Params)
	}
	r := rep.Runs[0]
	checkDelivery(t, r, 18, 6*3*10)
	st := r.Redis
	if st == nil || len(st.Shards) != 3 {
		t.Fatalf("redis figures %+v, want 3 shards", st)
	}
	primaries := map[string]bool{}
	for _, p := range c.Primaries() {
		primaries[p.Addr()] = true
	}
	var msgs, rooms int64
	for _, sh := range st.Shards {
		if !primaries[sh.Addr] {
			t.Errorf("shard %s is not a primary of %v", sh.Addr, primaries)
		}
		msgs += sh.Messages
		rooms += sh.Rooms
	}
	// Every publication is SPUBLISHed once on its room's shard; probes
	// may add a few.
	if msgs < 60 || rooms != 6 || st.CPUPerMessage <= 0 || st.RoomsSpread < 1 || st.MessagesSpread < 1 {
		t.Errorf("messages %d (want at least 60), rooms %d (want 6), figures %+v", msgs, rooms, st)
	}
	if s := rep.Summary; s.RedisCPUPerMessage == nil || s.ShardRoomsSpread == nil {
		t.Errorf("summary without the Redis figures: %+v", s)
	}
}

// On one Redis the same figures come from that one server.
func TestRoomScenarioRedisFigures(t *testing.T) {
	goroutinesSettle(t)
	srv := redistest.Start(t)
	rep := runBench(t, "--inprocess", "1", "--redis", srv.URL(), "--rooms", "2", "--members", "2", "--messages", "5", "room")
	st := rep.Runs[0].Redis
	if st == nil || len(st.Shards) != 1 || st.Shards[0].Addr != srv.Addr() || st.Shards[0].Messages < 10 || st.Shards[0].Rooms != 2 {
		t.Fatalf("redis figures %+v", st)
	}
	if st.MessagesSpread != 1 || st.RoomsSpread != 1 {
		t.Errorf("one server: spreads %v %v, want 1", st.MessagesSpread, st.RoomsSpread)
	}
}

// --start-redis-cluster starts a cluster, runs on it and stops it.
func TestStartRedisCluster(t *testing.T) {
	requireClusterTools(t)
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "2", "--start-redis-cluster", "3", "--clients", "6", "--messages", "10", "broadcast")
	r := rep.Runs[0]
	checkDelivery(t, r, 6, 5*10)
	if r.Redis == nil || len(r.Redis.Shards) != 3 || rep.Params["redis_cluster_started"] != 3 {
		t.Fatalf("redis figures %+v params %v", r.Redis, rep.Params)
	}
	// Chat is the hub's traffic: one shard carries all of it.
	if r.Redis.MessagesSpread < 2.9 {
		t.Errorf("broadcast spread %v, want 3 (one shard of 3)", r.Redis.MessagesSpread)
	}
	for _, sh := range r.Redis.Shards {
		if c, err := net.DialTimeout("tcp", sh.Addr, time.Second); err == nil {
			c.Close()
			t.Errorf("cluster node %s still listens after the run", sh.Addr)
		}
	}
}

// requireClusterTools skips without redis-server and redis-cli, unless CI
// is set.
func requireClusterTools(t *testing.T) {
	t.Helper()
	_, err := redistest.Binary()
	if err == nil {
		_, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		if ci := os.Getenv("CI"); ci != "" && ci != "false" {
			t.Fatalf("%v (CI=%s, so this fails instead of skipping)", err, ci)
		}
		t.Skip(err)
	}
}

func TestClusterFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--redis-cluster", "127.0.0.1:7000", "room"},                                                   // no --inprocess
		{"--inprocess", "1", "--start-redis-cluster", "2", "room"},                                      // too few primaries
		{"--inprocess", "1", "--start-redis-cluster", "3", "--redis-cluster", "127.0.0.1:7000", "room"}, // both
		{"--inprocess", "1", "--start-redis-cluster", "3", "--redis", "redis://127.0.0.1:1/0", "room"},  // a password it cannot have
		{"--inprocess", "1", "--redis", "redis://127.0.0.1:1/0", "--redis-partitions", "8", "room"},     // partitions without a cluster
		{"--inprocess", "1", "--redis-cluster", "127.0.0.1:7000", "--redis-partitions", "-1", "room"},
	} {
		if _, err := parseOptions(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	o, err := parseOptions([]string{"--inprocess", "2", "--redis-cluster", " 127.0.0.1:7000, 127.0.0.1:7001", "room"}, &bytes.Buffer{})
	if err != nil || len(o.redisCluster) != 2 || o.singleRedis() != "" || !o.clustered() {
		t.Errorf("cluster options %+v %v", o, err)
	}
}

func TestParsePrimaries(t *testing.T) {
	text := "" +
		"c1 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922\n" +
		"c2 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460\n" +
		"c3 127.0.0.1:7004@17004 slave c1 0 1 2 connected\n" +
		"c4 127.0.0.1:7005@17005 master,fail - 0 1 5 disconnected\n" +
		"c5 127.0.0.1:7003@17003,host master - 0 1 3 connected 10923-16383\n"
	got, err := parsePrimaries(text)
	want := []string{"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("primaries %v %v, want %v", got, err, want)
	}
	if _, err := parsePrimaries("c1 127.0.0.1:7001@17001 slave c2 0 0 1 connected\n"); err == nil {
		t.Error("no primary: want an error")
	}
	if m := maxMean([]float64{1, 2, 3}); m != 1.5 {
		t.Errorf("maxMean %v", m)
	}
}
