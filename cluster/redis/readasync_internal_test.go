package redis

import (
	"context"
	"testing"
	"time"
)

// A read is refused at once while Redis is unreachable (the outbox
// writer's last round trip failed and no pub/sub connection is up), but
// not once a pub/sub connection is up again and the writer has not yet
// noticed: a room's catch-up read after its resubscription runs then.
func TestReadAsyncRefusesOnlyWhileRedisIsUnreachable(t *testing.T) {
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0), ctx: context.Background(),
		reads: make(chan struct{}, maxReads), clientReads: make(chan struct{}, maxClientReads)}
	r.health.init(2)
	r.out = newOutbox(r)
	r.running.Store(true)
	r.out.failing.Store(true)

	try := func() (ran bool) {
		t.Helper()
		result := make(chan bool, 1)
		r.readAsync(false, func() error { result <- true; return nil }, func() { result <- false })
		select {
		case ran = <-result:
		case <-time.After(5 * time.Second):
			t.Fatal("readAsync answered neither way")
		}
		return ran
	}
	if try() {
		t.Fatal("read ran while the writer was failing and no pub/sub connection was up")
	}
	r.health.set(1, true) // the room's connection resubscribed
	if !try() {
		t.Fatal("read refused with a pub/sub connection up: the writer's failure is stale")
	}
	r.health.set(1, false)
	r.out.failing.Store(false)
	if !try() {
		t.Fatal("read refused while the writer was not failing")
	}
}

// Clients' reads (history and presence queries, recoveries) hold at most
// maxClientReads of the maxReads in flight: past that a client's read
// waits for a turn (up to clientReadWait), and the rooms' own reads still
// run at once.
func TestClientReadsLeaveTheRoomsTheirShare(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0), ctx: ctx,
		reads: make(chan struct{}, maxReads), clientReads: make(chan struct{}, maxClientReads)}
	r.health.init(1)
	r.out = newOutbox(r)
	r.running.Store(true)

	type outcome struct {
		name    string
		started bool
	}
	outcomes := make(chan outcome, 4*maxReads)
	start := func(name string, client bool, hold chan struct{}) {
		r.readAsync(client, func() error {
			outcomes <- outcome{name, true}
			<-hold
			return nil
		}, func() { outcomes <- outcome{name, false} })
	}
	next := func(what string) outcome {
		t.Helper()
		select {
		case o := <-outcomes:
			return o
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %s", what)
			return outcome{}
		}
	}
	holds := make([]chan struct{}, maxClientReads)
	for i := range holds {
		holds[i] = make(chan struct{})
		start("client", true, holds[i])
	}
	for range maxClientReads {
		if o := next("the clients' reads"); !o.started {
			t.Fatal("a client's read within the share was refused")
		}
	}
	// Past the share: this one waits for a turn...
	late := make(chan struct{})
	start("late client", true, late)
	// ...while the rooms still have the rest, at once.
	roomHold := make(chan struct{})
	for range maxReads - maxClientReads {
		start("room", false, roomHold)
	}
	for range maxReads - maxClientReads {
		if o := next("the rooms' reads"); o.name != "room" || !o.started {
			t.Fatalf("%s: started %v while clients held only their share", o.name, o.started)
		}
	}
	// A client's read that is done gives the waiting one its turn.
	close(holds[0])
	if o := next("the late client's turn"); o.name != "late client" || !o.started {
		t.Fatalf("%s: started %v, want the late client's read run", o.name, o.started)
	}
	// Still no turn after clientReadWait: refused.
	start("refused client", true, make(chan struct{}))
	if o := next("the refusal"); o.name != "refused client" || o.started {
		t.Fatalf("%s: started %v, want the client's read refused after waiting %v", o.name, o.started, clientReadWait)
	}
	if got := r.stats.readsRefused.Load(); got != 1 {
		t.Fatalf("%d reads counted refused, want 1", got)
	}
	close(late)
	close(roomHold)
	for _, h := range holds[1:] {
		close(h)
	}
	// Once the reads are done every token is back.
	deadline := time.Now().Add(5 * time.Second)
	for len(r.reads)+len(r.clientReads) > 0 || r.clientWaits.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tokens still held: %d reads, %d clients' reads, %d waiting", len(r.reads), len(r.clientReads), r.clientWaits.Load())
		}
		time.Sleep(time.Millisecond)
	}
}
