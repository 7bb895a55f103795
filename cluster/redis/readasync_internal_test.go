package redis

import (
	"testing"
	"time"
)

// A read is refused at once while Redis is unreachable (the outbox
// writer's last round trip failed and no pub/sub connection is up), but
// not once a pub/sub connection is up again and the writer has not yet
// noticed: a room's catch-up read after its resubscription runs then.
func TestReadAsyncRefusesOnlyWhileRedisIsUnreachable(t *testing.T) {
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0), reads: make(chan struct{}, maxReads), clientReads: make(chan struct{}, maxClientReads)}
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
// maxClientReads of the maxReads in flight: past that a client's read is
// refused at once, and the rooms' own reads still run.
func TestClientReadsLeaveTheRoomsTheirShare(t *testing.T) {
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0),
		reads: make(chan struct{}, maxReads), clientReads: make(chan struct{}, maxClientReads)}
	r.health.init(1)
	r.out = newOutbox(r)
	r.running.Store(true)

	hold := make(chan struct{})
	started := make(chan struct{}, maxReads)
	refused := make(chan bool, 4*maxReads)
	start := func(client bool) {
		r.readAsync(client, func() error { started <- struct{}{}; <-hold; return nil }, func() { refused <- client })
	}
	for range maxClientReads {
		start(true)
	}
	for range maxClientReads {
		<-started
	}
	start(true)
	select {
	case c := <-refused:
		if !c {
			t.Fatal("a room's read was refused")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a client's read past its share was not refused")
	}
	// The rooms still have the rest.
	for range maxReads - maxClientReads {
		start(false)
	}
	for range maxReads - maxClientReads {
		select {
		case <-started:
		case <-refused:
			t.Fatal("a room's read was refused while clients held only their share")
		case <-time.After(5 * time.Second):
			t.Fatal("a room's read did not start")
		}
	}
	if got := r.stats.readsRefused.Load(); got != 1 {
		t.Fatalf("%d reads counted refused, want 1", got)
	}
	close(hold)
	// Once the reads are done every token is back.
	deadline := time.Now().Add(5 * time.Second)
	for len(r.reads)+len(r.clientReads) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("tokens still held: %d reads, %d clients' reads", len(r.reads), len(r.clientReads))
		}
		time.Sleep(time.Millisecond)
	}
}
