package redis

import (
	"fmt"
	"slices"
	"testing"
)

// newTestLink is a link without a connection: its queues and accounting
// only, as the connection actor, the command goroutine and the read loop
// see them.
func newTestLink() *link {
	return &link{wake: make(chan struct{}, 1), subsOnWire: make(map[string]int), staleSubs: make(map[string]int)}
}

func channels(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprint(prefix, i)
	}
	return out
}

// unsubscribed stands for the read loop reading n UNSUBSCRIBE replies.
func (l *link) unsubscribed(n int) {
	for range n {
		if l.unsubsOnWire.Add(-1) == maxChannelsPerCommand-1 {
			l.poke()
		}
	}
}

// TestLinkSubscribesAheadOfAMassExit: with thousands of unsubscriptions
// waiting, a subscription queued after them is the next command, and at
// most two batches of unsubscriptions are ever owed by Redis: the next
// batch goes once Redis owes less than one.
func TestLinkSubscribesAheadOfAMassExit(t *testing.T) {
	l := newTestLink()
	gone := channels("gone-", 5*maxChannelsPerCommand)
	l.enqueue(false, gone...)

	sub, chans := l.next()
	if sub || len(chans) != maxChannelsPerCommand {
		t.Fatalf("first command: subscribe=%v, %d channels; want one batch of unsubscriptions", sub, len(chans))
	}
	l.enqueue(true, "fresh")
	if sub, chans := l.next(); !sub || !slices.Equal(chans, []string{"fresh"}) {
		t.Fatalf("after a subscription was queued: subscribe=%v %v; want SUBSCRIBE fresh", sub, chans)
	}
	// A batch owed: nothing more until Redis answers.
	if _, chans := l.next(); len(chans) != 0 {
		t.Fatalf("sent %d more unsubscriptions while %d replies were owed", len(chans), l.unsubsOnWire.Load())
	}
	select {
	case <-l.wake: // from the enqueues
	default:
	}
	l.unsubscribed(1)
	select {
	case <-l.wake:
	default:
		t.Fatal("the read loop did not wake the command goroutine once Redis owed less than a batch")
	}
	if sub, chans := l.next(); sub || len(chans) != maxChannelsPerCommand {
		t.Fatalf("second batch: subscribe=%v, %d channels", sub, len(chans))
	}
	if _, chans := l.next(); len(chans) != 0 {
		t.Fatalf("sent %d more unsubscriptions while %d replies were owed", len(chans), l.unsubsOnWire.Load())
	}
	l.unsubscribed(2*maxChannelsPerCommand - 1)
	sent := 2 * maxChannelsPerCommand
	for {
		_, chans := l.next()
		if len(chans) == 0 {
			break
		}
		sent += len(chans)
		l.unsubscribed(len(chans))
	}
	if sent != len(gone) {
		t.Fatalf("%d unsubscriptions sent, want %d", sent, len(gone))
	}
}

// TestLinkLatestRequestWins: a channel's request cancels the opposite one
// not sent yet, so a room that comes back during a mass exit keeps its
// channel (and gets a SUBSCRIBE of its own to confirm it).
func TestLinkLatestRequestWins(t *testing.T) {
	l := newTestLink()
	l.enqueue(false, "a", "b", "c")
	l.enqueue(true, "b")
	l.enqueue(true, "d")
	l.enqueue(false, "d")
	if sub, chans := l.next(); !sub || !slices.Equal(chans, []string{"b"}) {
		t.Fatalf("first command: subscribe=%v %v; want SUBSCRIBE b", sub, chans)
	}
	if sub, chans := l.next(); sub || !slices.Equal(chans, []string{"a", "c", "d"}) {
		t.Fatalf("second command: subscribe=%v %v; want UNSUBSCRIBE a c d", sub, chans)
	}
	if _, chans := l.next(); len(chans) != 0 {
		t.Fatalf("left over: %v", chans)
	}
}

// TestLinkStaleConfirmation: the reply to a SUBSCRIBE that an UNSUBSCRIBE
// followed on the wire does not confirm the channel; the reply to the
// SUBSCRIBE sent after the UNSUBSCRIBE does.
func TestLinkStaleConfirmation(t *testing.T) {
	l := newTestLink()
	l.enqueue(true, "x", "y")
	l.next() // SUBSCRIBE x y
	l.enqueue(false, "x")
	l.next() // UNSUBSCRIBE x
	l.enqueue(true, "x")
	l.next() // SUBSCRIBE x
	if l.confirms("x") {
		t.Fatal("the first SUBSCRIBE x, unsubscribed since, confirmed x")
	}
	if !l.confirms("y") {
		t.Fatal("SUBSCRIBE y did not confirm y")
	}
	l.unsubscribed(1)
	if !l.confirms("x") {
		t.Fatal("the SUBSCRIBE x sent after the UNSUBSCRIBE did not confirm x")
	}
	if len(l.subsOnWire) != 0 || len(l.staleSubs) != 0 {
		t.Fatalf("accounting left over: %v %v", l.subsOnWire, l.staleSubs)
	}
	// A reply the link did not count (none is expected) confirms.
	if !l.confirms("z") {
		t.Fatal("an unexpected SUBSCRIBE reply did not confirm")
	}
}
