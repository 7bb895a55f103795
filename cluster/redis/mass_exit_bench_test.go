package redis_test

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster/redis"
	"github.com/switchboard-rt/switchboard/cluster/redistest"
	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

// BenchmarkRedisMassExit measures a mass exit in the shape users make it:
// 100 connections, each in 1,000 rooms of its own (100,000 channels), drop
// at once. Each op is one exit; it reports the time from the drop until
// Redis holds none of those channels (release-ms), and how long a join of
// a fresh room sent right after the drop took to be acknowledged
// (join-ack-ms) and to hear a message the other node sent after the ack
// (join-heard-ms), both from the join's send, against the same join on
// the same node while idle, just before the drop (join-idle-ms); and the
// CPU the test process (both nodes and the clients, idle meanwhile but
// for the joiner) spent from the drop to the release (release-cpu-ms), and
// the CPU redis-server spent meanwhile (redis-cpu-ms): the figures that do
// not depend on what else the machine runs; also what the process
// allocated meanwhile
// (alloc-MB, which sets the GC's share) and the garbage collections that
// ran (gc-cycles). Setting up the memberships is not timed. Run with
// -benchtime 1x: one op takes about 15 s of setup.
//
// With SWITCHBOARD_MASS_EXIT_PROFILE=PREFIX set, op i writes the CPU
// profile of its release to PREFIXi.cpu, and heap profiles taken after a
// collection just before the drop and just after the release to
// PREFIXi.heap0 and PREFIXi.heap1 (compare their alloc_space with -base);
// those collections fall outside the timed window.
func BenchmarkRedisMassExit(b *testing.B) {
	const conns, perConn = 100, 1000
	rs := redistest.Start(b)
	many := func(_ *redis.Config, c *actors.Config) { c.MaxRoomsPerSession = perConn }
	defaults := withBroker(func(c *redis.Config) { c.ProbeIdle, c.ProbeTimeout = 0, 0 })
	n1 := startNode(b, rs.URL(), "n1", many, defaults)
	n2 := startNode(b, rs.URL(), "n2", defaults)
	pub := n2.dial("publisher")
	joiner := n1.dial("joiner")
	var release, ack, heard, idle, cpu, redisCPU time.Duration
	var allocated, cycles uint64
	profile := os.Getenv("SWITCHBOARD_MASS_EXIT_PROFILE")
	for op := range b.N {
		b.StopTimer()
		fresh := fmt.Sprint("fresh-", op)
		join(b, pub, fresh)
		base := pubsubChannels(b, rs)
		members := make([]*member, conns)
		for i := range members {
			members[i] = dialMember(b, n1, fmt.Sprintf("m%d-%d", op, i))
			rooms := make([]string, perConn)
			for j := range rooms {
				rooms[j] = fmt.Sprintf("mx%d-%d-%d", op, i, j)
			}
			members[i].joinAll(b, rooms)
		}
		waitFor(b, "every join acknowledged", 5*time.Minute, func() bool {
			var acks int64
			for _, m := range members {
				acks += m.acks.Load()
			}
			return acks == conns*perConn
		})
		if got := pubsubChannels(b, rs); got != base+conns*perConn {
			b.Fatalf("Redis holds %d channels, want %d", got, base+conns*perConn)
		}
		// The same join on the same node while it is idle: what a join
		// during the exit compares with.
		calm := fmt.Sprint("calm-", op)
		if err := joiner.SendJSON(map[string]any{"type": "join_room", "room": calm, "id": calm}); err != nil {
			b.Fatal(err)
		}
		sentCalm := time.Now()
		if ev, err := joiner.WaitFor(time.Minute, func(e *wsclient.Event) bool { return string(e.ID) == `"`+calm+`"` }); err != nil || ev.Event != "ack" {
			b.Fatalf("join on the idle node: %v %s", err, ev.Raw)
		}
		idle += time.Since(sentCalm)
		base++ // the joiner stays in it
		if profile != "" {
			writeHeapProfile(b, fmt.Sprint(profile, op, ".heap0"))
			startCPUProfile(b, fmt.Sprint(profile, op, ".cpu"))
		}
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		b.StartTimer()
		start, cpu0, rcpu0 := time.Now(), processCPU(), serverCPU(b, rs)
		var wg sync.WaitGroup
		for _, m := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.c.Abort()
			}()
		}
		wg.Wait()
		sent := time.Now()
		id := "join-" + fresh
		if err := joiner.SendJSON(map[string]any{"type": "join_room", "room": fresh, "id": id}); err != nil {
			b.Fatal(err)
		}
		ev, err := joiner.WaitFor(time.Minute, func(e *wsclient.Event) bool { return string(e.ID) == `"`+id+`"` })
		if err != nil || ev.Event != "ack" {
			b.Fatalf("join during the exit, after %v: %v %s", time.Since(sent), err, ev.Raw)
		}
		ack += time.Since(sent)
		if err := pub.SendJSON(map[string]any{"type": "room_message", "room": fresh, "content": fresh}); err != nil {
			b.Fatal(err)
		}
		expect(b, joiner, "the other node's message", func(e *wsclient.Event) bool { return e.Event == "chat" && e.Content == fresh })
		heard += time.Since(sent)
		for deadline := time.Now().Add(2 * time.Minute); pubsubChannels(b, rs) > base; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("Redis still holds %d channels, want %d", pubsubChannels(b, rs), base)
			}
		}
		release += time.Since(start)
		cpu += time.Duration(processCPU() - cpu0)
		redisCPU += serverCPU(b, rs) - rcpu0
		runtime.ReadMemStats(&ms1)
		allocated += ms1.TotalAlloc - ms0.TotalAlloc
		cycles += uint64(ms1.NumGC - ms0.NumGC)
		if profile != "" {
			pprof.StopCPUProfile()
			writeHeapProfile(b, fmt.Sprint(profile, op, ".heap1"))
		}
	}
	b.ReportMetric(float64(release.Milliseconds())/float64(b.N), "release-ms")
	b.ReportMetric(float64(ack.Microseconds())/1000/float64(b.N), "join-ack-ms")
	b.ReportMetric(float64(heard.Microseconds())/1000/float64(b.N), "join-heard-ms")
	b.ReportMetric(float64(idle.Microseconds())/1000/float64(b.N), "join-idle-ms")
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "release-cpu-ms")
	b.ReportMetric(float64(redisCPU.Milliseconds())/float64(b.N), "redis-cpu-ms")
	b.ReportMetric(float64(allocated>>20)/float64(b.N), "alloc-MB")
	b.ReportMetric(float64(cycles)/float64(b.N), "gc-cycles")
}

// startCPUProfile starts the process's CPU profile into file.
func startCPUProfile(b *testing.B, file string) {
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Close() })
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
}

// writeHeapProfile collects garbage, then writes the heap profile to file.
func writeHeapProfile(b *testing.B, file string) {
	runtime.GC()
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// serverCPU is the CPU redis-server has used (INFO cpu).
func serverCPU(b *testing.B, rs *redistest.Server) time.Duration {
	var total time.Duration
	for _, f := range []string{"used_cpu_sys", "used_cpu_user"} {
		s, err := strconv.ParseFloat(rs.Info("cpu", f), 64)
		if err != nil {
			b.Fatalf("%s: %v", f, err)
		}
		total += time.Duration(s * float64(time.Second))
	}
	return total
}
