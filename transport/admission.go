package transport

import (
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
)

// This file decides who may open a WebSocket, before the upgrade and before
// any token is checked: the request's shape, the Origin allowlist, the
// node's connection limit and the per-address limit. Each refusal is a
// plain HTTP status.

// maxRequestHead is the largest request head (request line and header
// lines) a client may send. net/http reads up to MaxHeaderBytes plus 4096
// bytes of slack for its buffered reader (http.Server.initialReadLimitSize),
// so MaxHeaderBytes is set that much lower for the limit to be this one.
const (
	maxRequestHead = 16 << 10
	netHTTPSlack   = 4096
	maxHeaderBytes = maxRequestHead - netHTTPSlack
)

// wsKeyLen is the decoded size of a Sec-WebSocket-Key (RFC 6455, 4.1).
const wsKeyLen = 16

// malformedUpgrade answers 400 to an upgrade request that no WebSocket
// client sends (RFC 6455, 4.1 and 4.2.1): one older than HTTP/1.1 (the
// upgrade mechanism and the Host header it relies on are HTTP/1.1), or one
// without exactly one Sec-WebSocket-Key of 16 bytes in base64. It reports
// whether it answered. It runs first: such a request takes no slot and
// reaches no token check.
func (s *Server) malformedUpgrade(w http.ResponseWriter, r *http.Request) bool {
	keys := r.Header.Values("Sec-WebSocket-Key")
	ok := r.ProtoAtLeast(1, 1) && len(keys) == 1 && validWSKey(keys[0])
	if !ok {
		s.refuse(w, &refusal{http.StatusBadRequest, "not a WebSocket upgrade request", "handshake"})
	}
	return !ok
}

// validWSKey reports whether key is 16 bytes in standard padded base64:
// 24 characters, the last two "=".
func validWSKey(key string) bool {
	if len(key) != base64.StdEncoding.EncodedLen(wsKeyLen) {
		return false
	}
	var b [18]byte // base64.StdEncoding.DecodedLen(24)
	n, err := base64.StdEncoding.Strict().Decode(b[:], []byte(key))
	return err == nil && n == wsKeyLen
}

// originPolicy is the compiled AllowedOrigins list. Immutable after New.
type originPolicy struct {
	any      bool
	exact    map[string]struct{} // "https://app.example.com", lower case, no trailing slash
	suffixes []string            // "https://*.example.com" stored as scheme "https://" + ".example.com"
	schemes  []string            // the scheme of each suffix, same index
}

func newOriginPolicy(list []string) originPolicy {
	p := originPolicy{exact: map[string]struct{}{}}
	for _, o := range list {
		o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
		switch {
		case o == "":
		case o == "*":
			p.any = true
		case strings.Contains(o, "://*."):
			scheme, host, _ := strings.Cut(o, "://*")
			p.schemes = append(p.schemes, scheme+"://")
			p.suffixes = append(p.suffixes, host)
		default:
			p.exact[o] = struct{}{}
		}
	}
	return p
}

// allows reports whether a browser page from origin may connect. Requests
// without an Origin header come from non-browser clients, which any site's
// script cannot make on a user's behalf, and are accepted. An empty list
// accepts every origin.
func (p *originPolicy) allows(origin string) bool {
	if origin == "" || p.any || (len(p.exact) == 0 && len(p.suffixes) == 0) {
		return true
	}
	origin = strings.ToLower(origin)
	if _, ok := p.exact[origin]; ok {
		return true
	}
	for i, suf := range p.suffixes {
		// "https://*.example.com" matches "https://a.example.com" and
		// "https://a.b.example.com", not "https://example.com" nor
		// "https://evil-example.com".
		if rest, ok := strings.CutPrefix(origin, p.schemes[i]); ok && len(rest) > len(suf) && strings.HasSuffix(rest, suf) {
			return true
		}
	}
	return false
}

// slots counts open WebSockets against the node limit and the per-address
// limit. A slot is taken before the upgrade (so concurrent handshakes cannot
// overshoot a limit) and given back when the handshake fails or the socket's
// read loop ends.
//
// Ownership: total is atomic (HTTP handlers take, read loops give back,
// /stats and /metrics read). mu guards byIP, touched only for the few
// nanoseconds of a count change; it is nil when there is no per-address limit.
type slots struct {
	max, perIP int
	total      *atomic.Int64

	mu   sync.Mutex
	byIP map[string]int
}

func newSlots(max, perIP int, total *atomic.Int64) *slots {
	s := &slots{max: max, perIP: perIP, total: total}
	if perIP > 0 {
		s.byIP = make(map[string]int)
	}
	return s
}

// take reserves a slot for a connection from ip, or explains the refusal.
func (s *slots) take(ip string) *refusal {
	if n := s.total.Add(1); s.max > 0 && n > int64(s.max) {
		s.total.Add(-1)
		return &refusal{http.StatusServiceUnavailable, "node is full", "full"}
	}
	if s.byIP == nil {
		return nil
	}
	key := addressKey(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byIP[key] >= s.perIP {
		s.total.Add(-1)
		return &refusal{http.StatusTooManyRequests, "too many connections from your address", "per_ip"}
	}
	s.byIP[key]++
	return nil
}

// give returns the slot taken for ip.
func (s *slots) give(ip string) {
	s.total.Add(-1)
	if s.byIP == nil {
		return
	}
	key := addressKey(ip)
	s.mu.Lock()
	if s.byIP[key] <= 1 {
		delete(s.byIP, key)
	} else {
		s.byIP[key]--
	}
	s.mu.Unlock()
}

// addressKey is what the per-address limit counts: an IPv4 address, or an
// IPv6 /64. A host is routinely given a whole /64 and may connect from any
// of its 2^64 addresses, so counting single IPv6 addresses would limit
// nothing.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// headWatch tracks HTTP connections on which no request has reached a
// handler yet: the ones a slowloris client holds open by sending its
// request head slowly, or nothing at all. Connections are keyed by their
// net.Conn: ConnState adds them, the first request that reaches ServeHTTP
// (found through ConnContext) removes them, and a close before that counts
// as abandoned (a header-read timeout, an oversized or malformed head, a
// port scan). net/http calls these hooks from each connection's goroutine,
// so the set is a sync.Map and the counters are atomic.
type headWatch struct {
	waiting   sync.Map     // net.Conn -> struct{}
	pending   atomic.Int64 // connections in waiting now
	abandoned atomic.Int64 // connections closed while in waiting
}

// connKey carries the net.Conn in a request's context.
type connKey struct{}

func (h *headWatch) connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func (h *headWatch) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		h.waiting.Store(c, struct{}{})
		h.pending.Add(1)
	case http.StateClosed, http.StateHijacked:
		if _, ok := h.waiting.LoadAndDelete(c); ok {
			h.pending.Add(-1)
			h.abandoned.Add(1)
		}
	}
}

// served marks r's connection as having delivered a complete request.
func (h *headWatch) served(r *http.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if _, ok := h.waiting.LoadAndDelete(c); ok {
			h.pending.Add(-1)
		}
	}
}
