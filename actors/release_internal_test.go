package actors

import (
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
