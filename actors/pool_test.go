package actors

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Every activation scheduled, of both classes and from many goroutines at
// once, runs exactly once, and no worker outlives the work.
func TestActorPoolRunsEveryActivationOnce(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newActorPool()
	const producers, each = 8, 5000
	var ran atomic.Int64
	var wg sync.WaitGroup
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				p.schedule(activation{fn: func() { ran.Add(1) }}, (i+j)%3 == 0)
				if j%1000 == 0 {
					runtime.Gosched() // let workers drain and end between bursts
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() < producers*each || p.running() != 0 || runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("ran %d of %d, %d workers, %d goroutines (before %d)", ran.Load(), producers*each, p.running(), runtime.NumGoroutine(), before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := ran.Load(); n != producers*each {
		t.Fatalf("ran %d activations, want %d", n, producers*each)
	}
	if n := p.queued(); n != 0 {
		t.Fatalf("%d activations still queued", n)
	}
}

// An activation scheduled while the last worker is finishing is not
// stranded: one at a time, each waited for, many times over.
func TestActorPoolNoStrandedActivation(t *testing.T) {
	p := newActorPool()
	done := make(chan struct{}, 1)
	for i := range 20000 {
		p.schedule(activation{fn: func() { done <- struct{}{} }}, i%2 == 0)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("activation %d never ran (%d workers, %d queued)", i, p.running(), p.queued())
		}
	}
}

// Teardown waits behind everything else: with the workers busy, a Stop
// posted to one pooled actor and then a message to another, the message is
// handled first. This is what keeps a join's room quick while a mass exit
// stops 100,000 others.
func TestActorPoolTeardownGoesLast(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	p := newActorPool()
	p.max = 1

	var log handled
	note := log.note
	spawn := func(name string) *actor.PID {
		props := actor.PropsFromFunc(func(c actor.Context) {
			switch c.Message().(type) {
			case string:
				note(name + " message")
			case *actor.Stopped:
				note(name + " stopped")
			}
		}, p.pooled()...)
		return sys.Root.Spawn(props)
	}
	leaving, staying := spawn("leaving"), spawn("staying")
	waitUntil(t, "both actors started", func() bool { return p.queued() == 0 && p.running() == 0 })

	// Occupy the only worker, then queue teardown before a message.
	release := occupy(p)
	sys.Root.Stop(leaving)
	sys.Root.Send(staying, "hello")
	waitUntil(t, "both activations queued", func() bool { return p.queued() == 2 })
	release()
	order := log.wait(t, 2)
	if order[0] != "staying message" || order[1] != "leaving stopped" {
		t.Fatalf("handled in the order %q; the message should overtake the teardown", order)
	}
}

// The class is the kind of message that woke the mailbox.
func TestPoolMailboxClassesTeardown(t *testing.T) {
	for _, c := range []struct {
		msg      any
		teardown bool
	}{
		{&actor.Terminated{}, true},
		{&actor.Stop{}, true},
		{&actor.PoisonPill{}, true},
		{&actor.Unwatch{}, true},
		{&roomLeave{}, true},
		{roomRetired{}, true},
		{&actor.Watch{}, false},
		{&actor.Started{}, false},
		{&roomJoin{}, false},
		{&Inbound{}, false},
	} {
		if got := teardownClass(c.msg); got != c.teardown {
			t.Errorf("%T: teardown %v, want %v", c.msg, got, c.teardown)
		}
	}
}

// A join for a room whose teardown is already queued does not wait behind
// the whole teardown backlog: the urgent message promotes the queued
// activation, which runs once, before the other teardowns.
func TestActorPoolPromotesAQueuedTeardown(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	p := newActorPool()
	p.max = 1

	var log handled
	note := log.note
	// member is a session: three pooled rooms watch it.
	member := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	var watching sync.WaitGroup
	spawn := func(name string) *actor.PID {
		watching.Add(1)
		return sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case *actor.Started:
				c.Watch(member)
				watching.Done()
			case string:
				note(name + " " + m)
			case *actor.Terminated:
				note(name + " left")
			}
		}, p.pooled()...))
	}
	spawn("first")
	spawn("second")
	joined := spawn("joined")
	watching.Wait()
	waitUntil(t, "the rooms idle", func() bool { return p.queued() == 0 && p.running() == 0 })

	release := occupy(p)
	// The member leaves: three teardowns queue. Then a join reaches the
	// third room.
	sys.Root.Stop(member)
	waitUntil(t, "three teardowns queued", func() bool { return p.queued() == 3 })
	sys.Root.Send(joined, "join")
	waitUntil(t, "the promotion queued", func() bool { return p.queued() == 4 })
	release()
	order := log.wait(t, 4)
	if order[0] != "joined left" || order[1] != "joined join" {
		t.Fatalf("handled in the order %q; the promoted room should run first", order)
	}
	count := map[string]int{}
	for _, o := range order {
		count[o]++
	}
	if count["first left"] != 1 || count["second left"] != 1 || count["joined left"] != 1 {
		t.Fatalf("handled %q: every room should hear of the member once", order)
	}
	waitUntil(t, "the workers gone", func() bool { return p.running() == 0 && p.queued() == 0 })
}

// A few actors with long backlogs hold every worker; an urgent activation
// that comes meanwhile gets a worker of its own instead of waiting for
// them.
func TestActorPoolUrgentWorkIsNotStuckBehindBusyWorkers(t *testing.T) {
	p := newActorPool()
	p.max = 2
	release := make(chan struct{})
	for range p.max {
		p.schedule(activation{fn: func() { <-release }}, false)
	}
	defer close(release)
	waitUntil(t, "the workers busy", func() bool { return p.queued() == 0 && p.running() == p.max })
	time.Sleep(2 * stallAfter) // the busy workers take nothing meanwhile
	done := make(chan struct{})
	p.schedule(activation{fn: func() { close(done) }}, false)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("an urgent activation waited behind %d busy workers", p.max)
	}
}

// A queue that never drains (teardown behind steady urgent work) keeps
// storage for what it holds, not for everything pushed since it was last
// empty.
func TestFifoStorageFollowsItsLength(t *testing.T) {
	var q fifo[activation]
	for i := range 1_000_000 {
		q.push(activation{})
		if i > 0 {
			q.pop(0)
		}
	}
	if q.len() != 1 || cap(q.items) > 64 {
		t.Fatalf("queue of %d holds an array of %d", q.len(), cap(q.items))
	}
}

// handled records what pooled actors handled, in order.
type handled struct {
	mu    sync.Mutex
	order []string
}

func (h *handled) note(s string) {
	h.mu.Lock()
	h.order = append(h.order, s)
	h.mu.Unlock()
}

// wait returns the record once it holds n entries.
func (h *handled) wait(t *testing.T, n int) []string {
	t.Helper()
	waitUntil(t, fmt.Sprint(n, " handled"), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.order) == n
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.order)
}

// occupy holds p's only worker until the returned release is called.
func occupy(p *actorPool) (release func()) {
	busy, done := make(chan struct{}), make(chan struct{})
	p.schedule(activation{fn: func() { close(busy); <-done }}, false)
	<-busy
	return func() { close(done) }
}

// Messages posted to pooled actors from many goroutines at once, urgent
// and teardown mixed (so that activations are promoted and run from
// either copy), are each handled once, in each sender's order; and the
// mailboxes end idle and empty.
func TestPoolMailboxHandlesEveryMessageOnceInOrder(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	p := newActorPool()
	const actors, senders, each = 16, 8, 2000
	type got struct {
		mu   sync.Mutex
		last [senders]int
		n    int
		bad  string
	}
	seen := make([]*got, actors)
	pids := make([]*actor.PID, actors)
	for a := range actors {
		g := &got{}
		for s := range g.last {
			g.last[s] = -1
		}
		seen[a] = g
		note := func(sender, seq int) {
			g.mu.Lock()
			defer g.mu.Unlock()
			if seq != g.last[sender]+1 && g.bad == "" {
				g.bad = fmt.Sprintf("sender %d: %d after %d", sender, seq, g.last[sender])
			}
			g.last[sender] = seq
			g.n++
		}
		pids[a] = sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
			switch m := c.Message().(type) {
			case [2]int:
				note(m[0], m[1])
			case *roomLeave: // teardown class; its user field carries the numbers
				var sender, seq int
				fmt.Sscan(m.user, &sender, &seq)
				note(sender, seq)
			}
		}, p.pooled()...))
	}
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				for _, pid := range pids {
					if (i+s)%3 == 0 {
						sys.Root.Send(pid, &roomLeave{user: fmt.Sprint(s, " ", i)})
					} else {
						sys.Root.Send(pid, [2]int{s, i})
					}
				}
			}
		}()
	}
	wg.Wait()
	waitUntil(t, "every message handled", func() bool {
		for _, g := range seen {
			g.mu.Lock()
			n := g.n
			g.mu.Unlock()
			if n != senders*each {
				return false
			}
		}
		return p.running() == 0 && p.queued() == 0
	})
	for a, g := range seen {
		if g.bad != "" {
			t.Fatalf("actor %d: out of order: %s", a, g.bad)
		}
	}
}

// A pooled actor that panics is handed to its supervisor with its mailbox
// suspended; what was posted meanwhile is handled after the resume, in
// order, and nothing is lost.
func TestPoolMailboxSuspendsOnPanic(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	p := newActorPool()
	resume := actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.ResumeDirective })
	var log handled
	pid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if m, ok := c.Message().(string); ok {
			if m == "boom" {
				panic("boom")
			}
			log.note(m)
		}
	}, append(p.pooled(), actor.WithGuardian(resume))...))
	for _, m := range []string{"a", "boom", "b", "c"} {
		sys.Root.Send(pid, m)
	}
	if order := log.wait(t, 3); !slices.Equal(order, []string{"a", "b", "c"}) {
		t.Fatalf("handled %q, want a b c", order)
	}
}

// A drained queue keeps a few slots at most: an idle actor holds almost
// nothing, whatever its last burst was.
func TestFifoLetsABurstGo(t *testing.T) {
	var q fifo[any]
	for i := range 1000 {
		q.push(i)
	}
	for i := range 1000 {
		if got, ok := q.pop(msgQueueKeep); !ok || got != i {
			t.Fatalf("pop %d: %v %v", i, got, ok)
		}
	}
	if _, ok := q.pop(msgQueueKeep); ok || cap(q.items) > msgQueueKeep {
		t.Fatalf("drained queue holds %d slots", cap(q.items))
	}
	q.push("x")
	if got, _ := q.pop(msgQueueKeep); got != "x" || cap(q.items) > msgQueueKeep || cap(q.items) == 0 {
		t.Fatalf("a small queue holds %d slots, want a few kept", cap(q.items))
	}
}
