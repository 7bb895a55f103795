package main

import (
	"os/exec"
	"strings"
	"testing"
)

// edges are the packages that reach the node only through actors/port:
// they must not import the actors package or the actor runtime, so that
// the runtime stays an implementation detail of the core
// (docs/architecture.md, "Packages").
var edges = []string{
	"./transport",
	"./cluster/...",
}

// TestSeamsKeepTheActorRuntimeInside fails when an edge package, or any
// package it depends on outside its tests, imports protoactor or the
// actors package, and names the import that brought it in.
func TestSeamsKeepTheActorRuntimeInside(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the edges' dependencies: %v", err)
	}
	forbidden := func(path string) bool {
		return path == "github.com/switchboard-rt/switchboard/actors" ||
			path == "github.com/asynkron/protoactor-go" ||
			strings.HasPrefix(path, "github.com/asynkron/protoactor-go/")
	}
	for _, edge := range edges {
		cmd := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", edge)
		cmd.Dir = "../.." // the module's root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", edge, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 2 {
			t.Fatalf("go list -deps %s listed %d packages; the test reads nothing", edge, len(lines))
		}
		for _, line := range lines {
			pkg, imports, _ := strings.Cut(line, " ")
			if forbidden(pkg) {
				continue // reported at its importer
			}
			for _, imp := range strings.Fields(imports) {
				if forbidden(imp) {
					t.Errorf("%s depends on %s: %s imports it; use actors/port instead", edge, imp, pkg)
				}
			}
		}
	}
}
