package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerifyToken feeds arbitrary strings to the token verifiers of every
// algorithm family, and to the code that finds a token in a request. Nothing
// may panic, and a token is accepted only if it is, byte for byte, one this
// process signed: mutations cannot forge, re-spell (strict base64) or
// re-algorithm a token. Of those, the ones signed over what the node must
// refuse (a crit header, a payload that is not UTF-8, a sub in the guest
// namespace or one that could pass for another id) stay refused, and every
// accepted token is checked for them again from its raw segments. Each
// input is also verified in two halves, which must both be refused.
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
	// Signed, and still to be refused.
	refuse := map[string]bool{}
	seedRefused := func(tok string) {
		signed[tok] = true
		signingInputs[tok[:strings.LastIndexByte(tok, '.')]] = true
		refuse[tok] = true
		f.Add(tok)
	}
	withCrit := jwt.NewWithClaims(jwt.SigningMethodHS256, good)
	withCrit.Header["crit"] = []string{"x-ext"}
	withCrit.Header["x-ext"] = true
	critTok, err := withCrit.SignedString(secret)
	if err != nil {
		f.Fatal(err)
	}
	seedRefused(critTok)
	exp := now.AddDate(100, 0, 0).Unix()
	for _, payload := range []string{
		fmt.Sprintf("{\"sub\":\"al\xffice\",\"exp\":%d}", exp),
		fmt.Sprintf(`{"sub":"al\ud800ice","exp":%d}`, exp),
		fmt.Sprintf("{\"sub\":\"alice\",\"exp\":%d,\"x\":\"\xc3\"}", exp),
		fmt.Sprintf(`{"sub":"guest:alice","exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"\u202eecila","exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"alice ","exp":%d}`, exp),
		fmt.Sprintf(`{"sub":"al\u200bice","exp":%d}`, exp),
	} {
		seedRefused(rawHS256(secret, `{"alg":"HS256","typ":"JWT"}`, payload))
	}
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
			if !ValidUserID(c.Subject) || strings.HasPrefix(c.Subject, GuestPrefix) {
				t.Fatalf("accepted a token with sub %q", c.Subject)
			}
			if refuse[tok] {
				t.Fatalf("accepted a token that must be refused: %q", tok)
			}
			checkRawSegments(t, tok)
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

// rawHS256 signs header and payload as they are, for what the jwt library
// would not encode (invalid UTF-8).
func rawHS256(secret []byte, header, payload string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// checkRawSegments fails t unless an accepted token's header has no crit
// and its payload is UTF-8, read from the raw segments, not from what the
// verifier decoded.
func checkRawSegments(t *testing.T, tok string) {
	parts := strings.Split(tok, ".")
	header, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	payload, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("accepted a token whose segments do not decode: %q", tok)
	}
	var h map[string]json.RawMessage
	if err := json.Unmarshal(header, &h); err != nil {
		t.Fatalf("accepted a token whose header is not an object: %q", tok)
	}
	if _, ok := h["crit"]; ok {
		t.Fatalf("accepted a token with a crit header: %q", tok)
	}
	if !utf8.Valid(payload) {
		t.Fatalf("accepted a token whose payload is not UTF-8: %q", tok)
	}
}

// BenchmarkVerifyToken is the cost of checking one token at a handshake,
// per algorithm family.
func BenchmarkVerifyToken(b *testing.B) {
	secret := []byte("benchmark-secret-benchmark-secre")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	c := jwt.MapClaims{"sub": "alice", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "rooms": []string{"lobby", "team:*"}}
	for _, tc := range []struct {
		name   string
		cfg    AuthConfig
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", AuthConfig{Secret: secret}, jwt.SigningMethodHS256, secret},
		{"ES256", AuthConfig{PublicKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, jwt.SigningMethodES256, ecKey},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a, err := NewAuthenticator(tc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			tok, err := jwt.NewWithClaims(tc.method, c).SignedString(tc.key)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
