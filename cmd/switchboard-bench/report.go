package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Report is everything one invocation measured; it is printed as a summary
// and as one JSON line.
type Report struct {
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	Env      Env            `json:"env"`
	Runs     []*Result      `json:"runs"`
	Baseline []*Result      `json:"baseline,omitempty"`
	// Peak holds the bare server's peak runs of an --offered invocation.
	Peak    []*Result `json:"peak,omitempty"`
	Summary Summary   `json:"summary"`
}

// Env identifies the machine and build a report comes from.
type Env struct {
	GoVersion  string `json:"go"`
	NumCPU     int    `json:"nproc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model,omitempty"`
	Commit     string `json:"commit,omitempty"`
	Time       string `json:"time"`
}

// Stat is a median with its range over --repeat runs.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func stat(xs []float64) *Stat {
	if len(xs) == 0 {
		return nil
	}
	m, lo, hi := median(xs)
	return &Stat{Median: m, Min: lo, Max: hi, N: len(xs)}
}

// Summary condenses the runs. Ratio is Switchboard's figure divided by the
// baseline's, per pair of runs made one after the other.
type Summary struct {
	DeliveriesPerSec         *Stat `json:"deliveries_per_sec,omitempty"`
	P99                      *Stat `json:"p99_ms,omitempty"`
	BaselineDeliveriesPerSec *Stat `json:"baseline_deliveries_per_sec,omitempty"`
	BaselineP99              *Stat `json:"baseline_p99_ms,omitempty"`
	Ratio                    *Stat `json:"ratio_vs_baseline,omitempty"`
	RSSPerConn               *Stat `json:"rss_per_conn_kib,omitempty"`
	BaselineRSSPerConn       *Stat `json:"baseline_rss_per_conn_kib,omitempty"`
	ChurnPerSec              *Stat `json:"cycles_per_sec,omitempty"`
	BaselineChurnPerSec      *Stat `json:"baseline_cycles_per_sec,omitempty"`
	RecoveredPerSec          *Stat `json:"recovered_per_sec,omitempty"`
	RecoveryP50              *Stat `json:"recovery_p50_ms,omitempty"`
	RecoveryP99              *Stat `json:"recovery_p99_ms,omitempty"`
	RedisCPUPerRecovery      *Stat `json:"redis_cpu_us_per_recovery,omitempty"`
	ServerCPUPerRecovery     *Stat `json:"server_cpu_us_per_recovery,omitempty"`
	PresenceP50              *Stat `json:"presence_p50_ms,omitempty"`
	PresenceP99              *Stat `json:"presence_p99_ms,omitempty"`
	RedisCPUPerQuery         *Stat `json:"redis_cpu_us_per_query,omitempty"`
	// Room and broadcast runs on Redis (RedisShards): all primaries' CPU
	// per message sent, and the spreads over the shards (max/mean).
	RedisCPUPerMessage  *Stat `json:"redis_cpu_us_per_message,omitempty"`
	ShardMessagesSpread *Stat `json:"shard_messages_max_mean,omitempty"`
	ShardRoomsSpread    *Stat `json:"shard_rooms_max_mean,omitempty"`
	ShardKeysSpread     *Stat `json:"shard_keys_max_mean,omitempty"`
	// NotRecovered adds up the recover runs' recovered:false answers,
	// Wrong their recovered:true answers that were not exactly the missed
	// publications, Failed their reconnections without an answer.
	NotRecovered int64 `json:"not_recovered_total,omitempty"`
	Wrong        int64 `json:"wrong_total,omitempty"`
	Failed       int64 `json:"failed_total,omitempty"`
	// PeakDeliveriesPerSec is the bare server's peak and Levels the
	// figures per offered load (--offered).
	PeakDeliveriesPerSec *Stat          `json:"peak_deliveries_per_sec,omitempty"`
	Levels               []LevelSummary `json:"levels,omitempty"`
	Lost                 int64          `json:"lost_total"`
	Errors               int64          `json:"errors_total"`
}

func newReport(o *options) *Report {
	p := map[string]any{"duration": o.duration.String(), "repeat": o.repeat}
	switch o.scenario {
	case "room":
		p["rooms"], p["members"], p["messages"], p["size"], p["window"], p["rate"] = o.rooms, o.members, o.messages, o.size, o.window, o.rate
	case "broadcast":
		p["clients"], p["messages"], p["size"], p["window"], p["rate"] = o.clients, o.messages, o.size, o.window, o.rate
		p["source_ips"] = len(o.sourceIPs)
	case "idle":
		p["clients"], p["hold"], p["source_ips"] = o.clients, o.hold.String(), len(o.sourceIPs)
		if o.idleRooms > 0 {
			p["idle_rooms"] = o.idleRooms
		}
	case "churn":
		p["cycles"], p["concurrency"] = o.cycles, o.concurrency
	case "presence":
		p["members"], p["queries"] = o.members, o.queries
	case "recover":
		p["clients"], p["rooms"], p["messages"], p["size"], p["dial_concurrency"] = o.clients, o.rooms, o.messages, o.size, o.dialWorkers
	}
	if o.rate > 0 {
		p["closed_loop"] = o.closedLoop()
	}
	if len(o.offered) > 0 {
		var ls []string
		for _, l := range o.offered {
			ls = append(ls, l.String())
		}
		p["offered"], p["level_time"] = ls, o.levelTime.String()
	}
	if o.processes > 1 {
		p["processes"] = o.processes
	}
	// users 0: one user id per connection.
	p["users"] = o.users
	switch {
	case o.clustered():
		p["broker"] = "redis-cluster"
		p["redis_partitions"] = o.partitions // 0: the broker's default
		if o.startCluster > 0 {
			p["redis_cluster_started"] = o.startCluster
		}
	case o.redisURL != "":
		p["broker"] = "redis"
	}
	if o.readBuffer > 0 {
		p["read_buffer"] = o.readBuffer
	}
	p["history_size"] = o.historySize
	p["connection_events"] = o.connEvents
	return &Report{Scenario: o.scenario, Params: p, Env: currentEnv()}
}

func (rep *Report) add(res *Result) {
	if res.Server == kindBaseline {
		rep.Baseline = append(rep.Baseline, res)
	} else {
		rep.Runs = append(rep.Runs, res)
	}
}

func (rep *Report) summarize() {
	pick := func(rs []*Result, f func(*Result) (float64, bool)) []float64 {
		var out []float64
		for _, r := range rs {
			if v, ok := f(r); ok {
				out = append(out, v)
			}
		}
		return out
	}
	dps := func(r *Result) (float64, bool) { return r.DeliveriesPerSec, r.DeliveriesPerSec > 0 }
	p99 := func(r *Result) (float64, bool) { return latP99(r), r.Latency != nil && r.Latency.N > 0 }
	rss := func(r *Result) (float64, bool) { return idleRSS(r), r.Idle != nil }
	churn := func(r *Result) (float64, bool) { return churnRate(r), r.Churn != nil }
	s := &rep.Summary
	for _, r := range append(append(append([]*Result(nil), rep.Runs...), rep.Baseline...), rep.Peak...) {
		s.Lost += r.Lost
		s.Errors += r.Errors
	}
	if len(rep.Peak) > 0 || len(rep.Runs) > 0 && rep.Runs[0].Level != "" {
		// Runs at different offered loads: figures per level only.
		s.PeakDeliveriesPerSec = stat(pick(rep.Peak, dps))
		s.Levels = summarizeLevels(rep.Runs, rep.Baseline)
		return
	}
	s.DeliveriesPerSec, s.BaselineDeliveriesPerSec = stat(pick(rep.Runs, dps)), stat(pick(rep.Baseline, dps))
	s.P99, s.BaselineP99 = stat(pick(rep.Runs, p99)), stat(pick(rep.Baseline, p99))
	s.RSSPerConn, s.BaselineRSSPerConn = stat(pick(rep.Runs, rss)), stat(pick(rep.Baseline, rss))
	s.ChurnPerSec, s.BaselineChurnPerSec = stat(pick(rep.Runs, churn)), stat(pick(rep.Baseline, churn))
	rec := func(f func(*RecoveryStats) (float64, bool)) *Stat {
		return stat(pick(rep.Runs, func(r *Result) (float64, bool) {
			if r.Recovery == nil || r.Recovery.Recovered == 0 {
				return 0, false
			}
			return f(r.Recovery)
		}))
	}
	s.RecoveredPerSec = rec(func(st *RecoveryStats) (float64, bool) { return st.PerSec, true })
	s.RecoveryP50 = rec(func(st *RecoveryStats) (float64, bool) { return st.Latency.P50, true })
	s.RecoveryP99 = rec(func(st *RecoveryStats) (float64, bool) { return st.Latency.P99, true })
	s.RedisCPUPerRecovery = rec(func(st *RecoveryStats) (float64, bool) {
		if st.RedisCPUPerRecovery == nil {
			return 0, false
		}
		return *st.RedisCPUPerRecovery, true
	})
	s.ServerCPUPerRecovery = rec(func(st *RecoveryStats) (float64, bool) { return st.ServerCPUPerRecovery, st.ServerCPUPerRecovery > 0 })
	summarizePresence(s, rep.Runs)
	summarizeShards(s, rep.Runs)
	for _, r := range rep.Runs {
		if st := r.Recovery; st != nil {
			s.NotRecovered += st.NotRecovered
			s.Wrong += st.Wrong
			s.Failed += st.Failed
		}
	}
	var ratios []float64
	for i := 0; i < len(rep.Runs) && i < len(rep.Baseline); i++ {
		a, b := rep.Runs[i], rep.Baseline[i]
		switch {
		case a.DeliveriesPerSec > 0 && b.DeliveriesPerSec > 0:
			ratios = append(ratios, a.DeliveriesPerSec/b.DeliveriesPerSec)
		case a.Churn != nil && b.Churn != nil && b.Churn.PerSec > 0:
			ratios = append(ratios, a.Churn.PerSec/b.Churn.PerSec)
		}
	}
	s.Ratio = stat(ratios)
}

func latP99(r *Result) float64 {
	if r.Latency == nil {
		return 0
	}
	return r.Latency.P99
}

func idleRSS(r *Result) float64 {
	if r.Idle == nil {
		return 0
	}
	return r.Idle.RSSPerConn
}

func churnRate(r *Result) float64 {
	if r.Churn == nil {
		return 0
	}
	return r.Churn.PerSec
}

// write prints the human summary, then the JSON line.
func (rep *Report) write(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s  %v\n", rep.Scenario, formatParams(rep.Params))
	fmt.Fprintf(&b, "machine  %d cpu (%s), GOMAXPROCS %d, %s, commit %s\n", rep.Env.NumCPU, rep.Env.CPUModel, rep.Env.GOMAXPROCS, rep.Env.GoVersion, orDash(rep.Env.Commit))
	for _, r := range append(append(append([]*Result(nil), rep.Peak...), rep.Runs...), rep.Baseline...) {
		fmt.Fprintf(&b, "%-11s %-9s nodes=%d clients=%d", r.Server, r.Where, r.Nodes, r.Clients)
		if r.Processes > 1 {
			fmt.Fprintf(&b, " processes=%d", r.Processes)
		}
		if r.Level != "" {
			fmt.Fprintf(&b, " offered=%.0f/s (%s)", r.Offered, r.Level)
		}
		if c := r.Connect; c != nil {
			fmt.Fprintf(&b, " connect=%.2fs (p99 %.1fms, %d failed)", c.Seconds, c.Latency.P99, c.Failed)
		}
		if r.Expected > 0 || r.Sent > 0 {
			fmt.Fprintf(&b, " sent=%d expected=%d received=%d lost=%d %.0f deliveries/s", r.Sent, r.Expected, r.Received, r.Lost, r.DeliveriesPerSec)
			if l := r.Latency; l != nil {
				fmt.Fprintf(&b, " latency p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms", l.P50, l.P90, l.P99, l.Max)
			}
			if r.ServerCPUPerDelivery > 0 {
				fmt.Fprintf(&b, " server-cpu=%.2fus/delivery", r.ServerCPUPerDelivery)
			}
		}
		if st := r.Idle; st != nil {
			fmt.Fprintf(&b, " connections=%d rooms=%d rss=%.2f KiB/conn heap=%.2f KiB/conn stack=%.2f KiB/conn goroutines=%.2f/conn after-gc=%v", st.Connections, st.Rooms, st.RSSPerConn, st.HeapPerConn, st.StackPerConn, st.GoroutinesPerConn, st.AfterGC)
			fmt.Fprintf(&b, " settled=%.2fs (%v) frames=%d storm-cpu=%.1fus/conn", st.SettledSeconds, st.Settled, st.FramesOut, st.StormCPUPerConn)
			if st.IncludesClients {
				b.WriteString(" (RSS includes the clients: use --spawn or --nodes for the node's own figure)")
			}
		}
		if ch := r.Churn; ch != nil {
			fmt.Fprintf(&b, " cycles=%d failed=%d %.0f cycles/s p50=%.2fms p99=%.2fms leaked=%d", ch.Cycles, ch.Failed, ch.PerSec, ch.Latency.P50, ch.Latency.P99, ch.Leaked)
		}
		if st := r.Recovery; st != nil {
			writeRecovery(&b, st)
		}
		if st := r.Presence; st != nil {
			writePresence(&b, st)
		}
		if st := r.Redis; st != nil {
			writeShards(&b, st)
		}
		if r.Errors > 0 || r.Closed > 0 || r.OutOfOrder > 0 || r.Truncated {
			fmt.Fprintf(&b, " errors=%d closed=%d out-of-order=%d truncated=%v", r.Errors, r.Closed, r.OutOfOrder, r.Truncated)
		}
		b.WriteByte('\n')
	}
	s := rep.Summary
	writeLevels(&b, s.PeakDeliveriesPerSec, s.Levels)
	line := func(name string, st *Stat, unit string) {
		if st != nil {
			fmt.Fprintf(&b, "%-28s median %.2f%s (range %.2f-%.2f, %d runs)\n", name, st.Median, unit, st.Min, st.Max, st.N)
		}
	}
	line("deliveries/s", s.DeliveriesPerSec, "")
	line("baseline deliveries/s", s.BaselineDeliveriesPerSec, "")
	line("p99 latency", s.P99, " ms")
	line("baseline p99 latency", s.BaselineP99, " ms")
	line("ratio switchboard/baseline", s.Ratio, "x")
	line("rss per idle connection", s.RSSPerConn, " KiB")
	line("baseline rss per connection", s.BaselineRSSPerConn, " KiB")
	line("churn cycles/s", s.ChurnPerSec, "")
	line("baseline churn cycles/s", s.BaselineChurnPerSec, "")
	line("clients recovered/s", s.RecoveredPerSec, "")
	line("recovery p50 (dial to ack)", s.RecoveryP50, " ms")
	line("recovery p99 (dial to ack)", s.RecoveryP99, " ms")
	line("redis cpu per recovery", s.RedisCPUPerRecovery, " us")
	line("server cpu per recovery", s.ServerCPUPerRecovery, " us")
	line("presence query p50", s.PresenceP50, " ms")
	line("presence query p99", s.PresenceP99, " ms")
	line("redis cpu per presence query", s.RedisCPUPerQuery, " us")
	line("redis cpu per message", s.RedisCPUPerMessage, " us")
	line("shard messages max/mean", s.ShardMessagesSpread, "")
	line("shard rooms max/mean", s.ShardRoomsSpread, "")
	line("shard keys max/mean", s.ShardKeysSpread, "")
	if rep.Scenario == "recover" {
		fmt.Fprintf(&b, "not recovered %d, wrong %d, failed %d\n", s.NotRecovered, s.Wrong, s.Failed)
	}
	fmt.Fprintf(&b, "lost %d, errors %d\n", s.Lost, s.Errors)
	_, _ = io.WriteString(w, b.String())
	js, _ := json.Marshal(rep)
	_, _ = w.Write(append(js, '\n'))
}

// writeRecovery appends a recover run's figures to its line.
func writeRecovery(b *strings.Builder, st *RecoveryStats) {
	fmt.Fprintf(b, " missed=%d/client recovered=%d not-recovered=%d wrong=%d failed=%d publications=%d lost=%d disordered=%d live-lost=%d",
		st.Missed, st.Recovered, st.NotRecovered, st.Wrong, st.Failed, st.Publications, st.Lost, st.Disordered, st.LiveLost)
	if st.Recovered > 0 {
		fmt.Fprintf(b, " herd=%.2fs %.0f recovered/s recovery p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms",
			st.Seconds, st.PerSec, st.Latency.P50, st.Latency.P90, st.Latency.P99, st.Latency.Max)
	}
	if v := st.RedisCPUPerRecovery; v != nil {
		fmt.Fprintf(b, " redis-cpu=%.1fus/recovery (busiest:", *v)
		names := make([]string, 0, len(st.RedisCommands))
		for name := range st.RedisCommands {
			names = append(names, name)
		}
		sort.Slice(names, func(i, j int) bool { return st.RedisCommands[names[i]].Usec > st.RedisCommands[names[j]].Usec })
		for _, name := range names[:min(3, len(names))] {
			c := st.RedisCommands[name]
			fmt.Fprintf(b, " %s %d calls %.1fus/recovery", name, c.Calls, float64(c.Usec)/float64(st.Recovered))
		}
		b.WriteString(")")
	}
	if st.ServerCPUPerRecovery > 0 {
		fmt.Fprintf(b, " server-cpu=%.1fus/recovery", st.ServerCPUPerRecovery)
	}
}

func formatParams(p map[string]any) string {
	js, _ := json.Marshal(p)
	return string(js)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// commit names the source the binary was built from when the build has no
// VCS stamp (GOFLAGS=-buildvcs=false): make load sets it with -ldflags -X.
var commit string

func currentEnv() Env {
	e := Env{GoVersion: runtime.Version(), NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), Time: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range bytes.Split(b, []byte{'\n'}) {
			if k, v, ok := bytes.Cut(line, []byte(":")); ok && string(bytes.TrimSpace(k)) == "model name" {
				e.CPUModel = string(bytes.TrimSpace(v))
				break
			}
		}
	}
	e.Commit = commit
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				e.Commit = s.Value[:7]
			}
			if s.Key == "vcs.modified" && s.Value == "true" && e.Commit != "" {
				e.Commit += "+dirty"
			}
		}
	}
	return e
}
