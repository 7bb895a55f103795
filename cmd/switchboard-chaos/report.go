package main

import (
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"time"
)

// report is what the run found, printed at the end.
type report struct {
	Rounds     int
	Faults     map[string]int
	Totals     tally
	Violations []string
	Recovery   map[string]time.Duration // longest recovery by fault kind
	Skipped    map[string]string        // fault kinds the topology cannot take, and why
	Failovers  []failoverFigure         // sentinel-failover and cluster-failover rounds, in order
	Started    time.Time
	Took       time.Duration
	LogDir     string
}

func (r *report) violate(round int, format string, args ...any) {
	r.Violations = append(r.Violations, fmt.Sprintf("round %d: ", round)+fmt.Sprintf(format, args...))
}

// print writes the run's summary.
func (r *report) print(w io.Writer) {
	t := r.Totals
	fmt.Fprintf(w, "\nchaos summary: %d rounds in %v\n", r.Rounds, r.Took.Round(time.Second))
	names := make([]string, 0, len(r.Faults))
	for k := range r.Faults {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "  faults injected:")
	total := 0
	for _, k := range names {
		fmt.Fprintf(w, " %s=%d", k, r.Faults[k])
		total += r.Faults[k]
	}
	fmt.Fprintf(w, " (total %d)\n", total)
	skipped := make([]string, 0, len(r.Skipped))
	for k := range r.Skipped {
		skipped = append(skipped, k)
	}
	sort.Strings(skipped)
	for _, k := range skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", k, r.Skipped[k])
	}
	fmt.Fprintf(w, "  longest recovery:")
	for _, k := range names {
		fmt.Fprintf(w, " %s=%v", k, r.Recovery[k].Round(time.Millisecond))
	}
	fmt.Fprintln(w)
	for _, f := range r.Failovers {
		event := cmp.Or(f.event, "promoted")
		fmt.Fprintf(w, "  failover %-17s %s %v, nodes subscribed %v", f.how, event, f.promoted.Round(time.Millisecond), f.subscribed.Round(time.Millisecond))
		if f.demoted > 0 {
			fmt.Fprintf(w, ", old primary a replica %v", f.demoted.Round(time.Millisecond))
		}
		fmt.Fprintf(w, " after the fault\n")
	}
	fmt.Fprintf(w, "  messages: sent %d, acked %d, refused %d (%s), unconfirmed %d, unanswered %d\n",
		t.Sent, t.Acked, t.Refused, countsString(t.RefusedBy), t.Unconfirmed, t.Unanswered)
	fmt.Fprintf(w, "  deliveries owed to live members: %d, delivered %d, excused (at-most-once) %d (%s), lost %d\n",
		t.Expected, t.Delivered, t.Excused, countsString(t.ExcusedBy), t.Lost)
	fmt.Fprintf(w, "  duplicates %d, reordered %d, copies to non-live members %d, copies of refused messages %d, late %d\n",
		t.Dups, t.Reordered, t.Extra, t.RefusedDelivered, t.Late)
	fmt.Fprintf(w, "  room streams: joins with since recovered:true %d (%d chats resent), recovered:false %d (%s; %d offsets reported missed), new epochs seen live %d\n",
		t.Recovered, t.RecoveredChats, sumCounts(t.RecoveredFalse), countsString(t.RecoveredFalse), t.HoleOffsets, t.EpochChanges)
	fmt.Fprintf(w, "  room streams: duplicates %d, silent gaps %d, repeated or reordered %d, copies at another offset %d\n",
		t.RoomDups, t.StreamGaps, t.StreamRepeats, t.OffsetMismatch)
	fmt.Fprintf(w, "  violations (lost, leaks, stale membership, supervision): %d\n", len(r.Violations))
	for _, v := range r.Violations {
		fmt.Fprintf(w, "    ! %s\n", v)
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(w, "  logs kept in %s\n", filepath.Clean(r.LogDir))
	}
}

func closesString(m map[uint16]int) string {
	c := map[string]int{}
	for code, n := range m {
		c[fmt.Sprint(code)] = n
	}
	return countsString(c)
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
