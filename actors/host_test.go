package actors_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/actors/port"
)

// The actor API (package port) as the brokers use it, over a real node's
// actor system: lifecycle, requests, priority mailboxes, supervision of
// children with a delay and restart statistics, resume on panic, and
// handles that reach actors of other nodes.

// recorder is a Behavior that reports what it handles on seen.
type recorder struct {
	name string
	seen chan<- string
	// on, when set, handles user messages.
	on func(ctx port.Context)
}

func (r *recorder) Receive(ctx port.Context) {
	switch m := ctx.Message().(type) {
	case *port.Started:
		r.seen <- r.name + ":started"
	case *port.Stopping:
		r.seen <- r.name + ":stopping"
	case *port.Stopped:
		r.seen <- r.name + ":stopped"
	case *port.Restarting:
		r.seen <- r.name + ":restarting"
	case *port.Terminated:
		r.seen <- r.name + ":terminated " + m.Who.ID()
	default:
		if r.on != nil {
			r.on(ctx)
		}
	}
}

// expect reads the next reports from seen and compares them with want.
func expect(t *testing.T, seen <-chan string, want ...string) {
	t.Helper()
	for _, w := range want {
		select {
		case got := <-seen:
			if got != w {
				t.Fatalf("got %q, want %q", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %q", w)
		}
	}
}

func TestActorHostLifecycleAndRequest(t *testing.T) {
	n := newNode(t)
	host := n.Actors()
	seen := make(chan string, 16)
	ref, err := host.Spawn(port.Spec{Name: "echo", New: func() port.Behavior {
		return &recorder{name: "echo", seen: seen, on: func(ctx port.Context) {
			if q, ok := ctx.Message().(string); ok {
				ctx.Respond("re:" + q)
			}
		}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID() != "echo" || ref.IsZero() {
		t.Fatalf("ref %q (zero %v), want the actor named echo", ref.ID(), ref.IsZero())
	}
	if _, err := host.Spawn(port.Spec{Name: "echo", New: func() port.Behavior { return &recorder{} }}); err == nil {
		t.Fatal("a second actor named echo was spawned")
	}
	expect(t, seen, "echo:started")
	res, err := host.Request(ref, "ping", 5*time.Second)
	if err != nil || res != "re:ping" {
		t.Fatalf("request: %v, %v; want re:ping", res, err)
	}
	if err := host.Stop(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	expect(t, seen, "echo:stopping", "echo:stopped")
	if _, err := host.Request(port.Ref{}, "ping", time.Second); err == nil {
		t.Fatal("a request to the zero Ref was answered")
	}
}

// A priority mailbox hands over the higher priority first; among equals,
// the order of arrival.
func TestActorHostPriorityMailbox(t *testing.T) {
	if port.DefaultPriority != actor.DefaultPriority {
		t.Fatalf("port.DefaultPriority %d, protoactor's %d", port.DefaultPriority, actor.DefaultPriority)
	}
	n := newNode(t)
	seen := make(chan string, 16)
	gate := make(chan struct{})
	ref, err := n.Actors().Spawn(port.Spec{Priority: true, New: func() port.Behavior {
		return &recorder{name: "p", seen: seen, on: func(ctx port.Context) {
			switch m := ctx.Message().(type) {
			case string:
				if m == "hold" {
					seen <- "holding"
					<-gate // the test's way to fill the mailbox
				}
				seen <- m
			case urgent:
				seen <- "urgent " + string(m)
			}
		}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, seen, "p:started")
	h := n.Actors()
	h.Send(ref, "hold")
	expect(t, seen, "holding")
	h.Send(ref, "a")
	h.Send(ref, "b")
	h.Send(ref, urgent("1"))
	h.Send(ref, urgent("2"))
	close(gate)
	expect(t, seen, "hold", "urgent 1", "urgent 2", "a", "b")
}

type urgent string

func (urgent) GetPriority() int8 { return port.DefaultPriority + 1 }

// A child that panics is restarted after the delay its parent's
// RestartChild returns, with the failures counted across incarnations,
// and keeps its mailbox; its parent hears of its end.
func TestActorHostRestartsChildrenAfterTheDelay(t *testing.T) {
	n := newNode(t)
	seen := make(chan string, 32)
	decided := make(chan string, 8)
	var child port.Ref
	parent, err := n.Actors().Spawn(port.Spec{
		Name: "parent",
		RestartChild: func(c port.Ref, rs port.RestartStats, reason any) time.Duration {
			rs.Fail()
			decided <- fmt.Sprintf("%s failure %d: %v", c.ID(), rs.FailureCount(), reason)
			return 20 * time.Millisecond
		},
		New: func() port.Behavior {
			return &recorder{name: "parent", seen: seen, on: func(ctx port.Context) {
				switch ctx.Message() {
				case "spawn":
					c, err := ctx.Spawn(port.Spec{Name: "kid", New: func() port.Behavior {
						return &recorder{name: "kid", seen: seen, on: func(ctx port.Context) {
							if ctx.Parent().ID() != "parent" {
								seen <- "kid: parent is " + ctx.Parent().ID()
							}
							switch m := ctx.Message().(type) {
							case *actors.Crash:
								panic(m.Reason)
							case string:
								seen <- "kid " + m
							}
						}}
					}})
					if err != nil {
						panic(err)
					}
					ctx.Respond(c)
				case "stop kid":
					ctx.Stop(child)
				}
			}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := n.Actors()
	res, err := h.Request(parent, "spawn", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	child = res.(port.Ref)
	if child.ID() != "parent/kid" {
		t.Fatalf("child id %q, want parent/kid", child.ID())
	}
	expect(t, seen, "parent:started", "kid:started")
	for i := 1; i <= 2; i++ {
		h.Send(child, &actors.Crash{Reason: "boom"})
		h.Send(child, fmt.Sprint("after crash ", i)) // waits in the mailbox for the new incarnation
		select {
		case d := <-decided:
			if want := fmt.Sprintf("parent/kid failure %d: boom", i); d != want {
				t.Fatalf("decision %q, want %q", d, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("RestartChild not called")
		}
		expect(t, seen, "kid:restarting", "kid:started", fmt.Sprint("kid after crash ", i))
	}
	h.Send(parent, "stop kid")
	expect(t, seen, "kid:stopping", "kid:stopped", "parent:terminated parent/kid")
}

// An actor that resumes on panic keeps its state; the message is dropped.
func TestActorHostResumesOnPanic(t *testing.T) {
	n := newNode(t)
	seen := make(chan string, 16)
	panics := make(chan any, 4)
	ref, err := n.Actors().Spawn(port.Spec{
		ResumeOnPanic: func(reason any) { panics <- reason },
		New: func() port.Behavior {
			count := 0
			return &recorder{name: "r", seen: seen, on: func(ctx port.Context) {
				count++
				if ctx.Message() == "boom" {
					panic(errors.New("boom"))
				}
				seen <- fmt.Sprint(ctx.Message(), " ", count)
			}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := n.Actors()
	h.Send(ref, "a")
	h.Send(ref, "boom")
	h.Send(ref, "b")
	expect(t, seen, "r:started", "a 1", "b 3")
	if r := <-panics; fmt.Sprint(r) != "boom" {
		t.Fatalf("panic reason %v", r)
	}
}

// Handles of two nodes' actors reach each one's own actor, from either
// node's host and from a detached host, and are never Equal.
func TestActorHostRefsAcrossNodes(t *testing.T) {
	a, b := newNode(t), newNode(t)
	seen := make(chan string, 16)
	spawn := func(n *actors.Node, name string) port.Ref {
		ref, err := n.Actors().Spawn(port.Spec{Name: "twin", New: func() port.Behavior {
			return &recorder{name: name, seen: seen, on: func(ctx port.Context) { seen <- name + " " + ctx.Message().(string) }}
		}})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, seen, name+":started")
		return ref
	}
	ra, rb := spawn(a, "a"), spawn(b, "b")
	if ra.ID() != rb.ID() || ra.Equal(rb) || !ra.Equal(ra) {
		t.Fatalf("ids %q %q, Equal %v: two nodes' actors of one name must differ", ra.ID(), rb.ID(), ra.Equal(rb))
	}
	a.Actors().Send(rb, "from a")
	expect(t, seen, "b from a")
	d, stop := b.Actors().Detached()
	defer stop()
	relay, err := d.Spawn(port.Spec{New: func() port.Behavior {
		return port.BehaviorFunc(func(ctx port.Context) {
			if m, ok := ctx.Message().(string); ok {
				ctx.Send(ra, m)
			}
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	d.Send(relay, "via the detached host")
	expect(t, seen, "a via the detached host")
	if err := d.Stop(context.Background(), relay); err != nil {
		t.Fatal(err)
	}
}
