package transport

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

// ClientPath is where a node serves its JavaScript client, as Socket.IO
// serves its own: a page imports it from the node it talks to.
const ClientPath = "/switchboard.js"

// clientJS is the JavaScript client (web/client, also published to npm as
// @switchboard-rt/client), one ES module with no dependencies.
//
//go:embed web/client/switchboard.js
var clientJS []byte

// clientETag names this build's copy, so that browsers revalidate it
// cheaply (Cache-Control: no-cache) and never run a stale one.
var clientETag = func() string {
	sum := sha256.Sum256(clientJS)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}()

// MountClient serves the JavaScript client at GET /switchboard.js.
// MountDemo mounts it too, since the demo page is built on it.
func (s *Server) MountClient() {
	s.Handle("GET "+ClientPath, ClientHandler())
}

// ClientHandler serves the JavaScript client, for programs that mount it on
// their own mux. Any origin may load it: it is public code, and a page on
// another origin needs CORS to import a module.
func ClientHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", clientETag)
		http.ServeContent(w, r, "switchboard.js", time.Time{}, bytes.NewReader(clientJS))
	})
}
