package transport_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-rt/switchboard/transport"
)

// TestClientServedAtSwitchboardJS: a node with the demo mounted (as every
// cmd/switchboard node) serves the JavaScript client byte for byte as it is
// in web/client, as a module any origin may import, revalidated by ETag.
func TestClientServedAtSwitchboardJS(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("web", "client", "switchboard.js"))
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, nil)
	n.srv.MountDemo()

	resp, err := http.Get(n.url + transport.ClientPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", transport.ClientPath, resp.StatusCode)
	}
	if !bytes.Equal(body, want) {
		t.Fatalf("GET %s: %d bytes, not web/client/switchboard.js (%d bytes)", transport.ClientPath, len(body), len(want))
	}
	h := resp.Header
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q: browsers refuse a module of another type", ct)
	}
	if h.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no Access-Control-Allow-Origin: pages on other origins cannot import the module")
	}
	etag := h.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}

	req, _ := http.NewRequest(http.MethodGet, n.url+transport.ClientPath, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", resp.StatusCode)
	}

	// The demo page imports the client relatively, so that it works under a
	// path prefix too.
	resp, err = http.Get(n.url + "/demo/app.js")
	if err != nil {
		t.Fatal(err)
	}
	app, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(app), `from '../switchboard.js'`) {
		t.Error("the demo page's app.js does not import ../switchboard.js")
	}
}

// TestClientWithoutDemo: MountClient alone serves the client, for programs
// that want the client without the demo page.
func TestClientWithoutDemo(t *testing.T) {
	n := startNode(t, nil)
	n.srv.MountClient()
	for path, want := range map[string]int{transport.ClientPath: 200, "/": 404} {
		resp, err := http.Get(n.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
