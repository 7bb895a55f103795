package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMakeTestDoesItsSetUp: the README's test command, make test, sets up
// what the tests need before it runs them: it installs the missing Debian
// packages (or, when it may not, prints the exact command and stops
// rather than letting tests skip) and runs npm ci for the browser test.
// .ci/run only adds make itself.
func TestMakeTestDoesItsSetUp(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"-C", "../.."}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	// Nothing installed, and not allowed to install: the exact command.
	out, err := run("-s", "system-deps", "DEPS_PATH="+t.TempDir(), "DEPS_INSTALL=")
	want := "sudo apt-get update && sudo apt-get install -y redis-server redis-tools nginx nodejs npm chromium"
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("make system-deps with nothing installed: %v\n%s\nwant a failure that says: %s", err, out, want)
	}

	// make test runs the set-up first: packages, then npm ci (when the
	// lock file changed), then the tests.
	out, err = run("-n", "-W", "transport/web/package-lock.json", "test")
	if err != nil {
		t.Fatalf("make -n test: %v\n%s", err, out)
	}
	apt, npm, test := strings.Index(out, "apt-get install"), strings.Index(out, "npm ci"), strings.Index(out, " test -race")
	if apt < 0 || npm < apt || test < npm {
		t.Errorf("make test does not install packages, then run npm ci, then the tests:\n%s", out)
	}

	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	script := string(ci)
	if up, inst := strings.Index(script, "apt-get update"), strings.Index(script, "apt-get install"); inst >= 0 && (up < 0 || up > inst) {
		t.Errorf(".ci/run installs before apt-get update:\n%s", script)
	}
	for _, line := range strings.Split(script, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "#") {
			continue
		}
		if strings.Contains(line, "npm") || strings.Contains(line, "apt-get install") && !strings.HasSuffix(line, "install -y -qq make >/dev/null") {
			t.Errorf(".ci/run sets up more than make itself (make test does the rest): %s", line)
		}
	}
	if !strings.HasSuffix(strings.TrimSpace(script), "\nmake test") {
		t.Errorf(".ci/run does not end with make test:\n%s", script)
	}
}
