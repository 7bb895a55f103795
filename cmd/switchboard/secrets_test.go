package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSecretFilesAndEnvironment: each secret can come from a file or the
// environment (trailing line breaks dropped), a secret set twice is refused
// naming both settings, and a bad file is refused naming the flag and path.
func TestSecretFilesAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	jwtFile := writeFile(t, dir, "jwt", "jwt-secret-from-a-file-0123456789\n")
	keyFile := writeFile(t, dir, "key", "key from a file\r\n")
	emptyFile := writeFile(t, dir, "empty", "\n")
	bigFile := writeFile(t, dir, "big", strings.Repeat("x", 64<<10+1))
	missing := filepath.Join(dir, "missing")
	parse := func(args []string, env map[string]string) (*options, error) {
		return parseOptions(args, func(k string) string { return env[k] }, io.Discard)
	}

	o, err := parse([]string{"--jwt-secret-file", jwtFile, "--api-key-file", keyFile}, nil)
	if err != nil || o.jwtSecret != "jwt-secret-from-a-file-0123456789" || o.apiKey != "key from a file" {
		t.Fatalf("files on the command line: %v %q %q", err, o.jwtSecret, o.apiKey)
	}
	o, err = parse(nil, map[string]string{"SWITCHBOARD_JWT_SECRET_FILE": jwtFile, "SWITCHBOARD_API_KEY_FILE": keyFile})
	if err != nil || o.jwtSecret != "jwt-secret-from-a-file-0123456789" || o.apiKey != "key from a file" {
		t.Fatalf("files from the environment: %v %q %q", err, o.jwtSecret, o.apiKey)
	}
	o, err = parse(nil, map[string]string{"SWITCHBOARD_JWT_SECRET": "env-secret", "SWITCHBOARD_API_KEY": "env-key"})
	if err != nil || o.jwtSecret != "env-secret" || o.apiKey != "env-key" {
		t.Fatalf("secrets from the environment: %v %q %q", err, o.jwtSecret, o.apiKey)
	}
	// The command line wins over the environment for the pair as a whole.
	o, err = parse([]string{"--api-key-file", keyFile, "--jwt-secret", "inline"},
		map[string]string{"SWITCHBOARD_API_KEY": "env-key", "SWITCHBOARD_JWT_SECRET_FILE": missing})
	if err != nil {
		t.Fatalf("command line over environment: %v", err)
	} else if o.apiKey != "key from a file" || o.jwtSecret != "inline" {
		t.Fatalf("command line over environment: %q %q", o.apiKey, o.jwtSecret)
	}

	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want []string // in the error; the second (a path) exactly once
	}{
		{"jwt secret twice", []string{"--jwt-secret", "inline", "--jwt-secret-file", jwtFile}, nil,
			[]string{"--jwt-secret and --jwt-secret-file"}},
		{"api key twice", []string{"--api-key", "inline", "--api-key-file", keyFile}, nil,
			[]string{"--api-key and --api-key-file"}},
		{"api key twice in the environment", nil, map[string]string{"SWITCHBOARD_API_KEY": "k", "SWITCHBOARD_API_KEY_FILE": keyFile},
			[]string{"--api-key (SWITCHBOARD_API_KEY) and --api-key-file (SWITCHBOARD_API_KEY_FILE)"}},
		{"missing file", []string{"--jwt-secret-file", missing}, nil,
			[]string{"--jwt-secret-file", missing, "no such file"}},
		{"missing file from the environment", nil, map[string]string{"SWITCHBOARD_API_KEY_FILE": missing},
			[]string{"--api-key-file (SWITCHBOARD_API_KEY_FILE)", missing, "no such file"}},
		{"empty file", []string{"--api-key-file", emptyFile}, nil,
			[]string{"--api-key-file", emptyFile, "empty"}},
		{"a directory", []string{"--jwt-secret-file", dir}, nil,
			[]string{"--jwt-secret-file", dir, "directory"}},
		{"a big file", []string{"--api-key-file", bigFile}, nil,
			[]string{"--api-key-file", bigFile, "larger than 64 KiB"}},
	} {
		_, err := parse(c.args, c.env)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for i, w := range c.want {
			if n := strings.Count(err.Error(), w); n == 0 || (i == 1 && n != 1) {
				t.Errorf("%s: %q says %q %d times", c.name, err, w, n)
			}
		}
		for _, secret := range []string{"jwt-secret-from-a-file", "key from a file"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error shows the secret: %q", c.name, err)
			}
		}
	}
	if os.Geteuid() != 0 { // root reads any file
		locked := writeFile(t, dir, "locked", "secret\n")
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := parse([]string{"--jwt-secret-file", locked}, nil); err == nil ||
			!strings.Contains(err.Error(), "--jwt-secret-file") || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("unreadable file: %v", err)
		}
	}
}

// TestSecretFilesWired: a node whose secrets come from files verifies tokens
// with the file's secret and takes the file's key on the publish API.
func TestSecretFilesWired(t *testing.T) {
	dir := t.TempDir()
	secret := "a-secret-of-at-least-32-bytes-from-a-file"
	n := startInproc(t, "--auth-required",
		"--jwt-secret-file", writeFile(t, dir, "jwt", secret+"\n"),
		"--api-key-file", writeFile(t, dir, "key", "file-key\n"))
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "fay", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	c := dialWelcome(t, "ws"+strings.TrimPrefix(n.base, "http")+"/ws?token="+tok)
	if status, _ := publish(t, n.base, "Bearer other-key", `{"user":"fay","payload":{"event":"x"}}`); status != http.StatusUnauthorized {
		t.Errorf("another key: %d, want 401", status)
	}
	if status, body := publish(t, n.base, "Bearer file-key", `{"user":"fay","payload":{"event":"x"}}`); status != http.StatusOK {
		t.Errorf("the key from the file: %d %s", status, body)
	}
	_ = c.Close()
}

// TestSecretsNeverServed runs the real binary with both secrets on its
// command line (the worst case) and every debug feature on, then reads every
// endpoint of both listeners: neither secret appears, and neither does it in
// the log.
func TestSecretsNeverServed(t *testing.T) {
	const jwtSecret, apiKey = "jwt-secret-on-the-command-line-0123", "api-key-on-the-command-line"
	bin := buildNode(t)
	admin := freeAddr(t)
	p := startProc(t, bin, "--jwt-secret", jwtSecret, "--api-key", apiKey, "--pprof", "--enable-kill", "--admin-addr", admin)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "sam", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	c := dialWelcome(t, "ws"+strings.TrimPrefix(p.base, "http")+"/ws/secure?token="+tok)
	joinRoom(t, c, "lobby")

	var paths []string
	for _, path := range []string{"/", "/demo/app.js", "/stats", "/metrics", "/healthz", "/readyz", "/api/publish", "/ws"} {
		paths = append(paths, p.base+path)
	}
	for _, r := range debugRequests {
		if r.method == "GET" {
			paths = append(paths, p.base+r.path, "http://"+admin+r.path)
		}
	}
	for _, name := range []string{"goroutine?debug=2", "heap?debug=1", "allocs?debug=1", "threadcreate?debug=1", "block?debug=1", "mutex?debug=1", "symbol?0x1"} {
		paths = append(paths, "http://"+admin+"/debug/pprof/"+name)
	}
	served := 0
	for _, url := range paths {
		st, body := request(t, "GET", url)
		if st == http.StatusOK {
			served++
		}
		for _, secret := range []string{jwtSecret, apiKey} {
			if strings.Contains(body, secret) {
				t.Errorf("GET %s (%d) shows a secret", url, st)
			}
		}
	}
	if served < 15 {
		t.Errorf("only %d of %d reads answered 200: the scan saw too little", served, len(paths))
	}
	_ = c.Close()
	for _, secret := range []string{jwtSecret, apiKey} {
		if p.logs.Contains(secret) {
			t.Errorf("the log shows a secret:\n%s", p.logs)
		}
	}
}
