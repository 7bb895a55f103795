package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-rt/switchboard/actors"
	"github.com/switchboard-rt/switchboard/cluster"
)

// Shutdown may be called again (a deferred cleanup after an explicit stop):
// the later calls return at once instead of panicking in the actor system.
func TestShutdownTwice(t *testing.T) {
	n, err := actors.NewNode(actors.Config{Broker: cluster.NewInProc()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}
