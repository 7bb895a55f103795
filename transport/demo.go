package transport

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// demoFiles is the demo page: plain HTML, CSS and JavaScript, embedded so
// that the binary serves it with no build step and no network access.
//
//go:embed web/index.html web/app.js web/style.css web/favicon.svg
var demoFiles embed.FS

// demoCSP keeps the demo page to its own origin: its scripts, styles, the
// WebSocket and /stats. Nothing is loaded from elsewhere.
const demoCSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; " +
	"style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// MountDemo serves the demo page at GET / and its assets under GET /demo/,
// and the JavaScript client it is built on at GET /switchboard.js
// (MountClient). The page talks to this node only: /ws for the chat, the
// stats command for the live node panel.
func (s *Server) MountDemo() {
	h := DemoHandler()
	s.Handle("GET /{$}", h)
	s.Handle("GET /demo/", h)
	s.MountClient()
}

// DemoHandler serves the demo page ("/") and its assets ("/demo/NAME"), for
// programs that mount it on their own mux.
func DemoHandler() http.Handler {
	sub, err := fs.Sub(demoFiles, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	assets := http.StripPrefix("/demo/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", demoCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, sub, "index.html")
			return
		case strings.HasSuffix(r.URL.Path, "/"):
			http.NotFound(w, r) // no directory listings
			return
		}
		assets.ServeHTTP(w, r)
	})
}
