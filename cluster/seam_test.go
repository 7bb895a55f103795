package cluster_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestClusterBuildsWithoutProtoactor: the brokers build against the port
// (package actors/port and its actor API), not against the actor runtime:
// no package of protoactor is among the dependencies of cluster,
// cluster/redis or cluster/redistest, and none of them imports package
// actors, which wraps protoactor. (Their tests may: they start nodes.)
func TestClusterBuildsWithoutProtoactor(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cluster/...: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, "github.com/asynkron/protoactor-go") {
			t.Errorf("the cluster packages depend on %s", p)
		}
	}
	const actors = "github.com/switchboard-rt/switchboard/actors"
	out, err = exec.Command(gobin, "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list ./cluster/...: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if imp == actors {
				t.Errorf("%s imports %s outside its tests", pkg, actors)
			}
		}
	}
}
