package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/actors/port"
	"github.com/switchboard-rt/switchboard/actors/wire"
)

// bearerProtocol is the WebSocket subprotocol that carries a token from
// browsers, which cannot set headers: the client offers
// ["bearer", "<JWT>"] and the server selects "bearer".
const bearerProtocol = "bearer"

// MaxUserIDLen bounds a client id: the token's sub, or ?client_id= without auth.
const MaxUserIDLen = wire.MaxUserIDLen

// minRSABits refuses RSA keys that no longer resist factoring.
const minRSABits = 2048

// AuthConfig configures token verification. Exactly one of Secret and
// PublicKeyPEM is set.
type AuthConfig struct {
	// Secret is the HS256 shared secret. Anyone who holds it can mint tokens,
	// and a short one can be found offline from a single token: use 32 random
	// bytes or more.
	Secret []byte
	// PublicKeyPEM is the issuer's public key (PKIX "PUBLIC KEY", PKCS#1
	// "RSA PUBLIC KEY" or a "CERTIFICATE"): RSA of 2048 bits or more for
	// RS256, or ECDSA P-256 for ES256 (P-384: ES384, P-521: ES512).
	PublicKeyPEM []byte
	// Issuer, when not empty, must equal the token's iss.
	Issuer string
	// Audience, when not empty, must be one of the token's aud values. Set it
	// when the issuer also signs tokens for other services, or those tokens
	// are accepted here too.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat, between the
	// issuer's clock and this node's. A session ends at exp + Leeway.
	// Zero: none.
	Leeway time.Duration
}

// Authenticator verifies JWTs with github.com/golang-jwt/jwt/v5. Only the
// algorithm that fits the configured key is accepted: "alg": "none", another
// family (HS256 presented to an RSA key, or the reverse) and every other
// algorithm are refused before any signature check. It is immutable and
// safe for concurrent use by HTTP handler goroutines.
type Authenticator struct {
	key    any
	method string
	parser *jwt.Parser
	leeway time.Duration
}

// Authenticator errors.
var (
	ErrNoKey      = errors.New("transport: auth: a secret or a public key is required")
	ErrTwoKeys    = errors.New("transport: auth: a secret and a public key are exclusive")
	ErrBadKey     = errors.New("transport: auth: public key must be a PEM RSA (2048 bits or more) or ECDSA (P-256, P-384, P-521) key")
	ErrBadLeeway  = errors.New("transport: auth: leeway must not be negative")
	ErrNoToken    = errors.New("transport: auth: token missing")
	ErrBadToken   = errors.New("transport: auth: token invalid")
	ErrExpired    = errors.New("transport: auth: token expired")
	ErrNoSubject  = errors.New("transport: auth: token has no sub")
	ErrBadSubject = errors.New("transport: auth: token sub is not a valid client id")
	// ErrGuestSubject refuses a sub that starts with GuestPrefix: those ids
	// belong to anonymous clients.
	ErrGuestSubject = errors.New("transport: auth: token sub is in the guest namespace")
	ErrIDMismatch   = errors.New("transport: auth: client_id differs from the token's sub")
	ErrInvalidUser  = errors.New("transport: client_id must be a valid user id (see ValidUserID)")

	errCritical       = errors.New("transport: auth: token has a crit header")
	errPayloadNotUTF8 = errors.New("transport: auth: token payload is not UTF-8")
)

// NewAuthenticator builds a verifier from cfg.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	if cfg.Leeway < 0 {
		return nil, ErrBadLeeway
	}
	a := &Authenticator{leeway: cfg.Leeway}
	switch {
	case len(cfg.Secret) > 0 && len(cfg.PublicKeyPEM) > 0:
		return nil, ErrTwoKeys
	case len(cfg.Secret) > 0:
		a.key, a.method = append([]byte(nil), cfg.Secret...), jwt.SigningMethodHS256.Alg()
	case len(cfg.PublicKeyPEM) > 0:
		key, method, err := parsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return nil, err
		}
		a.key, a.method = key, method
	default:
		return nil, ErrNoKey
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{a.method}),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
		// One token, one spelling: no padding, no non-canonical base64.
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	a.parser = jwt.NewParser(opts...)
	return a, nil
}

// NewHMACAuthenticator accepts HS256 tokens signed with secret, with 5 s of
// clock leeway.
func NewHMACAuthenticator(secret []byte) (*Authenticator, error) {
	return NewAuthenticator(AuthConfig{Secret: secret, Leeway: 5 * time.Second})
}

// NewPublicKeyAuthenticator accepts RS256 (RSA key) or ES256 (ECDSA P-256
// key) tokens, verified with the PEM public key in pemBytes, with 5 s of
// clock leeway.
func NewPublicKeyAuthenticator(pemBytes []byte) (*Authenticator, error) {
	return NewAuthenticator(AuthConfig{PublicKeyPEM: pemBytes, Leeway: 5 * time.Second})
}

// NewPublicKeyFileAuthenticator reads the PEM key from path.
func NewPublicKeyFileAuthenticator(path string) (*Authenticator, error) {
	b, err := ReadPublicKeyFile(path)
	if err != nil {
		return nil, err
	}
	return NewPublicKeyAuthenticator(b)
}

// ReadPublicKeyFile reads a PEM key file for AuthConfig.PublicKeyPEM.
func ReadPublicKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: auth: %w", err)
	}
	return b, nil
}

// parsePublicKey decodes a PEM public key and picks the one algorithm it
// verifies.
func parsePublicKey(pemBytes []byte) (crypto.PublicKey, string, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, "", ErrBadKey
	}
	var pub crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		return nil, "", ErrBadKey
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, "", fmt.Errorf("%w: RSA key of %d bits", ErrBadKey, k.N.BitLen())
		}
		return k, jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, jwt.SigningMethodES256.Alg(), nil
		case elliptic.P384():
			return k, jwt.SigningMethodES384.Alg(), nil
		case elliptic.P521():
			return k, jwt.SigningMethodES512.Alg(), nil
		}
	}
	return nil, "", ErrBadKey
}

// Algorithm is the one JWT "alg" this authenticator accepts.
func (a *Authenticator) Algorithm() string { return a.method }

// Claims are the token claims Switchboard reads: the registered ones plus an
// optional "rooms" list of room names or "prefix*" patterns. A rooms claim
// that is not a list of strings makes the token invalid.
type Claims struct {
	jwt.RegisteredClaims
	Rooms []string `json:"rooms,omitempty"`
}

// UnmarshalJSON decodes a token's payload, refusing one that is not UTF-8
// (RFC 8259, 8.1): encoding/json would read each invalid byte as U+FFFD, so
// the claims seen here would differ from the ones the issuer signed.
func (c *Claims) UnmarshalJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errPayloadNotUTF8
	}
	type plain Claims // the same fields without this method
	return json.Unmarshal(b, (*plain)(c))
}

// Verify parses and checks a token: no crit header, algorithm, signature,
// a UTF-8 payload, exp, nbf, iat, iss and aud when configured, and sub (a
// valid user id, see ValidUserID, outside the guest namespace). The error
// is ErrExpired, ErrNoSubject, ErrBadSubject or ErrGuestSubject, or wraps
// ErrBadToken.
func (a *Authenticator) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := a.parser.ParseWithClaims(token, &c, a.keyFor)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, ErrExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	case c.Subject == "":
		return nil, ErrNoSubject
	case !ValidUserID(c.Subject):
		return nil, ErrBadSubject
	case strings.HasPrefix(c.Subject, GuestPrefix):
		return nil, ErrGuestSubject
	}
	return &c, nil
}

// keyFor hands the parser the key once the header is read, before the
// signature is checked. A token with a "crit" header is refused there: crit
// lists extensions the verifier must understand and apply (RFC 7515,
// 4.1.11), and this one applies none.
func (a *Authenticator) keyFor(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCritical
	}
	return a.key, nil
}

// ValidUntil is when a session opened with c must end: exp plus the clock
// leeway. Zero when the token has no exp.
func (a *Authenticator) ValidUntil(c *Claims) time.Time {
	if c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Add(a.leeway)
}

// RoomAllowed builds the room filter of a rooms claim: exact names, or
// patterns ending in "*" that match by prefix ("team:*" matches "team:a";
// "*" matches every room). No claim: nil, every room. An empty list: no room.
func (c *Claims) RoomAllowed() func(string) bool {
	if c.Rooms == nil {
		return nil
	}
	exact := make(map[string]struct{}, len(c.Rooms))
	var prefixes []string
	for _, p := range c.Rooms {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			prefixes = append(prefixes, pre)
		} else {
			exact[p] = struct{}{}
		}
	}
	return func(room string) bool {
		if _, ok := exact[room]; ok {
			return true
		}
		for _, pre := range prefixes {
			if strings.HasPrefix(room, pre) {
				return true
			}
		}
		return false
	}
}

// tokenFrom finds a token in ?token=, Authorization: Bearer, or the
// Sec-WebSocket-Protocol offer ["bearer", TOKEN], in that order.
func tokenFrom(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	offers := subprotocols(r)
	for i := 0; i+1 < len(offers); i++ {
		if offers[i] == bearerProtocol {
			return offers[i+1]
		}
	}
	return ""
}

func subprotocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// hasBearerProtocol reports whether the upgrade must select "bearer". gws
// negotiates from the first Sec-WebSocket-Protocol line only, so the offer
// counts only there; a "bearer" offered on a later line is still read by
// tokenFrom, and the upgrade then selects no subprotocol.
func hasBearerProtocol(r *http.Request) bool {
	for _, p := range strings.Split(r.Header.Get("Sec-WebSocket-Protocol"), ",") {
		if strings.TrimSpace(p) == bearerProtocol {
			return true
		}
	}
	return false
}

// refusal is why a handshake is refused: an HTTP status, a short text for
// the client, and the metric reason.
type refusal struct {
	status int
	msg    string
	reason string
}

// authenticate decides who the client is. With a token, the id is its sub;
// without one (allowed only when requireToken is false), see anonymous.
func (s *Server) authenticate(r *http.Request, requireToken bool) (port.SessionOptions, *refusal) {
	clientID := r.URL.Query().Get("client_id")
	token := tokenFrom(r)
	if token == "" && !requireToken {
		return s.anonymous(clientID)
	}
	if token == "" {
		return port.SessionOptions{}, &refusal{http.StatusUnauthorized, "token required", "auth"}
	}
	if s.cfg.Auth == nil {
		return port.SessionOptions{}, &refusal{http.StatusUnauthorized, "token authentication is not configured on this node", "auth"}
	}
	claims, err := s.cfg.Auth.Verify(token)
	if err != nil {
		s.log.Info("token refused", "remote", remoteIP(r), "reason", err.Error())
		if errors.Is(err, ErrExpired) {
			return port.SessionOptions{}, &refusal{http.StatusUnauthorized, "token expired", "auth"}
		}
		return port.SessionOptions{}, &refusal{http.StatusUnauthorized, "invalid token", "auth"}
	}
	if clientID != "" && clientID != claims.Subject {
		return port.SessionOptions{}, &refusal{http.StatusUnauthorized, "client_id does not match the token", "auth"}
	}
	return port.SessionOptions{
		User:        claims.Subject,
		RoomAllowed: claims.RoomAllowed(),
		Expires:     s.cfg.Auth.ValidUntil(claims),
	}, nil
}
