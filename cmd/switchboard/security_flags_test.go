package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/transport/wsclient"
)

func TestSecurityFlagDefaultsAndEnvironment(t *testing.T) {
	o, err := parseOptions(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.maxConnections != 10000 || o.maxConnsPerIP != 0 || o.readHeaderTimeout != 5*time.Second ||
		o.handshakeTimeout != 10*time.Second || o.rateStrikes != 100 || o.jwtLeeway != 5*time.Second ||
		o.maxRooms != 100 || o.ratePerSecond != 100 || o.allowBinary || o.authRequired {
		t.Fatalf("defaults: %+v", o)
	}
	env := map[string]string{
		"SWITCHBOARD_JWT_SECRET":             "from-the-environment-0123456789ab",
		"SWITCHBOARD_AUTH_REQUIRED":          "true",
		"SWITCHBOARD_ALLOWED_ORIGINS":        "https://a.example.com, https://*.example.org",
		"SWITCHBOARD_MAX_CONNECTIONS_PER_IP": "7",
		"SWITCHBOARD_READ_HEADER_TIMEOUT":    "2s",
		"SWITCHBOARD_JWT_AUDIENCE":           "sb",
	}
	o, err = parseOptions([]string{"--max-connections-per-ip", "9"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.jwtSecret != env["SWITCHBOARD_JWT_SECRET"] || !o.authRequired || o.maxConnsPerIP != 9 ||
		o.readHeaderTimeout != 2*time.Second || o.jwtAudience != "sb" ||
		strings.Join(origins(o.allowedOrigins), "|") != "https://a.example.com|https://*.example.org" {
		t.Fatalf("environment (a flag given wins): %+v", o)
	}
	for _, args := range [][]string{
		{"--jwt-secret", "s", "--jwt-public-key", "k.pem"},
		{"--auth-required"},
		{"--max-connections-per-ip", "-1"},
		{"--rate-strikes", "0"},
		{"--handshake-timeout", "0s"},
		{"--read-header-timeout", "-1s"},
		{"--jwt-leeway", "-1s"},
		{"--max-connections", "-1"},
	} {
		if _, err := parseOptions(args, func(string) string { return "" }, io.Discard); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
	if _, err := newAuthenticator(&options{jwtPublicKey: filepath.Join(t.TempDir(), "missing.pem")}, nil); err == nil {
		t.Error("a missing key file was accepted")
	}
}

// The node command wires every security flag: tokens (with audience),
// --auth-required, origins, the connection limit.
func TestSecurityFlagsWired(t *testing.T) {
	secret := "a-secret-of-at-least-32-bytes-000"
	n := startInproc(t, "--jwt-secret", secret, "--jwt-audience", "sb", "--auth-required",
		"--allowed-origins", "https://app.example.com", "--max-connections", "2")
	base := "ws" + strings.TrimPrefix(n.base, "http")
	tok := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(time.Hour).Unix()
	good := tok(jwt.MapClaims{"sub": "alice", "aud": "sb", "exp": exp})

	status := func(url string, hdr http.Header) int {
		c, err := wsclient.Dial(url, wsclient.Options{Header: hdr})
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			return http.StatusSwitchingProtocols
		}
		var he *wsclient.HandshakeError
		if !errors.As(err, &he) {
			t.Fatalf("dial %s: %v", url, err)
		}
		return he.Status
	}
	origin := func(o string) http.Header { h := http.Header{}; h.Set("Origin", o); return h }
	for _, tc := range []struct {
		name string
		url  string
		hdr  http.Header
		want int
	}{
		{"no token on /ws", base + "/ws?client_id=alice", nil, http.StatusUnauthorized},
		{"token for another audience", base + "/ws?token=" + tok(jwt.MapClaims{"sub": "alice", "aud": "other", "exp": exp}), nil, http.StatusUnauthorized},
		{"foreign origin", base + "/ws?token=" + good, origin("https://evil.example"), http.StatusForbidden},
		{"good token", base + "/ws?token=" + good, origin("https://app.example.com"), http.StatusSwitchingProtocols},
		{"second connection", base + "/ws/secure?token=" + good, nil, http.StatusSwitchingProtocols},
		{"third connection: node full", base + "/ws/secure?token=" + good, nil, http.StatusServiceUnavailable},
	} {
		if got := status(tc.url, tc.hdr); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// --jwt-public-key reads a PEM file; a short --jwt-secret is warned about.
func TestSecurityPublicKeyFileAndWeakSecret(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startInproc(t, "--jwt-public-key", path)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": "rita", "exp": time.Now().Add(time.Hour).Unix()}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	c := dialWelcome(t, "ws"+strings.TrimPrefix(n.base, "http")+"/ws/secure?token="+tok)
	_ = c.Close()
	if !n.logs.Contains("alg=RS256") {
		t.Fatalf("the log does not say which algorithm is on:\n%s", n.logs)
	}

	weak := startInproc(t, "--jwt-secret", "short")
	if !weak.logs.Contains("shorter than 32 bytes") {
		t.Fatalf("no warning for a short secret:\n%s", weak.logs)
	}
}
