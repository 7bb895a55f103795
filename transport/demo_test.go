package transport_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestDemoPageUnderPathPrefix: the page refers to its assets, /ws and /stats
// by relative URLs, so a program that mounts the router under a prefix
// serves a working page there.
func TestDemoPageUnderPathPrefix(t *testing.T) {
	n := startNode(t, nil)
	n.srv.MountDemo()
	mux := http.NewServeMux()
	mux.Handle("/realtime/", http.StripPrefix("/realtime", n.srv))
	hs := httptest.NewServer(mux)
	defer hs.Close()

	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, page := get("/realtime/")
	if status != 200 {
		t.Fatalf("GET /realtime/: %d", status)
	}
	for _, ref := range []string{`src="demo/app.js"`, `href="demo/style.css"`, `href="stats"`} {
		if !strings.Contains(page, ref) {
			t.Errorf("the page does not refer to %s relatively", ref)
		}
	}
	if strings.Contains(page, `"/demo/`) || strings.Contains(page, `"/ws`) || strings.Contains(page, `"/stats"`) {
		t.Error("the page has an absolute path: it would break under a prefix")
	}
	for _, path := range []string{"/realtime/demo/app.js", "/realtime/stats"} {
		if status, _ := get(path); status != 200 {
			t.Errorf("GET %s: %d", path, status)
		}
	}
	_, js := get("/realtime/demo/app.js")
	if strings.Contains(js, "fetch('/") || strings.Contains(js, "/ws${") {
		t.Error("app.js uses an absolute path")
	}
}
