package transport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-rt/switchboard/actors"
)

// bearerProtocol is the WebSocket subprotocol that carries a token from
// browsers, which cannot set headers: the client offers
// ["bearer", "<JWT>"] and the server selects "bearer".
const bearerProtocol = "bearer"

// Authenticator verifies JWTs with github.com/golang-jwt/jwt/v5: HS256 with a
// shared secret, or RS256/ES256 with a public key. Only the configured
// algorithm family is accepted ("alg": "none" never is).
type Authenticator struct {
	key     any
	methods []string
	leeway  time.Duration
}

// Authenticator errors.
var (
	ErrNoKey       = errors.New("transport: auth: a secret or a public key is required")
	ErrBadKey      = errors.New("transport: auth: public key must be a PEM RSA or ECDSA key")
	ErrNoToken     = errors.New("transport: auth: token missing")
	ErrBadToken    = errors.New("transport: auth: token invalid")
	ErrNoSubject   = errors.New("transport: auth: token has no sub")
	ErrIDMismatch  = errors.New("transport: auth: client_id differs from the token's sub")
	ErrInvalidUser = errors.New("transport: client_id must be 1-128 characters")
)

// NewHMACAuthenticator accepts HS256 tokens signed with secret.
func NewHMACAuthenticator(secret []byte) (*Authenticator, error) {
	if len(secret) == 0 {
		return nil, ErrNoKey
	}
	return &Authenticator{key: secret, methods: []string{"HS256"}, leeway: 5 * time.Second}, nil
}

// NewPublicKeyAuthenticator accepts RS256 (RSA key) or ES256 (ECDSA key)
// tokens, verified with the PEM public key in pemBytes.
func NewPublicKeyAuthenticator(pemBytes []byte) (*Authenticator, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, ErrBadKey
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
		return nil, ErrBadKey
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		return &Authenticator{key: pub, methods: []string{"RS256"}, leeway: 5 * time.Second}, nil
	case *ecdsa.PublicKey:
		return &Authenticator{key: pub, methods: []string{"ES256"}, leeway: 5 * time.Second}, nil
	}
	return nil, ErrBadKey
}

// NewPublicKeyFileAuthenticator reads the PEM key from path.
func NewPublicKeyFileAuthenticator(path string) (*Authenticator, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transport: auth: %w", err)
	}
	return NewPublicKeyAuthenticator(b)
}

// Claims are the token claims Switchboard reads: the registered ones plus an
// optional "rooms" list of room names or "prefix:*" patterns.
type Claims struct {
	jwt.RegisteredClaims
	Rooms []string `json:"rooms,omitempty"`
}

// Verify parses and checks a token: signature, algorithm, exp, nbf, sub.
func (a *Authenticator) Verify(token string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods(a.methods), jwt.WithLeeway(a.leeway), jwt.WithIssuedAt())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if c.Subject == "" {
		return nil, ErrNoSubject
	}
	return &c, nil
}

// RoomAllowed builds the room filter of a rooms claim: exact names, or
// "prefix*" patterns ("team:*" matches "team:a"). Nil claim: every room.
func (c *Claims) RoomAllowed() func(string) bool {
	if c.Rooms == nil {
		return nil
	}
	patterns := append([]string(nil), c.Rooms...)
	return func(room string) bool {
		for _, p := range patterns {
			if p == room || (strings.HasSuffix(p, "*") && strings.HasPrefix(room, p[:len(p)-1])) {
				return true
			}
		}
		return false
	}
}

// tokenFrom finds a token in ?token=, Authorization: Bearer, or the
// Sec-WebSocket-Protocol offer ["bearer", TOKEN].
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

func hasBearerProtocol(r *http.Request) bool {
	for _, p := range subprotocols(r) {
		if p == bearerProtocol {
			return true
		}
	}
	return false
}

// authenticate decides who the client is. It returns a non-zero HTTP status
// when the request must be refused.
func (s *Server) authenticate(r *http.Request, requireToken bool) (actors.SessionOptions, int, string) {
	clientID := r.URL.Query().Get("client_id")
	token := tokenFrom(r)
	if token == "" && !requireToken {
		if clientID == "" {
			clientID = actors.RandomID(9)
		}
		if len(clientID) > 128 {
			return actors.SessionOptions{}, http.StatusBadRequest, "client_id must be at most 128 characters"
		}
		return actors.SessionOptions{User: clientID}, 0, ""
	}
	if token == "" {
		return actors.SessionOptions{}, http.StatusUnauthorized, "token required"
	}
	if s.cfg.Auth == nil {
		return actors.SessionOptions{}, http.StatusUnauthorized, "token authentication is not configured on this node"
	}
	claims, err := s.cfg.Auth.Verify(token)
	if err != nil {
		s.log.Info("token refused", "remote", remoteIP(r), "reason", err.Error())
		return actors.SessionOptions{}, http.StatusUnauthorized, "invalid token"
	}
	if clientID != "" && clientID != claims.Subject {
		return actors.SessionOptions{}, http.StatusUnauthorized, "client_id does not match the token"
	}
	if len(claims.Subject) > 128 {
		return actors.SessionOptions{}, http.StatusUnauthorized, "token sub too long"
	}
	opts := actors.SessionOptions{User: claims.Subject, RoomAllowed: claims.RoomAllowed()}
	if claims.ExpiresAt != nil {
		opts.Expires = claims.ExpiresAt.Time
	}
	return opts, 0, ""
}
