package transport_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEmbeddingDocMountsWhatTheBinaryMounts: docs/embedding.md's example
// shows how to mount each optional part that cmd/switchboard mounts (the
// demo page, the publish API), not only the router.
func TestEmbeddingDocMountsWhatTheBinaryMounts(t *testing.T) {
	doc, err := os.ReadFile("../docs/embedding.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/embedding.md has no Go example")
	}
	example := string(m[1])
	for _, call := range []string{"router.MountDemo()", "router.Handle(transport.PublishPath, router.PublishAPI("} {
		if !strings.Contains(example, call) {
			t.Errorf("the example of docs/embedding.md does not show %s", call)
		}
	}
}
