package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyToken feeds arbitrary strings to the token verifiers of every
// algorithm family, and to the code that finds a token in a request. Nothing
// may panic, and a token is accepted only if it is, byte for byte, one this
// process signed: mutations cannot forge, re-spell (strict base64) or
// re-algorithm a token. Each input is also verified in two halves, which
// must both be refused.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("fuzzing-secret-fuzzing-secret-32")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	pemOf := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			f.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	var verifiers []*Authenticator
	for _, cfg := range []AuthConfig{
		{Secret: secret, Leeway: time.Second},
		{Secret: secret, Issuer: "idp", Audience: "switchboard"},
		{PublicKeyPEM: pemOf(&rsaKey.PublicKey)},
		{PublicKeyPEM: pemOf(&ecKey.PublicKey)},
	} {
		a, err := NewAuthenticator(cfg)
		if err != nil {
			f.Fatal(err)
		}
		verifiers = append(verifiers, a)
	}

	signed := map[string]bool{}
	signingInputs := map[string]bool{}
	seed := func(m jwt.SigningMethod, key any, c jwt.MapClaims) {
		tok, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		signed[tok] = true
		signingInputs[tok[:strings.LastIndexByte(tok, '.')]] = true
		f.Add(tok)
	}
	// Fixed times: fuzzing runs the target in several processes, and each
	// must sign exactly the same HS256 seeds for the property to hold.
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	good := jwt.MapClaims{"sub": "alice", "iat": now.Unix(), "exp": now.AddDate(100, 0, 0).Unix(),
		"iss": "idp", "aud": "switchboard", "rooms": []string{"lobby", "team:*"}}
	seed(jwt.SigningMethodHS256, secret, good)
	seed(jwt.SigningMethodRS256, rsaKey, good)
	seed(jwt.SigningMethodES256, ecKey, good)
	seed(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "bob", "exp": now.Add(-time.Hour).Unix()})
	seed(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "bob", "nbf": now.AddDate(100, 0, 0).Unix()})
	seed(jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "", "rooms": "x"})
	seed(jwt.SigningMethodHS256, pemOf(&rsaKey.PublicKey), good) // algorithm confusion
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, s := range []string{none, "", ".", "..", "a.b.c", "eyJhbGciOiJIUzI1NiJ9..", "e30.e30.", strings.Repeat("A", 300)} {
		f.Add(s)
	}

	check := func(t *testing.T, tok string) bool {
		accepted := false
		for _, a := range verifiers {
			c, err := a.Verify(tok)
			if err != nil {
				continue
			}
			accepted = true
			if !ValidUserID(c.Subject) {
				t.Fatalf("accepted a token with sub %q", c.Subject)
			}
			if i := strings.LastIndexByte(tok, '.'); i < 0 || !signingInputs[tok[:i]] {
				t.Fatalf("accepted a token this process never signed: %q", tok)
			}
			if a.Algorithm() != "ES256" && !signed[tok] {
				// ECDSA signatures come in pairs (s and n-s); every other
				// accepted token must be exactly one that was signed.
				t.Fatalf("accepted a re-spelled token: %q", tok)
			}
			_ = c.RoomAllowed()
		}
		return accepted
	}
	f.Fuzz(func(t *testing.T, tok string) {
		check(t, tok)
		half := len(tok) / 2
		if half > 0 && (check(t, tok[:half]) || check(t, tok[half:])) {
			t.Fatalf("half of %q was accepted", tok)
		}
		// Finding the token in a request: whatever comes out is a piece of
		// what went in.
		r, err := http.NewRequest(http.MethodGet, "http://node/ws/secure?token="+url.QueryEscape(tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := tokenFrom(r); got != tok {
			t.Fatalf("query token %q came out as %q", tok, got)
		}
		r, _ = http.NewRequest(http.MethodGet, "http://node/ws/secure", nil)
		r.Header.Set("Authorization", tok)
		r.Header.Set("Sec-WebSocket-Protocol", tok)
		if got := tokenFrom(r); got != "" && !strings.Contains(tok, got) {
			t.Fatalf("header token from %q came out as %q", tok, got)
		}
		_ = hasBearerProtocol(r)
	})
}
