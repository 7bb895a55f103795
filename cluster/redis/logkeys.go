package redis

import (
	"crypto/rand"
	"encoding/base64"
)

// Structured log keys: the same as package actors' (actors.KeyActor,
// KeyNode, KeyErr), so that a node's log reads alike from every part
// (TestLogKeysAreTheActors keeps them equal).
const (
	keyActor = "actor"
	keyNode  = "node"
	keyErr   = "err"
)

// randomID returns n random bytes as URL-safe base64, as actors.RandomID.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
