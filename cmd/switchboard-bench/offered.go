package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// offeredLevel is one --offered entry: a fraction of the bare server's peak
// deliveries/s, or an absolute deliveries/s.
type offeredLevel struct {
	fraction float64 // 0 when absolute
	absolute float64
}

func (l offeredLevel) String() string {
	if l.fraction > 0 {
		return strconv.FormatFloat(l.fraction, 'g', -1, 64) + " of peak"
	}
	return strconv.FormatFloat(l.absolute, 'f', 0, 64) + "/s"
}

// deliveries is the level's offered deliveries/s given the measured peak.
func (l offeredLevel) deliveries(peak float64) float64 {
	if l.fraction > 0 {
		return l.fraction * peak
	}
	return l.absolute
}

// parseOffered reads "0.5,0.75,0.9,50k": values up to 1 are fractions of the
// peak, larger ones deliveries/s (suffix k: thousands, M: millions).
func parseOffered(s string) ([]offeredLevel, error) {
	var out []offeredLevel
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		mult := 1.0
		switch {
		case strings.HasSuffix(f, "k"):
			mult, f = 1e3, strings.TrimSuffix(f, "k")
		case strings.HasSuffix(f, "M"):
			mult, f = 1e6, strings.TrimSuffix(f, "M")
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) {
			return nil, fmt.Errorf("--offered: %q is not a positive number", f)
		}
		if v*mult <= 1 {
			out = append(out, offeredLevel{fraction: v})
		} else {
			out = append(out, offeredLevel{absolute: v * mult})
		}
	}
	return out, nil
}

// closedLoop reports whether a publisher waits for its window: always
// without --rate, and at --rate only when --window was given.
func (o *options) closedLoop() bool { return o.rate == 0 || o.windowSet }

func (o *options) validateOffered(bad func(string, ...any)) {
	if len(o.offered) == 0 {
		return
	}
	if o.scenario != "room" && o.scenario != "broadcast" {
		bad("--offered: room and broadcast only")
	}
	if o.rate > 0 {
		bad("--offered sets each level's rate: no --rate")
	}
	if o.levelTime <= 0 || o.levelTime >= o.duration {
		bad("--level-time must be positive and shorter than --duration")
	}
	for _, l := range o.offered {
		if l.fraction > 0 && !o.baseline {
			bad("--offered %v: a fraction of the bare server's peak needs --baseline", l)
			return
		}
	}
}

// fanout is the scenario's publishers and deliveries per message.
func (o *options) fanout() (publishers, perMessage int) {
	if o.scenario == "broadcast" {
		return 1, o.clients - 1
	}
	return o.rooms, o.members
}

// atLevel returns the options of the runs at d deliveries/s: each
// publisher's rate, and its message count over --level-time. The window of
// the peak runs does not apply (open loop).
func (o *options) atLevel(d float64) (*options, error) {
	c := *o
	pubs, per := o.fanout()
	c.rate = d / float64(pubs*per)
	c.messages = int(math.Ceil(c.rate * o.levelTime.Seconds()))
	c.windowSet = false
	c.offered = nil
	if c.messages < 1 || pubs*c.messages > maxMessages || int64(pubs*per)*int64(c.messages) > maxDeliveries {
		return nil, fmt.Errorf("offered %.0f deliveries/s for %v: %d messages per publisher, want 1-%d in all", d, o.levelTime, c.messages, maxMessages)
	}
	return &c, nil
}

// runOffered measures latency under load: first the bare server's peak
// (--repeat runs with --window, if a level is a fraction of it), then each
// level --repeat times against every target in turn, open-loop at --rate.
func runOffered(ctx context.Context, o *options, targets []*target, pool *workerPool, rep *Report, stderr io.Writer) error {
	peak := 0.0
	var bare *target
	for _, t := range targets {
		if t.kind == kindBaseline {
			bare = t
		}
	}
	for _, l := range o.offered {
		if l.fraction == 0 {
			continue
		}
		var peaks []float64
		for i := 0; i < o.repeat; i++ {
			res, err := runOnce(ctx, o, bare, pool, stderr)
			if res != nil {
				rep.Peak = append(rep.Peak, res)
				peaks = append(peaks, res.DeliveriesPerSec)
			}
			if err != nil {
				return fmt.Errorf("peak run %d: %w", i+1, err)
			}
		}
		peak, _, _ = median(peaks)
		if peak <= 0 {
			return fmt.Errorf("the bare server delivered nothing: no peak to take fractions of")
		}
		break
	}
	for _, l := range o.offered {
		d := l.deliveries(peak)
		lo, err := o.atLevel(d)
		if err != nil {
			return err
		}
		if !o.quiet {
			fmt.Fprintf(stderr, "level %v: %.0f deliveries/s offered, %.2f messages/s per publisher, %d each\n", l, d, lo.rate, lo.messages)
		}
		for i := 0; i < o.repeat; i++ {
			for _, t := range targets {
				res, err := runOnce(ctx, lo, t, pool, stderr)
				if res != nil {
					res.Level, res.Offered = l.String(), d
					rep.add(res)
				}
				if err != nil {
					return fmt.Errorf("%s at %v, run %d: %w", t.kind, l, i+1, err)
				}
			}
		}
	}
	return nil
}

// LevelSummary condenses the runs at one offered load.
type LevelSummary struct {
	Level       string     `json:"level"`
	Offered     float64    `json:"offered_deliveries_per_sec"`
	Switchboard *LoadStats `json:"switchboard,omitempty"`
	Baseline    *LoadStats `json:"baseline,omitempty"`
	// P99Ratio and CPURatio are Switchboard's figure over the baseline's,
	// per pair of runs made one after the other.
	P99Ratio *Stat `json:"p99_ratio,omitempty"`
	CPURatio *Stat `json:"server_cpu_ratio,omitempty"`
}

// LoadStats are one target's figures at one offered load.
type LoadStats struct {
	Achieved *Stat `json:"deliveries_per_sec"`
	P50      *Stat `json:"p50_ms"`
	P99      *Stat `json:"p99_ms"`
	Max      *Stat `json:"max_ms"`
	CPU      *Stat `json:"server_cpu_us_per_delivery,omitempty"`
	Lost     int64 `json:"lost"`
}

func loadStats(rs []*Result) *LoadStats {
	if len(rs) == 0 {
		return nil
	}
	var dps, p50, p99, mx, cpu []float64
	s := &LoadStats{}
	for _, r := range rs {
		dps = append(dps, r.DeliveriesPerSec)
		if l := r.Latency; l != nil {
			p50, p99, mx = append(p50, l.P50), append(p99, l.P99), append(mx, l.Max)
		}
		if r.ServerCPUPerDelivery > 0 {
			cpu = append(cpu, r.ServerCPUPerDelivery)
		}
		s.Lost += r.Lost
	}
	s.Achieved, s.P50, s.P99, s.Max, s.CPU = stat(dps), stat(p50), stat(p99), stat(mx), stat(cpu)
	return s
}

// summarizeLevels groups the runs by offered level, in the order run.
func summarizeLevels(runs, base []*Result) []LevelSummary {
	var out []LevelSummary
	seen := map[string]bool{}
	for _, r := range append(append([]*Result(nil), runs...), base...) {
		if r.Level == "" || seen[r.Level] {
			continue
		}
		seen[r.Level] = true
		of := func(rs []*Result) []*Result {
			var o []*Result
			for _, x := range rs {
				if x.Level == r.Level {
					o = append(o, x)
				}
			}
			return o
		}
		sb, bs := of(runs), of(base)
		ls := LevelSummary{Level: r.Level, Offered: r.Offered, Switchboard: loadStats(sb), Baseline: loadStats(bs)}
		var p99, cpu []float64
		for i := 0; i < len(sb) && i < len(bs); i++ {
			if a, b := sb[i].Latency, bs[i].Latency; a != nil && b != nil && b.P99 > 0 {
				p99 = append(p99, a.P99/b.P99)
			}
			if b := bs[i].ServerCPUPerDelivery; b > 0 && sb[i].ServerCPUPerDelivery > 0 {
				cpu = append(cpu, sb[i].ServerCPUPerDelivery/b)
			}
		}
		ls.P99Ratio, ls.CPURatio = stat(p99), stat(cpu)
		out = append(out, ls)
	}
	return out
}

// writeLevels prints the per-level table of an --offered run.
func writeLevels(b *strings.Builder, peak *Stat, levels []LevelSummary) {
	if peak != nil {
		fmt.Fprintf(b, "bare server peak: median %.0f deliveries/s (range %.0f-%.0f, %d runs)\n", peak.Median, peak.Min, peak.Max, peak.N)
	}
	for _, l := range levels {
		fmt.Fprintf(b, "offered %.0f deliveries/s (%s)\n", l.Offered, l.Level)
		for _, x := range []struct {
			name string
			s    *LoadStats
		}{{kindSwitchboard, l.Switchboard}, {kindBaseline, l.Baseline}} {
			if x.s == nil {
				continue
			}
			fmt.Fprintf(b, "  %-11s achieved %s/s  p50 %s ms  p99 %s ms  max %s ms", x.name, fmtStat(x.s.Achieved, 0), fmtStat(x.s.P50, 2), fmtStat(x.s.P99, 2), fmtStat(x.s.Max, 1))
			if x.s.CPU != nil {
				fmt.Fprintf(b, "  server-cpu %s us/delivery", fmtStat(x.s.CPU, 2))
			}
			fmt.Fprintf(b, "  lost %d\n", x.s.Lost)
		}
		if l.P99Ratio != nil {
			fmt.Fprintf(b, "  p99 switchboard/baseline %sx", fmtStat(l.P99Ratio, 2))
			if l.CPURatio != nil {
				fmt.Fprintf(b, "  server-cpu switchboard/baseline %sx", fmtStat(l.CPURatio, 2))
			}
			b.WriteByte('\n')
		}
	}
}

// fmtStat is "median (min-max)" with prec decimals.
func fmtStat(s *Stat, prec int) string {
	if s == nil {
		return "-"
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	if s.N == 1 {
		return f(s.Median)
	}
	return f(s.Median) + " (" + f(s.Min) + "-" + f(s.Max) + ")"
}
