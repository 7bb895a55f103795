package port

import (
	"crypto/rand"
	"encoding/base64"
)

// RandomID returns n random bytes as URL-safe base64 (at least 8 characters for n >= 6).
func RandomID(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
