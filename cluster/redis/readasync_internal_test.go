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
	r := &Broker{cfg: Config{OutboxLimit: 10, MaxBatch: 10}, keys: newKeyspace("websocket", "n1", 0), reads: make(chan struct{}, maxReads)}
	r.health.init(2)
	r.out = newOutbox(r)
	r.running.Store(true)
	r.out.failing.Store(true)

	try := func() (ran bool) {
		t.Helper()
		result := make(chan bool, 1)
		r.readAsync(func() error { result <- true; return nil }, func() { result <- false })
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
