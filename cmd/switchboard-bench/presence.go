package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PresenceStats describe the presence scenario: Q presence queries, one at
// a time, about one room of M members spread over the nodes, from a client
// that is not a member.
type PresenceStats struct {
	Members int   `json:"members"` // connections in the room, one user each unless --users says otherwise
	Queries int   `json:"queries"`
	Answers int64 `json:"answers"` // answers whose counts were the room's
	// Wrong counts answers with other counts than the room's users and
	// connections; Failed queries that got an error or no answer in time.
	Wrong   int64   `json:"wrong"`
	Failed  int64   `json:"failed"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"queries_per_sec"`
	Latency Latency `json:"latency"` // of one query, sent to answer received
	// AnswerBytes is the size of one answer frame (the member list is
	// capped at 1,000 entries by the protocol).
	AnswerBytes int `json:"answer_bytes"`
	// RedisCPUPerQuery is Redis's CPU time (INFO CPU) during the queries
	// divided by the queries, in microseconds; only with --redis.
	RedisCPUPerQuery *float64 `json:"redis_cpu_us_per_query,omitempty"`
	// RedisCommands are the Redis commands that ran during the queries
	// (INFO commandstats); only with --redis.
	RedisCommands map[string]RedisCommand `json:"redis_commands,omitempty"`
	// ServerCPUPerQuery is the nodes' CPU time likewise (--spawn only).
	ServerCPUPerQuery float64 `json:"server_cpu_us_per_query,omitempty"`
}

// presenceScenario: --members connections, member i on node i mod N, join
// one room; once the nodes are quiet, one more client on the last node (not
// a member) sends --queries presence queries about the room, each after the
// answer to the one before, and checks every answer's counts.
func (r *run) presenceScenario(ctx context.Context) (*Result, error) {
	o := r.o
	n := len(r.t.urls)
	users := o.members
	if o.users > 0 {
		users = min(o.users, o.members)
	}
	res := r.result(o.members + 1)
	st := &PresenceStats{Members: o.members, Queries: o.queries}
	res.Presence = st
	specs := make([]clientSpec, 0, o.members+1)
	for i := 0; i < o.members; i++ {
		specs = append(specs, clientSpec{user: r.userID(i), node: i % n, room: 0})
	}
	specs = append(specs, clientSpec{user: "b" + r.runID + "-asker", node: n - 1, room: -1})
	all, cs, err := r.connect(ctx, specs, nil)
	res.Connect = cs
	defer func() { r.closeAll(all) }()
	if err != nil {
		return res, err
	}
	if cs.Failed > 0 {
		return res, fmt.Errorf("%d of %d connections failed", cs.Failed, len(specs))
	}
	if err := r.joinAll(ctx, all[:o.members]); err != nil {
		return res, err
	}
	r.quiesce(ctx, 60*time.Second)
	asker := all[o.members]
	room := r.roomName(0)
	// The room's presence reaches the broker asynchronously: wait, bounded,
	// until a query sees every member before measuring.
	r.setPhase("waiting for the room's presence", nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ev, err := r.askPresence(ctx, asker, room, "w")
		if err == nil && ev.users == users && ev.connections == o.members {
			st.AnswerBytes = ev.size
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("presence never counted %d users and %d connections (last: %+v, %v)", users, o.members, ev, err)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}

	r.setPhase("querying", nil)
	redis0, redisErr := sampleRedis(ctx, o.singleRedis())
	r.startCPU()
	var lat histogram
	start := time.Now()
	for q := 0; q < o.queries && ctx.Err() == nil; q++ {
		t0 := time.Now()
		ev, err := r.askPresence(ctx, asker, room, "q"+strconv.Itoa(q))
		switch {
		case err != nil:
			st.Failed++
		case ev.users != users || ev.connections != o.members:
			st.Wrong++
		default:
			st.Answers++
			lat.Record(time.Since(t0))
		}
	}
	st.Seconds = time.Since(start).Seconds()
	redis1, redisErr1 := sampleRedis(ctx, o.singleRedis())
	done := st.Answers + st.Wrong
	if done > 0 {
		st.PerSec = float64(done) / st.Seconds
		st.ServerCPUPerQuery = r.cpuPerDelivery(done)
		if redis0 != nil && redis1 != nil {
			cpu, cmds := redis0.since(redis1)
			v := cpu.Seconds() * 1e6 / float64(done)
			st.RedisCPUPerQuery, st.RedisCommands = &v, cmds
		}
	}
	st.Latency = lat.Summary()
	res.Seconds = st.Seconds
	res.Lost = st.Failed + st.Wrong
	clientTotals(res, all)
	return res, errors.Join(redisErr, redisErr1)
}

// askPresence sends one presence query and waits for its answer.
func (r *run) askPresence(ctx context.Context, c *loadClient, room, id string) (ctlEvent, error) {
	b := []byte(`{"type":"presence","room":"` + room + `","id":"` + id + `"}`)
	if err := c.send(b); err != nil {
		return ctlEvent{}, err
	}
	return c.await(ctx, r.o.timeout, "presence", id)
}

// prefixPresence starts a presence answer; the id follows.
var prefixPresence = []byte(`{"event":"presence","id":"`)

// parsePresence reads the id and the counts of a presence answer.
func parsePresence(b []byte) ctlEvent {
	ev := ctlEvent{kind: "presence", id: quotedPrefix(b[len(prefixPresence):]), size: len(b)}
	ev.users = intAfter(b, []byte(`"users":`))
	ev.connections = intAfter(b, []byte(`"connections":`))
	return ev
}

// intAfter is the decimal number right after the first mark in b, or -1.
func intAfter(b, mark []byte) int {
	i := bytes.Index(b, mark)
	if i < 0 {
		return -1
	}
	p := b[i+len(mark):]
	n, j := 0, 0
	for ; j < len(p) && p[j] >= '0' && p[j] <= '9'; j++ {
		n = n*10 + int(p[j]-'0')
	}
	if j == 0 {
		return -1
	}
	return n
}

// summarizePresence fills the presence medians of s from runs.
func summarizePresence(s *Summary, runs []*Result) {
	var p50, p99, redisCPU []float64
	for _, r := range runs {
		st := r.Presence
		if st == nil || st.Answers == 0 {
			continue
		}
		p50, p99 = append(p50, st.Latency.P50), append(p99, st.Latency.P99)
		if st.RedisCPUPerQuery != nil {
			redisCPU = append(redisCPU, *st.RedisCPUPerQuery)
		}
	}
	s.PresenceP50, s.PresenceP99, s.RedisCPUPerQuery = stat(p50), stat(p99), stat(redisCPU)
}

// writePresence appends a presence run's figures to its line.
func writePresence(b *strings.Builder, st *PresenceStats) {
	fmt.Fprintf(b, " members=%d queries=%d answers=%d wrong=%d failed=%d answer=%dB %.0f queries/s p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms",
		st.Members, st.Queries, st.Answers, st.Wrong, st.Failed, st.AnswerBytes, st.PerSec, st.Latency.P50, st.Latency.P90, st.Latency.P99, st.Latency.Max)
	if st.ServerCPUPerQuery > 0 {
		fmt.Fprintf(b, " server-cpu=%.1fus/query", st.ServerCPUPerQuery)
	}
	if v := st.RedisCPUPerQuery; v != nil {
		fmt.Fprintf(b, " redis-cpu=%.1fus/query", *v)
	}
}
