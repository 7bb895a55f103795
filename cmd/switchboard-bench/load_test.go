package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the tool when a test starts it
// as a child: --processes runs this executable with "worker", --spawn with
// "serve".
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "worker" || os.Args[1] == "serve") {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Three rooms of 50 over two load processes: the middle room's members are
// split between them, its publisher in the first; the parent holds no
// client and merges the counts and the latency histograms.
func TestRoomScenarioTwoProcesses(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--baseline", "--processes", "2", "--source-ips", "127.0.0.1-127.0.0.4",
		"--rooms", "3", "--members", "50", "--messages", "20", "--window", "4", "room")
	if len(rep.Runs) != 1 || len(rep.Baseline) != 1 {
		t.Fatalf("runs %d baseline %d, want 1 and 1", len(rep.Runs), len(rep.Baseline))
	}
	for _, r := range []*Result{rep.Runs[0], rep.Baseline[0]} {
		checkDelivery(t, r, 150, 3*50*20)
		if r.Processes != 2 || r.Sent != 60 || r.Connect.Latency.N != 150 {
			t.Errorf("%s: processes %d sent %d connect samples %d, want 2, 60, 150", r.Server, r.Processes, r.Sent, r.Connect.Latency.N)
		}
	}
	if rep.Params["processes"] != 2 || rep.Summary.Ratio == nil {
		t.Errorf("params %v ratio %+v", rep.Params, rep.Summary.Ratio)
	}
}

// Broadcast over two load processes, open-loop at a rate: the sender's
// process and the other one both count their receivers' deliveries.
func TestBroadcastTwoProcessesAtRate(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--processes", "2", "--clients", "200", "--messages", "10", "--rate", "100", "broadcast")
	checkDelivery(t, rep.Runs[0], 200, 199*10)
	if rep.Params["closed_loop"] != false {
		t.Errorf("params %v: want closed_loop false at --rate without --window", rep.Params)
	}
}

// --worker-command starts each load process through sh with $SBB_WORKER
// set, as one would through ssh on other machines.
func TestWorkerCommand(t *testing.T) {
	goroutinesSettle(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := `test "$SBB_WORKER" -ge 0 && exec ` + shellQuote(exe)
	rep := runBench(t, "--inprocess", "1", "--processes", "2", "--worker-command", cmd, "--connection-events", "off", "--clients", "50", "--messages", "5", "broadcast")
	checkDelivery(t, rep.Runs[0], 50, 49*5)
}

func TestIdleTwoProcesses(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--processes", "2", "--connection-events", "off", "--clients", "101", "--idle-rooms", "3", "--hold", "50ms", "idle")
	r := rep.Runs[0]
	if r.Idle == nil || r.Idle.Connections != 101 || r.Idle.Rooms != 3 || r.Processes != 2 || r.Connect.Failed != 0 || r.Lost != 0 || r.Closed != 0 {
		t.Fatalf("idle over two processes: %+v %+v lost %d closed %d", r.Idle, r.Connect, r.Lost, r.Closed)
	}
}

// --offered measures the bare server's peak, then runs each level against
// both servers, paired, and summarizes per level.
func TestOfferedLevels(t *testing.T) {
	goroutinesSettle(t)
	rep := runBench(t, "--inprocess", "1", "--baseline", "--offered", "0.5,2k", "--level-time", "300ms",
		"--rooms", "2", "--members", "5", "--messages", "40", "room")
	if len(rep.Peak) != 1 || rep.Summary.PeakDeliveriesPerSec == nil || len(rep.Runs) != 2 || len(rep.Baseline) != 2 {
		t.Fatalf("peak %d runs %d baseline %d", len(rep.Peak), len(rep.Runs), len(rep.Baseline))
	}
	peak := rep.Summary.PeakDeliveriesPerSec.Median
	levels := rep.Summary.Levels
	if len(levels) != 2 || levels[0].Offered != 0.5*peak || levels[1].Offered != 2000 {
		t.Fatalf("levels %+v, want 0.5 x %.0f and 2000", levels, peak)
	}
	for _, l := range levels {
		if l.Switchboard == nil || l.Baseline == nil || l.P99Ratio == nil || l.Switchboard.Lost != 0 || l.Baseline.Lost != 0 {
			t.Errorf("level %s: %+v", l.Level, l)
		}
	}
	// 2k deliveries/s over 2 rooms of 5: 200 messages/s per publisher, 60
	// each in 300 ms.
	for _, r := range []*Result{rep.Runs[1], rep.Baseline[1]} {
		checkDelivery(t, r, 10, 2*5*60)
	}
	if rep.Summary.Lost != 0 || rep.Summary.DeliveriesPerSec != nil {
		t.Errorf("summary %+v: want no loss and figures per level only", rep.Summary)
	}
}

// At --rate a message is stamped with its time in the schedule, not with
// when it could leave: a publisher that is behind sends at once, and the
// delay is counted in the latency (no coordinated omission). The window
// does not hold it back unless --window is given.
func TestPaceIsOpenLoop(t *testing.T) {
	o, err := parseOptions([]string{"--inprocess", "1", "--rate", "10", "--window", "1", "--drain", "50ms", "room"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	r := &run{o: o}
	rs := newRunState(10, []int32{2})
	rs.start = time.Now().Add(-time.Second) // a second behind schedule
	ctx := context.Background()

	o.windowSet = false
	for seq := 0; seq < 5; seq++ {
		stamp, ok := r.pace(ctx, rs, 0, seq, 0)
		if want := rs.start.Add(time.Duration(seq) * 100 * time.Millisecond); !ok || !stamp.Equal(want) {
			t.Fatalf("open loop, seq %d: stamp %v ok %v, want the schedule's %v", seq, stamp, ok, want)
		}
	}
	// Closed loop (--window given): message 1 waits for message 0, which
	// nobody receives here, and gives up after --drain.
	o.windowSet = true
	if _, ok := r.pace(ctx, rs, 0, 1, 0); ok {
		t.Fatal("closed loop: message 1 sent while message 0 is outstanding with --window 1")
	}
	// Without --rate the stamp is the moment of sending.
	o.rate = 0
	before := time.Now()
	if stamp, ok := r.pace(ctx, rs, 0, 0, 0); !ok || stamp.Before(before) {
		t.Fatalf("window pacing: stamp %v ok %v, want now", stamp, ok)
	}
}

func TestParseOffered(t *testing.T) {
	ls, err := parseOffered("0.5, 0.75,0.9,50k,1.5M,200000")
	if err != nil || len(ls) != 6 {
		t.Fatalf("%v %v", ls, err)
	}
	if ls[0].fraction != 0.5 || ls[2].fraction != 0.9 || ls[3].absolute != 50000 || ls[4].absolute != 1.5e6 || ls[5].absolute != 200000 {
		t.Errorf("levels %+v", ls)
	}
	if ls[0].deliveries(400000) != 200000 || ls[3].deliveries(400000) != 50000 {
		t.Errorf("deliveries: %v %v", ls[0].deliveries(400000), ls[3].deliveries(400000))
	}
	o, err := parseOptions([]string{"--inprocess", "1", "--offered", "50k", "--level-time", "8s", "room"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	lo, err := o.atLevel(50000)
	if err != nil || lo.rate != 50 || lo.messages != 400 || lo.closedLoop() {
		t.Fatalf("50k over 10 x 100 for 8 s: rate %v messages %d closed loop %v (%v), want 50, 400, open", lo.rate, lo.messages, lo.closedLoop(), err)
	}
	for _, args := range [][]string{
		{"--inprocess", "1", "--offered", "0.5", "room"},                      // a fraction of the peak needs --baseline
		{"--inprocess", "1", "--offered", "50k", "--rate", "10", "room"},      // the levels set the rate
		{"--inprocess", "1", "--baseline", "--offered", "0.5", "idle"},        // room and broadcast only
		{"--inprocess", "1", "--offered", "-3", "room"},                       // not positive
		{"--inprocess", "1", "--offered", "50k", "--level-time", "0", "room"}, // no time
		{"--inprocess", "1", "--processes", "0", "room"},
		{"--inprocess", "1", "--processes", "2", "churn"},
		{"--inprocess", "1", "--worker-command", "ssh x", "room"}, // needs --processes
	} {
		if _, err := parseOptions(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseOptions(%v) accepted", args)
		}
	}
}

func TestShare(t *testing.T) {
	ips := []string{"a", "b", "c", "d", "e"}
	if got := share(ips, 0, 2); len(got) != 2 || got[0] != "a" {
		t.Errorf("share 0/2: %v", got)
	}
	if got := share(ips, 1, 2); len(got) != 3 || got[0] != "c" {
		t.Errorf("share 1/2: %v", got)
	}
	if got := share(ips[:1], 1, 2); len(got) != 1 {
		t.Errorf("fewer than processes: %v, want all", got)
	}
}
