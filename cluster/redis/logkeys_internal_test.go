package redis

import (
	"testing"

	"github.com/switchboard-rt/switchboard/actors"
)

// TestLogKeysAreTheActors: the broker logs with the node's structured keys.
func TestLogKeysAreTheActors(t *testing.T) {
	for _, k := range [][2]string{{keyActor, actors.KeyActor}, {keyNode, actors.KeyNode}, {keyErr, actors.KeyErr}} {
		if k[0] != k[1] {
			t.Errorf("log key %q, the actors package's is %q", k[0], k[1])
		}
	}
}
