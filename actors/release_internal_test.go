package actors

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// childReaper spawns children, stops them, and after each child's
// Terminated reports how many slots past the end of its children set still
// hold a PID.
type childReaper struct {
	children int
	stale    chan int
}

func (p *childReaper) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		var pids []*actor.PID
		for range p.children {
			pids = append(pids, ctx.Spawn(actor.PropsFromFunc(func(actor.Context) {})))
		}
		// Stopped in an order that moves PIDs around in the set.
		for i := range pids {
			ctx.Stop(pids[(i*7)%len(pids)])
		}
	case *actor.Terminated:
		clearVacatedChildSlot(ctx)
		c := ctx.Children()
		n := 0
		for _, pid := range c[len(c):cap(c)] {
			if pid != nil {
				n++
			}
		}
		p.stale <- n
	}
}

// protoactor's PIDSet.Remove leaves the PID it removes (or the one it
// moved) in the slot it vacates; clearVacatedChildSlot, called on each
// Terminated, keeps every slot past the end of the children set empty.
func TestClearVacatedChildSlot(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	defer sys.Shutdown()
	const children = 64 // 7 and 64 are coprime: every child is stopped once
	reaper := &childReaper{children: children, stale: make(chan int, children)}
	sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return reaper }))
	for i := range children {
		select {
		case n := <-reaper.stale:
			if n != 0 {
				t.Fatalf("after %d children stopped, %d slots past the end still hold a PID", i+1, n)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d children reported stopped", i, children)
		}
	}
}

// compacted rebuilds a map once it holds less than a quarter of its peak,
// keeping its contents, and leaves small maps alone.
func TestCompacted(t *testing.T) {
	m := map[string]int{}
	peak := 0
	for i := range 4 * compactMinPeak {
		m[fmt.Sprint(i)] = i
		if got := compacted(m, &peak); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", m) {
			t.Fatalf("rebuilt while growing, at %d entries", len(m))
		}
	}
	if peak != 4*compactMinPeak {
		t.Fatalf("peak %d, want %d", peak, 4*compactMinPeak)
	}
	i := 0
	for ; len(m) > compactMinPeak; i++ {
		delete(m, fmt.Sprint(i))
		if got := compacted(m, &peak); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", m) {
			t.Fatalf("rebuilt at %d entries of a peak of %d", len(m), peak)
		}
	}
	delete(m, fmt.Sprint(i))
	got := compacted(m, &peak)
	if fmt.Sprintf("%p", got) == fmt.Sprintf("%p", m) {
		t.Fatalf("not rebuilt at %d entries of a peak of %d", len(m), 4*compactMinPeak)
	}
	if len(got) != len(m) || peak != len(m) {
		t.Fatalf("rebuilt with %d entries (peak %d), want %d", len(got), peak, len(m))
	}
	for k, v := range m {
		if got[k] != v {
			t.Fatalf("entry %s: %d, want %d", k, got[k], v)
		}
	}
	// A map that never reached compactMinPeak is never copied.
	small, smallPeak := map[int]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5}, 0
	compacted(small, &smallPeak)
	clear(small)
	if got := compacted(small, &smallPeak); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", small) {
		t.Fatal("a small map was rebuilt")
	}
}
