package main

import (
	"fmt"
	"sort"
	"strings"
)

// tally is what happened to the messages of one round (or of the run).
type tally struct {
	Sent, Acked, Refused, Unconfirmed, Unanswered int
	// Pairs: (acked message, live recipient).
	Expected, Delivered, Excused, Lost             int
	Dups, Reordered, Extra, RefusedDelivered, Late int
	ExcusedBy                                      map[string]int
	RefusedBy                                      map[string]int
	Examples                                       []string // first lost or unanswered messages, for the report

	// Room streams and recovery (streams.go), with history on.
	RoomDups        int            // extra copies of room messages to one client, over all its connections
	StreamGaps      int            // offsets skipped silently in a client's stream
	StreamRepeats   int            // copies whose offset did not move a client's stream on
	OffsetMismatch  int            // copies of one message at different places
	EpochChanges    int            // new epochs seen live
	Recovered       int            // joins with since answered recovered:true
	RecoveredChats  int            // chats those recoveries sent
	RecoveredFalse  map[string]int // joins with since answered recovered:false, by reason
	HoleOffsets     int            // offsets those said the client missed (new epochs: up to the ack)
	NoRecoveredFlag int            // joins with since whose ack had no recovered flag
	StreamExamples  []string
}

func (t *tally) add(o *tally) {
	t.Sent += o.Sent
	t.Acked += o.Acked
	t.Refused += o.Refused
	t.Unconfirmed += o.Unconfirmed
	t.Unanswered += o.Unanswered
	t.Expected += o.Expected
	t.Delivered += o.Delivered
	t.Excused += o.Excused
	t.Lost += o.Lost
	t.Dups += o.Dups
	t.Reordered += o.Reordered
	t.Extra += o.Extra
	t.RefusedDelivered += o.RefusedDelivered
	t.Late += o.Late
	t.ExcusedBy = addCounts(t.ExcusedBy, o.ExcusedBy)
	t.RefusedBy = addCounts(t.RefusedBy, o.RefusedBy)
	if len(t.Examples) < 10 {
		t.Examples = append(t.Examples, o.Examples[:min(len(o.Examples), 10-len(t.Examples))]...)
	}
	t.RoomDups += o.RoomDups
	t.StreamGaps += o.StreamGaps
	t.StreamRepeats += o.StreamRepeats
	t.OffsetMismatch += o.OffsetMismatch
	t.EpochChanges += o.EpochChanges
	t.Recovered += o.Recovered
	t.RecoveredChats += o.RecoveredChats
	t.RecoveredFalse = addCounts(t.RecoveredFalse, o.RecoveredFalse)
	t.HoleOffsets += o.HoleOffsets
	t.NoRecoveredFlag += o.NoRecoveredFlag
	if len(t.StreamExamples) < 10 {
		t.StreamExamples = append(t.StreamExamples, o.StreamExamples[:min(len(o.StreamExamples), 10-len(t.StreamExamples))]...)
	}
}

// streamProblems is what the round must report as violations of the
// stream rules: silent gaps, repeats, disagreeing offsets, duplicates,
// unexplained recovered:false.
func (t *tally) streamProblems() int {
	return t.StreamGaps + t.StreamRepeats + t.OffsetMismatch + t.RoomDups + t.RecoveredFalse[lostOther] + t.NoRecoveredFlag
}

func addCounts(dst, src map[string]int) map[string]int {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = map[string]int{}
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
