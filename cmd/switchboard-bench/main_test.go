package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/cluster/redistest"
)

// runBench runs the tool with args against in-process servers and returns
// its report, checking that the last stdout line is the same report as JSON.
func runBench(t *testing.T, args ...string) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	rep, err := benchMain(ctx, append([]string{"--quiet", "--duration", "30s", "--drain", "5s"}, args...), &out, &errOut)
	if err != nil {
		t.Fatalf("bench %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var parsed Report
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &parsed); err != nil {
		t.Fatalf("last line is not the JSON report: %v\n%s", err, out.String())
	}
	if parsed.Scenario != rep.Scenario || len(parsed.Runs) != len(rep.Runs) || len(parsed.Baseline) != len(rep.Baseline) {
		t.Fatalf("JSON line differs from the report: %s", lines[len(lines)-1])
	}
	return rep
}

// checkDelivery checks that a fan-out run delivered every message once.
func checkDelivery(t *testing.T, r *Result, clients int, expected int64) {
	t.Helper()
	if r.Clients != clients || r.Connect == nil || r.Connect.Failed != 0 {
		t.Errorf("%s: clients %d (want %d), connect %+v", r.Server, r.Clients, clients, r.Connect)
	}
	if r.Expected != expected || r.Received != expected || r.Lost != 0 {
		t.Errorf("%s: expected %d received %d lost %d, want %d each and no loss", r.Server, r.Expected, r.Received, r.Lost, expected)
	}
	if r.Errors != 0 || r.OutOfOrder != 0 || r.Truncated || r.Closed != 0 {
		t.Errorf("%s: errors %d out-of-order %d truncated %v closed %d", r.Server, r.Errors, r.OutOfOrder, r.Truncated, r.Closed)
	}
	if r.Latency == nil || r.Latency.N != uint64(expected) {
		t.Errorf("%s: latency samples %+v, want %d", r.Server, r.Latency, expected)
	}
}

// goroutinesSettle checks, when the test and its cleanups are done, that the
// goroutine count came back to what it was.
func goroutinesSettle(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestRoomScenarioWithBaseline(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--baseline", "--rooms", "3", "--members", "4", "--messages", "25", "--window", "4", "room")
	if len(rep.Runs) != 1 || len(rep.Baseline) != 1 {
		t.Fatalf("runs %d baseline %d, want 1 and 1", len(rep.Runs), len(rep.Baseline))
	}
	// Every member, the publisher included, gets every message of its room.
	checkDelivery(t, rep.Runs[0], 12, 3*4*25)
	checkDelivery(t, rep.Baseline[0], 12, 3*4*25)
	if rep.Runs[0].Sent != 75 || rep.Summary.Ratio == nil || rep.Summary.Lost != 0 {
		t.Errorf("sent %d, ratio %+v, lost %d", rep.Runs[0].Sent, rep.Summary.Ratio, rep.Summary.Lost)
	}
}

func TestRoomScenarioTwoNodesAtRate(t *testing.T) {
	goroutinesSettle(t)
	// Members alternate between two nodes, so room traffic crosses the fabric.
	rep := runBench(t, "--inprocess", "2", "--rooms", "2", "--members", "3", "--messages", "10", "--rate", "500", "room")
	if len(rep.Runs) != 1 || rep.Runs[0].Nodes != 2 {
		t.Fatalf("runs %+v", rep.Runs)
	}
	checkDelivery(t, rep.Runs[0], 6, 2*3*10)
}

func TestRoomScenarioTwoNodesOverRedis(t *testing.T) {
	goroutinesSettle(t)
	srv := redistest.Start(t)
	rep := runBench(t, "--inprocess", "2", "--redis", srv.URL(), "--rooms", "2", "--members", "4", "--messages", "20", "room")
	if len(rep.Runs) != 1 || rep.Runs[0].Nodes != 2 || rep.Params["broker"] != "redis" {
		t.Fatalf("runs %+v params %v", rep.Runs, rep.Params)
	}
	checkDelivery(t, rep.Runs[0], 8, 2*4*20)
}

func TestBroadcastScenario(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--baseline", "--clients", "6", "--messages", "20", "broadcast")
	// Chat reaches every connection but the sender's.
	checkDelivery(t, rep.Runs[0], 6, 5*20)
	checkDelivery(t, rep.Baseline[0], 6, 5*20)
}

func TestIdleScenario(t *testing.T) {
	goroutinesSettle(t)
	// Two repeats: each gets a node of its own.
	rep := runBench(t, "--inprocess", "1", "--repeat", "2", "--clients", "20", "--hold", "50ms", "--source-ips", "127.0.0.1-127.0.0.2", "idle")
	if len(rep.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Idle == nil || r.Idle.Connections != 20 || r.Lost != 0 || r.Closed != 0 {
			t.Fatalf("idle: %+v lost %d closed %d", r.Idle, r.Lost, r.Closed)
		}
		if !r.Idle.IncludesClients || !r.Idle.AfterGC {
			t.Errorf("in-process idle run must say its RSS includes the clients and was sampled after GC: %+v", r.Idle)
		}
	}
}

// With --idle-rooms every connection is in a room while the memory is
// sampled, on both servers.
func TestIdleScenarioInRooms(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--baseline", "--clients", "20", "--idle-rooms", "4", "--hold", "50ms", "idle")
	for _, r := range append(rep.Runs, rep.Baseline...) {
		if r.Idle == nil || r.Idle.Connections != 20 || r.Idle.Rooms != 4 || r.Lost != 0 || r.Errors != 0 {
			t.Fatalf("%s idle in rooms: %+v lost %d errors %d", r.Server, r.Idle, r.Lost, r.Errors)
		}
	}
}

func TestChurnScenario(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--baseline", "--cycles", "30", "--concurrency", "3", "churn")
	for _, r := range append(rep.Runs, rep.Baseline...) {
		if r.Churn == nil || r.Churn.Cycles != 30 || r.Churn.Failed != 0 || r.Churn.Leaked != 0 {
			t.Errorf("%s churn: %+v", r.Server, r.Churn)
		}
	}
}

// checkRecovery checks that every client of a recover run recovered exactly
// the missed publications.
func checkRecovery(t *testing.T, r *Result, clients int, missed int64) {
	t.Helper()
	st := r.Recovery
	if st == nil || st.Clients != clients || st.Missed != missed {
		t.Fatalf("recovery %+v, want %d clients that missed %d each", st, clients, missed)
	}
	if st.Recovered != int64(clients) || st.NotRecovered != 0 || st.Wrong != 0 || st.Failed != 0 {
		t.Errorf("recovered %d not-recovered %d wrong %d failed %d, want %d recovered", st.Recovered, st.NotRecovered, st.Wrong, st.Failed, clients)
	}
	if st.Publications != int64(clients)*missed || st.Lost != 0 || st.Disordered != 0 || st.LiveLost != 0 || r.Lost != 0 || r.Errors != 0 {
		t.Errorf("publications %d (want %d) lost %d disordered %d live-lost %d errors %d", st.Publications, int64(clients)*missed, st.Lost, st.Disordered, st.LiveLost, r.Errors)
	}
	if st.Latency.N != uint64(clients) || st.PerSec <= 0 {
		t.Errorf("latency samples %d (want %d), %.0f recovered/s", st.Latency.N, clients, st.PerSec)
	}
}

func TestRecoverScenario(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--repeat", "2", "--clients", "12", "--rooms", "3", "--messages", "10", "recover")
	if len(rep.Runs) != 2 || rep.Summary.RecoveredPerSec == nil || rep.Summary.RecoveredPerSec.N != 2 {
		t.Fatalf("runs %d, summary %+v", len(rep.Runs), rep.Summary)
	}
	for _, r := range rep.Runs {
		checkRecovery(t, r, 12, 10)
	}
	// History shorter than what the clients missed: every join with since is
	// answered recovered:false, none of them with a silent gap.
	rep = runBench(t, "--inprocess", "1", "--history-size", "5", "--clients", "12", "--rooms", "3", "--messages", "10", "recover")
	st := rep.Runs[0].Recovery
	if st.NotRecovered != 12 || st.Recovered != 0 || st.Wrong != 0 || st.Publications != 0 || st.Failed != 0 || rep.Summary.NotRecovered != 12 {
		t.Errorf("history 5 < 10 missed: %+v, summary not-recovered %d", st, rep.Summary.NotRecovered)
	}
}

func TestRecoverScenarioTwoNodesOverRedis(t *testing.T) {
	goroutinesSettle(t)
	srv := redistest.Start(t)
	// Clients rejoin on the node they did not leave, through Redis's streams.
	rep := runBench(t, "--inprocess", "2", "--redis", srv.URL(), "--clients", "10", "--rooms", "2", "--messages", "8", "recover")
	checkRecovery(t, rep.Runs[0], 10, 8)
	st := rep.Runs[0].Recovery
	if st.RedisCPUPerRecovery == nil || rep.Summary.RedisCPUPerRecovery == nil || st.RedisCommands["evalsha"].Calls < 10 {
		t.Errorf("no Redis CPU per recovery, or fewer scripts than recoveries: %+v", st)
	}
}

func TestPresenceScenario(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--members", "20", "--queries", "10", "presence")
	st := rep.Runs[0].Presence
	if st == nil || st.Answers != 10 || st.Wrong != 0 || st.Failed != 0 || st.Latency.N != 10 || rep.Summary.PresenceP99 == nil {
		t.Fatalf("presence: %+v", st)
	}
}

// Over Redis the members are on two nodes and the asker on one of them: each
// answer counts both nodes' shares, and Redis's CPU is charged per query.
func TestPresenceScenarioTwoNodesOverRedis(t *testing.T) {
	goroutinesSettle(t)
	srv := redistest.Start(t)
	rep := runBench(t, "--inprocess", "2", "--redis", srv.URL(), "--members", "20", "--users", "5", "--queries", "10", "presence")
	st := rep.Runs[0].Presence
	if st == nil || st.Answers != 10 || st.Wrong != 0 || st.Failed != 0 {
		t.Fatalf("presence over Redis: %+v", st)
	}
	if st.RedisCPUPerQuery == nil || st.RedisCommands["evalsha"].Calls < 10 {
		t.Errorf("no Redis CPU per query, or fewer scripts than queries: %+v", st)
	}
}

// judgeRecovery counts a client that missed a publication, or got one twice
// or out of order, under recovered:true, as a wrong recovery.
func TestJudgeRecovery(t *testing.T) {
	since := recoverFrom{offset: 10, epoch: "e1"}
	top := recoverFrom{offset: 20, epoch: "e1"}
	ack := func(rec int8) ctlEvent { return ctlEvent{kind: "ack", offset: 20, epoch: "e1", recovered: rec} }
	for _, c := range []struct {
		name string
		oc   herdOutcome
		want RecoveryStats
		ok   bool
	}{
		{"exact", herdOutcome{ack: ack(ackRecovered), chats: 10, last: 20}, RecoveryStats{Recovered: 1, Publications: 10}, true},
		{"one missed", herdOutcome{ack: ack(ackRecovered), chats: 9, gaps: 1, last: 20}, RecoveryStats{Wrong: 1, Publications: 9, Lost: 1, Disordered: 1}, false},
		{"last missed", herdOutcome{ack: ack(ackRecovered), chats: 9, last: 19}, RecoveryStats{Wrong: 1, Publications: 9, Lost: 1}, false},
		{"one twice", herdOutcome{ack: ack(ackRecovered), chats: 11, gaps: 1, last: 20}, RecoveryStats{Wrong: 1, Publications: 11, Disordered: 2}, false},
		{"other epoch", herdOutcome{ack: ack(ackRecovered), chats: 10, epochs: 1, last: 20}, RecoveryStats{Wrong: 1, Publications: 10, Disordered: 1}, false},
		{"stale ack", herdOutcome{ack: ctlEvent{offset: 19, epoch: "e1", recovered: ackRecovered}, chats: 10, last: 20}, RecoveryStats{Wrong: 1, Publications: 10}, false},
		{"not recovered", herdOutcome{ack: ack(ackNotRecovered)}, RecoveryStats{NotRecovered: 1}, false},
	} {
		var st RecoveryStats
		if ok := judgeRecovery(&st, since, top, c.oc); ok != c.ok || !reflect.DeepEqual(st, c.want) {
			t.Errorf("%s: %v %+v, want %v %+v", c.name, ok, st, c.ok, c.want)
		}
	}
}

// The read loop follows the offsets: a hole, a repeat and a new epoch are
// each counted.
func TestStreamPosition(t *testing.T) {
	var p streamPos
	for _, off := range []string{"1", "2", "4", "4"} {
		p.onPosition([]byte(`{"event":"chat","from":"a","room":"r","content":"x","offset":` + off + `,"epoch":"e1"}`))
	}
	p.onPosition([]byte(`{"event":"chat","from":"a","room":"r","content":"x","offset":1,"epoch":"e2"}`))
	if p.chats.Load() != 5 || p.gaps.Load() != 3 || p.epochs.Load() != 1 || p.lastOffset.Load() != 1 || *p.epoch.Load() != "e2" {
		t.Errorf("chats %d gaps %d epochs %d last %d epoch %s", p.chats.Load(), p.gaps.Load(), p.epochs.Load(), p.lastOffset.Load(), *p.epoch.Load())
	}
	var ev ctlEvent
	parseAck([]byte(`{"event":"ack","id":"r1","room":"x","offset":42,"epoch":"k3","recovered":false}`), &ev)
	if ev.offset != 42 || ev.epoch != "k3" || ev.recovered != ackNotRecovered {
		t.Errorf("ack %+v", ev)
	}
	info := "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:0.250000\r\nused_cpu_sys_children:9\r\n" +
		"# Commandstats\r\ncmdstat_xrange:calls=1000,usec=53407,usec_per_call=53.41,rejected_calls=0,failed_calls=0\r\n"
	cpu, err := parseRedisCPU(info)
	if err != nil || cpu != 1750*time.Millisecond {
		t.Errorf("redis cpu %v %v", cpu, err)
	}
	if c := parseCommandStats(info); len(c) != 1 || c["xrange"] != (RedisCommand{Calls: 1000, Usec: 53407}) {
		t.Errorf("commandstats %+v", c)
	}
}

func TestRecoverDefaults(t *testing.T) {
	o, err := parseOptions([]string{"--inprocess", "1", "recover"}, &bytes.Buffer{})
	if err != nil || o.messages != 100 || o.clients != 1000 {
		t.Fatalf("recover defaults: %+v %v", o, err)
	}
}

func TestRefusesUnboundedRuns(t *testing.T) {
	for _, args := range [][]string{
		{"--inprocess", "1", "--duration", "0", "room"},
		{"--inprocess", "1", "--duration", "2h", "room"},
		{"--inprocess", "1", "--messages", "0", "room"},
		{"--inprocess", "1", "--rooms", "1000", "--members", "1000", "room"},
		{"--inprocess", "1", "--cycles", "0", "churn"},
		{"--inprocess", "1", "--hold", "2m", "--duration", "1m", "idle"},
		{"room"},                         // no target
		{"--inprocess", "1", "nonsense"}, // unknown scenario
		{"--nodes", "http://127.0.0.1:1", "room"},     // not a ws:// URL
		{"--inprocess", "1", "--baseline", "recover"}, // the baseline keeps no history
		{"--inprocess", "1", "--history-size", "0", "recover"},
		{"--inprocess", "1", "--clients", "2", "--rooms", "3", "recover"},
		{"--inprocess", "1", "--connection-events", "some", "idle"},
	} {
		if _, err := parseOptions(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseOptions(%v) accepted", args)
		}
	}
}

// --connection-events reaches the nodes the tool starts and the report's
// parameters, with the users-per-connection setting beside it.
func TestConnectionEventsParam(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--connection-events", "off", "--clients", "20", "--hold", "50ms", "idle")
	if rep.Params["connection_events"] != "off" || rep.Params["users"] != 0 || rep.Params["history_size"] != 100 {
		t.Fatalf("params %v: want connection_events off, users 0, history_size 100", rep.Params)
	}
	if r := rep.Runs[0]; r.Idle == nil || r.Idle.Connections != 20 || r.Errors != 0 || !r.Idle.Settled || r.Idle.SettledSeconds <= 0 {
		t.Fatalf("idle with connection events off: %+v errors %d (want settled, with its time)", r.Idle, r.Errors)
	}
	// 20 welcomes; with connection events on, also user_connected from
	// each of the 20 users to those before it, 190 in all.
	if got := rep.Runs[0].Idle.FramesOut; got != 20 {
		t.Errorf("off: %d frames while connecting, want 20", got)
	}
	on := runBench(t, "--inprocess", "1", "--clients", "20", "--hold", "50ms", "idle")
	if got := on.Runs[0].Idle.FramesOut; got != 210 || on.Params["connection_events"] != "all" {
		t.Errorf("all: %d frames while connecting, want 210", got)
	}
	o, err := parseOptions([]string{"--inprocess", "1", "room"}, &bytes.Buffer{})
	if err != nil || o.connEvents != "all" {
		t.Fatalf("default --connection-events %q (%v), want all", o.connEvents, err)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 500}, {0.9, 900}, {0.99, 990}} {
		if got := h.Quantile(c.q); got < c.want*0.96 || got > c.want*1.04 {
			t.Errorf("q%.2f = %.1f ms, want %.0f within 4%%", c.q, got, c.want)
		}
	}
	if h.Max() != 1000 || h.Count() != 1000 {
		t.Errorf("max %.1f count %d", h.Max(), h.Count())
	}
}

func TestSourceIPRange(t *testing.T) {
	ips, err := parseSourceIPs("127.0.0.2-127.0.0.50")
	if err != nil || len(ips) != 49 || ips[0] != "127.0.0.2" || ips[48] != "127.0.0.50" {
		t.Fatalf("range: %v %v", ips, err)
	}
	if _, err := parseSourceIPs("127.0.0.9-127.0.0.2"); err == nil {
		t.Error("reversed range accepted")
	}
}
